"""promptmill's errors.

Every error a user can meet derives from ``PromptmillError`` and carries a one-line
message that names the place (file, line, field) and the fix::

    PromptmillError
    ├── UsageError              bad input found before any request is sent (exit 2)
    │   ├── InputError          a row, file or field of the input
    │   ├── IdentifierError     a malformed ``provider!model,key=value`` string
    │   ├── ParamError          an unknown or invalid generation parameter
    │   ├── MissingDependency   an optional backend whose extra is not installed
    │   ├── MissingKeyError     an API key the backend needs is not set
    │   └── JobMismatchError    the job store belongs to a different job
    ├── StoreError              the job store cannot be used (newer schema, disk full)
    ├── OutputError             the results file cannot be written (disk full, read-only)
    ├── BatchAPIError           a Batch API call (files, batches) failed or was refused; the
    │                           job store keeps every batch's ids: rerun to go on
    ├── ServerStartError        ``promptmill serve``'s server exited or did not answer in time
    ├── SpendingCapReached      the next request could exceed --max-cost / --max-tokens-total;
    │                           what was in flight finished: rerun with a higher cap
    └── GenerationError         one request failed (kept in the store with the request)
        ├── RetryableError      worth another attempt (429, 5xx, timeout, bad body)
        │   ├── RateLimited     the provider refused for rate (429); ``retry_after`` seconds
        │   ├── ServerError     the server failed (500, other 5xx, 408)
        │   ├── RequestTimeout  no answer within the request timeout
        │   ├── MalformedResponse  an answer that is not an OpenAI-shaped completion
        │   ├── InvalidOutput   an answer that is not JSON or breaks the job's schema
        │   └── Unavailable     the server could not be reached; pauses the whole job
        └── FatalRequestError   retrying cannot help (400, context too long)
            └── JobFatalError   every request would fail the same way: stop the job
                                (bad key, unknown model, no OpenAI API at that URL)
"""

from __future__ import annotations

from collections.abc import Iterable


class PromptmillError(Exception):
    """Base of every error promptmill raises on purpose."""

    exit_code = 1


class UsageError(PromptmillError):
    """Bad input, found before any request is sent."""

    exit_code = 2


class InputError(UsageError):
    """A problem in an input file, row or field."""


class IdentifierError(UsageError):
    """A malformed generator identifier."""


class ParamError(UsageError, ValueError):
    """An unknown or invalid generation parameter (a ValueError too, as pydantic's
    ValidationError was when ``GenerateParams`` was a pydantic model)."""


class MissingDependency(UsageError, ImportError):
    """An optional backend whose extra is not installed."""


class MissingKeyError(UsageError):
    """An API key the backend needs is not set."""


class JobMismatchError(UsageError):
    """The job store at the output path belongs to a different job."""


class StoreError(PromptmillError):
    """The job store cannot be opened or written."""


class OutputError(PromptmillError):
    """The results file cannot be written; the job store still holds every result."""


class BatchAPIError(PromptmillError):
    """A Batch API call (upload, create, poll, download) failed or was refused."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status, None when the server could not be reached
class ServerStartError(PromptmillError):
    """A local server did not start: the message carries its exit code and log tail."""


class SpendingCapReached(PromptmillError):
    """The job stopped sending: the next request could take the spend over the cap."""

    exit_code = 3


class GenerationError(PromptmillError):
    """One request failed; the message is what the store keeps."""

    kind = "error"


class RetryableError(GenerationError):
    """A failure worth another attempt."""

    kind = "retryable"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        # RateLimitInfo of the refusing response, when it carried rate-limit headers.
        self.rate_limit: object | None = None


class RateLimited(RetryableError):
    """The provider refused the request for rate (HTTP 429)."""

    kind = "rate_limited"


class ServerError(RetryableError):
    """The server failed to answer (HTTP 500 and the like)."""

    kind = "server_error"


class RequestTimeout(RetryableError):
    """No answer within the request timeout."""

    kind = "timeout"


class MalformedResponse(RetryableError):
    """A 200 whose body is not an OpenAI-shaped completion."""

    kind = "malformed"


class InvalidOutput(RetryableError):
    """An answer that is not valid JSON or does not match the job's schema."""

    kind = "invalid_output"


class Unavailable(RetryableError):
    """The server could not be reached; the job pauses instead of burning attempts."""

    kind = "unavailable"


class FatalRequestError(GenerationError):
    """A failure that another attempt cannot fix."""

    kind = "fatal"


class JobFatalError(FatalRequestError):
    """A failure every other request would meet too: the job stops instead of going on."""

    kind = "job_fatal"


# What other tools call promptmill's options (the OpenAI SDK, transformers, llama.cpp, Ollama,
# Anthropic, vLLM): an unknown name of these is answered with ours, where the backend has it.
_OTHER_NAMES = {
    "base_url": "api_base", "url": "api_base", "api_url": "api_base", "endpoint": "api_base",
    "host": "api_base", "server": "api_base",
    "max_new_tokens": "max_tokens", "max_completion_tokens": "max_tokens",
    "max_output_tokens": "max_tokens", "max_tokens_to_sample": "max_tokens",
    "num_predict": "max_tokens", "n_predict": "max_tokens", "max_length": "max_tokens",
    "temp": "temperature", "stop_sequences": "stop", "stop_words": "stop",
    "num_return_sequences": "n", "num_samples": "n", "n_samples": "n", "random_seed": "seed",
    "context_length": "max_model_len", "context_window": "max_model_len",
}


def close_names(name: str, known: Iterable[str], n: int = 1, cutoff: float = 0.75) -> list[str]:
    """The known names a user who wrote ``name`` most likely meant (best first; may be
    empty): the same name with ``-`` for ``_`` or in other case, another tool's name for
    it, or a close spelling."""
    names = sorted(set(known))
    wanted = name.strip().lower().replace("-", "_")
    if wanted in names and wanted != name:
        return [wanted]
    other = _OTHER_NAMES.get(wanted)
    if other in names:
        return [other]
    import difflib  # only for a name not found: not on any run's path

    return difflib.get_close_matches(wanted, names, n=n, cutoff=cutoff)


def did_you_mean(name: str, known: Iterable[str], n: int = 1, cutoff: float = 0.75) -> str:
    """`` (did you mean X?)`` for an unknown ``name``, or "" when nothing known is close."""
    close = close_names(name, known, n, cutoff)
    if not close:
        return ""
    names = close[0] if len(close) == 1 else f"{', '.join(close[:-1])} or {close[-1]}"
    return f" (did you mean {names}?)"
