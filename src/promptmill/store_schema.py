"""The job store's schema: the migrations that make and upgrade it, applied in order once each
(``PRAGMA user_version`` records how many have run). A migration's effect never changes once
released: a new column or table is a new migration at the end of ``MIGRATIONS``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

# What an attempt came to, by its code in the ``attempts`` table (the index is the code).
ATTEMPT_OUTCOMES = ("done", "rate_limited", "server_error", "unavailable", "malformed",
                    "timeout", "fatal", "invalid_output")
# The codes migration 3 wrote (a migration's effect never changes; later codes, later ones).
_OUTCOMES_OF_MIGRATION_3 = 7


def _migration_1(db: sqlite3.Connection) -> None:
    _execute_script(
        db,
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE rows (row_index INTEGER PRIMARY KEY, data TEXT NOT NULL);
        CREATE TABLE requests (
            id INTEGER PRIMARY KEY,
            row_index INTEGER NOT NULL,
            sample_group INTEGER NOT NULL,
            n INTEGER NOT NULL,
            payload TEXT NOT NULL,
            est_tokens INTEGER NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            responses TEXT,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            error TEXT,
            error_kind TEXT,
            finished_at REAL
        );
        CREATE INDEX requests_by_status ON requests (status, id);
        CREATE INDEX requests_by_row ON requests (row_index, sample_group);
        """
    )


def _migration_3_attempts(db: sqlite3.Connection) -> None:
    """Per-attempt records and the limiter's state changes, for ``promptmill report``.

    Compact on purpose (a million attempts grow the store by ~22 MB): integer milliseconds,
    the outcome as a small code, no index (rows are appended in time order, which is how they
    are read).
    An attempt's tokens are not repeated: only an answered attempt has any, and they are its
    request's usage; the ``attempt_log`` view shows every attempt with its tokens and names.
    """
    _execute_script(
        db,
        """
        CREATE TABLE attempts (
            request_id INTEGER NOT NULL,
            sent_ms INTEGER NOT NULL,
            duration_ms INTEGER NOT NULL,
            outcome INTEGER NOT NULL
        );
        CREATE TABLE attempt_outcomes (code INTEGER PRIMARY KEY, name TEXT NOT NULL);
        CREATE VIEW attempt_log AS
            SELECT a.request_id, r.row_index, a.sent_ms, a.duration_ms, o.name AS outcome,
                   CASE WHEN a.outcome = 0 THEN r.prompt_tokens END AS prompt_tokens,
                   CASE WHEN a.outcome = 0 THEN r.completion_tokens END AS completion_tokens
            FROM attempts a JOIN attempt_outcomes o ON o.code = a.outcome
            LEFT JOIN requests r ON r.id = a.request_id;
        CREATE TABLE events (
            at_ms INTEGER NOT NULL,
            kind TEXT NOT NULL,
            value REAL,
            detail TEXT,
            PRIMARY KEY (at_ms, kind)
        )
        """
    )
    # The codes spelled out in the file itself, for anyone reading it with sqlite3.
    db.executemany("INSERT INTO attempt_outcomes (code, name) VALUES (?, ?)",
                   list(enumerate(ATTEMPT_OUTCOMES[:_OUTCOMES_OF_MIGRATION_3])))


def _execute_script(db: sqlite3.Connection, script: str) -> None:
    # executescript() would commit first; statements one by one stay in our transaction.
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _migration_2_batches(db: sqlite3.Connection) -> None:
    """Batch API mode: the batches a job made, each step's remote ids, which requests each holds.

    ``step`` is how far promptmill got with a batch: prepared (its requests chosen, the input
    file written), uploading, uploaded (``file_id``), creating, submitted (``batch_id``), ended
    (the provider finished it), recorded (its results are in ``requests``). Each remote call
    is preceded by a commit of the step it starts and followed by a commit of what it returned,
    so a kill between the two is found on resume and the call is matched, not repeated.
    """
    _execute_script(
        db,
        """
        CREATE TABLE batches (
            id INTEGER PRIMARY KEY,
            step TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            requests INTEGER NOT NULL,
            bytes INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            upload_name TEXT NOT NULL,
            file_id TEXT,
            batch_id TEXT,
            status TEXT,
            total INTEGER,
            completed INTEGER,
            failed INTEGER,
            output_file_id TEXT,
            error_file_id TEXT,
            recorded INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            created_at REAL NOT NULL,
            step_at REAL NOT NULL,
            submitted_at REAL,
            ended_at REAL
        );
        CREATE TABLE batch_requests (
            request_id INTEGER PRIMARY KEY,
            batch INTEGER NOT NULL
        );
        CREATE INDEX batch_requests_by_batch ON batch_requests (batch, request_id);
        """
    )


def _migration_4_invalid_output(db: sqlite3.Connection) -> None:
    """Structured output: an answer that failed its schema is its own attempt outcome.

    Without it the report would count such attempts as server errors.
    """
    db.executemany("INSERT INTO attempt_outcomes (code, name) VALUES (?, ?)",
                   [(code, ATTEMPT_OUTCOMES[code])
                    for code in range(_OUTCOMES_OF_MIGRATION_3, len(ATTEMPT_OUTCOMES))])


def _migration_5_endpoint(db: sqlite3.Connection) -> None:
    """A fleet job (several endpoints): which endpoint answered each request (its redacted
    identifier; NULL for a job of one endpoint and for requests stored before)."""
    db.execute("ALTER TABLE requests ADD COLUMN endpoint TEXT")


def _migration_6_cache_entries(db: sqlite3.Connection) -> None:
    """The response cache's entry of each answer: its id and checksum (NULL: none), written
    by the same UPDATE that records the answer, so the cache is filled from the store by SQL
    (``jobcache.JobCache``) and a kill between the two commits is refilled on the rerun."""
    db.execute("ALTER TABLE requests ADD COLUMN cache_id INTEGER")
    db.execute("ALTER TABLE requests ADD COLUMN cache_sum INTEGER")


def _migration_7_cache_keys(db: sqlite3.Connection) -> None:
    """Each request's response cache key (its 64-bit base and 32-bit checksum seed), hashed
    at planning so dispatch reads it with the row (NULL: planned without one, then hashed
    at dispatch; meta ``cache_keys`` names the job identity they were hashed under)."""
    db.execute("ALTER TABLE requests ADD COLUMN cache_key INTEGER")
    db.execute("ALTER TABLE requests ADD COLUMN cache_seed INTEGER")


# Applied in order, once each; PRAGMA user_version records how many have run.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _migration_1, _migration_2_batches, _migration_3_attempts, _migration_4_invalid_output,
    _migration_5_endpoint, _migration_6_cache_entries, _migration_7_cache_keys]
SCHEMA_VERSION = len(MIGRATIONS)
