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
  what it refilled), then probes upwards slowly.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from promptmill.engine.mirror import LimiterEvent as LimiterEvent
from promptmill.engine.mirror import ModelBuckets, ProviderBucket
from promptmill.engine.pace import StatedPace
from promptmill.generators.base import RateLimitInfo

# Learned rates stay a little under what the provider accepted, so the bucket never drains.
_LEARNED_MARGIN = 0.98
# Probing after a cut: the learned rate grows by this share per second, doubling every
# _PROBE_DOUBLING seconds without a refusal (fast recovery if a cut overshot).
_PROBE_GROWTH = 0.01
_PROBE_DOUBLING = 10.0
# Against a window that refills all at once, overshooting costs one refusal until it refills
# (not a drained bucket's stream of them): probe five times as fast.
_WINDOW_PROBE = 5.0
# Slow start waits this long at most for the first answer (its headers tell the limits), so
# a model that takes 30 s to answer does not hold the job back for 30 s.
_SLOW_START_S = 2.0
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
# A first refusal read as a bucket's may have been a window's whose end was near: a trial of
# sends when its pause ends tells them apart (a window accepts all, a bucket what refilled),
# when the two readings' rates differ by more than this factor; at most this many sends.
_TRIAL_DIFFERS = 2.0
_TRIAL_MAX = 16
# A learned rate never goes below one request a minute.
_MIN_RATE = 1 / 60
# Waits shorter than this (seconds) are no wait.
_EPSILON = 1e-6


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
                 "guess", "last_cut", "windowed", "events", "trial_left", "trial_size",
                 "trial_from", "trial_to", "trial_answered", "trial_accepted", "trial_expect",
                 "trial_rate")

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
        self.windowed = False  # the first refusal was a window's (see _first_episode)
        # The trial after a first refusal read as a bucket's (see _first_episode): sends not
        # yet made, its size (0: none), when its sends went (first, last), its answers so
        # far and how many were accepted, what a bucket would accept of it, and the rate if
        # it shows a window.
        self.trial_left = self.trial_size = 0
        self.trial_from, self.trial_to = math.inf, -math.inf
        self.trial_answered = self.trial_accepted = 0
        self.trial_expect = self.trial_rate = 0.0

    def rate(self, now: float) -> float:
        """The current rate: ``base`` grown by probing since the last cut."""
        elapsed = max(0.0, now - self.since) * (_WINDOW_PROBE if self.windowed else 1.0)
        doubling = _PROBE_DOUBLING / math.log(2)
        return self.base * (1 + _PROBE_GROWTH * doubling * math.expm1(elapsed / doubling))

    def _set(self, rate: float, now: float) -> None:
        self.base, self.since = max(rate, _MIN_RATE), now
        self.tat = max(self.tat, now)
        self.events.append(LimiterEvent(now, "learned_rate", self.base, "learned from 429s"))

    def trial_send(self, now: float) -> None:
        """Book one of the trial's sends (they go at once, not at the learned pace)."""
        self.trial_left -= 1
        self.trial_from = min(self.trial_from, now)
        self.trial_to = now
        if not self.trial_left:  # the pace resumes after the trial, not at the same instant
            self.tat = now + 1.0 / self.rate(now)

    def _trial_answer(self, sent_at: float, accepted: bool) -> None:
        if not (self.trial_size and self.trial_from <= sent_at <= self.trial_to):
            return
        self.trial_answered += 1
        self.trial_accepted += accepted
        if self.trial_answered < self.trial_size or self.trial_left:
            return
        size, self.trial_size = self.trial_size, 0
        # A bucket refilling one request per Retry-After accepts about ``trial_expect`` of
        # the trial; a window that refilled all at once accepts it all.
        if self.base and self.trial_accepted > (self.trial_expect + size) / 2:
            self.windowed = True
            self.guess = _LEARNED_MARGIN * self.trial_rate
            self._set(self.guess, self.trial_to)

    def accepted_answer(self, sent_at: float) -> None:
        """An answer the provider counted (not a 429)."""
        self.accepted += 1
        self._trial_answer(sent_at, True)
        if self.checking_at is not None and sent_at < self.checking_at:
            self.check_accepted += 1
            self._check_peer()

    def lost(self, sent_at: float) -> None:
        """A request that got no answer (connection failure): neither accepted nor refused."""
        self._trial_answer(sent_at, False)
        if self.checking_at is not None and sent_at < self.checking_at:
            self._check_peer()

    def refused(self, retry_after: float | None, sent_at: float, now: float,
                accepted_rate: float, in_flight: int, window_rate: float = 0.0,
                floor: float = 0.0, window_reading: tuple[float, int] = (0.0, 0)) -> None:
        """A 429 without limit headers; ``accepted_rate``: answers/s accepted so far;
        ``window_rate``: the rate a window refilling all at once allowed (0: not a window's
        refusal, see ``_first_episode``); ``window_reading``: that rate however the refusal
        reads, and the answers accepted so far (for the trial)."""
        self.refused_n += 1
        self._trial_answer(sent_at, False)
        if self.checking_at is not None and sent_at < self.checking_at:
            self.check_refused += 1
            if (retry_after and self.base and self.last_cut is None and not window_rate
                    and not self.windowed):  # a window's peers wait for it, not for a token
                self.guess = max(min(self.guess, _LEARNED_MARGIN / retry_after), floor)
                self.base = max(self.guess, _MIN_RATE)
                self.events.append(LimiterEvent(now, "learned_rate", self.base,
                                                "learned from 429s"))
            self._check_peer()
        if sent_at < self.reacted_at:
            return  # part of an episode already handled
        self.reacted_at = now
        if not self.base:
            self._first_episode(retry_after, now, accepted_rate, in_flight, window_rate, floor)
            self._plan_trial(retry_after, now - sent_at, in_flight, window_reading)
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
                       in_flight: int, window_rate: float, floor: float) -> None:
        # A continuously refilling bucket's Retry-After is the time one request takes to
        # refill: the rate is about its inverse. A window that refills all at once (fixed,
        # sliding, quantized) says instead when the whole allowance returns, and it takes
        # longer than it took to spend it: the rate is what was accepted over that time.
        self.windowed = bool(window_rate)
        if window_rate:
            self.guess = _LEARNED_MARGIN * window_rate
        elif retry_after:
            self.guess = _LEARNED_MARGIN / retry_after
        else:
            self.guess = 0.5 * accepted_rate
        self.guess = max(self.guess, floor)
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

    def _plan_trial(self, retry_after: float | None, round_trip: float, in_flight: int,
                    window_reading: tuple[float, int]) -> None:
        """After a first refusal read as a bucket's, plan a trial for when its pause ends.

        A fixed window whose end came soon after the first refusal gives a Retry-After
        shorter than the time since the first send, as a bucket does, and the rate read
        from it (one request per Retry-After) is then a small share of the window's, which
        only slow probing would recover. When the pause ends, a bucket holds what refilled
        over the Retry-After and the round trip less what the requests then in flight took
        (``expect``), a window its whole allowance (at least what it accepted so far): a
        trial of about twice ``expect`` sends at once tells them apart, at the cost of about
        ``expect`` refusals, once, from a bucket.
        """
        rate, accepted = window_reading
        self.trial_size = self.trial_left = 0
        if (not retry_after or self.windowed or not self.base or self.noise
                or rate < _TRIAL_DIFFERS * self.guess):
            return
        expect = 1 + max(0.0, round_trip / retry_after - in_flight)
        size = math.ceil(2 * expect) + 2
        if size > min(_TRIAL_MAX, accepted):
            return  # a bucket might accept it all, or a window might not
        self.trial_size = self.trial_left = size
        self.trial_from, self.trial_to = math.inf, -math.inf
        self.trial_answered = self.trial_accepted = 0
        self.trial_expect, self.trial_rate = expect, rate

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
            self.trial_size = self.trial_left = 0


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
        self._learned = _LearnedRate(self.events)  # from 429s without limit headers
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
            learned = self._learned.tat - now
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
        learned = self._learned
        if learned.base and learned.trial_left:
            learned.trial_send(now)
        elif learned.base:
            # A send a little late (a busy loop) keeps its slot in the schedule, so the next
            # catches up; the provider refilled meanwhile. After a longer gap: start afresh.
            start = learned.tat if now - learned.tat < self._burst else now
            learned.tat = start + 1.0 / learned.rate(now)
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
        # send, over the time until Retry-After says it refills (see _LearnedRate).
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
        now = self._clock()
        requests, tokens, inflight_requests, inflight_tokens = self._mirrors(model)
        if (info.limit_requests and info.remaining_requests is not None
                and info.reset_requests_s is not None):
            requests.sync(info.limit_requests, info.remaining_requests,
                          info.reset_requests_s, inflight_requests, now)
        if (info.limit_tokens and info.remaining_tokens is not None
                and info.reset_tokens_s is not None):
            tokens.sync(info.limit_tokens, info.remaining_tokens,
                        info.reset_tokens_s, inflight_tokens, now)

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
