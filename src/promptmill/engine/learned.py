"""A send rate learned from 429s alone, when the provider sends no limit headers.

The first refusal sets a guess from its ``Retry-After`` (a bucket's: one request per
Retry-After; a window's: what it accepted until it refills), checked against the requests
then in flight (a blip or a limit?) and, where the two readings differ, by a trial when the
pause ends; refusal episodes after that measure what the provider accepted in between.
"""

from __future__ import annotations

import math

from promptmill.engine.mirror import LimiterEvent
from promptmill.engine.pace import CATCH_UP

# Learned rates stay a little under what the provider accepted, so the bucket never drains.
_LEARNED_MARGIN = 0.98
# Probing after a cut: the learned rate grows by this share per second, doubling every
# _PROBE_DOUBLING seconds without a refusal (fast recovery if a cut overshot).
_PROBE_GROWTH = 0.01
_PROBE_DOUBLING = 10.0
# Against a window that refills all at once, overshooting costs one refusal until it refills
# (not a drained bucket's stream of them): probe five times as fast.
_WINDOW_PROBE = 5.0
# A rate is measured between refusal episodes at least this many seconds apart, over at
# least this many accepted answers (it is off by at most one request over the span).
_WINDOW = 1.0
_MIN_SAMPLE = 20
# Share of the requests in flight at the first refusal that must be refused too for it to
# count as a limit (an overloaded bucket refuses nearly all of them; a blip, few), and how
# many of them it takes to tell.
_OVERLOADED = 0.5
_MIN_PEERS = 4
# A first refusal read as a bucket's may have been a window's whose end was near: a trial of
# sends when its pause ends tells them apart (a window accepts all, a bucket what refilled),
# when the two readings' rates differ by more than this factor; at most this many sends.
_TRIAL_DIFFERS = 2.0
_TRIAL_MAX = 16
# A refused share above the level of refusals that are no limit (noise) counts as a limit
# reached only beyond this many standard deviations of that level's sampling (a window of 60
# answers at 20% noise refuses 10-30% by chance), and at least _NOISE_MARGIN beyond it.
_NOISE_DEVIATIONS = 2.0
_NOISE_MARGIN = 0.02
# Refusals right after a cut are read as noise only if at least this share: below it, a
# window's few refusals after a cut a little over its rate (a loaded loop's clumps) were.
_NOISE_FLOOR = 0.05
# A learned rate never goes below one request a minute.
_MIN_RATE = 1 / 60


def _noise_margin(noise: float, answered: int) -> float:
    """How far above ``noise`` a window's refused share of ``answered`` must be to count."""
    return max(_NOISE_MARGIN, _NOISE_DEVIATIONS * math.sqrt(noise * (1 - noise) / answered))


class _Trial:
    """A trial's state: its size, sends not yet made, when its sends went (first, last), its
    answers so far and how many were accepted, what a bucket would accept of it, and the rate
    taken if it shows a window."""

    __slots__ = ("size", "left", "first", "last", "answered", "accepted", "expect", "rate")

    def __init__(self, size: int, expect: float, rate: float) -> None:
        self.size = self.left = size
        self.first, self.last = math.inf, -math.inf
        self.answered = self.accepted = 0
        self.expect, self.rate = expect, rate


class LearnedRate:
    """A send rate learned from 429s alone (no limit headers), paced with GCRA.

    The first refusal sets a guess from its ``Retry-After`` (at most the time one request
    takes to refill), sharpened by the other refusals of that episode; if few of the
    requests in flight then were refused, it was a blip (an injected fault, a shared quota
    hiccup), not a limit, and the guess is dropped. After that, each refusal episode at
    least ``_WINDOW`` seconds after the last measure measures what the provider accepted in
    between: the bucket was empty at both ends, so that is its refill rate, and the rate is
    cut to just under it, then probes upwards. Refusals that come back right after such a
    cut as often as before it do not depend on our rate (noise): the cut is undone, and
    only refusals beyond their level cut again. That level is read again after each later
    cut, from the requests sent at the cut rate (under the limit), never from a window read
    while probing over it; a window's share counts as over it only beyond its sampling's
    spread.
    """

    __slots__ = ("base", "since", "tat", "catch_up_at", "window_at", "accepted", "refused_n",
                 "reacted_at", "checking_at", "check_left", "check_refused", "check_accepted",
                 "noise", "noise_refused", "noise_answered", "guess", "last_cut",
                 "cut_refused", "cut_accepted", "windowed", "events", "trial")

    def __init__(self, events: list[LimiterEvent]) -> None:
        self.events = events  # the limiter's state changes not yet written
        self.base = 0.0  # requests/s set at the last cut (0: none, send freely)
        self.since = 0.0  # when ``base`` was set; probing grows the rate from there
        self.tat = 0.0  # theoretical arrival time of the next request
        self.catch_up_at = 0.0  # catching up slots slept through: no send before this
        self.window_at: float | None = None  # the refusal episode the measure starts from
        self.accepted = 0  # answers the provider accepted since ``window_at``
        self.refused_n = 0  # refusals since ``window_at``
        self.reacted_at = -math.inf  # refusals of requests sent before this are old news
        self.checking_at: float | None = None  # first refusal whose in-flight peers we count
        self.check_left = 0  # of those peers, how many have not answered yet
        self.check_refused = 0  # of those peers, how many were refused
        self.check_accepted = 0  # of those peers, how many were accepted
        self.noise = 0.0  # share of refusals seen that were no limit (cut only beyond it)
        # ... read from these answers, refused of answered: each reading halves the earlier
        # ones' weight, so one read from a handful of answers soon fades
        self.noise_refused = self.noise_answered = 0.0
        self.guess = 0.0  # the first-episode guess, requests/s
        # (rate before, when, refusal episodes since, refused share before) of the last
        # measured cut
        self.last_cut: tuple[float, float, int, float] | None = None
        # Answers to the requests sent in the first _WINDOW after the last measured cut:
        # refused, accepted.
        self.cut_refused = self.cut_accepted = 0
        self.windowed = False  # the first refusal was a window's (see _first_episode)
        # The trial after a first refusal read as a bucket's (see _plan_trial); None: none.
        self.trial: _Trial | None = None

    def rate(self, now: float) -> float:
        """The current rate: ``base`` grown by probing since the last cut."""
        elapsed = max(0.0, now - self.since) * (_WINDOW_PROBE if self.windowed else 1.0)
        doubling = _PROBE_DOUBLING / math.log(2)
        return self.base * (1 + _PROBE_GROWTH * doubling * math.expm1(elapsed / doubling))

    def _set(self, rate: float, now: float) -> None:
        self.base, self.since = max(rate, _MIN_RATE), now
        self.tat = max(self.tat, now)
        self.events.append(LimiterEvent(now, "learned_rate", self.base, "learned from 429s"))

    @property
    def trial_left(self) -> int:
        """The trial's sends not yet made (0: no trial sending; the learned pace holds)."""
        return self.trial.left if self.trial is not None else 0

    def _trial_send(self, now: float) -> None:
        """Book one of the trial's sends (they go at once, not at the learned pace)."""
        trial = self.trial
        assert trial is not None
        trial.left -= 1
        trial.first = min(trial.first, now)
        trial.last = now
        if not trial.left:  # the pace resumes after the trial, not at the same instant
            self.tat = now + 1.0 / self.rate(now)

    def book(self, now: float, keep: float) -> None:
        """Book one send now (a trial's, or at the learned pace).

        A send a little late (a busy loop) keeps its slot in the schedule, so the next ones
        catch up, the provider having refilled meanwhile; after a gap longer than ``keep``
        the schedule starts afresh. A catch-up goes at most at ``CATCH_UP`` times the pace: a
        clump of the slots a stall slept through overfills a window's slice.
        """
        if self.trial_left:
            self._trial_send(now)
            return
        slot = 1.0 / self.rate(now)
        if now - self.tat > slot:
            self.catch_up_at = now + slot / CATCH_UP
        self.tat = (self.tat if now - self.tat < keep else now) + slot

    def next_send(self) -> float:
        """When the learned pace lets the next request go (clock time)."""
        return max(self.tat, self.catch_up_at)

    def _trial_answer(self, sent_at: float, accepted: bool) -> None:
        trial = self.trial
        if trial is None or not trial.first <= sent_at <= trial.last:
            return
        trial.answered += 1
        trial.accepted += accepted
        if trial.answered < trial.size or trial.left:
            return
        self.trial = None
        # A bucket refilling one request per Retry-After accepts about ``expect`` of the
        # trial; a window that refilled all at once accepts it all.
        if self.base and trial.accepted > (trial.expect + trial.size) / 2:
            self.windowed = True
            self.guess = _LEARNED_MARGIN * trial.rate
            self._set(self.guess, trial.last)

    def accepted_answer(self, sent_at: float) -> None:
        """An answer the provider counted (not a 429)."""
        self.accepted += 1
        if self.last_cut is not None and self._sent_after_cut(sent_at):  # (once a request)
            self.cut_accepted += 1
        if self.trial is not None:
            self._trial_answer(sent_at, True)
        if self.checking_at is not None and sent_at < self.checking_at:
            self.check_accepted += 1
            self._check_peer()

    def _sent_after_cut(self, sent_at: float) -> bool:
        """Whether a request went at the rate of the last measured cut (its first _WINDOW)."""
        last_cut = self.last_cut
        return last_cut is not None and 0.0 <= sent_at - last_cut[1] < _WINDOW

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
        if self._sent_after_cut(sent_at):
            self.cut_refused += 1
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
            rate_before, cut_at, episodes, share_before = last_cut
            episodes += 1
            # Only requests sent at the cut rate tell (those sent before it met the old one).
            answered = self.cut_refused + self.cut_accepted
            share = self.cut_refused / answered if answered else 0.0
            if (episodes < 2 or answered < _MIN_SAMPLE or now - cut_at < _WINDOW / 2
                    or self.cut_refused < 2 or share < max(_NOISE_FLOOR, 0.8 * share_before)):
                # Too soon to tell: once may be jitter at the bucket's edge, an exhausted
                # window refuses until it ends, and a handful of answers says little. Refusals
                # that fell with the cut depend on our rate: it is still a little over (a
                # window's slices put up to a slice more in the span measured); the next
                # measure cuts again.
                self.last_cut = (rate_before, cut_at, episodes, share_before)
                return
            # Refused again and again right after a measured cut, which was under what the
            # provider had accepted, and about as often as before it: these refusals do not
            # depend on our rate. Undo the cut and only cut again for refusals beyond this
            # level.
            self._noise_seen(self.cut_refused, answered)
            self.last_cut = None
            self._set(max(rate_before, self.rate(now)), now)
            self._new_window(now)
            return
        if self.window_at is None:
            self._new_window(now)
            return
        span = now - self.window_at
        if span < _WINDOW or self.accepted < _MIN_SAMPLE:
            return  # too soon to measure: the pause is all; the window goes on
        if last_cut is not None and self.noise:
            # The first _WINDOW after a cut went under what the provider had accepted: its
            # refusals are no limit (while probing above it, some would be).
            self._noise_seen(self.cut_refused, self.cut_refused + self.cut_accepted)
            self.last_cut = None
        answered = self.refused_n + self.accepted
        share = self.refused_n / answered
        if not self.noise or share > self.noise + _noise_margin(self.noise, answered):
            # The bucket was empty at both ends (to within one request): what it accepted
            # in between is what it refilled; one less bounds the refill rate from below.
            current = self.rate(now)
            estimate = (self.accepted - 1) / span
            self._set(_LEARNED_MARGIN * min(estimate, current), now)
            self.last_cut = (current, now, 0, share)
            self.cut_refused = self.cut_accepted = 0
        self._new_window(now)

    def _noise_seen(self, refused: int, answered: int) -> None:
        """``refused`` of ``answered`` were refusals that are no limit."""
        self.noise_refused = self.noise_refused / 2 + refused
        self.noise_answered = self.noise_answered / 2 + answered
        if self.noise_answered:
            self.noise = self.noise_refused / self.noise_answered

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
        self.trial = None
        if (not retry_after or self.windowed or not self.base or self.noise
                or rate < _TRIAL_DIFFERS * self.guess):
            return
        expect = 1 + max(0.0, round_trip / retry_after - in_flight)
        size = math.ceil(2 * expect) + 2
        if size > min(_TRIAL_MAX, accepted):
            return  # a bucket might accept it all, or a window might not
        self.trial = _Trial(size, expect, rate)

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
            self._noise_seen(self.check_refused, peers)
            if self.base:
                self.events.append(LimiterEvent(now, "learned_rate", 0.0,
                                                "few refused: a blip, no limit"))
            self.base = 0.0  # send freely again; a real limit will show as an overload
            self.trial = None
