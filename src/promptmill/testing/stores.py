"""Reading a job store from outside the job, as tests that kill a job mid-way do."""

from __future__ import annotations

import sqlite3
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


__all__ = ["done_requests"]
