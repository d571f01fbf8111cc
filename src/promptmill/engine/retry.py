"""Retry policy: which failures are retried, after how long, how many attempts a request gets."""

from __future__ import annotations

import random
from dataclasses import dataclass

from promptmill.errors import (
    GenerationError,
    InvalidOutput,
    RateLimited,
    RetryableError,
    Unavailable,
)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter and a cap on counted attempts.

    Connection failures (``Unavailable``) are not counted as attempts: while the whole server
    is down the job pauses instead of burning every request's budget. They have their own,
    larger cap so that one request that always breaks the connection still ends.
    """

    max_attempts: int = 8
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    max_unavailable: int = 40

    def counts_as_attempt(self, error: GenerationError) -> bool:
        """Whether this failure spends one of the request's attempts."""
        return not isinstance(error, Unavailable)

    def gives_up(self, error: GenerationError, attempts: int, unavailable: int) -> bool:
        """Whether the request ends failed after this error."""
        if not isinstance(error, RetryableError):
            return True
        if isinstance(error, Unavailable):
            return unavailable >= self.max_unavailable
        return attempts >= self.max_attempts

    def delay(self, error: GenerationError, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before the next attempt ("equal jitter": half fixed, half random)."""
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return float(error.retry_after)
        if isinstance(error, InvalidOutput):
            return 0.0  # the server is fine: sample again at once
        # The exponent is capped: 2.0 ** 1024 overflows, and --max-attempts may be that large.
        ceiling = min(self.backoff_max, self.backoff_base * 2.0 ** min(max(0, attempt - 1), 64))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)
