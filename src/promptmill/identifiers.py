"""Generator identifiers: ``provider!model,key=value,...`` strings.

They parse to an :class:`Identifier` and format back to an equivalent string. Values keep
their type (``max_tokens=256`` stays an int), may be quoted to hold commas or ``=``
(``stop="a,b"``) and may be JSON lists (``stop=["###","\\n\\n"]``). A secret given in a
string (``api_key=sk-...``) is held in a :class:`Secret` and formats back as
``api_key=***``: never echoed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from promptmill.errors import IdentifierError, MissingDependency
from promptmill.redaction import REDACTED, Secret, redact_secrets

SECRET_KEYS = frozenset({"api_key"})

_BARE_VALUE = re.compile(r"^[A-Za-z0-9_./:@+\-]*$")


@dataclass(frozen=True)
class Identifier:
    """A parsed ``provider!model,key=value`` string."""

    provider: str
    model: str
    options: dict[str, Any] = field(default_factory=dict)
    api_key: Secret | None = field(default=None, repr=False, compare=False)

    def format(self) -> str:
        """The identifier as a string, secrets redacted."""
        parts = [f"{self.provider}!{self.model}" if self.provider else self.model]
        parts += [f"{key}={format_value(value)}" for key, value in self.options.items()]
        if self.api_key is not None:
            parts.append(f"api_key={REDACTED}")
        return ",".join(parts)

    __str__ = format


# LiteLLM's provider prefixes (``anthropic/claude-2.1``): a model name starting with one of
# these and no ``provider!`` is LiteLLM's to serve. (A hub name like ``google/gemma-7b`` is not.)
LITELLM_PREFIXES = frozenset({
    "openai", "text-completion-openai", "azure", "azure_ai", "anthropic", "bedrock",
    "sagemaker", "vertex_ai", "gemini", "mistral", "groq", "together_ai", "cohere",
    "cohere_chat", "deepseek", "openrouter", "fireworks_ai", "xai", "perplexity", "deepinfra",
    "cerebras", "huggingface", "replicate", "nvidia_nim", "sambanova", "ai21",
    "nlp_cloud", "voyage", "databricks", "watsonx", "cloudflare", "friendliai",
})
# Bare model names LiteLLM knows the provider of (rigging's default provider is LiteLLM).
_LITELLM_BARE = re.compile(r"^(claude-|gemini-|mistral-|command-)")
# Providers promptmill serves itself, for the explicit spelling an error suggests.
_NATIVE = {"openai": "openai", "anthropic": "anthropic"}


def infer_provider(model: str, options: dict[str, Any]) -> str:
    """The provider a model name implies, or an IdentifierError saying how to name one."""
    return infer(model, options)[0]


def infer(model: str, options: dict[str, Any]) -> tuple[str, str]:
    """The provider a model name without ``provider!`` implies, and the model name to use.

    LiteLLM's spellings work as written: ``anthropic/claude-2.1`` is ``litellm!``'s,
    ``ollama/llama3.1`` is ``ollama!llama3.1``, and ``openai/MODEL,api_base=URL`` is the
    OpenAI-compatible server at URL (``http!MODEL``: LiteLLM, too, sends it ``MODEL``).
    """
    lowered = model.lower()
    prefix, sep, rest = model.partition("/")
    prefix = prefix.lower() if sep else ""
    if lowered.endswith(".gguf"):
        return "llamacpp", model
    if prefix in ("ollama", "ollama_chat") and rest:
        return "ollama", rest
    if prefix == "openai" and rest and "api_base" in options:
        return "http", rest
    if (prefix in LITELLM_PREFIXES and rest) or (not sep and _LITELLM_BARE.match(lowered)):
        _require_litellm(model, prefix or ("anthropic" if lowered.startswith("claude") else ""),
                         rest or model)
        return "litellm", model
    if "api_base" in options:
        return "http", model
    if re.match(r"^(gpt-|o[1-9]|chatgpt-|text-|davinci|babbage|ft:gpt)", lowered):
        return "openai", model
    raise IdentifierError(
        f"cannot tell which provider serves {model!r}: write it as 'PROVIDER!{model}' "
        "(e.g. openai!, http! with api_base=..., llamacpp!/path/model.gguf, or LiteLLM's "
        "PROVIDER/MODEL such as anthropic/claude-2.1)"
    )


def _require_litellm(model: str, vendor: str, name: str) -> None:
    """A LiteLLM name needs the litellm extra: say so in one line, with the explicit spellings."""
    import importlib.util
    import sys

    # None in sys.modules: blocked on purpose (as if not installed).
    blocked = "litellm" in sys.modules and sys.modules["litellm"] is None
    if not blocked and importlib.util.find_spec("litellm") is not None:
        return
    native = _NATIVE.get(vendor)
    alternative = f", or write {native}!{name} (promptmill's own backend)" if native else ""
    raise MissingDependency(
        f"{model!r} is a LiteLLM model name: pip install \"promptmill[litellm]\" to run it "
        f"as litellm!{model}{alternative}"
    )


def parse_identifier(text: str) -> Identifier:
    """Parse ``provider!model,key=value,...``; the provider may be left to inference.

    Errors quote the identifier with any key in it redacted.
    """
    try:
        return _parse_identifier(text)
    except IdentifierError as exc:
        raise IdentifierError(redact_secrets(str(exc))) from None


def _parse_identifier(text: str) -> Identifier:
    text = text.strip()
    if not text:
        raise IdentifierError("empty model identifier: pass one like 'openai!gpt-4o-mini'")
    provider = ""
    if "!" in text.split(",", 1)[0]:
        provider, text = text.split("!", 1)
        provider = provider.strip().lower()
        if not re.fullmatch(r"[a-z][a-z0-9_\-]*", provider):
            raise IdentifierError(
                f"malformed provider {provider!r} in model identifier: "
                "use letters, digits, '_' or '-' before the '!'"
            )
    pieces = _split_top_level(text)
    model = pieces[0].strip()
    if not model or "=" in model:
        raise IdentifierError(
            f"model identifier {text!r} has no model name: write 'provider!model,key=value'"
        )
    options: dict[str, Any] = {}
    api_key: Secret | None = None
    for piece in pieces[1:]:
        if "=" not in piece:
            raise IdentifierError(
                f"malformed option {piece!r} in model identifier: write key=value "
                "(quote values holding commas: stop=\"a,b\")"
            )
        key, raw = piece.split("=", 1)
        key = key.strip()
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", key):
            raise IdentifierError(f"malformed option name {key!r} in model identifier: use "
                                 "letters, digits, '_', '.' or '-' (extra.NAME for backend ones)")
        if key in options or (key in SECRET_KEYS and api_key is not None):
            raise IdentifierError(f"option {key!r} given twice in model identifier: keep one")
        value = parse_value(raw.strip())
        if key in SECRET_KEYS:
            # '***' is how a redacted identifier reads back: the key comes from the environment.
            if value != REDACTED:
                api_key = Secret(str(value))
            continue
        options[key] = value
    if not provider:
        provider, model = infer(model, options)
    return Identifier(provider=provider, model=model, options=options, api_key=api_key)


def parse_value(raw: str) -> Any:
    """A typed value: quoted string, JSON list/object, int, float, bool, null or bare string."""
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        if raw[0] == '"':
            try:
                return json.loads(raw)
            except json.JSONDecodeError as exc:
                raise IdentifierError(f"malformed quoted value {raw}: {exc.msg}") from None
        return raw[1:-1]
    if raw[:1] in "[{":
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise IdentifierError(f"malformed JSON value {raw}: {exc.msg}") from None
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none"):
        return None
    if re.fullmatch(r"[+-]?\d+", raw):
        return int(raw)
    if re.fullmatch(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?", raw):
        return float(raw)
    return raw


def format_value(value: Any) -> str:
    """Format a value so that :func:`parse_value` reads back the same value and type."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        if value and _BARE_VALUE.match(value) and parse_value(value) == value:
            return value
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside quotes and brackets."""
    pieces: list[str] = []
    depth = 0
    quote = ""
    start = 0
    index = 0
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            pieces.append(text[start:index])
            start = index + 1
        index += 1
    if quote or depth:
        raise IdentifierError(f"unbalanced quote or bracket in model identifier {text!r}: close "
                              "it (quote a value holding commas whole: stop=\"a,b\")")
    pieces.append(text[start:])
    return pieces
