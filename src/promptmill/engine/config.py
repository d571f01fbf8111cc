"""What a job asks of the dispatch engine (``EngineConfig``) and what it reports back
(``EngineStats``)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field

from promptmill.engine.retry import RetryPolicy


@dataclass
class EngineConfig:
    """How hard a job pushes: concurrency, limits, retries, outage tolerance."""

    max_concurrency: int = 64
    rpm: float | None = None
    tpm: float | None = None
    margin: float = 0.98
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    outage_timeout: float = 600.0
    flush_interval: float = 0.05
    flush_size: int = 256
    seed: int = 0
    # A remote job's first request goes alone until its answer's headers tell the provider's
    # limits (engine/limiter.py); False: the job knows its endpoint sends none (endpoints.py).
    slow_start: bool = True


@dataclass
class EngineStats:
    """Live counters, read by the progress display and reported at the end."""

    total: int = 0
    sent: int = 0
    done: int = 0
    failed: int = 0
    in_flight: int = 0
    retries: Counter[str] = field(default_factory=Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: int = 0  # responses taken from the response cache instead of sent
    spent: float | None = None  # dollars spent by the job so far (None: price unknown)
    started_at: float = field(default_factory=time.monotonic)
    finished_at: float | None = None
    limiter_state: str = "ok"

    @property
    def finished(self) -> int:
        """Requests finished this run, done or failed."""
        return self.done + self.failed

    def as_dict(self) -> dict[str, object]:
        """Plain counters for reports."""
        data = asdict(self)
        data["retries"] = dict(self.retries)
        return data
