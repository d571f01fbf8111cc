"""Rate limits the test server enforces, and OpenAI's ``x-ratelimit-*`` headers.

Each limit is a bucket that holds at most ``limit`` units and refills continuously at
``limit / window`` units per second, the way OpenAI describes its own limits: it starts full,
a request takes its cost out, and ``x-ratelimit-reset-*`` is the time until the bucket is
full again. So a client that sends at exactly the limit rate, evenly spaced, is never
refused (the full bucket absorbs its jitter), and a burst of up to ``limit`` is allowed
once, after which the client must slow to the refill rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["RateLimits", "format_duration"]


@dataclass(frozen=True)
class RateLimits:
    """Requests and tokens allowed per ``window`` seconds; ``None`` means unlimited.

    A request costs one request and, like OpenAI's estimate, its prompt tokens (words, see
    ``count_tokens``) plus ``max_tokens`` (or ``max_completion_tokens``) for every choice;
    without either, the completion tokens it is actually answered with.
    """

    requests: int | None = None
    tokens: int | None = None
    window: float = 60.0

    def __post_init__(self) -> None:
        if self.window <= 0:
            raise ValueError(f"window must be > 0 seconds, got {self.window}")
        for name, value in (("requests", self.requests), ("tokens", self.tokens)):
            if value is not None and value < 1:
                raise ValueError(f"{name} limit must be >= 1 or None, got {value}")


def format_duration(seconds: float) -> str:
    """A duration as OpenAI writes it in reset headers: ``20ms``, ``1.5s``, ``6m0s``, ``1h0m0s``."""
    if seconds <= 0:
        return "0s"
    millis = math.ceil(seconds * 1000 - 1e-6)
    if millis < 1000:
        return f"{millis}ms"
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    # Go's Duration.String, which OpenAI's headers follow: trailing zeros of the seconds go.
    secs = f"{millis / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


class Bucket:
    """One continuously refilling limit: ``capacity`` units, refilled over ``window`` seconds."""

    __slots__ = ("capacity", "_rate", "_level", "_stamp")

    def __init__(self, capacity: int, window: float, now: float) -> None:
        self.capacity = capacity
        self._rate = capacity / window  # units regained per second
        self._level = float(capacity)  # units available at ``_stamp``
        self._stamp = now  # the loop time ``_level`` was last brought up to date

    def refill(self, now: float) -> None:
        """Bring the level up to date with the time that has passed."""
        if now > self._stamp:
            self._level = min(self.capacity, self._level + (now - self._stamp) * self._rate)
            self._stamp = now

    def wait_for(self, amount: int, now: float) -> float:
        """Seconds until ``amount`` units are available (0 if now, ``inf`` if never)."""
        self.refill(now)
        if amount > self.capacity:
            return math.inf
        return max(0.0, (amount - self._level) / self._rate)

    def take(self, amount: int) -> None:
        """Remove ``amount`` units; call right after ``wait_for`` returned 0."""
        self._level -= amount

    def remaining(self) -> int:
        """Whole units available as of the last ``refill``."""
        return max(0, int(self._level))

    def reset(self) -> float:
        """Seconds until the bucket is full again."""
        return (self.capacity - self._level) / self._rate


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the limiter refused a request: which limit, and how long until it would pass."""

    limit_type: str  # "requests" or "tokens", OpenAI's error ``type``
    retry_after: float  # seconds; ``inf`` when the request can never fit
    limit: int
    used: int
    requested: int


class RateLimiter:
    """The request and token buckets of one server, and the headers they produce."""

    __slots__ = ("_requests", "_tokens", "_window")

    def __init__(self, limits: RateLimits, now: float) -> None:
        self._window = limits.window  # reported as the retry delay of an impossible request
        self._requests = None if limits.requests is None else Bucket(limits.requests,
                                                                     limits.window, now)
        self._tokens = None if limits.tokens is None else Bucket(limits.tokens, limits.window, now)

    def admit(self, cost: int, now: float) -> Refusal | None:
        """Take one request and ``cost`` tokens, or take nothing and say why not."""
        refusal: Refusal | None = None
        for bucket, amount, kind in ((self._requests, 1, "requests"),
                                     (self._tokens, cost, "tokens")):
            if bucket is None:
                continue
            wait = bucket.wait_for(amount, now)
            if wait > 0 and (refusal is None or wait > refusal.retry_after):
                refusal = Refusal(kind, wait, bucket.capacity,
                                  bucket.capacity - bucket.remaining(), amount)
        if refusal is not None:
            return refusal
        if self._requests is not None:
            self._requests.take(1)
        if self._tokens is not None:
            self._tokens.take(cost)
        return None

    def retry_after(self, refusal: Refusal) -> float:
        """Seconds a refused client should wait; a request that can never fit gets a window."""
        return self._window if math.isinf(refusal.retry_after) else refusal.retry_after

    def headers(self, now: float) -> dict[str, str]:
        """OpenAI's ``x-ratelimit-*`` headers for the buckets' state at ``now``."""
        headers: dict[str, str] = {}
        for bucket, kind in ((self._requests, "requests"), (self._tokens, "tokens")):
            if bucket is not None:
                bucket.refill(now)
                headers[f"x-ratelimit-limit-{kind}"] = str(bucket.capacity)
                headers[f"x-ratelimit-remaining-{kind}"] = str(bucket.remaining())
                headers[f"x-ratelimit-reset-{kind}"] = format_duration(bucket.reset())
        return headers
