"""Every provider LiteLLM reaches, through promptmill's own engine: ``litellm!PROVIDER/MODEL``.

``litellm!anthropic/claude-sonnet-4-5``, ``litellm!gemini/gemini-2.0-flash``,
``litellm!bedrock/...``, ``litellm!mistral/...``, ``litellm!together_ai/...``,
``litellm!groq/...``: LiteLLM only translates the request and the answer. Limits, retries,
the job store and exactly once stay promptmill's: LiteLLM's own retries (``num_retries``,
the OpenAI client's ``max_retries``), its cache and its telemetry are off, and its
exceptions are mapped onto promptmill's error kinds (rate limited, server error,
unavailable, fatal for a refused key, an exhausted quota or an unknown model). The
provider's limit headers are read where LiteLLM passes them on (``_hidden_params``'
``additional_headers``, also on its exceptions): OpenAI's ``x-ratelimit-*`` and
Anthropic's ``anthropic-ratelimit-*``.

The key is read by promptmill, not LiteLLM (so that it is remembered for redaction): the
provider's usual variable (``ANTHROPIC_API_KEY``, ``GEMINI_API_KEY``, ...; see
``PROVIDER_KEYS``), or ``api_key_env=NAME``, from the environment or ``.env``, and passed
to LiteLLM with the request. ``import litellm`` takes seconds and is done only here, when a
``litellm!`` identifier is used (with ``LITELLM_LOCAL_MODEL_COST_MAP`` set, so that it does
not fetch its price map from the internet).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any, ClassVar

from promptmill.errors import (
    FatalRequestError,
    GenerationError,
    JobFatalError,
    MalformedResponse,
    MissingKeyError,
    RateLimited,
    RequestTimeout,
    RetryableError,
    ServerError,
    Unavailable,
)
from promptmill.generators.anthropic_ import parse_anthropic_headers
from promptmill.generators.base import (
    GenerationRequest,
    GenerationResult,
    Generator,
    RateLimitInfo,
    Response,
    Usage,
    env_value,
)
from promptmill.generators.openai_ import parse_rate_headers
from promptmill.params import MUST_HONOUR, GenerateParams
from promptmill.redaction import redact_secrets, remember_secret

log = logging.getLogger("promptmill")

# LiteLLM's provider prefix -> the variables its key is usually in (the first set is used).
PROVIDER_KEYS: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_API_KEY",),
    "text-completion-openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "mistral": ("MISTRAL_API_KEY",),
    "groq": ("GROQ_API_KEY",),
    "together_ai": ("TOGETHERAI_API_KEY", "TOGETHER_API_KEY", "TOGETHER_AI_TOKEN"),
    "cohere": ("COHERE_API_KEY",),
    "cohere_chat": ("COHERE_API_KEY",),
    "deepseek": ("DEEPSEEK_API_KEY",),
    "openrouter": ("OPENROUTER_API_KEY",),
    "fireworks_ai": ("FIREWORKS_AI_API_KEY", "FIREWORKS_API_KEY"),
    "xai": ("XAI_API_KEY",),
    "perplexity": ("PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY"),
    "deepinfra": ("DEEPINFRA_API_KEY",),
    "cerebras": ("CEREBRAS_API_KEY",),
    "azure": ("AZURE_API_KEY", "AZURE_OPENAI_API_KEY"),
    "huggingface": ("HF_TOKEN", "HUGGINGFACE_API_KEY"),
    "replicate": ("REPLICATE_API_KEY", "REPLICATE_API_TOKEN"),
    "nvidia_nim": ("NVIDIA_NIM_API_KEY",),
    "sambanova": ("SAMBANOVA_API_KEY",),
}
# Providers whose credentials are several variables LiteLLM reads itself: promptmill checks
# them before the job and remembers them for redaction, but does not pass them.
PROVIDER_CREDENTIALS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # (required, optional secrets)
    "bedrock": (("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"), ("AWS_SESSION_TOKEN",)),
    "sagemaker": (("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"), ("AWS_SESSION_TOKEN",)),
}
# Model names without a provider prefix that imply one (LiteLLM infers these too).
_IMPLIED = (("claude", "anthropic"), ("gemini", "gemini"), ("gpt-", "openai"), ("o1", "openai"),
            ("o3", "openai"), ("o4", "openai"), ("mistral", "mistral"), ("command", "cohere"))
# Our parameter names LiteLLM takes as they are (OpenAI's names, translated per provider).
_PARAMS = frozenset({"temperature", "top_p", "max_tokens", "stop", "seed", "presence_penalty",
                     "frequency_penalty", "n"})

_litellm: Any = None


def load_litellm() -> Any:
    """``import litellm`` (seconds, once), configured to leave retries, caching and telemetry
    to promptmill and to use its bundled price map instead of fetching one."""
    global _litellm
    if _litellm is None:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        os.environ.setdefault("LITELLM_TELEMETRY", "False")
        import litellm

        litellm.telemetry = False
        litellm.cache = None
        litellm.num_retries = None
        litellm.suppress_debug_info = True
        litellm.turn_off_message_logging = True
        litellm.drop_params = False  # promptmill says which parameters it drops, and why
        _litellm = litellm
    return _litellm


def provider_of(model: str) -> str:
    """LiteLLM's provider for ``model`` (its ``PROVIDER/`` prefix, or what the name implies)."""
    prefix, sep, _ = model.partition("/")
    if sep:
        return prefix.lower()
    lowered = model.lower()
    return next((provider for start, provider in _IMPLIED if lowered.startswith(start)), "")


class LiteLLMGenerator(Generator):
    """A model LiteLLM reaches (``litellm!PROVIDER/MODEL``); one request per call."""

    provider = "litellm"
    supports_n = False
    supported_params = _PARAMS
    config_fields = frozenset({"api_base", "timeout", "max_model_len", "supports_n",
                               "api_version"})
    key_env_var: ClassVar[str | None] = None

    def __init__(self, model: str, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.api_base = str(self.config.get("api_base") or "").rstrip("/") or None
        self.timeout = float(self.config.get("timeout", 600))
        if self.config.get("supports_n") is True:
            self.supports_n = True  # type: ignore[misc]
        self.vendor = provider_of(model)
        self._key: str | None = None
        self._fields: dict[int, tuple[GenerateParams, dict[str, Any]]] = {}
        self._warned: set[str] = set()  # parameters dropped, said once

    def context_length(self) -> int | None:
        """``max_model_len=`` where given."""
        value = self.config.get("max_model_len")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def key_env_name(self) -> str | None:
        """``api_key_env=``, else the first of the provider's usual variables that is set
        (the first of them when none is)."""
        named = self.config.get("api_key_env")
        if named:
            return str(named)
        names = PROVIDER_KEYS.get(self.vendor, ())
        return next((name for name in names if env_value(name)), names[0] if names else None)

    def check_ready(self) -> None:
        """The key (or a provider's credentials) must be set before the job starts; a server
        given with ``api_base`` may take none."""
        required, optional = PROVIDER_CREDENTIALS.get(self.vendor, ((), ()))
        for name in (*required, *optional):
            remember_secret(env_value(name))
        missing = [name for name in required if not env_value(name)]
        if missing and not self.config.get("api_key_env"):
            raise MissingKeyError(
                f"litellm!{self.model} needs {' and '.join(missing)}: set them in the "
                "environment or in a .env file in the working directory")
        needs = bool(self.config.get("api_key_env")) or (
            self.vendor in PROVIDER_KEYS and self.api_base is None)
        if needs and not self.api_key():
            names = PROVIDER_KEYS.get(self.vendor, ())
            shown = self.key_env_name() if self.config.get("api_key_env") else " or ".join(names)
            raise MissingKeyError(
                f"litellm!{self.model} needs an API key: set {shown} in the environment or in "
                "a .env file in the working directory (or name another variable with "
                "api_key_env=NAME)")

    async def start(self) -> None:
        """Import LiteLLM and read the key once."""
        load_litellm()
        self._key = self.api_key()

    def _call(self, request: GenerationRequest) -> tuple[Any, dict[str, Any]]:
        litellm = _litellm
        kwargs: dict[str, Any] = {"model": self.model, "timeout": self.timeout,
                                  "num_retries": 0, "max_retries": 0, "caching": False,
                                  **self._param_fields(request.params)}
        if self.api_base:
            kwargs["api_base"] = self.api_base
        if "/" not in self.model and self.vendor:
            # A bare name LiteLLM may not know (claude-3-sonnet-2024022): the provider it implies.
            kwargs["custom_llm_provider"] = self.vendor
        if "api_version" in self.config:
            kwargs["api_version"] = self.config["api_version"]
        if self._key:
            kwargs["api_key"] = self._key
        elif self.api_base and self.vendor in ("openai", "text-completion-openai", ""):
            kwargs["api_key"] = "none"  # the OpenAI client insists on one; the server needs none
        if request.messages is not None:
            kwargs["messages"] = request.messages
            return litellm.acompletion, kwargs
        kwargs["prompt"] = request.prompt or ""
        return litellm.atext_completion, kwargs

    def _param_fields(self, params: GenerateParams) -> dict[str, Any]:
        cached = self._fields.get(id(params))
        if cached is not None and cached[0] is params:
            return cached[1]
        fields = params.set_fields()
        if not self.supports_n:
            fields.pop("n", None)
        self._drop_unsupported(fields)
        if len(self._fields) >= 64:
            self._fields.clear()
        self._fields[id(params)] = (params, fields)
        return fields

    def _drop_unsupported(self, fields: dict[str, Any]) -> None:
        """Drop what the provider does not take (``seed`` for Anthropic), with one warning, as
        promptmill does for its own backends; refuse what must be honoured (``stop``)."""
        try:
            supported = _litellm.get_supported_openai_params(
                model=self.model.split("/", 1)[-1] if "/" in self.model else self.model,
                custom_llm_provider=self.vendor or None) if self.vendor else None
        except Exception:  # LiteLLM cannot tell: send everything, let the provider judge
            supported = None
        if not supported:
            return
        unsupported = sorted(name for name in fields if name in _PARAMS
                             and name not in supported and name != "n")
        refused = [name for name in unsupported if name in MUST_HONOUR]
        if refused:
            raise JobFatalError(f"litellm!{self.model} cannot honour {', '.join(refused)}: "
                                "dropping it would change results; remove it")
        for name in unsupported:
            fields.pop(name)
        if unsupported and not self._warned.issuperset(unsupported):
            self._warned.update(unsupported)
            log.warning("litellm!%s (%s) does not take %s: dropped", self.model, self.vendor,
                        ", ".join(unsupported))

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Send each request through LiteLLM; its exceptions classified for the engine."""
        if _litellm is None:
            raise RuntimeError("generator not started: call start() first")
        results = []
        for request in requests:
            call, kwargs = self._call(request)
            try:
                answer = await call(**kwargs)
            except Exception as exc:  # LiteLLM raises its own classes, and sometimes others
                raise self._classify(exc) from None
            results.append(self._result(request, answer))
        return results

    def _result(self, request: GenerationRequest, answer: Any) -> GenerationResult:
        try:
            chat = request.messages is not None
            responses = [Response(str((choice.message.content if chat else choice.text) or ""),
                                  choice.finish_reason) for choice in answer.choices]
            usage = getattr(answer, "usage", None)
            counted = Usage(int(getattr(usage, "prompt_tokens", 0) or 0),
                            int(getattr(usage, "completion_tokens", 0) or 0))
        except (AttributeError, TypeError, ValueError):
            raise MalformedResponse(f"litellm!{self.model}: an answer without choices "
                                    f"({type(answer).__name__})") from None
        if len(responses) != request.n:
            raise JobFatalError(f"litellm!{self.model} answered {len(responses)} choices for "
                                f"n={request.n}: drop supports_n=true")
        hidden = getattr(answer, "_hidden_params", None) or {}
        info = rate_info(hidden.get("additional_headers"))
        return GenerationResult(request.request_id, responses, counted, rate_limit=info)

    def _classify(self, exc: Exception) -> GenerationError:
        """LiteLLM's exception as promptmill's error kind, its message redacted."""
        status = getattr(exc, "status_code", None)
        name = type(exc).__name__
        message = redact_secrets(str(exc)).strip().replace("\n", " ")[:300]
        text = f"litellm!{self.model}: {message}"
        info = rate_info(_exception_headers(exc))
        error: GenerationError
        if name == "RateLimitError" or status == 429:
            lowered = message.lower()
            if "quota" in lowered or "billing" in lowered or "credit" in lowered:
                return JobFatalError(f"{text}: add credit or use another key")
            error = RateLimited(text, retry_after=info.retry_after_s if info else None)
        elif name in ("APIConnectionError", "ServiceUnavailableError", "BadGatewayError") \
                or status in (502, 503, 504, 529):
            error = Unavailable(text)
        elif name == "Timeout" or status == 408:
            error = RequestTimeout(text)
        elif name in ("InternalServerError", "APIError") or (status or 0) >= 500:
            error = ServerError(text)
        elif name in ("AuthenticationError", "PermissionDeniedError") or status in (401, 403):
            return JobFatalError(f"{text}: check the key in {self.key_env_name() or 'api_key'}")
        elif name == "NotFoundError" or status == 404:
            return JobFatalError(f"{text}: check the model name (PROVIDER/MODEL as LiteLLM "
                                 "names it)")
        elif name == "BudgetExceededError":
            return JobFatalError(text)
        elif isinstance(exc, GenerationError):
            return exc
        else:
            return FatalRequestError(text)
        if isinstance(error, RetryableError):
            error.rate_limit = info
        return error


def _exception_headers(exc: Exception) -> Any:
    """The response headers a LiteLLM exception carries, if any."""
    headers = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
    return headers


def rate_info(headers: Any) -> RateLimitInfo | None:
    """Limits from the headers LiteLLM passes on: the provider's own (``llm_provider-``
    prefixed) preferred to LiteLLM's OpenAI-style copies."""
    if not headers:
        return None
    plain: dict[str, str] = {}
    for key, value in dict(headers).items():
        name = str(key).lower()
        if name.startswith("llm_provider-"):
            plain[name[len("llm_provider-"):]] = str(value)
        else:
            plain.setdefault(name, str(value))
    return parse_anthropic_headers(plain) if any(
        k.startswith("anthropic-ratelimit-") for k in plain) else parse_rate_headers(plain)
