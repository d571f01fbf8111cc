"""promptmill: run LLM generation jobs over datasets, resumable and exactly once."""

# The public names load on first use (PEP 562), not with the package: every submodule import
# (the CLI's, ``promptmill --help``) runs this file first, and the library behind these names
# (aiohttp, pydantic, Jinja2, the engine) costs more start-up than a command's help takes.
import importlib
import typing

if typing.TYPE_CHECKING:
    from promptmill.api import arun, arun_requests, load, run, run_requests
    from promptmill.errors import PromptmillError
    from promptmill.generators import (
        GeneratedMessage,
        GeneratedText,
        Message,
        Reply,
        get_generator,
        get_identifier,
        register_generator,
    )
    from promptmill.generators.base import GenerationRequest, GenerationResult, Generator
    from promptmill.params import GenerateParams
    from promptmill.ray_ import RayOptions

# Each public name's module.
_HOMES = {
    "GenerateParams": "promptmill.params",
    "GeneratedMessage": "promptmill.generators",
    "GeneratedText": "promptmill.generators",
    "GenerationRequest": "promptmill.generators.base",
    "GenerationResult": "promptmill.generators.base",
    "Generator": "promptmill.generators.base",
    "Message": "promptmill.generators",
    "PromptmillError": "promptmill.errors",
    "RayOptions": "promptmill.ray_",
    "Reply": "promptmill.generators",
    "arun": "promptmill.api",
    "arun_requests": "promptmill.api",
    "get_generator": "promptmill.generators",
    "get_identifier": "promptmill.generators",
    "load": "promptmill.api",
    "register_generator": "promptmill.generators",
    "run": "promptmill.api",
    "run_requests": "promptmill.api",
}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'promptmill' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # once: later lookups find it here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "GenerateParams",
    "GeneratedMessage",
    "GeneratedText",
    "GenerationRequest",
    "GenerationResult",
    "Generator",
    "Message",
    "PromptmillError",
    "RayOptions",
    "Reply",
    "arun",
    "arun_requests",
    "get_generator",
    "get_identifier",
    "load",
    "register_generator",
    "run",
    "run_requests",
]
