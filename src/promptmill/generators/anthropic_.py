"""Anthropic's Messages API over HTTP (``anthropic!claude-sonnet-4-5,max_tokens=1024``).

No SDK: the most common non-OpenAI provider needs neither LiteLLM nor Anthropic's client.
The system prompt goes in ``system``, ``stop`` in ``stop_sequences``; ``max_tokens`` is
required by the API and so by this backend (refused before anything is sent when missing).
Limits are read from ``anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}``
(resets are RFC 3339 instants) and ``retry-after``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import time
from typing import Any, ClassVar

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

ANTHROPIC_API_BASE = "https://api.anthropic.com/v1"
ANTHROPIC_VERSION = "2023-06-01"
# Anthropic's stop_reason -> the finish_reason every backend reports.
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}


def _reset_seconds(value: str | None, now: float) -> float | None:
    """Seconds from ``now`` (wall clock) to an RFC 3339 instant; None if absent or unreadable."""
    if not value:
        return None
    try:
        moment = _dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.timezone.utc)
    return max(0.0, moment.timestamp() - now)


def _int(headers: Any, name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def parse_anthropic_headers(headers: Any) -> RateLimitInfo | None:
    """The ``anthropic-ratelimit-*`` and ``retry-after`` headers, if the answer had any."""
    if "anthropic-ratelimit-requests-remaining" not in headers and "retry-after" not in headers \
            and "anthropic-ratelimit-tokens-remaining" not in headers:
        return None
    now = time.time()
    retry_after: float | None = None
    with contextlib.suppress(ValueError, KeyError):
        retry_after = float(headers["retry-after"])
    with contextlib.suppress(ValueError, KeyError):  # not Anthropic's; a gateway may add it
        retry_after = float(headers["retry-after-ms"]) / 1000
    info = RateLimitInfo(
        limit_requests=_int(headers, "anthropic-ratelimit-requests-limit"),
        limit_tokens=_int(headers, "anthropic-ratelimit-tokens-limit"),
        remaining_requests=_int(headers, "anthropic-ratelimit-requests-remaining"),
        remaining_tokens=_int(headers, "anthropic-ratelimit-tokens-remaining"),
        reset_requests_s=_reset_seconds(headers.get("anthropic-ratelimit-requests-reset"), now),
        reset_tokens_s=_reset_seconds(headers.get("anthropic-ratelimit-tokens-reset"), now),
        retry_after_s=retry_after,
        reset_exact=False,
    )
    return None if info == RateLimitInfo(reset_exact=False) else info


class AnthropicGenerator(HTTPAPIGenerator):
    """Anthropic's Messages API (``anthropic!MODEL``); the key from ``ANTHROPIC_API_KEY``."""

    provider = "anthropic"
    needs_key = True
    key_env_var: ClassVar[str | None] = "ANTHROPIC_API_KEY"
    supported_params = frozenset({"temperature", "top_p", "max_tokens", "stop"})
    config_fields = frozenset({"api_base", "timeout", "anthropic_version", "max_model_len"})
    default_api_base = ANTHROPIC_API_BASE

    def context_length(self) -> int | None:
        """``max_model_len=`` from the identifier, where given."""
        value = self.config.get("max_model_len")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def check_params(self, params: GenerateParams) -> None:
        """The Messages API requires max_tokens: refuse a job without it before sending."""
        if params.max_tokens is None:
            raise ParamError(
                f"anthropic!{self.model} needs max_tokens (the Messages API requires it): add "
                "max_tokens=N to the model identifier or --param max_tokens=N")

    def auth_headers(self, key: str | None) -> dict[str, str]:
        """Anthropic's ``x-api-key`` and API version headers."""
        headers = {"anthropic-version": str(self.config.get("anthropic_version")
                                            or ANTHROPIC_VERSION)}
        if key:
            headers["x-api-key"] = key
        return headers

    def request_body(self, request: GenerationRequest) -> tuple[str, dict[str, Any]]:
        """``/messages`` and its body: system messages folded into ``system``."""
        messages = request.messages
        if messages is None:  # a text prompt: one user turn
            messages = [{"role": "user", "content": request.prompt or ""}]
        system = [str(m.get("content") or "") for m in messages if m.get("role") == "system"]
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [m for m in messages if m.get("role") != "system"],
        }
        if system:
            body["system"] = "\n\n".join(system)
        body.update(self._param_fields(request.params))
        return "/messages", body

    def _param_fields(self, params: GenerateParams) -> dict[str, Any]:
        return self._fields_for(params, _anthropic_fields)

    def _result(self, request: GenerationRequest, status: int, raw: bytes, headers: Any,
                url: str) -> GenerationResult:
        info = parse_anthropic_headers(headers)
        if status == 200:
            try:
                data = json.loads(raw)
                text = "".join(block.get("text", "") for block in data["content"]
                               if block.get("type") == "text")
                reason = data.get("stop_reason")
                usage = data.get("usage") or {}
                prompt = (int(usage.get("input_tokens") or 0)
                          + int(usage.get("cache_creation_input_tokens") or 0)
                          + int(usage.get("cache_read_input_tokens") or 0))
                completion = int(usage.get("output_tokens") or 0)
            except (ValueError, KeyError, TypeError, AttributeError):
                raise MalformedResponse(
                    f"malformed response from {url} ({len(raw)} bytes): not a Messages API "
                    "message; check that api_base ends with /v1") from None
            return GenerationResult(request.request_id, [Response(text, _FINISH.get(reason,
                                                                                    reason))],
                                    Usage(prompt, completion), rate_limit=info)
        error = self._classify(status, raw, url, info)
        if isinstance(error, RetryableError):
            error.rate_limit = info
        raise error

    def _classify(self, status: int, raw: bytes, url: str,
                  info: RateLimitInfo | None) -> GenerationError:
        message, kind = _error_message(raw)
        if status == 429:
            return RateLimited(f"HTTP 429 from {url}: {message}",
                               retry_after=info.retry_after_s if info else None)
        if status in (502, 503, 504, 529):  # 529: overloaded, Anthropic's "try later"
            return Unavailable(f"HTTP {status} from {url}: {message}")
        if status >= 500 or status == 408:
            return ServerError(f"HTTP {status} from {url}: {message}")
        if status in (401, 403):
            return self.auth_refused(status, url, message)
        if status == 404:
            return JobFatalError(f"HTTP 404 from {url}: {message}: check the model name and "
                                 "that api_base points at Anthropic's /v1")
        if kind == "billing_error" or "credit balance" in message:
            return JobFatalError(f"HTTP {status} from {url}: {message}: add credit")
        return FatalRequestError(f"HTTP {status} from {url}: {message}")


def _error_message(raw: bytes) -> tuple[str, str]:
    """Anthropic's error message (shortened, redacted) and type."""
    try:
        error = json.loads(raw).get("error") or {}
        message, kind = str(error.get("message") or "no message"), str(error.get("type") or "")
    except (ValueError, AttributeError):
        message, kind = raw[:200].decode("utf-8", "replace") or "no message", ""
    return redact_secrets(message).strip().replace("\n", " ")[:300], kind


def _anthropic_fields(params: GenerateParams) -> dict[str, Any]:
    fields = params.set_fields()
    fields.pop("n", None)  # one sample per request: the engine sends k requests
    stop = fields.pop("stop", None)
    if stop:
        fields["stop_sequences"] = stop
    return fields
