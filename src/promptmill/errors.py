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
