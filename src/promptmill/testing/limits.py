"""Rate limits the test server enforces, and OpenAI's ``x-ratelimit-*`` headers.

A limit allows ``limit`` units per ``window`` seconds, counted in one of four ways
(``RateLimits.kind``), because providers and gateways do not all count alike:

- ``bucket`` (OpenAI's description): a bucket of ``limit`` units that refills continuously
  at ``limit / window`` units per second; it starts full, a request takes its cost out. A
  client sending at exactly the limit rate, evenly spaced, is never refused, and a burst of
  up to ``limit`` is allowed once.
- ``fixed``: a counter per window aligned to the clock (a minute that starts at :00), reset
  to ``limit`` when the next window starts.
- ``sliding``: at most ``limit`` units in any ``window`` seconds (a log of recent requests).
- ``quantized``: the window cut into ``quanta`` fixed slices of ``limit / quanta`` units each
  (a minute quantized into seconds): even a client under the per-window rate is refused when
  it sends more than a slice's share within one slice.

``x-ratelimit-limit-*`` is the allowance of what is counted (a slice's, for ``quantized``),
``-remaining-*`` what is left of it, and ``-reset-*`` the time until all of it is available
again (OpenAI's meaning: "the time until the rate limit resets to its initial state").
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass

__all__ = ["WINDOW_KINDS", "RateLimits", "format_duration"]

# How a limit counts; see the module docstring.
WINDOW_KINDS = ("bucket", "fixed", "sliding", "quantized")


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
    kind: str = "bucket"  # one of WINDOW_KINDS
    quanta: int = 10  # slices of a window, for kind "quantized"

    def __post_init__(self) -> None:
        if self.window <= 0:
            raise ValueError(f"window must be > 0 seconds, got {self.window}")
        if self.kind not in WINDOW_KINDS:
            raise ValueError(f"window kind must be one of {', '.join(WINDOW_KINDS)}, "
                             f"got {self.kind!r}")
        if self.quanta < 1:
            raise ValueError(f"quanta must be >= 1, got {self.quanta}")
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

    def take(self, amount: int, now: float) -> None:
        """Remove ``amount`` units; call right after ``wait_for`` returned 0."""
        self._level -= amount

    def remaining(self, now: float) -> int:
        """Whole units available now."""
        self.refill(now)
        return max(0, int(self._level))

    def reset(self, now: float) -> float:
        """Seconds until the bucket is full again."""
        self.refill(now)
        return (self.capacity - self._level) / self._rate


class FixedWindow:
    """``capacity`` units per window of ``window`` seconds; windows start at multiples of
    ``window`` on the wall clock (a minute starting at :00), whatever ``now`` counts from."""

    __slots__ = ("capacity", "_window", "_origin", "_index", "_used")

    def __init__(self, capacity: int, window: float, now: float) -> None:
        self.capacity = capacity
        self._window = window
        self._origin = now - time.time() % window  # ``now`` of a window's start
        self._index = 0  # the window ``_used`` counts in
        self._used = 0  # units taken in that window

    def _roll(self, now: float) -> None:
        index = math.floor((now - self._origin) / self._window)
        if index != self._index:
            self._index, self._used = index, 0

    def wait_for(self, amount: int, now: float) -> float:
        """Seconds until ``amount`` units are available (0 if now, ``inf`` if never)."""
        self._roll(now)
        if amount > self.capacity:
            return math.inf
        return 0.0 if self._used + amount <= self.capacity else self.reset(now)

    def take(self, amount: int, now: float) -> None:
        """Count ``amount`` units in the current window."""
        self._roll(now)
        self._used += amount

    def remaining(self, now: float) -> int:
        """Units left in the current window."""
        self._roll(now)
        return max(0, self.capacity - self._used)

    def reset(self, now: float) -> float:
        """Seconds until the next window starts."""
        return self._origin + (math.floor((now - self._origin) / self._window) + 1) \
            * self._window - now


class SlidingWindow:
    """At most ``capacity`` units in any ``window`` seconds: a log of what was taken when."""

    __slots__ = ("capacity", "_window", "_log", "_used")

    def __init__(self, capacity: int, window: float, now: float) -> None:
        self.capacity = capacity
        self._window = window
        self._log: deque[tuple[float, int]] = deque()  # (when, units) of the last window
        self._used = 0  # units in ``_log``

    def _expire(self, now: float) -> None:
        log = self._log
        while log and log[0][0] + self._window <= now:
            self._used -= log.popleft()[1]

    def wait_for(self, amount: int, now: float) -> float:
        """Seconds until ``amount`` units are available (0 if now, ``inf`` if never)."""
        self._expire(now)
        if amount > self.capacity:
            return math.inf
        excess = self._used + amount - self.capacity
        if excess <= 0:
            return 0.0
        for when, units in self._log:  # the oldest first: free them until it fits
            excess -= units
            if excess <= 0:
                return when + self._window - now
        return 0.0  # not reached: ``amount`` fits in an empty log

    def take(self, amount: int, now: float) -> None:
        """Log ``amount`` units taken now."""
        self._log.append((now, amount))
        self._used += amount

    def remaining(self, now: float) -> int:
        """Units that may be taken now."""
        self._expire(now)
        return max(0, self.capacity - self._used)

    def reset(self, now: float) -> float:
        """Seconds until the log is empty: the whole allowance available again."""
        self._expire(now)
        return self._log[-1][0] + self._window - now if self._log else 0.0


Counter = Bucket | FixedWindow | SlidingWindow


def make_counter(kind: str, capacity: int, window: float, quanta: int, now: float) -> Counter:
    """The counter that enforces ``capacity`` units per ``window`` seconds the ``kind`` way."""
    if kind == "fixed":
        return FixedWindow(capacity, window, now)
    if kind == "sliding":
        return SlidingWindow(capacity, window, now)
    if kind == "quantized":
        return FixedWindow(max(1, capacity // quanta), window / quanta, now)
    return Bucket(capacity, window, now)


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
        kind, window, quanta = limits.kind, limits.window, limits.quanta
        self._requests = (None if limits.requests is None
                          else make_counter(kind, limits.requests, window, quanta, now))
        self._tokens = (None if limits.tokens is None
                        else make_counter(kind, limits.tokens, window, quanta, now))

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
                                  bucket.capacity - bucket.remaining(now), amount)
        if refusal is not None:
            return refusal
        if self._requests is not None:
            self._requests.take(1, now)
        if self._tokens is not None:
            self._tokens.take(cost, now)
        return None

    def retry_after(self, refusal: Refusal) -> float:
        """Seconds a refused client should wait; a request that can never fit gets a window."""
        return self._window if math.isinf(refusal.retry_after) else refusal.retry_after

    def state(self, now: float) -> dict[str, tuple[int, int, float]]:
        """``{"requests"|"tokens": (limit, remaining, seconds to reset)}`` of each limit."""
        state: dict[str, tuple[int, int, float]] = {}
        for bucket, kind in ((self._requests, "requests"), (self._tokens, "tokens")):
            if bucket is not None:
                state[kind] = (bucket.capacity, bucket.remaining(now), bucket.reset(now))
        return state

    def headers(self, now: float) -> dict[str, str]:
        """OpenAI's ``x-ratelimit-*`` headers for the limits' state at ``now``."""
        headers: dict[str, str] = {}
        for kind, (limit, remaining, reset) in self.state(now).items():
            headers[f"x-ratelimit-limit-{kind}"] = str(limit)
            headers[f"x-ratelimit-remaining-{kind}"] = str(remaining)
            headers[f"x-ratelimit-reset-{kind}"] = format_duration(reset)
        return headers
