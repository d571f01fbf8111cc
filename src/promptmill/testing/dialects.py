"""The APIs the test server can play: OpenAI's, Anthropic's Messages API, Ollama's.

A dialect is how one provider's API looks on the wire: how a request body is read (turned
into the OpenAI-shaped ``ParsedRequest`` every dialect shares, so the same conversation gets
the same deterministic answer whichever API asks), how the answer is written, what an error
body looks like and which rate-limit headers go with it. Limits, faults and statistics are
the server's and apply to every dialect alike. (Ollama streams unless asked not to; the test
server always answers whole, as Ollama does with ``"stream": false``.)
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from promptmill.testing.answers import (
    BadRequest,
    Choice,
    ParsedRequest,
    chat_body,
    completion_body,
    parse_chat,
    parse_completion,
    usage,
)
from promptmill.testing.limits import format_duration

__all__ = ["ANTHROPIC", "DIALECTS", "OLLAMA_CHAT", "OLLAMA_GENERATE", "OPENAI_CHAT",
           "OPENAI_COMPLETIONS", "Dialect", "ollama_tags"]

# (limit, remaining, seconds to reset) of each limit, by "requests" / "tokens"
LimitState = dict[str, tuple[int, int, float]]


@dataclass(frozen=True)
class Dialect:
    """One provider API's request, answer, error and header shapes."""

    name: str
    parse: Callable[[dict[str, Any]], ParsedRequest]
    build: Callable[[ParsedRequest, list[Choice], str, int], dict[str, Any]]
    # (HTTP status, message, OpenAI's error type) -> the body of an error answer
    error: Callable[[int, str, str], bytes]
    # the limits' state -> the rate-limit headers of an answer
    limit_headers: Callable[[LimitState], dict[str, str]]
    overloaded_status: int = 503  # what this provider answers when it is overloaded
    # whether the request names a model the server must have (Ollama: "not found, pull it")
    checks_model: bool = False


def openai_error(status: int, message: str, kind: str) -> bytes:
    """OpenAI's error body."""
    return json.dumps({"error": {"message": message, "type": kind, "param": None,
                                 "code": "rate_limit_exceeded" if status == 429 else None}}
                      ).encode()


def openai_headers(state: LimitState) -> dict[str, str]:
    """OpenAI's ``x-ratelimit-*`` headers."""
    headers: dict[str, str] = {}
    for kind, (limit, remaining, reset) in state.items():
        headers[f"x-ratelimit-limit-{kind}"] = str(limit)
        headers[f"x-ratelimit-remaining-{kind}"] = str(remaining)
        headers[f"x-ratelimit-reset-{kind}"] = format_duration(reset)
    return headers


OPENAI_CHAT = Dialect("openai", parse_chat, chat_body, openai_error, openai_headers)
OPENAI_COMPLETIONS = Dialect("openai", parse_completion, completion_body, openai_error,
                             openai_headers)


# -- Anthropic's Messages API --------------------------------------------------------------

_ANTHROPIC_ERRORS = {400: "invalid_request_error", 401: "authentication_error",
                     403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                     429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}
_ANTHROPIC_STOP = {"length": "max_tokens", "stop": "end_turn"}


def _text_blocks(value: object, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(b, dict) for b in value):
        return "\n".join(str(b.get("text", "")) for b in value if b.get("type") == "text")
    raise BadRequest(f"{where}: Input should be a valid string or list of content blocks", where)


def parse_anthropic(body: dict[str, Any]) -> ParsedRequest:
    """A valid ``/v1/messages`` body (as the OpenAI chat it amounts to), or ``BadRequest``."""
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            raise BadRequest(f"{name}: Field required", name)
    max_tokens = body["max_tokens"]
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise BadRequest("max_tokens: Input should be a valid integer greater than 0",
                         "max_tokens")
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages: at least one message is required", "messages")
    chat: list[dict[str, Any]] = []
    if body.get("system"):
        chat.append({"role": "system", "content": _text_blocks(body["system"], "system")})
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            raise BadRequest(f"messages.{i}.role: Input should be 'user' or 'assistant'",
                             f"messages.{i}.role")
        chat.append({"role": role, "content": _text_blocks(message.get("content"),
                                                           f"messages.{i}.content")})
    if "n" in body:
        raise BadRequest("n: Extra inputs are not permitted", "n")
    converted: dict[str, Any] = {"model": body["model"], "messages": chat,
                                 "max_tokens": max_tokens}
    for ours, theirs in (("stop", "stop_sequences"), ("temperature", "temperature"),
                         ("top_p", "top_p")):
        if theirs in body:
            converted[ours] = body[theirs]
    return parse_chat(converted)


def anthropic_body(request: ParsedRequest, choices: list[Choice], response_id: str,
                   created: int) -> dict[str, Any]:
    """A Messages API ``message`` object."""
    choice = choices[0]
    counted = usage(request, choices)
    return {
        "id": f"msg_{response_id}", "type": "message", "role": "assistant",
        "model": request.model, "content": [{"type": "text", "text": choice.text}],
        "stop_reason": _ANTHROPIC_STOP.get(choice.finish_reason, "end_turn"),
        "stop_sequence": None,
        "usage": {"input_tokens": counted["prompt_tokens"],
                  "output_tokens": counted["completion_tokens"]},
    }


def anthropic_error(status: int, message: str, kind: str) -> bytes:
    """Anthropic's error body."""
    return json.dumps({"type": "error", "error": {
        "type": _ANTHROPIC_ERRORS.get(status, "api_error"), "message": message}}).encode()


def rfc3339(seconds_from_now: float) -> str:
    """A wall-clock instant as Anthropic writes its reset times (RFC 3339, UTC, with ms)."""
    moment = _dt.datetime.fromtimestamp(time.time() + seconds_from_now, _dt.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def anthropic_headers(state: LimitState) -> dict[str, str]:
    """Anthropic's ``anthropic-ratelimit-*`` headers (resets as RFC 3339 instants)."""
    headers: dict[str, str] = {}
    for kind, (limit, remaining, reset) in state.items():
        headers[f"anthropic-ratelimit-{kind}-limit"] = str(limit)
        headers[f"anthropic-ratelimit-{kind}-remaining"] = str(remaining)
        headers[f"anthropic-ratelimit-{kind}-reset"] = rfc3339(reset)
    return headers


ANTHROPIC = Dialect("anthropic", parse_anthropic, anthropic_body, anthropic_error,
                    anthropic_headers, overloaded_status=529)


# -- Ollama ---------------------------------------------------------------------------------

_OLLAMA_OPTIONS = {"num_predict": "max_tokens", "stop": "stop", "seed": "seed",
                   "temperature": "temperature", "top_p": "top_p"}


def _ollama_options(body: dict[str, Any]) -> dict[str, Any]:
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise BadRequest("options must be an object", "options")
    return {ours: options[theirs] for theirs, ours in _OLLAMA_OPTIONS.items()
            if theirs in options and options[theirs] is not None}


def _model_name(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model is required", "model")
    return model


def parse_ollama_chat(body: dict[str, Any]) -> ParsedRequest:
    """A valid ``/api/chat`` body, or ``BadRequest``."""
    converted = {"model": _model_name(body), "messages": body.get("messages"),
                 **_ollama_options(body)}
    return parse_chat(converted)


def parse_ollama_generate(body: dict[str, Any]) -> ParsedRequest:
    """A valid ``/api/generate`` body, or ``BadRequest``."""
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise BadRequest("prompt is required", "prompt")
    if body.get("system") and not body.get("raw"):  # the model's template applies it
        return parse_chat({"model": _model_name(body), **_ollama_options(body), "messages": [
            {"role": "system", "content": body["system"]}, {"role": "user", "content": prompt}]})
    return parse_completion({"model": _model_name(body), "prompt": prompt,
                             **_ollama_options(body)})


def _ollama_common(request: ParsedRequest, choices: list[Choice]) -> dict[str, Any]:
    counted = usage(request, choices)
    return {"model": request.model, "created_at": rfc3339(0.0), "done": True,
            "done_reason": choices[0].finish_reason, "total_duration": 1_000_000,
            "load_duration": 0, "prompt_eval_count": counted["prompt_tokens"],
            "prompt_eval_duration": 500_000, "eval_count": counted["completion_tokens"],
            "eval_duration": 500_000}


def ollama_chat_body(request: ParsedRequest, choices: list[Choice], response_id: str,
                     created: int) -> dict[str, Any]:
    """An ``/api/chat`` answer (not streamed)."""
    return {**_ollama_common(request, choices),
            "message": {"role": "assistant", "content": choices[0].text}}


def ollama_generate_body(request: ParsedRequest, choices: list[Choice], response_id: str,
                         created: int) -> dict[str, Any]:
    """An ``/api/generate`` answer (not streamed)."""
    return {**_ollama_common(request, choices), "response": choices[0].text}


def ollama_error(status: int, message: str, kind: str) -> bytes:
    """Ollama's error body."""
    return json.dumps({"error": message}).encode()


def no_headers(state: LimitState) -> dict[str, str]:
    """Ollama sends no rate-limit headers."""
    return {}


OLLAMA_CHAT = Dialect("ollama", parse_ollama_chat, ollama_chat_body, ollama_error, no_headers,
                      checks_model=True)
OLLAMA_GENERATE = Dialect("ollama", parse_ollama_generate, ollama_generate_body, ollama_error,
                          no_headers, checks_model=True)

DIALECTS = {"/v1/chat/completions": OPENAI_CHAT, "/v1/completions": OPENAI_COMPLETIONS,
            "/v1/messages": ANTHROPIC, "/api/chat": OLLAMA_CHAT,
            "/api/generate": OLLAMA_GENERATE}


def ollama_model_known(model: str, models: tuple[str, ...]) -> bool:
    """Whether Ollama has ``model`` pulled: ``llama3.1`` is ``llama3.1:latest``."""
    def full(name: str) -> str:
        return name if ":" in name else f"{name}:latest"

    return full(model) in {full(m) for m in models}


def ollama_tags(models: tuple[str, ...]) -> dict[str, Any]:
    """``/api/tags``: the models pulled."""
    return {"models": [{
        "name": name if ":" in name else f"{name}:latest",
        "model": name if ":" in name else f"{name}:latest",
        "modified_at": rfc3339(0.0), "size": 1_000_000, "digest": "0" * 64,
        "details": {"format": "gguf", "family": "test", "parameter_size": "1M",
                    "quantization_level": "Q8_0"}} for name in models]}
