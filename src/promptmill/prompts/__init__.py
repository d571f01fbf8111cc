"""Turning an input row into a prompt: a field, a messages field, or a Jinja2 template."""

from promptmill.prompts.render import PromptSpec, RenderedPrompt

__all__ = ["PromptSpec", "RenderedPrompt"]
