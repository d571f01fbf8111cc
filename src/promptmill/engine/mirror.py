"""Mirrors of the provider's limit buckets, kept from response headers (the limiter's part
that reads ``x-ratelimit-*``): one per resource (requests, tokens) and per model, each
learning whether the provider refills continuously or counts windows."""

from __future__ import annotations

import math
from collections import deque

# A windowed mirror's window is the provider's plus this share and these seconds.
WINDOW_SLACK = 0.01
WINDOW_SLACK_S = 0.002
# Headers whose rate bounds disagree by more than this factor are no bucket's.
BUCKET_TOLERANCE = 2.0


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


class ProviderBucket:
    """A mirror of one provider bucket (requests or tokens), kept from response headers.

    It starts as a continuously refilling bucket (OpenAI's description): between answers it
    refills at the rate the headers imply. Providers that count fixed windows, a sliding
    window or quantized slices do not refill in between, and a mirror that assumes they do
    sends into an empty window. A refusal of a request sent while the mirror said there was
    room is evidence of that, and so are headers no bucket gives (a short reset for a large
    deficit after a long one for a small deficit: a window near its end): the mirror turns
    ``windowed``. From then on it keeps a log of
    its own sends and allows at most ``limit`` of them in any window, the window being the
    longest ``reset`` the provider reported (a sliding window's length, a fixed window's or
    a slice's); what the provider says is left (``remaining``) is trusted over the log when
    it is less (another client spends the same allowance), and what the log holds when it
    turns windowed is taken to clear at the reported ``reset``. That paces evenly at the
    window's rate, which every window kind allows.
    """

    __slots__ = ("capacity", "rate", "ceiling", "level", "stamp", "reset", "windowed", "window",
                 "log", "used", "synced_at", "slack", "reset_at", "epoch", "events", "kind",
                 "source")

    def __init__(self, events: list[LimiterEvent], kind: str,
                 source: str = "x-ratelimit-limit header") -> None:
        self.events = events  # the limiter's state changes not yet written
        self.kind = kind  # the event kind of a new limit: provider_requests, provider_tokens
        self.source = source  # the event's detail: where the limit came from
        self.capacity = 0  # the provider's limit (0: never reported)
        self.rate = 0.0  # a lower bound of the refill rate, units/s (0: not known yet)
        self.ceiling = math.inf  # an upper bound of it, were the provider a bucket
        self.level = math.inf  # units believed available at ``stamp``, in flight deducted
        self.stamp = 0.0  # clock time of ``level``
        self.reset = 0.0  # the last reported seconds-to-full, the wait while rate is unknown
        self.windowed = False  # refill is not continuous: count our sends per window
        self.window = 0.0  # the longest reset reported: the provider's window, seconds
        self.log: deque[tuple[float, float]] = deque()  # windowed: (expires at, units)
        self.used = 0.0  # windowed: units in ``log``
        self.synced_at = math.inf  # when headers first told us this bucket's state
        # windowed: seconds our log keeps a send beyond the window, for the time it takes to
        # reach the provider; doubled by each refusal the log did not foresee
        self.slack = WINDOW_SLACK_S
        self.reset_at = math.inf  # windowed: when the provider said all is available again
        self.epoch = -math.inf  # windowed: when that last happened (the log was cleared)

    def sync(self, limit: int, remaining: int, reset: float, inflight: float,
             now: float, exact: bool = True) -> None:
        """Take in one response's headers for this bucket (``exact``: ``reset`` is a duration
        the provider measured, to the millisecond or the second)."""
        self.synced_at = min(self.synced_at, now)
        if reset > self.window:
            self._lengthen(reset)
        if self.windowed:
            if now + reset < self.epoch + 0.5 * self.window:
                return  # counted in the window before the last reset: old news
            if limit != self.capacity:
                self.events.append(LimiterEvent(now, self.kind, limit,
                                                f"{self.source} (windowed)"))
            self.capacity = limit
            self.reset_at = now + reset
            self._expire(now)
            gap = (limit - self.used) - (remaining - inflight)
            if gap >= 2:  # the provider counts more than we sent: another client, a lag
                self._book(gap, now + reset)
            elif gap < -1:
                # It counts less: its window moved on (a fixed one started afresh) or our
                # slack keeps sends too long. What it says is true now; forget the oldest.
                self._forget(-gap)
            return
        if limit != self.capacity:
            # a new limit: forget the old rate and its bounds
            self.capacity, self.rate, self.ceiling = limit, 0.0, math.inf
            self.events.append(LimiterEvent(now, self.kind, limit, self.source))
        deficit = limit - remaining
        if deficit >= 2 and reset > 0:
            # remaining is floored and reset rounded up, so this bounds the rate from below;
            # the best bound seen so far is kept (steady state, deficit ~ limit, is tight).
            self.rate = max(self.rate, (deficit - 1) / reset)
        # And from above: a bucket takes reset to refill at most deficit + 1 units. A reset
        # in whole seconds may have been rounded by up to one.
        resolution = 1.0 if reset >= 1 and reset == int(reset) else 0.001
        if exact and reset > resolution:
            self.ceiling = min(self.ceiling, (deficit + 1) / (reset - resolution))
        if self.rate > BUCKET_TOLERANCE * self.ceiling:
            # No bucket is that: one answer said a unit takes long to come back, another
            # that the whole allowance comes back at once (a fixed window or a slice near
            # its end; a sliding window's steady reset). Count sends per window from now.
            self.windowed = True
            self.sync(limit, remaining, reset, inflight, now, exact)
            return
        self.level = remaining - inflight
        self.stamp = now
        self.reset = reset

    def distrust(self, sent_at: float, now: float) -> None:
        """A request sent at ``sent_at`` was refused: if the mirror then said there was room,
        the provider does not refill continuously; count sends per window from now on."""
        if not self.capacity or sent_at < self.synced_at:
            return  # sent before any headers: the mirror had no say
        if self.windowed:
            # Our sends reach the provider later than the log assumed: keep them longer.
            self.slack = min(self.slack * 2, 0.1 * self.window + WINDOW_SLACK_S)
            return
        self.windowed = True
        # What the provider holds now clears, as far as we know, when it said it would.
        self.reset_at = now + max(self.reset, 0.0)
        self._book(self.capacity, self.reset_at)

    def _lengthen(self, window: float) -> None:
        """The provider's window is longer than any reset reported before (a job that began
        just before a fixed window ended saw only its short rest): the sends logged with the
        shorter window are kept as long as the new one keeps a send, not freed early."""
        before = self._span()
        self.window = window
        if self.log:
            longer = self._span() - before
            self.log = deque((expires + longer, units) for expires, units in self.log)

    def _book(self, amount: float, expires: float) -> None:
        log = self.log
        if log and expires < log[-1][0]:  # keep the log ordered by expiry
            expires = log[-1][0]
        log.append((expires, amount))
        self.used += amount

    def _forget(self, amount: float) -> None:
        log = self.log
        while log and amount > 0:
            expires, units = log[0]
            if units > amount:
                log[0] = (expires, units - amount)
                self.used -= amount
                return
            log.popleft()
            self.used -= units
            amount -= units

    def _expire(self, now: float) -> None:
        log = self.log
        while log and log[0][0] <= now:
            self.used -= log.popleft()[1]

    def _span(self) -> float:
        # Our send reaches the provider a little later than we log it: a window a little
        # longer than the provider's never frees a slot before it does.
        return self.window * (1 + WINDOW_SLACK) + self.slack

    def _roll(self, now: float, inflight: float) -> None:
        """Past the reported reset the provider holds nothing of ours but what is in flight
        (sent before, it may arrive after): the log starts afresh (fixed windows, slices)."""
        if now >= self.reset_at:
            self.log.clear()
            self.used = 0.0
            self.epoch, self.reset_at = now, math.inf
            if inflight > 0:
                self._book(inflight, now + self._span())
        self._expire(now)

    def available(self, now: float, inflight: float = 0.0) -> float:
        """Units believed available now."""
        if self.windowed:
            self._roll(now, inflight)
            return self.capacity - self.used
        level = self.level + self.rate * (now - self.stamp)
        return min(level, self.capacity) if self.capacity else level

    def wait(self, amount: float, now: float, inflight: float = 0.0) -> float:
        """Seconds until ``amount`` units are believed available (``inflight``: sent, not
        yet answered)."""
        if self.capacity:
            amount = min(amount, self.capacity)  # too large ever to fit: send when full
        short = amount - self.available(now, inflight)
        if short <= 0:
            return 0.0
        if self.windowed:
            for expires, units in self.log:  # the oldest first: free them until it fits
                short -= units
                if short <= 0:
                    return min(expires, self.reset_at) - now
            return max(0.005, min(self.reset, 1.0))
        if self.rate <= 0:
            return max(0.005, min(self.reset, 1.0))  # recheck soon: answers will sync us
        return short / self.rate

    def take(self, amount: float, now: float) -> None:
        """Book ``amount`` units spent now."""
        if self.windowed:
            self._book(amount, now + self._span())
        elif self.level != math.inf:
            self.level = self.available(now) - amount
            self.stamp = now


class ModelBuckets:
    """The provider buckets of one model other than the job's own, and its requests in flight.

    Each model's mirrors learn their own shape (refilling or windowed) from their own
    headers and refusals.
    """

    __slots__ = ("requests", "tokens", "inflight_requests", "inflight_tokens")

    def __init__(self, events: list[LimiterEvent], model: str) -> None:
        source = f"x-ratelimit-limit header of model {model}"
        self.requests = ProviderBucket(events, "provider_requests", source)
        self.tokens = ProviderBucket(events, "provider_tokens", source)
        self.inflight_requests = 0  # this model's requests sent, not yet answered
        self.inflight_tokens = 0  # reserved by them
