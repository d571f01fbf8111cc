"""Reading a job store from outside the job, as tests that kill a job mid-way do."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
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


def kill_when_done(process: subprocess.Popen[str], store: Path, count: int,
                   timeout: float = 120.0) -> int:
    """SIGKILL ``process`` (a job) once its store holds ``count`` done requests; how many it
    held then. Fails (AssertionError) if the job ends first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while done_requests(store) < count:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"fewer than {count} done in {timeout} s"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    return done_requests(store)


__all__ = ["done_requests", "kill_when_done"]
