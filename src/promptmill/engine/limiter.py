"""The job's rate limiter: requests and tokens per minute, and what the provider's headers say.

Two sources of limits work together:

* limits the user states (``--rpm``, ``--tpm``): paced with GCRA (a theoretical arrival time
  per resource), so sends are spread evenly from the first second instead of bursting a
  whole minute's allowance; tokens reserved for a request (prompt + max_tokens) are given
  back once the real usage is known;
* limits the provider reports while the job runs (``x-ratelimit-remaining-*``,
  ``x-ratelimit-reset-*``, ``Retry-After``): when the remaining allowance, less what is in
  flight, runs low the limiter paces the rest over the time to reset, and when it is spent
  it pauses the whole job until the reset, before the provider starts refusing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from promptmill.generators.base import RateLimitInfo

# Below this share of the reported allowance, sends are paced over the time left to reset.
_PACE_BELOW = 0.25


class RateLimiter:
    """Paces sends for a whole job; every coroutine that sends calls ``acquire`` first."""

    __slots__ = (
        "_clock",
        "_sleep",
        "_request_interval",
        "_token_interval",
        "_burst",
        "_request_tat",
        "_token_tat",
        "_paused_until",
        "_pause_reason",
        "_header_pace_interval",
        "_header_pace_until",
        "_header_tat",
        "inflight_requests",
        "inflight_tokens",
    )

    def __init__(
        self,
        rpm: float | None = None,
        tpm: float | None = None,
        *,
        margin: float = 0.98,
        burst_s: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = asyncio.sleep,
    ) -> None:
        self._clock = clock  # monotonic seconds; injectable so tests drive a fake clock
        self._sleep = sleep  # awaitable sleep matching the clock
        # Seconds one request / one token occupies at the allowed rate (0: unlimited).
        self._request_interval = 60.0 / (rpm * margin) if rpm else 0.0
        self._token_interval = 60.0 / (tpm * margin) if tpm else 0.0
        self._burst = burst_s  # how far ahead of its schedule a send may go
        now = clock()
        self._request_tat = now  # theoretical arrival time of the next request
        self._token_tat = now  # theoretical time the token budget is next clear
        self._paused_until = 0.0  # no send before this (429 Retry-After, spent allowance)
        self._pause_reason = ""  # why, for the progress display
        self._header_pace_interval = 0.0  # spacing imposed by low remaining allowance
        self._header_pace_until = 0.0  # when that spacing lapses (the provider's reset)
        self._header_tat = now  # next send allowed by the header pacing
        self.inflight_requests = 0  # sent, not yet answered
        self.inflight_tokens = 0  # reserved by requests in flight

    @property
    def state(self) -> str:
        """One line for the progress display: ``ok``, ``paced`` or why it is paused."""
        now = self._clock()
        if self._paused_until > now:
            return f"paused {self._paused_until - now:.1f}s ({self._pause_reason})"
        if self._header_pace_until > now:
            return "paced (provider allowance low)"
        return "ok"

    def _delay(self, tokens: int, now: float) -> float:
        waits = [self._paused_until - now]
        if self._request_interval:
            waits.append(self._request_tat - self._burst - now)
        if self._token_interval:
            waits.append(self._token_tat - self._burst - now)
        if self._header_pace_until > now:
            waits.append(self._header_tat - now)
        return max(waits)

    async def acquire(self, tokens: int) -> None:
        """Wait until one request of ``tokens`` (prompt + max_tokens) may be sent, and book it."""
        while True:
            now = self._clock()
            delay = self._delay(tokens, now)
            if delay <= 0:
                break
            await self._sleep(delay)  # type: ignore[misc]
        if self._request_interval:
            self._request_tat = max(self._request_tat, now) + self._request_interval
        if self._token_interval:
            self._token_tat = max(self._token_tat, now) + tokens * self._token_interval
        if self._header_pace_until > now:
            self._header_tat = max(self._header_tat, now) + self._header_pace_interval
        self.inflight_requests += 1
        self.inflight_tokens += tokens

    def release(self, reserved: int, used: int | None) -> None:
        """A request finished: give back what was reserved beyond what it used."""
        self.inflight_requests -= 1
        self.inflight_tokens -= reserved
        if used is not None and used < reserved and self._token_interval:
            refund = (reserved - used) * self._token_interval
            self._token_tat = max(self._clock(), self._token_tat - refund)

    def pause(self, seconds: float, reason: str) -> None:
        """Hold every send for ``seconds`` (a 429's Retry-After, an outage)."""
        until = self._clock() + seconds
        if until > self._paused_until:
            self._paused_until = until
            self._pause_reason = reason

    def observe(self, info: RateLimitInfo) -> None:
        """Take in what a response's headers said about the provider's allowance."""
        now = self._clock()
        for remaining, limit, reset, inflight, what in (
            (info.remaining_requests, info.limit_requests, info.reset_requests_s,
             self.inflight_requests, "requests"),
            (info.remaining_tokens, info.limit_tokens, info.reset_tokens_s,
             self.inflight_tokens, "tokens"),
        ):
            if remaining is None or reset is None:
                continue
            usable = remaining - inflight
            if usable <= 0:
                self.pause(reset, f"provider {what} allowance spent")
            elif what == "requests" and limit and remaining < _PACE_BELOW * limit:
                # Spread what is left over the time to reset instead of spending it at once.
                interval = reset / usable
                if interval > self._header_pace_interval or self._header_pace_until <= now:
                    self._header_pace_interval = interval
                self._header_pace_until = max(self._header_pace_until, now + reset)
