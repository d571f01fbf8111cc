"""Turning an input row into a prompt: a field, a messages field, a Jinja2 template or a named
prompt of the library; chat formats for models fed text; fitting prompts to the context."""

from promptmill.prompts.formats import FORMATS, ChatFormat, detect_format, get_format
from promptmill.prompts.library import NamedPrompt, get_prompt, load_library
from promptmill.prompts.render import PromptSpec, RenderedPrompt
from promptmill.prompts.truncate import Truncation

__all__ = [
    "FORMATS",
    "ChatFormat",
    "NamedPrompt",
    "PromptSpec",
    "RenderedPrompt",
    "Truncation",
    "detect_format",
    "get_format",
    "get_prompt",
    "load_library",
]
