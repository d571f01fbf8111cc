"""The live progress display: sent vs finished, failures, tokens/s, ETA, rate-limit state."""

from __future__ import annotations

import time
from typing import Any

from promptmill.engine.dispatch import EngineStats


def _bar(done: int, total: int, width: int = 30) -> str:
    filled = int(width * done / total) if total else width
    return "█" * filled + "░" * (width - filled)


def _eta(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "--:--"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class ProgressView:
    """A rich renderable that reads the engine's counters at each refresh (no per-request cost)."""

    def __init__(self, stats: EngineStats, model: str, generator: Any = None) -> None:
        self.stats = stats
        self.model = model
        # A fleet's endpoints each get a line: rate, answered, in flight, 429s, state.
        self.endpoints = getattr(generator, "status_lines", None)

    def __rich__(self) -> Any:
        from rich.table import Table

        s = self.stats
        elapsed = max(1e-6, time.monotonic() - s.started_at)
        rate = s.finished / elapsed
        left = s.total - s.finished
        eta = left / rate if rate > 0 else float("inf")
        tokens_s = (s.prompt_tokens + s.completion_tokens) / elapsed
        retries = sum(s.retries.values())
        table = Table.grid(padding=(0, 1))
        table.add_row("sent    ", _bar(s.sent, s.total), f"{s.sent:,}/{s.total:,}",
                      f"in flight {s.in_flight}")
        table.add_row("finished", _bar(s.finished, s.total), f"{s.finished:,}/{s.total:,}",
                      f"{rate:,.1f} req/s  ETA {_eta(eta)}")
        table.add_row("", f"[red]failed {s.failed:,}[/]  retries {retries:,}",
                      f"{tokens_s:,.0f} tok/s", f"limits: {s.limiter_state}")
        if s.cached or s.spent is not None:
            spent = f"spent ${s.spent:,.4f}" if s.spent is not None else ""
            table.add_row("", f"cached {s.cached:,}" if s.cached else "", spent, "")
        for label, line in self.endpoints() if self.endpoints is not None else ():
            table.add_row("endpoint", label, "", line)
        return table


def summary_line(stats: EngineStats) -> str:
    """One line for the end of a run."""
    elapsed = time.monotonic() - stats.started_at
    retries = ", ".join(f"{kind} {n}" for kind, n in sorted(stats.retries.items()) if n)
    return (
        f"{stats.done:,} done, {stats.failed:,} failed in {elapsed:.1f}s"
        + (f" (retries: {retries})" if retries else "")
        + f"; {stats.prompt_tokens + stats.completion_tokens:,} tokens"
        + (f"; {stats.cached:,} responses from the cache" if stats.cached else "")
        + (f"; spent ${stats.spent:,.4f}" if stats.spent is not None else "")
    )


def _age(seconds: float) -> str:
    minutes, secs = divmod(int(max(0.0, seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class BatchProgressView:
    """A rich renderable of a batch-mode job: batches by state, request counts, time since submit.

    It reads the runner's ``snapshot`` (a list replaced whole after each step), never the
    store: the display refreshes on its own thread.
    """

    def __init__(self, runner: Any) -> None:
        self.runner = runner

    def __rich__(self) -> Any:
        from collections import Counter

        from rich.table import Table

        batches = list(self.runner.snapshot)
        now = time.time()
        states = Counter(b.shown_status for b in batches)
        table = Table.grid(padding=(0, 1))
        table.add_row("batches", ", ".join(f"{count} {state}" for state, count in
                                           sorted(states.items())) or "none yet")
        shown = [b for b in batches if b.active] or batches[-3:]
        for b in shown[:12]:
            total = b.total or b.requests
            done = (b.completed or 0) + (b.failed or 0)
            since = f"{_age(now - b.submitted_at)} ago" if b.submitted_at else "not sent"
            remote = b.batch_id or ""
            remote = remote if len(remote) <= 18 else remote[:17] + "…"  # status: the whole id
            table.add_row(f"  #{b.id}", remote, b.shown_status, _bar(done, total, 20),
                          f"{b.completed or 0:,}/{total:,} done, {b.failed or 0:,} failed",
                          since)
        if len(shown) > 12:
            table.add_row("", f"... and {len(shown) - 12} more")
        next_poll = self.runner.next_poll_at
        if next_poll is not None:
            table.add_row("", f"next poll in {max(0, next_poll - now):.0f}s")
        return table
