"""The job's rate limiter: requests and tokens per minute, and what the provider tells us.

Three sources of limits work together; a send waits for the strictest:

* limits the user states (``--rpm``, ``--tpm``): paced with GCRA (a theoretical arrival time
  per resource), so sends are spread evenly from the first second instead of bursting a
  whole minute's allowance; tokens reserved for a request (prompt + max_tokens) are settled
  against what the provider charged once the answer is in;
* limits the provider reports (``x-ratelimit-limit-*``, ``-remaining-*``, ``-reset-*``): a
  mirror of the provider's bucket, synchronised on every answer (remaining less what is in
  flight) and refilled in between at the rate the headers imply (what is spent over the
  time to reset), so the job spends the allowance as it refills, before the provider
  refuses anything; one mirror per model, since providers (OpenAI) limit each model apart
  and a request file's lines may name several;
* 429s without such headers: every 429 pauses the job for its ``Retry-After``, and the
  limiter learns a send rate (AIMD-like): it cuts the rate to what the provider accepted
  between two episodes of refusals (the bucket was empty at both, so what it accepted is
  what it refilled), then probes upwards slowly (``engine/learned.py``).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from promptmill.engine.learned import LearnedRate
from promptmill.engine.mirror import LimiterEvent as LimiterEvent
from promptmill.engine.mirror import ModelBuckets, ProviderBucket
from promptmill.engine.pace import StatedPace
from promptmill.generators.base import RateLimitInfo

# Slow start waits this long at most for the first answer (its headers tell the limits), so
# a model that takes 30 s to answer does not hold the job back for 30 s.
_SLOW_START_S = 2.0
# Waits shorter than this (seconds) are no wait.
_EPSILON = 1e-6


def _within(pace: StatedPace | None, bucket: ProviderBucket) -> bool:
    """Whether a stated pace keeps within what a provider bucket reports it allows."""
    return (pace is not None and bucket.capacity > 0 and bucket.window > 0
            and 1.0 / pace.interval <= bucket.capacity / bucket.window)


class RateLimiter:
    """Paces sends for a whole job; every coroutine that sends calls ``acquire`` first."""

    __slots__ = (
        "_clock",
        "_sleep",
        "_request_pace",
        "_token_pace",
        "_burst",
        "_paused_until",
        "_pause_reason",
        "_provider_requests",
        "_provider_tokens",
        "_models",
        "_learned",
        "_accepted",
        "_edge_refusals",
        "_started",
        "_binding",
        "_limited",
        "_turn",
        "_stated",
        "_first_answer",
        "_first_send",
        "_pause_event",
        "events",
        "inflight_requests",
        "inflight_tokens",
        "limit_headers_seen",
    )

    def __init__(
        self,
        rpm: float | None = None,
        tpm: float | None = None,
        *,
        margin: float = 0.98,
        burst_s: float = 0.2,
        slow_start: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = asyncio.sleep,
    ) -> None:
        self._clock = clock  # monotonic seconds; injectable so tests drive a fake clock
        self._sleep = sleep  # awaitable sleep matching the clock
        # The stated limits' paces (None: not stated). A loop stalled for up to ``burst_s``
        # (a loaded machine) keeps their schedule and catches up the slots it slept
        # through; the same catch-up window serves a learned rate.
        now = clock()
        self._request_pace = StatedPace(rpm * margin, now, burst_s) if rpm else None
        self._token_pace = StatedPace(tpm * margin, now, burst_s) if tpm else None
        self._burst = burst_s
        # Workers waiting for the limiter take turns, first come first served: one sleeps
        # until the next slot instead of all of them waking for each (a herd that cost a
        # loaded machine 15% of a stated rate).
        self._turn = asyncio.Lock()
        self._paused_until = 0.0  # no send before this (Retry-After, an outage)
        self._pause_reason = ""  # why, for the progress display
        # State changes (pauses, limits learned or reported) not yet written to the store;
        # the dispatcher takes them with its group commits.
        self.events: list[LimiterEvent] = []
        self._pause_event: LimiterEvent | None = None  # the current pause's record
        self._provider_requests = ProviderBucket(self.events, "provider_requests")
        self._provider_tokens = ProviderBucket(self.events, "provider_tokens")
        # Buckets of models named by requests (``model`` not None): the job's own model's are
        # the two above, so a job of one model never looks here.
        self._models: dict[str, ModelBuckets] = {}
        self._learned = LearnedRate(self.events)  # from 429s without limit headers
        self._accepted = 0  # answers the provider accepted (not 429): a guess without Retry-After
        self._edge_refusals = 0  # reported 429s under a stated pace (rate_limited)
        self._started = now  # when the job began sending
        self._binding = ""  # which limit held the last send back, for the display
        # Whether anything may hold a send back: stated limits, a pause, provider headers or
        # 429s seen. Until then (most jobs off rate limits) a send books nothing.
        self._stated = bool(rpm or tpm)
        self._limited = self._stated or slow_start
        # Slow start: one request in flight until the first answer, whose headers may tell
        # the limits before a whole concurrency's worth of requests is sent blind (a limit
        # of 10 a slice would refuse 54 of 64 such requests). True: no need (or answered).
        self._first_answer = not slow_start
        self._first_send = math.inf  # when sending began (after slow start: its first answer)
        self.inflight_requests = 0  # sent, not yet answered
        self.inflight_tokens = 0  # reserved by requests in flight
        self.limit_headers_seen = False  # an answer's headers stated a limit

    @property
    def state(self) -> str:
        """One line for the progress display: ``ok``, how it is paced, or why it is paused."""
        now = self._clock()
        if self._paused_until > now:
            return f"paused {self._paused_until - now:.1f}s ({self._pause_reason})"
        if self._learned.base:
            return f"paced at {self._learned.rate(now):.1f} req/s (learned from 429s)"
        if self._binding:
            return f"paced ({self._binding})"
        return "ok"

    @property
    def provider_shape(self) -> str | None:
        """How the provider's reported limits are modelled: ``refilling`` (continuously) or
        ``windowed`` (learned from refusals: sends counted per window); None: no limit
        headers seen."""
        buckets = [b for b in self._all_buckets() if b.capacity]
        if not buckets:
            return None
        return "windowed" if any(b.windowed for b in buckets) else "refilling"

    @property
    def learned_rate(self) -> float | None:
        """Requests/s learned from 429s without limit headers (None: none learned)."""
        return self._learned.rate(self._clock()) if self._learned.base else None

    def delay(self, tokens: int, model: str | None = None) -> float:
        """Seconds before a request reserving ``tokens`` may be sent (0 or less: now).

        ``model``: a model other than the job's own, whose provider limits are its own.
        """
        now = self._clock()
        wait = self._paused_until - now
        binding = ""
        if not self._first_answer and self.inflight_requests:
            if now - self._first_send < _SLOW_START_S:
                wait, binding = max(wait, 0.002), "waiting for the first answer"
            else:  # a slow model's first answer: the limits are not worth the wait
                self._first_answer = True
        if self._request_pace is not None:
            stated = self._request_pace.wait(1, now)
            if stated > wait:
                wait, binding = stated, "stated rpm"
        if self._token_pace is not None:
            stated = self._token_pace.wait(tokens, now)
            if stated > wait:
                wait, binding = stated, "stated tpm"
        requests, tokens_bucket, inflight_requests, inflight_tokens = self._mirrors(model)
        if requests.capacity:
            mirror = requests.wait(1, now, inflight_requests)
            if mirror > wait:
                wait, binding = mirror, ("provider requests window" if requests.windowed
                                         else "provider requests allowance")
        if tokens_bucket.capacity:
            mirror = tokens_bucket.wait(tokens, now, inflight_tokens)
            if mirror > wait:
                wait, binding = mirror, ("provider tokens window" if tokens_bucket.windowed
                                         else "provider tokens allowance")
        if self._learned.base and not self._learned.trial_left:
            learned = self._learned.next_send() - now
            if learned > wait:
                wait, binding = learned, "learned"
        if wait <= _EPSILON:
            self._binding = ""
            return 0.0  # also ends float round-off waits of a few ulps
        self._binding = binding
        return wait

    def try_book(self, tokens: int, model: str | None = None) -> float | None:
        """Book one request of ``tokens`` if it may be sent now: its send time; else None."""
        if self._limited and self.delay(tokens, model) > 0:
            return None
        return self.book(tokens, model)

    def book(self, tokens: int, model: str | None = None) -> float:
        """Count one request of ``tokens`` as sent now; returns the send time."""
        now = self._clock()
        self.inflight_requests += 1
        self.inflight_tokens += tokens
        requests, tokens_bucket = self._provider_requests, self._provider_tokens
        if model is not None:
            buckets = self._buckets(model)
            buckets.inflight_requests += 1
            buckets.inflight_tokens += tokens
            requests, tokens_bucket = buckets.requests, buckets.tokens
        if self._first_send == math.inf:
            # When sending began: a window's first refusal is told by it (rate_limited), and
            # the limiter may be made seconds before (planning, a loaded machine's start-up).
            self._first_send = now
        if not self._limited:
            return now  # nothing stated, reported or learned yet: nothing to book
        if self._request_pace is not None:
            self._request_pace.book(1, now)
        if self._token_pace is not None:
            self._token_pace.book(tokens, now)
        if requests.capacity:
            requests.take(1, now)
        if tokens_bucket.capacity:
            tokens_bucket.take(tokens, now)
        if self._learned.base:
            self._learned.book(now, self._burst)
        return now

    async def acquire(self, tokens: int, model: str | None = None) -> float:
        """Wait until one request of ``tokens`` (prompt + max_tokens) may go; book it.

        Returns the send time, which ``rate_limited`` takes back if the request is refused.
        """
        async with self._turn:
            while True:
                delay = self.delay(tokens, model)
                if delay <= 0:
                    return self.book(tokens, model)
                await self._sleep(delay)  # type: ignore[misc]

    def release(self, reserved: int, charged: int | None, *, accepted: bool = True,
                refused: bool = False, sent_at: float = 0.0, model: str | None = None) -> None:
        """A request sent at ``sent_at`` finished: settle its reservation against its charge.

        ``charged`` is what the provider counted against its token limit (None: unknown);
        ``accepted`` is False for a refusal (``refused``: a 429, then ``rate_limited``
        follows) or a failure to reach the provider.
        """
        self.inflight_requests -= 1
        self.inflight_tokens -= reserved
        if model is not None:
            buckets = self._buckets(model)
            buckets.inflight_requests -= 1
            buckets.inflight_tokens -= reserved
        if not self._first_answer:
            self._first_answer = True
            self._first_send = self._clock()  # the others go from now: the allowance's start
            # Nothing learned from it: back to booking nothing (the fast path).
            self._limited = self._stated or self._paused_until > 0 or any(
                b.capacity for b in self._all_buckets())
        if accepted:
            self._accepted += 1
            self._learned.accepted_answer(sent_at)
        elif not refused:
            self._learned.lost(sent_at)
        if charged is not None and charged != reserved and self._token_pace is not None:
            self._token_pace.settle(sent_at, reserved, charged, self._clock())

    def pause(self, seconds: float, reason: str) -> None:
        """Hold every send for ``seconds`` (a 429's Retry-After, an outage)."""
        self._limited = True
        now = self._clock()
        until = now + seconds
        if until > self._paused_until:
            event = self._pause_event
            if event is not None and self._paused_until > now and reason == self._pause_reason:
                event.value = until - event.at  # the pause goes on
            else:
                event = self._pause_event = LimiterEvent(now, "pause", seconds, reason)
            if not self.events or self.events[-1] is not event:
                self.events.append(event)  # written again if already written: it grew
            self._paused_until = until
            self._pause_reason = reason

    def rate_limited(self, retry_after: float, sent_at: float, *, reported: bool,
                     model: str | None = None) -> None:
        """A 429 for a request sent at ``sent_at`` (to ``model``, when not the job's own):
        pause, and learn unless headers told us.

        ``reported`` says whether the 429 came with ``x-ratelimit-*`` headers (then the
        provider mirror already knows the state and no rate is learned).
        """
        self.pause(retry_after, "HTTP 429")
        if reported:
            now = self._clock()
            requests, tokens, _, _ = self._mirrors(model)
            # A stated pace within the reported limit never sends more than a window allows
            # (engine/pace.py): a rare refusal is a catch-up send on a window's edge, not a
            # sign that the window does not refill, and turning windowed would hold back a
            # whole window for it (a sliding window's reset is when all of it is free).
            # Refusals more often than that (1 + 1 per 1,000 answers): the mirror learns.
            self._edge_refusals += 1
            rare = self._edge_refusals <= 1 + self._accepted / 1_000
            if not (rare and _within(self._request_pace, requests)):
                requests.distrust(sent_at, now)
            if not (rare and _within(self._token_pace, tokens)):
                tokens.distrust(sent_at, now)
            return
        now = self._clock()
        accepted_rate = self._accepted / max(1e-3, now - self._started)
        # What a window that refills all at once allowed: what was accepted since the first
        # send, over the time until Retry-After says it refills (see engine/learned.py).
        # Unset only if nothing was booked (a refusal of a request sent around the limiter):
        # then sending began with the job (else every first refusal would look like a window's).
        first = self._first_send if self._first_send != math.inf else self._started
        since = now - min(first, now)
        reading = self._accepted / (since + retry_after) if retry_after else 0.0
        window_rate = reading if retry_after and retry_after > since else 0.0
        # A rate the user stated is not given up for one episode of refusals (a provider's
        # stall can refuse one request of an even pace): at most a tenth below it, until
        # refusals between measured windows show less.
        floor = 0.9 / self._request_pace.interval if self._request_pace is not None else 0.0
        self._learned.refused(retry_after or None, sent_at, now, accepted_rate,
                              self.inflight_requests, window_rate, floor,
                              (reading, self._accepted))
        self._learned.tat = max(self._learned.tat, self._paused_until)

    def observe(self, info: RateLimitInfo, model: str | None = None) -> None:
        """Take in what a response's headers said about the provider's allowance (for
        ``model``'s requests, when it is not the job's own model)."""
        self._limited = True
        if (info.limit_requests or info.limit_tokens or info.remaining_requests is not None
                or info.remaining_tokens is not None):
            self.limit_headers_seen = True
        now = self._clock()
        requests, tokens, inflight_requests, inflight_tokens = self._mirrors(model)
        if (info.limit_requests and info.remaining_requests is not None
                and info.reset_requests_s is not None):
            requests.sync(info.limit_requests, info.remaining_requests,
                          info.reset_requests_s, inflight_requests, now, info.reset_exact)
        if (info.limit_tokens and info.remaining_tokens is not None
                and info.reset_tokens_s is not None):
            tokens.sync(info.limit_tokens, info.remaining_tokens,
                        info.reset_tokens_s, inflight_tokens, now, info.reset_exact)

    def _mirrors(self, model: str | None
                 ) -> tuple[ProviderBucket, ProviderBucket, int, int]:
        """The provider buckets a request to ``model`` counts against (None: the job's own
        model), and that model's requests and tokens in flight."""
        if model is not None:
            buckets = self._buckets(model)
            return (buckets.requests, buckets.tokens, buckets.inflight_requests,
                    buckets.inflight_tokens)
        inflight_requests, inflight_tokens = self.inflight_requests, self.inflight_tokens
        for other in self._models.values():  # in flight less the other models' requests
            inflight_requests -= other.inflight_requests
            inflight_tokens -= other.inflight_tokens
        return self._provider_requests, self._provider_tokens, inflight_requests, inflight_tokens

    def _buckets(self, model: str) -> ModelBuckets:
        buckets = self._models.get(model)
        if buckets is None:
            buckets = self._models[model] = ModelBuckets(self.events, model)
        return buckets

    def _all_buckets(self) -> list[ProviderBucket]:
        """Every provider bucket mirrored: the job's own model's, then the others'."""
        buckets = [self._provider_requests, self._provider_tokens]
        for other in self._models.values():
            buckets += (other.requests, other.tokens)
        return buckets
