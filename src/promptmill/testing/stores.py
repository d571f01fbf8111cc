"""Reading a job store from outside the job, as tests that kill a job mid-way do."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def done_requests(store: Path) -> int:
    """How many requests a job store holds as done, read-only (0 if it cannot be read yet):
    safe while the job's own process writes to it."""
    try:
        db = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5)
        try:
            query = "SELECT COUNT(*) FROM requests WHERE status='done'"
            return int(db.execute(query).fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def done_responses(store: Path) -> dict[int, str]:
    """Each done request's stored responses (JSON text) by request id, read-only."""
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5)
    try:
        query = "SELECT id, responses FROM requests WHERE status='done'"
        return {int(i): str(r) for i, r in db.execute(query).fetchall()}
    finally:
        db.close()


def wait_for_done(store: Path, count: int, timeout: float = 300.0,
                  until: Callable[[], bool] = lambda: False) -> int:
    """Wait until ``store`` holds ``count`` done requests (or ``timeout`` seconds pass, or
    ``until()`` is true: the job ended); how many it holds."""
    deadline = time.monotonic() + timeout
    while (done := done_requests(store)) < count and time.monotonic() < deadline and not until():
        time.sleep(0.05)
    return done


def kill_when_done(child: subprocess.Popen[str], store: Path, count: int,
                   timeout: float = 300.0) -> dict[int, str]:
    """SIGKILL the job process ``child`` once its store holds ``count`` done requests; the
    done requests' responses as committed (AssertionError if the job ended first)."""
    wait_for_done(store, count, timeout, until=lambda: child.poll() is not None)
    if child.poll() is not None:
        raise AssertionError(f"the job ended before it was killed: {child.communicate()}")
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    return done_responses(store)


__all__ = ["done_requests", "done_responses", "kill_when_done", "wait_for_done"]
