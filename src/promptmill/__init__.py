"""promptmill: run LLM generation jobs over datasets, resumable and exactly once."""

from promptmill.api import arun, arun_requests, load, run, run_requests
from promptmill.errors import PromptmillError
from promptmill.generators import get_generator, register_generator
from promptmill.generators.base import GenerationRequest, GenerationResult, Generator
from promptmill.params import GenerateParams

__all__ = [
    "GenerateParams",
    "GenerationRequest",
    "GenerationResult",
    "Generator",
    "PromptmillError",
    "arun",
    "arun_requests",
    "get_generator",
    "load",
    "register_generator",
    "run",
    "run_requests",
]
