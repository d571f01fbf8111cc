"""Prompts that must fit the model's context: checked before anything is sent, cut on request.

The budget is ``--max-prompt-tokens``, else the backend's context length (the engine's
``n_ctx``, the identifier's ``max_model_len``) less ``max_tokens``. A prompt over it fails
its row (recorded failed at planning, never sent; the other rows go on) with an error naming
the row and the fix, unless truncation was asked for:
then the chosen field is cut, keeping its start or its end, to the longest text whose whole
prompt fits. Tokens are counted by the backend (``Generator.count_prompt_tokens``: tiktoken
for OpenAI models, llama.cpp's own tokenizer for ``llamacpp!``), on the prompt as it is sent
(template, system prompt and chat format included). The cut is found by bisection on
characters, so the kept text is exactly a prefix (or suffix) of the original.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from promptmill.errors import InputError, UsageError
from promptmill.prompts.render import RenderedPrompt, Renderer

KEEP_SIDES = ("start", "end")


@dataclass(frozen=True, slots=True)
class Truncation:
    """Cut ``field`` to fit, keeping its ``start`` or its ``end``."""

    field: str
    keep: str = "start"

    def __post_init__(self) -> None:
        if self.keep not in KEEP_SIDES:
            raise UsageError(f"--truncate-keep {self.keep!r}: use start or end")


@dataclass(frozen=True, slots=True)
class Budget:
    """How many prompt tokens a row may have, and where that number comes from."""

    tokens: int
    why: str


def prompt_budget(max_prompt_tokens: int | None, context: int | None,
                  max_tokens: int | None, model: str) -> Budget | None:
    """The budget, or None when neither a limit nor the context length is known."""
    if max_prompt_tokens is not None:
        return Budget(max_prompt_tokens, "--max-prompt-tokens")
    if context is None:
        return None
    room = max_tokens or 1
    if room >= context:
        raise UsageError(f"max_tokens={room} leaves no room for a prompt in {model}'s "
                         f"{context}-token context: lower max_tokens or raise the context")
    return Budget(context - room, f"{model}'s {context}-token context less max_tokens={room}")


class PromptFitter:
    """Renders rows, checks each prompt against the budget, and cuts what truncation allows."""

    def __init__(self, renderer: Renderer, count: Callable[[RenderedPrompt], int],
                 budget: Budget | None, truncation: Truncation | None) -> None:
        self.renderer = renderer
        self.count = count
        self.budget = budget
        self.truncation = truncation
        self.cut_rows = 0  # rows cut to fit so far
        self.too_long_rows = 0  # rows over the budget with no truncation: they fail

    def fit(self, index: int, row: dict[str, Any]) -> tuple[RenderedPrompt, int, str | None]:
        """The row's prompt (cut if needed and allowed), its tokens, and why it cannot be
        sent (None: it fits). A prompt over the budget without truncation is not an error of
        the job: that row fails, with this message, and the others go on."""
        rendered = self.renderer.render(index, row)
        tokens = self.count(rendered)
        budget = self.budget
        if budget is None or tokens <= budget.tokens:
            return rendered, tokens, None
        if self.truncation is None:
            self.too_long_rows += 1
            return rendered, tokens, (
                f"the prompt has {tokens:,} tokens, over the {budget.tokens:,} of "
                f"{budget.why}: shorten it, or cut it to fit with --truncate-field FIELD"
            )
        rendered, tokens = self._cut(index, row, self.renderer.where(index), tokens)
        self.cut_rows += 1
        return rendered, tokens, None

    def _cut(self, index: int, row: dict[str, Any], where: str,
             tokens: int) -> tuple[RenderedPrompt, int]:
        assert self.truncation is not None and self.budget is not None
        name, keep, limit = self.truncation.field, self.truncation.keep, self.budget.tokens
        value = row.get(name)
        if not isinstance(value, str):
            raise InputError(f"{where}: --truncate-field {name}: the row has no text field "
                             f"{name!r} to cut (the prompt has {tokens:,} tokens, over "
                             f"{limit:,}): name the field that holds the long text")

        def attempt(length: int) -> tuple[RenderedPrompt, int] | None:
            kept = value[:length] if keep == "start" else value[len(value) - length:]
            try:
                rendered = self.renderer.render(index, {**row, name: kept})
            except InputError:  # e.g. nothing left of the only field: an empty prompt
                return None
            count = self.count(rendered)
            return (rendered, count) if count <= limit else None

        # Bisection for the longest kept length that fits, starting from a proportional guess.
        low, high, best = 0, len(value), None
        guess = len(value) * limit // max(tokens, 1)
        if 0 < guess < high:
            found = attempt(guess)
            if found is not None:
                low, best = guess, found
            else:
                high = guess
        while high - low > 1:
            middle = (low + high) // 2
            found = attempt(middle)
            if found is not None:
                low, best = middle, found
            else:
                high = middle
        if best is None:
            best = attempt(0)
        if best is None:
            raise InputError(f"{where}: even with {name!r} cut to nothing the prompt is over "
                             f"the {limit:,} tokens of {self.budget.why}: shorten the rest of "
                             "the prompt (template, system prompt) or raise the limit")
        return best


__all__ = ["Budget", "PromptFitter", "Truncation", "prompt_budget"]
