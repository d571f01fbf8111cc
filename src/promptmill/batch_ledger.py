"""The job store's record of a job's Batch API batches (the tables of store migration 2).

Exactly once. A request joins a batch, and its status becomes ``batched``, in the transaction
that records the batch; it leaves it in the transaction that records its answer (or sends it
back to ``pending``), and only if it is still ``batched`` in *that* batch. So recording the
same output line twice, or a late line of a batch whose requests were already sent again,
changes nothing.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any

from promptmill.batch_files import LineOutcome, SplitFile
from promptmill.fastjson import answers_text
from promptmill.redaction import redact_secrets
from promptmill.store import BATCHED, JobStore, RequestRow

# Steps of a batch, in order; every step but the last is "active".
STEPS = ("prepared", "uploading", "uploaded", "creating", "submitted", "ended", "recorded")
ACTIVE_STEPS = STEPS[:-1]
# Batch statuses after which the provider does nothing more with a batch.
TERMINAL = frozenset({"completed", "expired", "failed", "cancelled"})


@dataclass(frozen=True)
class BatchRecord:
    """One batch as the job store knows it."""

    id: int
    step: str
    endpoint: str
    requests: int
    bytes: int
    sha256: str
    upload_name: str
    file_id: str | None
    batch_id: str | None
    status: str | None
    total: int | None
    completed: int | None
    failed: int | None
    output_file_id: str | None
    error_file_id: str | None
    recorded: int
    error: str | None
    created_at: float
    step_at: float
    submitted_at: float | None
    ended_at: float | None

    @property
    def active(self) -> bool:
        """Whether promptmill still has something to do with it."""
        return self.step != "recorded"

    @property
    def shown_status(self) -> str:
        """The provider's status once submitted, else the local step."""
        return self.status if self.status and self.step in ("submitted", "ended",
                                                            "recorded") else self.step


_COLUMNS = ", ".join(f.name for f in fields(BatchRecord))


class BatchLedger:
    """Reads and writes a job's batches in its store; every write is one transaction."""

    def __init__(self, store: JobStore) -> None:
        self.store = store

    def tag(self) -> str:
        """The job's custom_id tag, made once per job."""
        tag = self.store.get_meta("batch_tag")
        if not tag:
            tag = secrets.token_hex(4)
            self.store.set_meta(batch_tag=tag)
        return str(tag)

    def batches(self, *, active: bool = False) -> list[BatchRecord]:
        """The job's batches in order (only the active ones if asked)."""
        where = f" WHERE step IN {ACTIVE_STEPS!r}" if active else ""
        rows = self.store.db.execute(f"SELECT {_COLUMNS} FROM batches{where} ORDER BY id")
        return [BatchRecord(*row) for row in rows]

    def get(self, number: int) -> BatchRecord:
        """One batch by its number."""
        row = self.store.db.execute(f"SELECT {_COLUMNS} FROM batches WHERE id = ?",
                                    (number,)).fetchone()
        return BatchRecord(*row)

    def next_number(self) -> int:
        """The number the next batch gets."""
        return int(self.store.db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM batches")
                   .fetchone()[0])

    def add(self, number: int, split: SplitFile, endpoint: str, upload_name: str) -> None:
        """Record a new batch and move its requests into it, in one transaction."""
        now = time.time()
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO batches (id, step, endpoint, requests, bytes, sha256, upload_name, "
                "created_at, step_at) VALUES (?, 'prepared', ?, ?, ?, ?, ?, ?, ?)",
                (number, endpoint, len(split.keys), split.bytes, split.sha256, upload_name,
                 now, now))
            db.executemany("UPDATE requests SET status = 'batched' WHERE id = ? AND "
                           "status = 'pending'", ((key,) for key in split.keys))
            db.executemany("INSERT INTO batch_requests (request_id, batch) VALUES (?, ?)",
                           ((key, number) for key in split.keys))

    def set_step(self, number: int, step: str, **values: Any) -> BatchRecord:
        """Move a batch to ``step``, with other columns, in one transaction."""
        values = {"step": step, "step_at": time.time(), **values}
        if "error" in values and values["error"] is not None:
            values["error"] = redact_secrets(str(values["error"]))
        assignments = ", ".join(f"{name} = ?" for name in values)
        with self.store.transaction() as db:
            db.execute(f"UPDATE batches SET {assignments} WHERE id = ?",
                       (*values.values(), number))
        return self.get(number)

    def update_remote(self, number: int, batch: dict[str, Any]) -> BatchRecord:
        """Keep what a batch object says; the step becomes ``ended`` once it is terminal."""
        current = self.get(number)
        status = str(batch.get("status") or "")
        counts = batch.get("request_counts") or {}
        values: dict[str, Any] = {
            "batch_id": batch.get("id"), "status": status,
            "total": counts.get("total"), "completed": counts.get("completed"),
            "failed": counts.get("failed"), "output_file_id": batch.get("output_file_id"),
            "error_file_id": batch.get("error_file_id"), "error": _batch_errors(batch),
        }
        step = "ended" if status in TERMINAL else "submitted"
        if current.step != step:
            values["submitted_at"] = current.submitted_at or time.time()
            if step == "ended":
                values["ended_at"] = time.time()
            return self.set_step(number, step, **values)
        assignments = ", ".join(f"{name} = ?" for name in values)
        if values["error"] is not None:
            values["error"] = redact_secrets(values["error"])
        with self.store.transaction() as db:
            db.execute(f"UPDATE batches SET {assignments} WHERE id = ?",
                       (*values.values(), number))
        return self.get(number)

    def members(self, number: int, chunk: int = 2000) -> Iterator[RequestRow]:
        """A batch's requests still in it, in id order, a chunk at a time."""
        last = -1
        while True:
            rows = self.store.db.execute(
                "SELECT r.id, r.row_index, r.sample_group, r.n, r.payload, r.est_tokens, "
                "r.attempts, r.cache_key, r.cache_seed FROM batch_requests b "
                "JOIN requests r ON r.id = b.request_id "
                "WHERE b.batch = ? AND b.request_id > ? ORDER BY b.request_id LIMIT ?",
                (number, last, chunk)).fetchall()
            if not rows:
                return
            yield from map(RequestRow._make, rows)
            last = rows[-1][0]

    def record_lines(self, number: int, lines: Sequence[tuple[int, LineOutcome]],
                     max_attempts: int) -> int:
        """Record output lines of batch ``number`` in one transaction; how many were new.

        A success is done. A failure is failed if it cannot succeed another time or the
        request has used its attempts, else pending again with its error kept.
        """
        now = time.time()
        recorded = 0
        with self.store.transaction() as db:
            for request_id, line in lines:
                left = db.execute("DELETE FROM batch_requests WHERE request_id = ? AND batch = ?",
                                  (request_id, number)).rowcount
                if not left:
                    continue  # recorded before (a rerun), or not this batch's request
                recorded += 1
                if line.error is None:
                    line = _short_line(db, request_id, line)
                if line.error is None:
                    db.execute(
                        "UPDATE requests SET status = 'done', attempts = attempts + 1, "
                        "responses = ?, prompt_tokens = ?, completion_tokens = ?, error = NULL, "
                        "error_kind = NULL, finished_at = ? WHERE id = ? AND status = ?",
                        (answers_text(line.responses), line.prompt_tokens,
                         line.completion_tokens, now, request_id, BATCHED))
                else:
                    _fail(db, request_id, line.error, line.error_kind or "error",
                          line.retryable, max_attempts, now)
            db.execute("UPDATE batches SET recorded = recorded + ? WHERE id = ?",
                       (recorded, number))
        return recorded

    def release(self, number: int, reason: str, max_attempts: int) -> int:
        """Close a batch: requests it did not answer go back to pending (or fail); how many."""
        now = time.time()
        released = 0
        with self.store.transaction() as db:
            ids = [row[0] for row in db.execute(
                "SELECT request_id FROM batch_requests WHERE batch = ?", (number,))]
            for request_id in ids:
                _fail(db, request_id, reason, "batch_unanswered", True, max_attempts, now)
                released += 1
            db.execute("DELETE FROM batch_requests WHERE batch = ?", (number,))
            db.execute("UPDATE batches SET step = 'recorded', step_at = ? WHERE id = ?",
                       (now, number))
        return released

    def unbatched_pending(self) -> int:
        """Requests pending and in no batch: what the next batch (or --finish-online) takes."""
        return int(self.store.db.execute(
            "SELECT COUNT(*) FROM requests WHERE status = 'pending'").fetchone()[0])


def _fail(db: Any, request_id: int, error: str, kind: str, retryable: bool, max_attempts: int,
          now: float) -> None:
    """One attempt of a batched request failed: pending again (error kept), or failed."""
    error = redact_secrets(error)
    db.execute(
        "UPDATE requests SET attempts = attempts + 1, error = ?, error_kind = ?, "
        "status = CASE WHEN ? AND attempts + 1 < ? THEN 'pending' ELSE 'failed' END, "
        "finished_at = CASE WHEN ? AND attempts + 1 < ? THEN NULL ELSE ? END "
        "WHERE id = ? AND status = ?",
        (error, kind, retryable, max_attempts, retryable, max_attempts, now, request_id,
         BATCHED))


def _batch_errors(batch: dict[str, Any]) -> str | None:
    """A batch's own errors (a failed validation), as one line."""
    errors = batch.get("errors")
    data = errors.get("data") if isinstance(errors, dict) else None
    if not data:
        return None
    parts = []
    for item in data[:3]:
        line = f" (line {item['line']})" if item.get("line") is not None else ""
        parts.append(f"{item.get('code') or 'error'}{line}: {item.get('message') or ''}".strip())
    more = f" (and {len(data) - 3} more)" if len(data) > 3 else ""
    return "; ".join(parts) + more


def _short_line(db: sqlite3.Connection, request_id: int, line: LineOutcome) -> LineOutcome:
    """``line``, failed if it holds fewer samples than its request asked: k means k, so a
    short answer is never done (a server that ignores n: --finish-online fills it)."""
    wanted = db.execute("SELECT n FROM requests WHERE id = ?", (request_id,)).fetchone()
    got = len(line.responses or ())
    if wanted is None or got >= wanted[0]:
        return line
    return LineOutcome(line.custom_id, error=f"the batch answered {got} of the {wanted[0]} "
                       "samples asked (the server ignores n): --finish-online sends them "
                       "one by one", error_kind="malformed", retryable=True)
