"""promptmill: run LLM generation jobs over datasets, resumable and exactly once."""

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
