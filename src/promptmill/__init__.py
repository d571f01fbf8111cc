"""promptmill: run LLM generation jobs over datasets, resumable and exactly once."""

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
    "get_generator",
    "register_generator",
]
