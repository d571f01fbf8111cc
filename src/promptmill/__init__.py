"""promptmill: run LLM generation jobs over datasets, resumable and exactly once."""

from promptmill.api import arun, arun_requests, load, run, run_requests
from promptmill.errors import PromptmillError
from promptmill.generators import get_generator, register_generator
from promptmill.generators.base import GenerationRequest, GenerationResult, Generator
from promptmill.params import GenerateParams
from promptmill.ray_ import RayOptions

__all__ = [
    "GenerateParams",
    "GenerationRequest",
    "GenerationResult",
    "Generator",
    "PromptmillError",
    "RayOptions",
    "arun",
    "arun_requests",
    "get_generator",
    "load",
    "register_generator",
    "run",
    "run_requests",
]
