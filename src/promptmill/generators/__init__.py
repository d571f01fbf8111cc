"""The generator registry: backends by provider name, heavy ones imported only when used."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any

from promptmill.errors import IdentifierError, MissingDependency, UsageError, did_you_mean
from promptmill.generators.base import (
    GenerationRequest,
    GenerationResult,
    Generator,
    Message,
    RateLimitInfo,
    Response,
    Usage,
)
from promptmill.generators.custom import GeneratedMessage, GeneratedText
from promptmill.generators.oneoff import Reply

Loader = type[Generator] | Callable[[], type[Generator]]

# provider -> (module:Class, the extra that installs what it imports)
_BUILTIN: dict[str, tuple[str, str | None]] = {
    "openai": ("promptmill.generators.openai_:OpenAIGenerator", None),
    "http": ("promptmill.generators.openai_:HTTPGenerator", None),
    "anthropic": ("promptmill.generators.anthropic_:AnthropicGenerator", None),
    "ollama": ("promptmill.generators.ollama_:OllamaGenerator", None),
    "litellm": ("promptmill.generators.litellm_:LiteLLMGenerator", "litellm"),
    "llamacpp": ("promptmill.generators.llamacpp_:LlamaCppGenerator", "local"),
    "vllm": ("promptmill.generators.vllm_:VLLMGenerator", "vllm"),
    "transformers": ("promptmill.generators.transformers_:TransformersGenerator", "hf"),
}
_REGISTRY: dict[str, Loader] = {}
_ENTRY_POINT_GROUP = "promptmill.generators"


def register_generator(name: str, generator: Loader) -> None:
    """Register a Generator class, or a zero-argument loader returning one, under ``name``
    (``get_generator("name!model")``); a class without a ``provider`` of its own takes
    ``name``, so that its identifiers read back."""
    if not re.fullmatch(r"[a-z][a-z0-9_\-]*", name.lower()):
        raise UsageError(f"register_generator: provider name {name!r} must be letters, digits, "
                         "'_' or '-', starting with a letter")
    if isinstance(generator, type) and not issubclass(generator, Generator):
        raise UsageError(f"register_generator({name!r}, {generator.__name__}): a generator "
                         "class must subclass promptmill.Generator")
    _REGISTRY[name.lower()] = generator
    _name_class(name, generator)


def _name_class(name: str, generator: Any) -> None:
    if isinstance(generator, type) and issubclass(generator, Generator) \
            and not generator.provider:
        generator.provider = name.lower()


def _load_builtin(provider: str) -> type[Generator]:
    target, extra = _BUILTIN[provider]
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if extra is None or exc.name is None or exc.name.startswith("promptmill"):
            raise
        raise MissingDependency(
            f"{provider}! needs {exc.name}, which is not installed: "
            f'pip install "promptmill[{extra}]"'
        ) from exc
    cls: type[Generator] = getattr(module, class_name)
    return cls


def generator_class(provider: str) -> type[Generator]:
    """The Generator class registered for ``provider``."""
    provider = provider.lower()
    loader = _REGISTRY.get(provider)
    # Built-in names never reach the entry points: importing importlib.metadata and reading
    # every installed package's metadata is ~15 ms of each `promptmill run`'s start-up, and
    # an installed package must not take over `openai!` (where the keys go) unasked.
    if loader is None and provider not in _BUILTIN:
        for ep in entry_points(group=_ENTRY_POINT_GROUP):
            if ep.name.lower() == provider:
                loader = ep.load()
                break
    if loader is not None:
        # An entry point may load anything: check what it gave.
        cls: Any = loader if isinstance(loader, type) else loader()
        if not (isinstance(cls, type) and issubclass(cls, Generator)):
            raise UsageError(f"provider {provider!r} loads a {type(cls).__name__}, not a "
                             "promptmill.Generator subclass: fix its registration")
        _name_class(provider, cls)
        return cls
    if provider in _BUILTIN:
        return _load_builtin(provider)
    raise IdentifierError(
        f"unknown provider {provider!r}{did_you_mean(provider, known_providers())}: known are "
        f"{', '.join(sorted(known_providers()))} "
        "(third-party ones register through the 'promptmill.generators' entry point group)"
    )


def entry_points(group: str) -> Any:
    """The installed packages' entry points in ``group`` (importlib.metadata, loaded on use)."""
    from importlib.metadata import entry_points as installed

    return installed(group=group)


def known_providers() -> set[str]:
    """Every provider name this installation knows."""
    names = set(_BUILTIN) | set(_REGISTRY)
    names |= {ep.name.lower() for ep in entry_points(group=_ENTRY_POINT_GROUP)}
    return names


def from_obj(obj: Any, tokenizer: Any = None, **options: Any) -> Generator:
    """A generator answering with a model object the caller already built.

    ``obj`` is a ``vllm.LLM``, or a transformers model (PEFT-wrapped or not) with its
    ``tokenizer``; a Generator is returned as it is. ``options`` are what an identifier
    would say: sampling parameters (``temperature=0``) and backend options (``lora=``,
    ``batch_size=``). The object stays the caller's: a job never frees it; the generator's
    ``unload()`` does.
    """
    if isinstance(obj, Generator):
        return obj
    if type(obj).__module__.startswith("vllm"):
        from promptmill.generators.vllm_ import VLLMGenerator

        return VLLMGenerator.wrap(obj, **options)
    if hasattr(obj, "generate") and hasattr(obj, "config"):
        if tokenizer is None:
            raise UsageError("from_obj: a transformers model needs its tokenizer: "
                             "from_obj(model, tokenizer)")
        from promptmill.generators.transformers_ import TransformersGenerator

        return TransformersGenerator.wrap(obj, tokenizer, **options)
    raise UsageError(f"from_obj cannot wrap a {type(obj).__name__}: pass a vllm.LLM, or a "
                     "transformers model and its tokenizer")


def get_generator(identifier: str) -> Generator:
    """Build a generator from ``provider!model,key=value,...`` or a model alias."""
    from promptmill.aliases import resolve_identifier

    ident = resolve_identifier(identifier)
    return generator_class(ident.provider).from_identifier(ident)


def get_identifier(generator: Generator) -> str:
    """The identifier string of ``generator`` (secrets redacted): ``get_generator`` of it
    builds an equivalent generator."""
    return generator.to_identifier()


__all__ = [
    "GeneratedMessage",
    "GeneratedText",
    "GenerationRequest",
    "GenerationResult",
    "Generator",
    "Message",
    "RateLimitInfo",
    "Reply",
    "Response",
    "Usage",
    "from_obj",
    "generator_class",
    "get_generator",
    "get_identifier",
    "known_providers",
    "register_generator",
]
