"""Planning a JSONL input a chunk of lines at once: what ``RowPlanner`` does row by row.

Most jobs read a JSONL file and render one prompt field or template per row into the same
payload shape. Such a chunk is parsed, checked and rendered with list operations: one
orjson call encodes every prompt of the chunk, the payload text around each prompt is the
same for every row (found once, by rendering a sentinel through the per-row code), and the
token estimate is additive (a constant for the chat's overhead plus the prompt's count).
Anything else in a chunk (a malformed line, an integer past 64 bits, a missing or empty
prompt field, an output-field clash, a prompt over the context) sends that chunk through
the per-row planner, which names the row at fault as it always has; a chunk is never half
planned one way and half the other.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from promptmill import data, fastjson
from promptmill.datasets_ import is_hf_source
from promptmill.generators.base import Generator
from promptmill.generators.tokens import count_texts_tokens

if TYPE_CHECKING:
    from promptmill.job import Job, RowPlanner

# Stands for a row's prompt text while the payload around it is found (plain ASCII: JSON
# writes it as it is).
_SENTINEL = "PromptmillBulkPlanningSentinel7d1f"
_loads = orjson.loads


def jsonl_chunks(path: Path, lines: int) -> Iterator[tuple[int, list[bytes]]]:
    """A JSONL file ``lines`` lines at a time: (the first line's number, the lines as read)."""
    with open(path, "rb") as handle:
        number = 1
        while chunk := list(islice(handle, lines)):
            if number == 1:
                chunk[0] = data.without_bom(chunk[0])
            yield number, chunk
            number += len(chunk)


class BulkPlanner:
    """Parses and renders a chunk of JSONL rows at once (see the module's docstring)."""

    def __init__(self, planner: RowPlanner, prefix: str, suffix: str,
                 token_base: int | None, around: tuple[str, str]) -> None:
        self.planner = planner
        self.renderer = planner.fitter.renderer
        self.budget = planner.fitter.budget
        self.model = planner.spec.generator.model
        self.prefix = prefix  # the payload's text before the prompt's JSON text
        self.suffix = suffix  # and after it
        # A chat's tokens are token_base + the prompt's count; a text prompt's are those of
        # around[0] + prompt + around[1] (token_base None).
        self.token_base = token_base
        self.around = around
        from promptmill.job import OUTPUT_FIELDS

        self.no_clash = frozenset(OUTPUT_FIELDS).isdisjoint  # an input row may not use them

    @classmethod
    def for_job(cls, job: Job, planner: Any) -> BulkPlanner | None:
        """A bulk planner for ``job``, or None where its rows must be planned one by one (not
        a JSONL file; a request file, Ray, an adapter field, a chat format, a backend that
        counts tokens its own way, truncation)."""
        from promptmill.job import RowPlanner

        spec = job.spec
        if (type(planner) is not RowPlanner or is_hf_source(spec.input)
                or data.input_format(spec.input) != "jsonl" or spec.adapter_field is not None
                or spec.truncation is not None or planner.fitter.renderer.chat_format is not None
                or spec.prompts.messages_field
                or type(spec.generator).count_prompt_tokens is not Generator.count_prompt_tokens):
            return None
        from promptmill.planning import payload_json
        from promptmill.prompts.render import RenderedPrompt

        wrapped: RenderedPrompt = planner.fitter.renderer.wrap(_SENTINEL)
        text = payload_json(wrapped.payload(), fastjson.json_text)
        parts = text.split(_SENTINEL)
        if len(parts) != 2 or not parts[0].endswith('"') or not parts[1].startswith('"'):
            return None  # the system prompt holds the sentinel: one by one
        model = spec.generator.model
        if wrapped.messages is not None:
            token_base: int | None = (planner.fitter.count(wrapped)
                                      - count_texts_tokens([_SENTINEL], model)[0])
            around = ("", "")
        else:
            token_base = None
            before, _, after = (wrapped.prompt or "").partition(_SENTINEL)
            around = (before, after)
        return cls(planner, parts[0], parts[1], token_base, around)

    def parse(self, lines: list[bytes]) -> tuple[list[dict[str, Any]], list[str]] | None:
        """The rows of ``lines`` (as read; blank ones skipped) and their text as the store
        keeps it; None where a line needs ``data``'s own reading (malformed, not an object,
        a large number)."""
        # map and filter over C functions: no bytecode a row.
        raws = list(filter(None, map(bytes.strip, lines)))
        try:
            rows = list(map(_loads, raws))
            texts = list(map(bytes.decode, raws))
        except (orjson.JSONDecodeError, UnicodeDecodeError):
            return None
        if rows and set(map(type, rows)) != {dict}:
            return None
        if fastjson.maybe_inexact(b"\n".join(raws)) and any(map(fastjson.inexact, rows)):
            return None
        return rows, texts

    def render(self, rows: list[dict[str, Any]]) -> tuple[list[str], list[int]] | None:
        """Each row's payload text and prompt tokens, as ``RowPlanner.render`` gives them;
        None where a row needs the per-row planner (an error to name, a prompt over the
        context)."""
        if not all(map(self.no_clash, rows)):
            return None
        texts = self.renderer.texts(rows)
        if texts is None:
            return None
        if self.token_base is not None:
            tokens = list(map(self.token_base.__add__, count_texts_tokens(texts, self.model)))
        else:
            before, after = self.around
            tokens = count_texts_tokens(
                [before + text + after for text in texts] if before or after else texts,
                self.model)
        if self.budget is not None and tokens and max(tokens) > self.budget.tokens:
            return None
        try:
            encoded = orjson.dumps(texts)
        except TypeError:  # a lone surrogate: the per-row planner's way
            return None
        # ["a","b"]: inside a JSON string every quote is escaped, so '","' is only ever the
        # boundary between two of them.
        inner = encoded[2:-2].decode().split('","') if texts else []
        prefix, suffix = self.prefix, self.suffix
        # An f-string joins the three in one allocation, where + makes a string between.
        return [f"{prefix}{text}{suffix}" for text in inner], tokens


__all__ = ["BulkPlanner", "jsonl_chunks"]
