"""A stand-in for a local engine (vLLM, transformers): batches in, results out one by one.

``FakeLocalEngine`` takes up to ``max_batch`` requests per call, two calls at once, and
finishes them one after another ``delay`` seconds apart, answering with a deterministic text
(the request's prompt reversed, per sample). Tests of the engine's streaming seam use it, and
so can users checking their pipeline's resume logic without a model. ``short=N`` makes it a
faulty engine whose first N answers lack one of the samples asked (k must still mean k).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from promptmill.generators.base import (
    GenerationRequest,
    GenerationResult,
    Generator,
    Response,
    Usage,
)


class FakeLocalEngine(Generator):
    """A local engine that finishes the requests of each batch one by one, ``delay`` apart."""

    provider = "fake-local"
    supports_n = True
    is_local = True
    max_batch = 64
    concurrent_batches = 2
    config_fields = frozenset({"delay", "short"})

    def __init__(self, model: str = "fake", **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.delay = float(self.config.get("delay", 0.0))
        self.short = int(self.config.get("short", 0))  # answers still to give one sample short
        self.batch_sizes: list[int] = []  # the size of every call, in order
        self.running_calls = 0  # calls in progress now
        self.most_running_calls = 0  # the most calls ever in progress at once

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Every request's result, in order."""
        return [result async for result in self.stream(requests)]

    async def stream(
        self, requests: Sequence[GenerationRequest]
    ) -> AsyncIterator[GenerationResult]:
        """Each request's result, ``delay`` seconds after the previous one."""
        self.batch_sizes.append(len(requests))
        self.running_calls += 1
        self.most_running_calls = max(self.most_running_calls, self.running_calls)
        try:
            for request in requests:
                await asyncio.sleep(self.delay)
                result = answer(request)
                if self.short > 0:
                    self.short -= 1
                    del result.responses[-1]
                yield result
        finally:
            self.running_calls -= 1


def answer(request: GenerationRequest) -> GenerationResult:
    """The fake engine's deterministic result for ``request``."""
    text = request.prompt if request.prompt is not None else str(
        (request.messages or [{}])[-1].get("content", ""))
    responses = [Response(f"{text[::-1]} #{i}", "stop") for i in range(request.n)]
    return GenerationResult(request.request_id, responses,
                            Usage(len(text.split()), 2 * request.n))


__all__ = ["FakeLocalEngine", "answer"]
