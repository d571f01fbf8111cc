"""A local Ollama server over its own API (``ollama!llama3.1,num_ctx=8192``).

Chats go to ``/api/chat``, text prompts (``--text``) to ``/api/generate`` with ``raw`` set (no
template applied), always unstreamed. Sampling parameters become Ollama's ``options``
(``max_tokens`` is ``num_predict``); ``num_ctx`` and ``extra.NAME`` (``extra.top_k``,
``extra.repeat_penalty``, ...) go there too. The server is ``api_base=``, else
``OLLAMA_API_BASE``, else ``OLLAMA_HOST``, else ``http://localhost:11434``; before a job
starts it is asked for its models (``/api/tags``), so a server that is not running or a model
that is not pulled is one line naming the fix, before anything is planned or sent.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

from promptmill.errors import (
    FatalRequestError,
    GenerationError,
    JobFatalError,
    MalformedResponse,
    ServerError,
    Unavailable,
    UsageError,
)
from promptmill.generators.base import GenerationRequest, GenerationResult, Response, Usage
from promptmill.generators.httpapi import HTTPAPIGenerator
from promptmill.params import GenerateParams
from promptmill.redaction import redact_secrets

OLLAMA_DEFAULT = "http://localhost:11434"
OLLAMA_PORT = 11434
# Our parameter names -> Ollama's option names.
_OPTIONS = {"temperature": "temperature", "top_p": "top_p", "seed": "seed", "stop": "stop",
            "max_tokens": "num_predict", "presence_penalty": "presence_penalty",
            "frequency_penalty": "frequency_penalty"}


def ollama_host(value: str | None = None) -> str:
    """The Ollama base URL from ``OLLAMA_HOST``'s forms (``host``, ``host:port``, a URL);
    without ``value``: ``OLLAMA_API_BASE`` (LiteLLM's and rigging's variable), else
    ``OLLAMA_HOST`` (Ollama's own), else ``http://localhost:11434``."""
    if value is None:
        value = os.environ.get("OLLAMA_API_BASE") or os.environ.get("OLLAMA_HOST", "")
    value = value.strip()
    if not value:
        return OLLAMA_DEFAULT
    scheme, sep, rest = value.partition("://")
    if not sep:
        scheme, rest = "http", value
    host, _, path = rest.partition("/")
    if host.startswith("0.0.0.0"):  # an address to listen on, not to connect to
        host = "127.0.0.1" + host[len("0.0.0.0"):]
    if ":" not in host.rsplit("]", 1)[-1]:
        host = f"{host}:{OLLAMA_PORT}"
    return f"{scheme}://{host}" + (f"/{path}" if path else "").rstrip("/")


def _full_name(model: str) -> str:
    return model if ":" in model else f"{model}:latest"


class OllamaGenerator(HTTPAPIGenerator):
    """A model on an Ollama server, by its name there (``ollama!llama3.1``)."""

    provider = "ollama"
    supported_params = frozenset(_OPTIONS)
    config_fields = frozenset({"api_base", "timeout", "num_ctx", "keep_alive"})

    def __init__(self, model: str, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        if not self.config.get("api_base"):
            self.api_base = ollama_host()

    def context_length(self) -> int | None:
        """``num_ctx=`` where given (Ollama's default context otherwise: unknown here)."""
        value = self.config.get("num_ctx")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def check_ready(self) -> None:
        """Ask the server for its models: refuse, naming the fix, if it is not running or
        does not have the model."""
        super().check_ready()
        url = self.api_base + "/api/tags"
        try:
            with urllib.request.urlopen(url, timeout=min(10.0, self.timeout)) as answer:
                data = json.load(answer)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise UsageError(
                f"no Ollama server answers at {self.api_base} ({reason}): start it with "
                "`ollama serve`, or point OLLAMA_API_BASE or OLLAMA_HOST (or api_base=) at "
                "the one you run"
            ) from None
        names = {_full_name(str(m.get("name") or m.get("model") or ""))
                 for m in data.get("models") or [] if isinstance(m, dict)}
        if _full_name(self.model) not in names:
            raise UsageError(
                f"the Ollama server at {self.api_base} has no model {self.model!r}: run "
                f"`ollama pull {self.model}` (it has {', '.join(sorted(names)) or 'none'})")

    def request_body(self, request: GenerationRequest) -> tuple[str, dict[str, Any]]:
        """``/api/chat`` or ``/api/generate`` (raw) and the body, never streamed."""
        body: dict[str, Any] = {"model": self.model, "stream": False,
                                "options": self._options(request.params)}
        if "keep_alive" in self.config:
            body["keep_alive"] = self.config["keep_alive"]
        if request.messages is not None:
            body["messages"] = request.messages
            return "/api/chat", body
        body["prompt"] = request.prompt or ""
        body["raw"] = True
        return "/api/generate", body

    def _options(self, params: GenerateParams) -> dict[str, Any]:
        return self._fields_for(params, self._build_options)

    def _build_options(self, params: GenerateParams) -> dict[str, Any]:
        fields = params.set_fields()
        options = {_OPTIONS[name]: value for name, value in fields.items() if name in _OPTIONS}
        options.update({name: value for name, value in fields.items()
                        if name not in _OPTIONS and name != "n"})  # extra.NAME
        if "num_ctx" in self.config:
            options["num_ctx"] = self.config["num_ctx"]
        return options

    def _result(self, request: GenerationRequest, status: int, raw: bytes, headers: Any,
                url: str) -> GenerationResult:
        if status == 200:
            try:
                data = json.loads(raw)
                text = (data["message"]["content"] if request.messages is not None
                        else data["response"])
                reason = data.get("done_reason") or "stop"
                usage = Usage(int(data.get("prompt_eval_count") or 0),
                              int(data.get("eval_count") or 0))
            except (ValueError, KeyError, TypeError):
                raise MalformedResponse(
                    f"malformed response from {url} ({len(raw)} bytes): not an Ollama answer; "
                    "check that api_base is the Ollama server (no /v1)") from None
            return GenerationResult(request.request_id, [Response(str(text), reason)], usage)
        raise self._classify(status, raw, url)

    def _classify(self, status: int, raw: bytes, url: str) -> GenerationError:
        try:
            message = str(json.loads(raw).get("error") or "no message")
        except (ValueError, AttributeError):
            message = raw[:200].decode("utf-8", "replace") or "no message"
        message = redact_secrets(message).strip().replace("\n", " ")[:300]
        if status == 404:
            return JobFatalError(f"HTTP 404 from {url}: {message}: run `ollama pull "
                                 f"{self.model}` on that server")
        if status in (502, 503, 504):
            return Unavailable(f"HTTP {status} from {url}: {message}")
        if status >= 500 or status in (408, 429):
            return ServerError(f"HTTP {status} from {url}: {message}")
        if status in (401, 403):
            return self.auth_refused(status, url, message)
        return FatalRequestError(f"HTTP {status} from {url}: {message}")
