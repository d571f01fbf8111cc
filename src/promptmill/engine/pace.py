"""The pace of a limit the user states (``--rpm``, ``--tpm``): even sends that keep their
schedule through a loaded machine's stalls without bursting into a provider's window.

A stated limit is paced on a schedule (GCRA: the theoretical time of the next send), one
slot per request or per token. A loop that wakes late is behind that schedule: it catches
up the slots it slept through, else a loaded machine falls short of the rate. Providers do
not all refill continuously; some count a sliding window or quantized slices, and refuse a
catch-up that arrives as one clump. So a catch-up goes at most at twice the pace (spread, not
a clump), and no span of recent sends (a quarter second, a second) holds more than the rate
allows it.
"""

from __future__ import annotations

from collections import deque

# The spans over which the pace's own sends are counted (seconds): a quarter second for
# providers that slice a window finely, a second for those that quantize a minute into
# seconds (OpenAI's own example).
SPANS = (0.25, 1.0)
# How much faster than the pace a catch-up may send.
CATCH_UP = 2.0
_EPSILON = 1e-6


class RecentSends:
    """What the pace sent in the last ``span`` seconds, as a sliding-window provider counts
    it. Steady pacing puts ``rate * span`` rounded up in a span; no more is let in."""

    __slots__ = ("_span", "_allowed", "_log", "_total")

    def __init__(self, per_second: float, span: float) -> None:
        self._span = span
        self._allowed = per_second * span
        self._log: deque[list[float]] = deque()  # [sent at, units]
        self._total = 0.0

    def wait(self, now: float) -> float:
        """Seconds before the span has room for one more send (0: now)."""
        log = self._log
        while log and log[0][0] <= now - self._span:
            self._total -= log.popleft()[1]
        if self._total < self._allowed - 1e-9 or not log:
            return 0.0
        # The oldest send leaves the span then; more may be needed, so the caller asks again.
        return log[0][0] + self._span - now

    def add(self, now: float, units: float) -> None:
        """Count one send of ``units``."""
        self._log.append([now, units])
        self._total += units

    def settle(self, sent_at: float, units: float) -> None:
        """The send at ``sent_at`` counts ``units`` (what the provider charged), not what it
        reserved; one already out of the span is left alone."""
        for entry in reversed(self._log):
            if entry[0] == sent_at:
                self._total += units - entry[1]
                entry[1] = units
                return
            if entry[0] < sent_at:
                return


class StatedPace:
    """One stated limit: ``per_minute`` units (requests or tokens), paced evenly."""

    __slots__ = ("interval", "_keep", "_tat", "_catch_up_at", "_spans")

    def __init__(self, per_minute: float, now: float, keep: float) -> None:
        self.interval = 60.0 / per_minute  # seconds one unit occupies
        self._keep = keep  # how far behind (seconds) the schedule is kept; beyond: lost
        self._tat = now  # the theoretical time of the next send
        self._catch_up_at = now  # no catch-up send before this
        self._spans = [RecentSends(per_minute / 60.0, span) for span in SPANS]

    def wait(self, units: float, now: float) -> float:
        """Seconds before a send of ``units`` may go (0 or less: now)."""
        ahead = self._tat - now
        spans = max(span.wait(now) for span in self._spans)
        if ahead > _EPSILON:  # on schedule: its slot, then go (even pacing, no burst)
            return max(ahead, spans)
        if -ahead <= units * self.interval:  # late by less than its own slot: on time
            return spans
        return max(self._catch_up_at - now, spans)  # a catch-up: spread, not a clump

    def book(self, units: float, now: float) -> None:
        """Count a send of ``units`` now."""
        slot = units * self.interval
        if now - self._tat > slot:  # a catch-up: the next one goes half a slot later
            self._catch_up_at = now + slot / CATCH_UP
        self._tat = max(self._tat, now - self._keep) + slot
        for span in self._spans:
            span.add(now, units)

    def settle(self, sent_at: float, reserved: float, charged: float, now: float) -> None:
        """A send at ``sent_at`` reserved ``reserved`` units and was charged ``charged``.

        Both ways: a short estimate is made up for by the next sends; one charged less gives
        its units back, but not a credit to send faster than the pace later.
        """
        self._tat = max(now - self._keep, self._tat + (charged - reserved) * self.interval)
        for span in self._spans:
            span.settle(sent_at, charged)
