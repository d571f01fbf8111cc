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
  refuses anything;
* 429s without such headers: every 429 pauses the job for its ``Retry-After``, and the
  limiter learns a send rate (AIMD-like): it cuts the rate to what the provider accepted
  between two episodes of refusals (the bucket was empty at both, so what it accepted is
  what it refilled), then probes upwards slowly.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from promptmill.generators.base import RateLimitInfo

# Learned rates stay a little under what the provider accepted, so the bucket never drains.
_LEARNED_MARGIN = 0.98
# Probing after a cut: the learned rate grows by this share per second, doubling every
# _PROBE_DOUBLING seconds without a refusal (fast recovery if a cut overshot).
_PROBE_GROWTH = 0.01
_PROBE_DOUBLING = 10.0
# A rate is measured between refusal episodes at least this many seconds apart, over at
# least this many accepted answers (it is off by at most one request over the span).
_WINDOW = 1.0
_MIN_SAMPLE = 20
# Share of the requests in flight at the first refusal that must be refused too for it to
# count as a limit (an overloaded bucket refuses nearly all of them; a blip, few), and how
# many of them it takes to tell.
_OVERLOADED = 0.5
_MIN_PEERS = 4
# Once refusals unrelated to our rate were seen, refused share of a window above their level
# that counts as a limit reached.
_NOISY = 0.05
# A learned rate never goes below one request a minute.
_MIN_RATE = 1 / 60
# Waits shorter than this (seconds) are no wait.
_EPSILON = 1e-6


class LimiterEvent:
    """A state change the job store keeps for the run report: a pause, a limit learned.

    Mutable: a pause that is extended updates its own record (written again if it was).
    """

    __slots__ = ("at", "kind", "value", "detail")

    def __init__(self, at: float, kind: str, value: float, detail: str = "") -> None:
        self.at = at  # clock time (the limiter's clock)
        self.kind = kind  # pause, learned_rate, provider_requests, provider_tokens, run_*...
        self.value = value  # seconds paused, requests/s learned, the limit reported...
        self.detail = detail  # why, in words


class _ProviderBucket:
    """A mirror of one provider bucket (requests or tokens), kept from response headers."""

    __slots__ = ("capacity", "rate", "level", "stamp", "reset", "events", "kind")

    def __init__(self, events: list[LimiterEvent], kind: str) -> None:
        self.events = events  # the limiter's state changes not yet written
        self.kind = kind  # the event kind of a new limit: provider_requests, provider_tokens
        self.capacity = 0  # the provider's limit (0: never reported)
        self.rate = 0.0  # a lower bound of the refill rate, units/s (0: not known yet)
        self.level = math.inf  # units believed available at ``stamp``, in flight deducted
        self.stamp = 0.0  # clock time of ``level``
        self.reset = 0.0  # the last reported seconds-to-full, the wait while rate is unknown

    def sync(self, limit: int, remaining: int, reset: float, inflight: float,
             now: float) -> None:
        """Take in one response's headers for this bucket."""
        if limit != self.capacity:
            self.capacity, self.rate = limit, 0.0  # a new limit: forget the old rate
            self.events.append(LimiterEvent(now, self.kind, limit, "x-ratelimit-limit header"))
        deficit = limit - remaining
        if deficit >= 2 and reset > 0:
            # remaining is floored and reset rounded up, so this bounds the rate from below;
            # the best bound seen so far is kept (steady state, deficit ~ limit, is tight).
            self.rate = max(self.rate, (deficit - 1) / reset)
        self.level = remaining - inflight
        self.stamp = now
        self.reset = reset

    def available(self, now: float) -> float:
        """Units believed available now."""
        level = self.level + self.rate * (now - self.stamp)
        return min(level, self.capacity) if self.capacity else level

    def wait(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` units are believed available."""
        if self.capacity:
            amount = min(amount, self.capacity)  # too large ever to fit: send when full
        short = amount - self.available(now)
        if short <= 0:
            return 0.0
        if self.rate <= 0:
            return max(0.005, min(self.reset, 1.0))  # recheck soon: answers will sync us
        return short / self.rate

    def take(self, amount: float, now: float) -> None:
        """Book ``amount`` units spent now."""
        if self.level != math.inf:
            self.level = self.available(now) - amount
            self.stamp = now


class _LearnedRate:
    """A send rate learned from 429s alone (no limit headers), paced with GCRA.

    The first refusal sets a guess from its ``Retry-After`` (at most the time one request
    takes to refill), sharpened by the other refusals of that episode; if few of the
    requests in flight then were refused, it was a blip (an injected fault, a shared quota
    hiccup), not a limit, and the guess is dropped. After that, each refusal episode at
    least ``_WINDOW`` seconds after the last measure measures what the provider accepted in
    between: the bucket was empty at both ends, so that is its refill rate, and the rate is
    cut to just under it, then probes upwards. Refusals that come back right after such a
    cut do not depend on our rate: the cut is undone, and only refusals beyond that level
    cut again.
    """

    __slots__ = ("base", "since", "tat", "window_at", "accepted", "refused_n", "reacted_at",
                 "checking_at", "check_left", "check_refused", "check_accepted", "noise",
                 "guess", "last_cut", "events")

    def __init__(self, events: list[LimiterEvent]) -> None:
        self.events = events  # the limiter's state changes not yet written
        self.base = 0.0  # requests/s set at the last cut (0: none, send freely)
        self.since = 0.0  # when ``base`` was set; probing grows the rate from there
        self.tat = 0.0  # theoretical arrival time of the next request
        self.window_at: float | None = None  # the refusal episode the measure starts from
        self.accepted = 0  # answers the provider accepted since ``window_at``
        self.refused_n = 0  # refusals since ``window_at``
        self.reacted_at = -math.inf  # refusals of requests sent before this are old news
        self.checking_at: float | None = None  # first refusal whose in-flight peers we count
        self.check_left = 0  # of those peers, how many have not answered yet
        self.check_refused = 0  # of those peers, how many were refused
        self.check_accepted = 0  # of those peers, how many were accepted
        self.noise = 0.0  # share of refusals seen that were no limit (cut only beyond it)
        self.guess = 0.0  # the first-episode guess, requests/s
        # (rate before, when, refusal episodes since) of the last measured cut
        self.last_cut: tuple[float, float, int] | None = None

    def rate(self, now: float) -> float:
        """The current rate: ``base`` grown by probing since the last cut."""
        elapsed = max(0.0, now - self.since)
        doubling = _PROBE_DOUBLING / math.log(2)
        return self.base * (1 + _PROBE_GROWTH * doubling * math.expm1(elapsed / doubling))

    def _set(self, rate: float, now: float) -> None:
        self.base, self.since = max(rate, _MIN_RATE), now
        self.tat = max(self.tat, now)
        self.events.append(LimiterEvent(now, "learned_rate", self.base, "learned from 429s"))

    def accepted_answer(self, sent_at: float) -> None:
        """An answer the provider counted (not a 429)."""
        self.accepted += 1
        if self.checking_at is not None and sent_at < self.checking_at:
            self.check_accepted += 1
            self._check_peer()

    def lost(self, sent_at: float) -> None:
        """A request that got no answer (connection failure): neither accepted nor refused."""
        if self.checking_at is not None and sent_at < self.checking_at:
            self._check_peer()

    def refused(self, retry_after: float | None, sent_at: float, now: float,
                accepted_rate: float, in_flight: int) -> None:
        """A 429 without limit headers; ``accepted_rate``: answers/s accepted so far."""
        self.refused_n += 1
        if self.checking_at is not None and sent_at < self.checking_at:
            self.check_refused += 1
            if retry_after and self.base and self.last_cut is None:
                self.guess = min(self.guess, _LEARNED_MARGIN / retry_after)
                self.base = max(self.guess, _MIN_RATE)
                self.events.append(LimiterEvent(now, "learned_rate", self.base,
                                                "learned from 429s"))
            self._check_peer()
        if sent_at < self.reacted_at:
            return  # part of an episode already handled
        self.reacted_at = now
        if not self.base:
            self._first_episode(retry_after, now, accepted_rate, in_flight)
            return
        last_cut = self.last_cut
        if last_cut is not None and now - last_cut[1] < _WINDOW:
            episodes = last_cut[2] + 1
            share = self.refused_n / (self.refused_n + self.accepted)
            if episodes < 2 or share < _NOISY:
                self.last_cut = (last_cut[0], last_cut[1], episodes)
                return  # once may be jitter at the bucket's edge
            # Refused again and again right after a measured cut, which was under what the
            # provider had accepted: these refusals do not depend on our rate. Undo the cut
            # and only cut again for refusals beyond this level.
            self.noise = max(self.noise, share)
            self.last_cut = None
            self._set(max(last_cut[0], self.rate(now)), now)
            self._new_window(now)
            return
        if self.window_at is None:
            self._new_window(now)
            return
        span = now - self.window_at
        if span < _WINDOW or self.accepted < _MIN_SAMPLE:
            return  # too soon to measure: the pause is all; the window goes on
        share = self.refused_n / (self.refused_n + self.accepted)
        if not self.noise or share > self.noise + _NOISY:
            # The bucket was empty at both ends (to within one request): what it accepted
            # in between is what it refilled; one less bounds the refill rate from below.
            current = self.rate(now)
            estimate = (self.accepted - 1) / span
            self._set(_LEARNED_MARGIN * min(estimate, current), now)
            self.last_cut = (current, now, 0)
        self._new_window(now)

    def _new_window(self, now: float) -> None:
        self.window_at, self.accepted, self.refused_n = now, 0, 0

    def _first_episode(self, retry_after: float | None, now: float, accepted_rate: float,
                       in_flight: int) -> None:
        self.guess = _LEARNED_MARGIN / retry_after if retry_after else 0.5 * accepted_rate
        self.checking_at = now
        self.check_left = in_flight
        self.check_refused = self.check_accepted = 0
        self.last_cut = None
        self._new_window(now)
        if not self.noise:
            # Cut at once: every request sent before the answers come back may be refused.
            self._set(self.guess, now)
        if in_flight == 0:
            self._judge()

    def _check_peer(self) -> None:
        self.check_left -= 1
        if self.check_left <= 0:
            self._judge()

    def _judge(self) -> None:
        """All requests in flight at the first refusal are back: a limit, or a blip?"""
        peers = self.check_refused + self.check_accepted
        now = self.checking_at if self.checking_at is not None else 0.0
        self.checking_at = None
        if peers < _MIN_PEERS:
            return  # too few to tell: keep what was done; the windows will tell
        if self.check_refused >= _OVERLOADED * peers:
            if not self.base:
                self._set(self.guess, now)
        else:
            self.noise = max(self.noise, self.check_refused / peers)
            if self.base:
                self.events.append(LimiterEvent(now, "learned_rate", 0.0,
                                                "few refused: a blip, no limit"))
            self.base = 0.0  # send freely again; a real limit will show as an overload


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
        "_provider_requests",
        "_provider_tokens",
        "_learned",
        "_accepted",
        "_started",
        "_binding",
        "_limited",
        "_pause_event",
        "events",
        "inflight_requests",
        "inflight_tokens",
    )

    def __init__(
        self,
        rpm: float | None = None,
        tpm: float | None = None,
        *,
        margin: float = 0.98,
        burst_s: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = asyncio.sleep,
    ) -> None:
        self._clock = clock  # monotonic seconds; injectable so tests drive a fake clock
        self._sleep = sleep  # awaitable sleep matching the clock
        # Seconds one request / one token occupies at the allowed rate (0: unlimited).
        self._request_interval = 60.0 / (rpm * margin) if rpm else 0.0
        self._token_interval = 60.0 / (tpm * margin) if tpm else 0.0
        # How far ahead of its schedule a send may go, so that a loop stalled for up to this
        # long (a loaded machine) catches up instead of losing the slots it slept through.
        self._burst = burst_s
        now = clock()
        self._request_tat = now  # theoretical arrival time of the next request
        self._token_tat = now  # theoretical time the token budget is next clear
        self._paused_until = 0.0  # no send before this (Retry-After, an outage)
        self._pause_reason = ""  # why, for the progress display
        # State changes (pauses, limits learned or reported) not yet written to the store;
        # the dispatcher takes them with its group commits.
        self.events: list[LimiterEvent] = []
        self._pause_event: LimiterEvent | None = None  # the current pause's record
        self._provider_requests = _ProviderBucket(self.events, "provider_requests")
        self._provider_tokens = _ProviderBucket(self.events, "provider_tokens")
        self._learned = _LearnedRate(self.events)  # from 429s without limit headers
        self._accepted = 0  # answers the provider accepted (not 429): a guess without Retry-After
        self._started = now  # when the job began sending
        self._binding = ""  # which limit held the last send back, for the display
        # Whether anything may hold a send back: stated limits, a pause, provider headers or
        # 429s seen. Until then (most jobs off rate limits) a send books nothing.
        self._limited = bool(rpm or tpm)
        self.inflight_requests = 0  # sent, not yet answered
        self.inflight_tokens = 0  # reserved by requests in flight

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
    def learned_rate(self) -> float | None:
        """Requests/s learned from 429s without limit headers (None: none learned)."""
        return self._learned.rate(self._clock()) if self._learned.base else None

    def delay(self, tokens: int) -> float:
        """Seconds before a request reserving ``tokens`` may be sent (0 or less: now)."""
        now = self._clock()
        wait = self._paused_until - now
        binding = ""
        if self._request_interval:
            stated = self._request_tat - self._burst - now
            if stated > wait:
                wait, binding = stated, "stated rpm"
        if self._token_interval:
            stated = self._token_tat - self._burst - now
            if stated > wait:
                wait, binding = stated, "stated tpm"
        if self._provider_requests.capacity:
            mirror = self._provider_requests.wait(1, now)
            if mirror > wait:
                wait, binding = mirror, "provider requests allowance"
        if self._provider_tokens.capacity:
            mirror = self._provider_tokens.wait(tokens, now)
            if mirror > wait:
                wait, binding = mirror, "provider tokens allowance"
        if self._learned.base:
            learned = self._learned.tat - now
            if learned > wait:
                wait, binding = learned, "learned"
        if wait <= _EPSILON:
            self._binding = ""
            return 0.0  # also ends float round-off waits of a few ulps
        self._binding = binding
        return wait

    def try_book(self, tokens: int) -> float | None:
        """Book one request of ``tokens`` if it may be sent now: its send time; else None."""
        if self._limited and self.delay(tokens) > 0:
            return None
        return self.book(tokens)

    def book(self, tokens: int) -> float:
        """Count one request of ``tokens`` as sent now; returns the send time."""
        now = self._clock()
        self.inflight_requests += 1
        self.inflight_tokens += tokens
        if not self._limited:
            return now  # nothing stated, reported or learned yet: nothing to book
        if self._request_interval:
            self._request_tat = max(self._request_tat, now) + self._request_interval
        if self._token_interval:
            self._token_tat = max(self._token_tat, now) + tokens * self._token_interval
        if self._provider_requests.capacity:
            self._provider_requests.take(1, now)
        if self._provider_tokens.capacity:
            self._provider_tokens.take(tokens, now)
        learned = self._learned
        if learned.base:
            # A send a little late (a busy loop) keeps its slot in the schedule, so the next
            # catches up; the provider refilled meanwhile. After a longer gap: start afresh.
            start = learned.tat if now - learned.tat < self._burst else now
            learned.tat = start + 1.0 / learned.rate(now)
        return now

    async def acquire(self, tokens: int) -> float:
        """Wait until one request of ``tokens`` (prompt + max_tokens) may go; book it.

        Returns the send time, which ``rate_limited`` takes back if the request is refused.
        """
        while True:
            delay = self.delay(tokens)
            if delay <= 0:
                return self.book(tokens)
            await self._sleep(delay)  # type: ignore[misc]

    def release(self, reserved: int, charged: int | None, *, accepted: bool = True,
                refused: bool = False, sent_at: float = 0.0) -> None:
        """A request sent at ``sent_at`` finished: settle its reservation against its charge.

        ``charged`` is what the provider counted against its token limit (None: unknown);
        ``accepted`` is False for a refusal (``refused``: a 429, then ``rate_limited``
        follows) or a failure to reach the provider.
        """
        self.inflight_requests -= 1
        self.inflight_tokens -= reserved
        if accepted:
            self._accepted += 1
            self._learned.accepted_answer(sent_at)
        elif not refused:
            self._learned.lost(sent_at)
        if charged is not None and charged != reserved and self._token_interval:
            # Both ways: an estimate that was short is made up for by the next sends.
            self._token_tat = max(self._clock(), self._token_tat + (charged - reserved)
                                  * self._token_interval)

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

    def rate_limited(self, retry_after: float, sent_at: float, *, reported: bool) -> None:
        """A 429 for a request sent at ``sent_at``: pause, and learn unless headers told us.

        ``reported`` says whether the 429 came with ``x-ratelimit-*`` headers (then the
        provider mirror already knows the state and no rate is learned).
        """
        self.pause(retry_after, "HTTP 429")
        if reported:
            return
        now = self._clock()
        accepted_rate = self._accepted / max(1e-3, now - self._started)
        self._learned.refused(retry_after or None, sent_at, now, accepted_rate,
                              self.inflight_requests)
        self._learned.tat = max(self._learned.tat, self._paused_until)

    def observe(self, info: RateLimitInfo) -> None:
        """Take in what a response's headers said about the provider's allowance."""
        self._limited = True
        now = self._clock()
        if (info.limit_requests and info.remaining_requests is not None
                and info.reset_requests_s is not None):
            self._provider_requests.sync(info.limit_requests, info.remaining_requests,
                                         info.reset_requests_s, self.inflight_requests, now)
        if (info.limit_tokens and info.remaining_tokens is not None
                and info.reset_tokens_s is not None):
            self._provider_tokens.sync(info.limit_tokens, info.remaining_tokens,
                                       info.reset_tokens_s, self.inflight_tokens, now)
