"""OpenAI and any OpenAI-compatible server (vLLM, llama.cpp server, Ollama, Gemini), over aiohttp.

The hot path speaks HTTP itself: one pooled ``aiohttp.ClientSession`` per job, no SDK.
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import TYPE_CHECKING, Any, ClassVar

from promptmill.errors import (
    FatalRequestError,
    GenerationError,
    JobFatalError,
    MalformedResponse,
    ParamError,
    RateLimited,
    RetryableError,
    ServerError,
    Unavailable,
)
from promptmill.generators.base import (
    GenerationRequest,
    GenerationResult,
    RateLimitInfo,
    Response,
    Usage,
)
from promptmill.generators.httpapi import HTTPAPIGenerator
from promptmill.params import GenerateParams
from promptmill.redaction import redact_secrets

if TYPE_CHECKING:
    from promptmill.prompts.formats import ChatFormat

OPENAI_API_BASE = "https://api.openai.com/v1"
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str | None) -> float | None:
    """OpenAI's reset durations ("1s", "6m0s", "20ms", "1.5s") or plain seconds, in seconds."""
    if not text:
        return None
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not parts:
        return None
    return sum(float(value) * _UNIT_SECONDS[unit] for value, unit in parts)


def _int_header(headers: Any, name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None


def parse_rate_headers(headers: Any) -> RateLimitInfo | None:
    """The ``x-ratelimit-*`` and ``Retry-After`` headers of a response, if it sent any."""
    if not ("x-ratelimit-remaining-requests" in headers or "retry-after" in headers
            or "x-ratelimit-remaining-tokens" in headers or "retry-after-ms" in headers):
        return None  # the common case off rate limits: four lookups, nothing parsed
    retry_after = parse_duration(headers.get("retry-after"))
    retry_after_ms = headers.get("retry-after-ms")
    if retry_after_ms is not None:
        with contextlib.suppress(ValueError):
            retry_after = float(retry_after_ms) / 1000
    info = RateLimitInfo(
        limit_requests=_int_header(headers, "x-ratelimit-limit-requests"),
        limit_tokens=_int_header(headers, "x-ratelimit-limit-tokens"),
        remaining_requests=_int_header(headers, "x-ratelimit-remaining-requests"),
        remaining_tokens=_int_header(headers, "x-ratelimit-remaining-tokens"),
        reset_requests_s=parse_duration(headers.get("x-ratelimit-reset-requests")),
        reset_tokens_s=parse_duration(headers.get("x-ratelimit-reset-tokens")),
        retry_after_s=retry_after,
    )
    return None if info == RateLimitInfo() else info


class OpenAIGenerator(HTTPAPIGenerator):
    """OpenAI's chat and text completions API (``openai!gpt-4o-mini``)."""

    provider = "openai"
    supports_n = True
    supports_logprobs = True
    supports_batch = True
    supports_request_model = True
    # response_format goes in the body as it is (OpenAI, vLLM's and llama.cpp's servers).
    supported_params = HTTPAPIGenerator.supported_params | {"response_format"}
    needs_key = True
    key_env_var: ClassVar[str | None] = "OPENAI_API_KEY"
    config_fields = frozenset({"api_base", "timeout", "api_key_env", "chat", "max_model_len",
                               "supports_n"})
    default_api_base: ClassVar[str] = OPENAI_API_BASE

    def __init__(self, model: str, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        if self.config.get("supports_n") is False:
            # A server that ignores n (llama-cpp-python's): one request per sample instead.
            self.supports_n = False  # type: ignore[misc]
        # Body fields of a params object, by (id, chat); the object is kept so its id stays
        # its own. A job uses a handful of params objects for all its requests.
        self._fields: dict[tuple[int, bool], tuple[GenerateParams, dict[str, Any]]] = {}

    def context_length(self) -> int | None:
        """``max_model_len=`` from the identifier (the server is not asked)."""
        value = self.config.get("max_model_len")
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or value < 1):
            raise ParamError(f"{self.provider}! option max_model_len={value!r} must be a "
                             "positive integer (the model's context window in tokens)")
        return value

    def request_body(self, request: GenerationRequest) -> tuple[str, dict[str, Any]]:
        """The endpoint path and JSON body for one request."""
        chat = request.messages is not None
        body: dict[str, Any] = {"model": request.model or self.model}
        if chat:
            body["messages"] = request.messages
        else:
            body["prompt"] = request.prompt
        body.update(self._param_fields(request.params, chat))
        return ("/chat/completions" if chat else "/completions"), body

    def _param_fields(self, params: GenerateParams, chat: bool) -> dict[str, Any]:
        # Per request this was a pydantic dump: cached, it costs a dict lookup.
        cached = self._fields.get((id(params), chat))
        if cached is not None and cached[0] is params:
            return cached[1]
        fields = params.set_fields()
        logprobs = fields.pop("logprobs", None)
        top_logprobs = fields.pop("top_logprobs", None)
        head: dict[str, Any] = {}
        if logprobs or top_logprobs:
            if chat:
                head["logprobs"] = True
                if top_logprobs:
                    head["top_logprobs"] = top_logprobs
            else:
                head["logprobs"] = top_logprobs or 1
        if len(self._fields) >= 64:
            self._fields.clear()
        result = {**head, **fields}
        self._fields[(id(params), chat)] = (params, result)
        return result

    def _result(self, request: GenerationRequest, status: int, raw: bytes, headers: Any,
                url: str) -> GenerationResult:
        """The result of one answered request, or the error that classifies its failure."""
        info = parse_rate_headers(headers)
        if status == 200:
            result = self._parse_success(request, raw, url, headers)
            result.rate_limit = info
            return result
        error = self._classify(status, raw, url, info)
        if isinstance(error, RetryableError):
            error.rate_limit = info
        raise error

    def _parse_success(
        self, request: GenerationRequest, raw: bytes, url: str, headers: Any
    ) -> GenerationResult:
        try:
            data = json.loads(raw)
            choices = data["choices"]
            chat = request.messages is not None
            responses = [parse_choice(choice, chat) for choice in choices]
        except (ValueError, KeyError, TypeError, IndexError):
            kind = headers.get("content-type", "").split(";")[0] or "no content type"
            raise MalformedResponse(
                f"malformed response from {url} ({kind}, {len(raw)} bytes): not an "
                "OpenAI-shaped completion; check that api_base ends with /v1"
            ) from None
        if len(responses) != request.n:
            raise JobFatalError(
                f"{url} answered {len(responses)} choices for n={request.n}: the server ignores "
                "n; add supports_n=false to the model identifier to send one request per sample"
            )
        usage_data = data.get("usage") or {}
        usage = Usage(int(usage_data.get("prompt_tokens") or 0),
                      int(usage_data.get("completion_tokens") or 0))
        return GenerationResult(request.request_id, responses, usage)

    def _classify(
        self, status: int, raw: bytes, url: str, info: RateLimitInfo | None
    ) -> GenerationError:
        message = _error_message(raw)
        if status == 429:
            if "insufficient_quota" in message or "quota" in message.lower():
                return JobFatalError(
                    f"HTTP 429 from {url}: {message}: add credit or use another key")
            retry_after = info.retry_after_s if info else None
            return RateLimited(f"HTTP 429 from {url}: {message}", retry_after=retry_after)
        if status in (502, 503, 504):
            return Unavailable(f"HTTP {status} from {url}: {message}")
        if status >= 500 or status == 408:
            return ServerError(f"HTTP {status} from {url}: {message}")
        if status in (401, 403):
            return self.auth_refused(status, url, message)
        if status == 404:
            return JobFatalError(
                f"HTTP 404 from {url}: {message}: check the model name and that api_base "
                "points at an OpenAI-compatible /v1"
            )
        return FatalRequestError(f"HTTP {status} from {url}: {message}")


class HTTPGenerator(OpenAIGenerator):
    """Any OpenAI-compatible server: ``http!MODEL,api_base=http://host:8000/v1``.

    With ``chat_format=NAME`` (or ``auto``: from the model's name) chats are rendered by
    promptmill and sent to the text-completion endpoint, for servers without the model's
    template or to control the exact prompt.
    """

    provider = "http"
    needs_key = False
    key_env_var = None
    default_api_base = "http://127.0.0.1:8000/v1"
    config_fields = OpenAIGenerator.config_fields | {"chat_format"}

    def chat_format(self) -> ChatFormat | None:
        """The format set with ``chat_format=`` (None: the server's chat endpoint)."""
        from promptmill.prompts.formats import resolve_format

        setting = self.config.get("chat_format")
        return resolve_format(self.model, None if setting is None else str(setting))


def parse_choice(choice: dict[str, Any], chat: bool) -> Response:
    """One ``choices[i]`` of a chat or text completion as a Response (also Batch API output)."""
    if chat:
        message = choice["message"]
        text = message.get("content") or ""
        logprobs = (choice.get("logprobs") or {}).get("content")
    else:
        text = choice["text"]
        raw = choice.get("logprobs")
        logprobs = None
        if raw:
            # Text completions give alternatives as {token: logprob}; chat, llama.cpp and the
            # Arrow schema as a list of entries: one shape for every backend and mode.
            tops = raw.get("top_logprobs") or [None] * len(raw.get("tokens", []))
            logprobs = [
                {"token": token, "logprob": logprob, "top_logprobs": [
                    {"token": alt, "logprob": alt_logprob} for alt, alt_logprob in top.items()
                ] if top else []}
                for token, logprob, top in zip(
                    raw["tokens"], raw["token_logprobs"], tops, strict=False)
            ]
    return Response(text, choice.get("finish_reason"), logprobs)


def _error_message(raw: bytes) -> str:
    """The provider's error message, shortened; bodies never echo our key back."""
    try:
        data = json.loads(raw)
        error = data.get("error", data)
        message = error.get("message") if isinstance(error, dict) else str(error)
    except (ValueError, AttributeError):
        message = raw[:200].decode("utf-8", "replace")
    message = redact_secrets(str(message or "no message"))
    return message.strip().replace("\n", " ")[:300]
