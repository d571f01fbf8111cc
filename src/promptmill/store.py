"""The SQLite job store: one file per job, the single source of truth for what is done.

Resume semantics. A job is identified by its fingerprint: the input's content hash, the
prompt template and system prompt, the model identifier (secrets removed), the generation
params and k. Opening a store with the same fingerprint continues the job: planning skips
what is planned, dispatch sends only pending requests. A different fingerprint is refused
with a message naming what changed, unless the caller asks for a new job.

Exactly once. A request's result (responses, usage, attempts, or its final error) becomes
visible in one transaction; the export reads only committed rows. A kill at any moment loses
at most the requests in flight, which are still ``pending`` and are sent again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from promptmill.errors import JobMismatchError, StoreError, UsageError
from promptmill.redaction import redact_secrets
from promptmill.sqlite_bulk import ROWS_PER_INSERT, insert_columns, insert_many
from promptmill.store_schema import ATTEMPT_OUTCOMES as ATTEMPT_OUTCOMES
from promptmill.store_schema import MIGRATIONS as MIGRATIONS
from promptmill.store_schema import SCHEMA_VERSION as SCHEMA_VERSION

PENDING, DONE, FAILED = "pending", "done", "failed"
# Submitted in a Batch API batch, its answer not yet recorded: pending for the job (not done,
# exported as pending), but never sent online nor put in a second batch meanwhile.
BATCHED = "batched"


def row_status(statuses: set[str]) -> str:
    """A row's status from its requests': pending while any is pending or in a batch, else
    failed if any failed, else done."""
    return (PENDING if PENDING in statuses or BATCHED in statuses
            else FAILED if FAILED in statuses else DONE)

# A planned request's columns, in the order ``add_planned`` takes them (the key's two last).
_PLANNED_COLUMNS = ("id", "row_index", "sample_group", "n", "payload", "est_tokens",
                    "cache_key", "cache_seed")
# An error's ``kind`` -> its attempt outcome code; kinds not listed are ``fatal`` unless
# retryable (then ``server_error``): see ``outcome_code``.
OUTCOME_CODES = {name: code for code, name in enumerate(ATTEMPT_OUTCOMES)} | {"job_fatal": 6}


# RequestRow and FinishedRequest are NamedTuples, not frozen dataclasses: one of each per
# request, and a frozen dataclass sets each field through object.__setattr__ (about four
# times the cost of a tuple at dispatch rates of thousands per second).
class RequestRow(NamedTuple):
    """A planned request as the engine sees it."""

    id: int
    row_index: int
    sample_group: int
    n: int
    payload: str
    est_tokens: int
    attempts: int
    # Its response cache key hashed at planning (``jobcache``), None where it was not.
    cache_key: int | None = None
    cache_seed: int | None = None


class FinishedRequest(NamedTuple):
    """What one finished request writes: responses and usage, or its final error."""

    id: int
    attempts: int
    responses: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None
    error_kind: str | None = None
    endpoint: str | None = None  # the fleet endpoint that answered (redacted identifier)
    # Its one response's response cache entry (id, CRC-32), filled into the cache from here.
    cache_id: int | None = None
    cache_sum: int | None = None

    @property
    def status(self) -> str:
        """``done`` or ``failed``."""
        return FAILED if self.error is not None else DONE


# One attempt as the dispatcher notes it: (request id, sent, answered, outcome code), times
# in seconds on the caller's clock (see ``JobStore.record``); a plain tuple, one per attempt.
AttemptRecord = tuple[int, float, float, int]
# One limiter state change: (at, on the same clock, kind, value, detail). A later record
# with the same time and kind replaces the earlier (a pause that was extended).
EventRecord = tuple[float, str, float | None, str]


def outcome_code(kind: str, retryable: bool) -> int:
    """The attempt outcome code of an error of ``kind``."""
    code = OUTCOME_CODES.get(kind)
    if code is None:
        return OUTCOME_CODES["server_error" if retryable else "fatal"]
    return code


@dataclass(frozen=True, slots=True)
class JobStatus:
    """Counts for ``promptmill status`` and the progress display."""

    rows: int
    requests: int
    done: int
    failed: int
    pending: int
    attempts: int
    prompt_tokens: int
    completion_tokens: int
    planned_complete: bool
    errors: list[tuple[str, int]]
    # The first failed request's input row index and error, or None.
    first_failure: tuple[int, str] | None = None
    # Of ``pending``: requests submitted in a Batch API batch, awaiting its results.
    batched: int = 0


def store_path_for(output: Path) -> Path:
    """Where the job store of an output file lives: beside it."""
    return output.with_name(output.name + ".promptmill.db")


class JobStore:
    """One job's SQLite file (WAL). Not shared between processes: a lock file guards it."""

    def __init__(self, path: Path, *, lock: bool = True) -> None:
        self.path = Path(path)
        self._lock_file: Any = None
        if lock:
            self._take_lock()
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            self._release_lock()
            raise StoreError(f"cannot open job store {self.path}: {exc}") from None
        try:
            # Refuse a newer store before anything here writes to it (WAL mode changes the file).
            self._check_version()
            self.db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL survives a killed process; only power loss can drop the last commits,
            # which are then simply sent again.
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA busy_timeout=10000")
            self._migrate()
        except (sqlite3.Error, StoreError) as exc:
            self.close()
            if isinstance(exc, StoreError):
                raise
            if isinstance(exc, sqlite3.OperationalError):  # I/O, full, read-only: not damage
                raise _store_error(self.path, exc) from None
            raise StoreError(
                f"cannot open job store {self.path} ({exc}): it is damaged or not a promptmill "
                "job store; choose another -o path, or move that file away to start over"
            ) from None

    # -- lifecycle -----------------------------------------------------------------------

    def _take_lock(self) -> None:
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            self._lock_file = open(lock_path, "a+")  # noqa: SIM115 - held for the store's life
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(
                f"job store {self.path} is in use by another promptmill process: "
                "wait for it to finish or stop it first"
            ) from None
        except OSError as exc:
            raise StoreError(
                f"cannot create job store beside {self.path}: {exc.strerror}"
            ) from None

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def close(self) -> None:
        """Close the database and release the lock."""
        with contextlib.suppress(sqlite3.Error):
            self.db.close()
        self._release_lock()

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_version(self) -> int:
        version: int = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"job store {self.path} was written by a newer promptmill (schema {version}, "
                f"this one knows {SCHEMA_VERSION}): upgrade promptmill or choose another -o path"
            )
        return version

    def _migrate(self) -> None:
        version = self._check_version()
        for number in range(version, SCHEMA_VERSION):
            with self.transaction():
                MIGRATIONS[number](self.db)
                self.db.execute(f"PRAGMA user_version={number + 1}")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all or nothing."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise _store_error(self.path, exc) from None
        try:
            yield self.db
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError):
                # A full disk or an I/O error mid-statement: one clear message, not a traceback.
                raise _store_error(self.path, exc) from None
            raise
        else:
            try:
                self.db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                with contextlib.suppress(sqlite3.Error):
                    self.db.execute("ROLLBACK")
                raise _store_error(self.path, exc) from None

    # -- meta and fingerprint ------------------------------------------------------------

    def get_meta(self, key: str) -> Any:
        """A JSON value kept in the store's meta table (None if absent)."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_meta(self, **values: Any) -> None:
        """Keep JSON values in the meta table, in one transaction."""
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [(key, json.dumps(value)) for key, value in values.items()],
            )

    def bind_job(self, fingerprint: dict[str, Any], *, new_job: bool = False) -> bool:
        """Tie the store to a job; True if it continues an existing job.

        A store holding a different job is refused, naming what changed, unless ``new_job``.
        """
        existing = self.get_meta("fingerprint")
        if existing is None:
            self.set_meta(fingerprint=fingerprint, created_at=time.time(), planned_rows=0,
                          planned_complete=False)
            return False
        if existing == fingerprint:
            return True
        if not new_job:
            raise JobMismatchError(describe_change(self.path, existing, fingerprint))
        self.reset()
        self.set_meta(fingerprint=fingerprint, created_at=time.time(), planned_rows=0,
                      planned_complete=False)
        return False

    def reset(self) -> None:
        """Forget every planned request and result (for ``--new-job``).

        Refused while Batch API batches of the job may still run: forgetting them would leave
        them running (and billed) with nothing to collect their answers.
        """
        active = self.db.execute(
            "SELECT COUNT(*) FROM batches WHERE step NOT IN ('prepared', 'recorded')"
        ).fetchone()[0]
        if active:
            raise JobMismatchError(
                f"{self.path} has {active} Batch API batch(es) submitted and not yet collected: "
                "rerun with --mode batch to collect them, or cancel them with `promptmill batch "
                "cancel --job OUTPUT` and rerun that first, before starting a new job there"
            )
        with self.transaction() as db:
            db.execute("DELETE FROM batch_requests")
            db.execute("DELETE FROM batches")
            db.execute("DELETE FROM attempts")
            db.execute("DELETE FROM events")
            db.execute("DELETE FROM requests")
            db.execute("DELETE FROM rows")
            db.execute("DELETE FROM meta")

    # -- planning ------------------------------------------------------------------------

    def add_planned(
        self,
        rows: Sequence[Sequence[Any]],
        requests: Sequence[Sequence[Any]],
        planned_rows: int,
        *,
        unsendable: Sequence[tuple[int, str]] = (),
        meta: dict[str, Any] | None = None,
    ) -> None:
        """Record a chunk of planned rows and requests; idempotent (ids are stable).

        Both come as columns (lists of equal length), as planning makes them: ``rows``
        (row_index, data), ``requests`` (id, row_index, sample_group, n, payload, est_tokens,
        then, where planning hashed them, each request's response cache key as two more:
        cache_key, cache_seed). ``unsendable`` requests (id, error) are recorded failed at
        once, never sent (a prompt over the context); ``meta`` values are kept in the same
        transaction.
        """
        # Stored a column at a time: no tuple a request, and a job's one sample group and n
        # written into the statement rather than bound to each request.
        with self.transaction() as db:
            insert_columns(db, "INSERT OR IGNORE INTO rows (row_index, data) VALUES ", rows)
            insert_columns(db, "INSERT OR IGNORE INTO requests (" + ", ".join(
                _PLANNED_COLUMNS[:len(requests)]) + ") VALUES ", requests, constant=(2, 3))
            db.executemany(
                "UPDATE requests SET status = 'failed', error = ?, error_kind = 'fatal', "
                "finished_at = ? WHERE id = ? AND status = 'pending'",
                [(redact_secrets(error), time.time(), id_) for id_, error in unsendable],
            )
            db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [("planned_rows", json.dumps(planned_rows)),
                 *((key, json.dumps(value)) for key, value in (meta or {}).items())],
            )

    @contextlib.contextmanager
    def bulk_writes(self) -> Iterator[None]:
        """Many large transactions (planning): the WAL checkpointed into the database every
        64 MB instead of every 4 MB (each checkpoint copies the pages written since, and
        planning writes the same index pages again and again). Crash-safe as before: a
        checkpoint only copies committed pages; a kill leaves a longer WAL to replay."""
        self.db.execute("PRAGMA wal_autocheckpoint=16384")
        try:
            yield
        finally:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("PRAGMA wal_autocheckpoint=1000")

    # -- dispatch ------------------------------------------------------------------------

    def iter_pending(self, chunk: int = 2000) -> Iterator[RequestRow]:
        """Pending requests in id order, read a chunk at a time (never all in memory)."""
        last = -1
        while True:
            batch = self.db.execute(
                "SELECT id, row_index, sample_group, n, payload, est_tokens, attempts, "
                "cache_key, cache_seed FROM requests WHERE status = 'pending' AND id > ? "
                "ORDER BY id LIMIT ?",
                (last, chunk),
            ).fetchall()
            if not batch:
                return
            yield from map(RequestRow._make, batch)
            last = batch[-1][0]

    def record(self, finished: Iterable[FinishedRequest],
               attempts: Sequence[AttemptRecord] = (),
               events: Sequence[EventRecord] = (), clock_offset: float = 0.0, *,
               meta: dict[str, Any] | None = None) -> None:
        """Write finished requests, each exactly once, in one transaction.

        Errors are stored with every key redacted: a provider's 401 may quote the key. The
        attempts and limiter events since the last commit go in the same transaction (no
        extra commit per attempt); their times are on a clock ``clock_offset`` seconds
        behind Unix time (the dispatcher's monotonic clock), kept as Unix milliseconds.
        ``meta`` values (the job's spend) are kept in the same transaction.
        """
        now = time.time()
        with self.transaction() as db:
            if meta:
                db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                               [(key, json.dumps(value)) for key, value in meta.items()])
            if attempts:
                _insert_attempts(db, attempts, clock_offset)
            if events:
                db.executemany("INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?)",
                               [(int((at + clock_offset) * 1000), kind, value,
                                 redact_secrets(detail)) for at, kind, value, detail in events])
            db.executemany(
                "UPDATE requests SET status = ?, attempts = ?, responses = ?, prompt_tokens = ?, "
                "completion_tokens = ?, error = ?, error_kind = ?, finished_at = ?, "
                "endpoint = ?, cache_id = ?, cache_sum = ? WHERE id = ? AND status = 'pending'",
                [
                    (f.status, f.attempts, f.responses, f.prompt_tokens, f.completion_tokens,
                     f.error and redact_secrets(f.error), f.error_kind, now,
                     f.endpoint and redact_secrets(f.endpoint), f.cache_id, f.cache_sum, f.id)
                    for f in finished
                ],
            )

    def retry_failed(self) -> int:
        """Make failed requests pending again; how many."""
        with self.transaction() as db:
            cursor = db.execute(
                "UPDATE requests SET status = 'pending', error = NULL, error_kind = NULL "
                "WHERE status = 'failed'"
            )
            return cursor.rowcount

    # -- reading -------------------------------------------------------------------------

    def status(self) -> JobStatus:
        """Counts of rows, requests by status, attempts and tokens."""
        counts = self.counts()
        attempts, prompt, completion = self.db.execute(
            "SELECT COALESCE(SUM(attempts), 0), COALESCE(SUM(prompt_tokens), 0), "
            "COALESCE(SUM(completion_tokens), 0) FROM requests"
        ).fetchone()
        errors = self.db.execute(
            "SELECT error, COUNT(*) AS c FROM requests WHERE status = 'failed' "
            "GROUP BY error ORDER BY c DESC LIMIT 5"
        ).fetchall()
        rows = self.db.execute("SELECT COUNT(*) FROM rows").fetchone()[0]
        return JobStatus(
            rows=rows,
            requests=sum(counts.values()),
            done=counts.get(DONE, 0),
            failed=counts.get(FAILED, 0),
            pending=counts.get(PENDING, 0) + counts.get(BATCHED, 0),
            batched=counts.get(BATCHED, 0),
            attempts=attempts,
            prompt_tokens=prompt,
            completion_tokens=completion,
            planned_complete=bool(self.get_meta("planned_complete")),
            errors=[(str(error), count) for error, count in errors],
            first_failure=self.first_failure() if counts.get(FAILED) else None,
        )

    def counts(self) -> dict[str, int]:
        """Requests by status, counted on the status index: unlike ``status``, the requests
        themselves (prompts, answers) are not read, so a job's start and end pay no scan."""
        return dict(
            self.db.execute("SELECT status, COUNT(*) FROM requests GROUP BY status").fetchall()
        )

    def first_failure(self) -> tuple[int, str] | None:
        """The first failed request's input row index and error, or None."""
        first = self.db.execute(
            "SELECT row_index, error FROM requests WHERE status = 'failed' ORDER BY id LIMIT 1"
        ).fetchone()
        return (int(first[0]), str(first[1])) if first else None

    def row_chunks(self, chunk: int, first: int = 0,
                    last: int | None = None) -> Iterator[list[tuple[int, str]]]:
        """Planned rows ``(row_index, data)`` in input order (from ``first`` to ``last``),
        ``chunk`` at a time."""
        after = first - 1
        while True:
            rows = self.db.execute(
                "SELECT row_index, data FROM rows WHERE row_index > ? AND row_index <= ? "
                "ORDER BY row_index LIMIT ?",
                (after, (1 << 63) - 1 if last is None else last, chunk),
            ).fetchall()
            if not rows:
                return
            yield rows
            after = rows[-1][0]

    def iter_row_data(self, chunk: int = 5000) -> Iterator[tuple[int, str]]:
        """Every planned row's own fields (JSON text) in input order, without outcomes."""
        for rows in self.row_chunks(chunk):
            yield from rows

    def several_sample_groups(self) -> bool:
        """Whether some row has more than one sample group (``iter_single_rows`` does not
        serve the job)."""
        return bool(self.db.execute("SELECT MAX(sample_group) FROM requests").fetchone()[0])

    def iter_single_rows(self, chunk: int = 5000, *, first: int = 0, last: int | None = None,
                         ) -> Iterator[list[tuple[Any, ...]]]:
        """Every planned row (from ``first`` to ``last``) in input order with its one request's
        outcome, ``chunk`` rows at a time: ``(row_index, data, status, attempts, responses,
        prompt_tokens, completion_tokens, error, endpoint)``, the request's columns None for a
        row without one. For a job of one sample group a row (``iter_rows`` otherwise)."""
        after = first - 1
        while rows := self.single_rows_after(after, chunk, last):
            yield rows
            after = rows[-1][0]

    def single_rows_after(self, after: int, limit: int, last: int | None = None,
                          ) -> list[tuple[Any, ...]]:
        """Up to ``limit`` planned rows after row ``after`` (to ``last``) in input order, as
        ``iter_single_rows`` gives them."""
        return self.db.execute(
            "SELECT r.row_index, r.data, q.status, q.attempts, q.responses, q.prompt_tokens, "
            "q.completion_tokens, q.error, q.endpoint FROM rows r LEFT JOIN requests q "
            "ON q.row_index = r.row_index WHERE r.row_index > ? AND r.row_index <= ? "
            "ORDER BY r.row_index LIMIT ?",
            (after, (1 << 63) - 1 if last is None else last, limit)).fetchall()

    def iter_rows(self, chunk: int = 1000, *, first: int = 0, last: int | None = None,
                  ) -> Iterator[tuple[int, str, list[tuple[Any, ...]]]]:
        """Every planned row (from ``first`` to ``last``) in input order with its requests'
        outcomes, streamed."""
        for rows in self.row_chunks(chunk, first, last):
            first, last = rows[0][0], rows[-1][0]
            outcomes: dict[int, list[tuple[Any, ...]]] = {}
            for outcome in self.db.execute(
                "SELECT row_index, sample_group, status, attempts, responses, prompt_tokens, "
                "completion_tokens, error, endpoint FROM requests WHERE row_index BETWEEN ? AND ? "
                "ORDER BY row_index, sample_group",
                (first, last),
            ):
                outcomes.setdefault(outcome[0], []).append(outcome[1:])
            for row_index, data in rows:
                yield row_index, data, outcomes.get(row_index, [])


def _insert_attempts(db: sqlite3.Connection, attempts: Sequence[AttemptRecord],
                     clock_offset: float) -> None:
    """Insert attempt records, many rows a statement; SQLite turns the times into
    milliseconds, no Python tuple per attempt."""
    insert_many(db, "INSERT INTO attempts VALUES ", (
        f"(?{{}}, CAST((?{{}} + {clock_offset!r}) * 1000 AS INTEGER), "
        "CAST((?{} - ?{}) * 1000 AS INTEGER), ?{})", (0, 1, 2, 1, 3)), attempts,
        sizes=ROWS_PER_INSERT[1:])  # a group commit's few hundred: as measured at 64


def existing_store_path(path: Path) -> Path:
    """The job store of output ``path`` (or ``path`` itself, a store); UsageError if none."""
    path = Path(path)
    store_path = path if path.name.endswith(".promptmill.db") else store_path_for(path)
    if not store_path.exists():
        raise UsageError(f"no job store for {path} (looked for {store_path}): "
                         "pass the -o path of a promptmill run")
    return store_path


def describe_change(path: Path, old: dict[str, Any], new: dict[str, Any]) -> str:
    """One line naming what differs between two job fingerprints."""
    changed = [key for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]
    details = []
    for key in changed[:3]:
        before, after = old.get(key), new.get(key)
        if key == "params" and isinstance(before, dict) and isinstance(after, dict):
            names = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
            details.append(
                "params " + ", ".join(f"{k} {before.get(k)!r} -> {after.get(k)!r}" for k in names)
            )
        elif key in ("input_sha256",):
            details.append("the input file's content")
        elif isinstance(before, str) and isinstance(after, str) and len(before + after) < 120:
            details.append(f"{key} {before!r} -> {after!r}")
        else:
            details.append(f"the {key.replace('_', ' ')}")
    return (
        f"{path} holds a different job ({'; '.join(details)} changed): rerun with the original "
        "settings to continue it, choose another -o path, or pass --new-job to discard it"
    )


def _store_error(path: Path, exc: sqlite3.Error) -> StoreError:
    text = str(exc)
    if "full" in text:
        return StoreError(
            f"the disk holding {path} is full: free space and rerun the same command; "
            "everything recorded so far is kept"
        )
    if "disk I/O" in text:
        return StoreError(
            f"cannot write job store {path} (disk I/O error; the disk may be full): free space "
            "and rerun the same command; everything recorded so far is kept"
        )
    if "readonly" in text or "read-only" in text:
        return StoreError(f"job store {path} is read-only: choose a writable -o location")
    return StoreError(f"job store {path}: {text}")


def check_writable_dir(path: Path) -> None:
    """Raise StoreError unless files can be created in ``path``'s folder."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise StoreError(f"output folder {folder} does not exist: create it or choose another -o")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StoreError(f"output folder {folder} is not writable: choose another -o location")
