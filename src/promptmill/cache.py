"""The response cache across jobs: one SQLite file, content-addressed, sample by sample.

A request's key is a BLAKE2b over everything that decides its answer: the provider, the
endpoint (``api_base``, credentials stripped), the model and its options, every effective
parameter but ``n`` (the job's base ``seed`` included), the response format, the model's
files (adapter weights; a local model's files as they stand, ``weights_stamp``), and the
exact messages or prompt as sent (after chat formats).
Each sample of a request is its own entry, ``(key, sample index)``, so a job asking k=5
where 3 are cached asks the backend for the other 2 only. Keys are hashes and the key's
parts are chosen without secrets: no key, header or password is ever hashed or stored.

The cache never fails a job. A file that cannot be opened, is damaged (truncated mid-write)
or stays locked is skipped with one warning; an entry whose checksum does not match its
text is a miss.

Its cost on dispatch, kept small on purpose (issue 13: at most 3%; a job's side is in
``jobcache``). A job whose identity (everything in the key but the prompt) the cache has
never held an entry of looks nothing up: none could hit. Each write notes the identity and
the writing run in ``identities``, so a job that starts later looks up, and a job running
meanwhile starts looking up at its next write. Each request's key is hashed at planning
and read by dispatch with the request's row. Answers are not written from Python: the
job store's UPDATE that records an answer also records its entry's id and checksum, and
the cache is filled from the store by one ``INSERT ... SELECT`` (the store attached to a
second connection to the cache, used by a thread of its own: the copy, its commit and the
WAL's checkpoints run beside the event loop) in entry-id order, by copies that double in
size (4,096 answers, then as many as the run has copied) or in time (2 s, then as long as
the run had gone at its last copy, 5 minutes at most), started right
after a store commit, so a kill never leaves an entry for an answer the store lost. The
store keeps, in the same commits, where the answers not yet copied begin (meta
``cache_fill``, covering a copy still running): a kill before a copy commits leaves entries
unwritten, and the rerun of that job copies them first. (Requests of several
samples and partly cached ones still queue their entries in Python; they are few.) Only a
store that cannot commit at all (disk full) can leave such queued entries it lacks: real
answers to those requests.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any

from promptmill.redaction import redact_secrets
from promptmill.sqlite_bulk import insert_many, values_sql

log = logging.getLogger("promptmill")

# Identifies promptmill's cache files (PRAGMA application_id): "pmc1".
_APPLICATION_ID = 0x706D6331
_SCHEMA_VERSION = 4
_SQLITE_MAGIC = b"SQLite format 3\x00"
# Seconds a write waits for another job's write to the same file before it is skipped.
_BUSY_TIMEOUT_MS = 2000
# Entry ids per lookup statement: 512 (a read-ahead chunk of single-sample requests), the
# rest in 64s, 8s and ones.
_IDS_PER_LOOKUP = (512, 64, 8, 1)
# Rows per INSERT statement: whole statements of 64 rows, the rest in 16s, 4s and ones.
_ROWS_PER_INSERT = (64, 16, 4, 1)
_ENTRY_ROW = values_sql(5)  # entry id, response JSON, checksum, model id, time
_first = itemgetter(0)
# Cache modes: "auto" caches deterministic requests only (temperature 0 or a fixed seed),
# "on" every request, "off" none.
MODES = ("auto", "on", "off")
# The identity id that stands for "entries of identities not recorded" (a schema-2 file's):
# every job looks up in such a file.
_ANY_IDENTITY = 0
# Copies each answer the job store recorded since ``since`` (Unix time), from the request
# id ``lo`` on, as an entry: through the store's status index, pending requests unread. The
# entry is the store's text as it is, a list of the one response (cutting the brackets off
# in SQL counted characters twice: 1.7k instructions of the copy's 9.7k an entry). In entry
# id order: the inserts walk the B-tree's pages in turn instead of at random (a copy of
# 100,000 answers into an empty file: 1.97 µs an answer, against 6.4 µs unordered).
_FILL_SQL = ("INSERT OR REPLACE INTO main.responses (id, response, checksum, model, created_at) "
             "SELECT cache_id, responses, cache_sum, ?1, ?2 "
             "FROM job.requests WHERE status = 'done' AND id >= ?3 AND finished_at >= ?4 "
             "AND cache_id IS NOT NULL ORDER BY cache_id")


def default_cache_path() -> Path:
    """The cache file in the user cache directory (``$XDG_CACHE_HOME``, else ``~/.cache``)."""
    base = os.environ.get("XDG_CACHE_HOME") or ""
    root = Path(base) if base.strip() else Path.home() / ".cache"
    return root / "promptmill" / "responses.sqlite"


class CacheUnusable(Exception):
    """The cache file cannot be used now; the job goes on without it."""


class ResponseCache:
    """One cache file: open, look up, write, count, prune, clear."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_cache_path()
        self.db = self._open()

    def _open(self) -> sqlite3.Connection:
        path = self.path
        if path.exists():
            _check_file(path)
        else:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise CacheUnusable(f"cannot create {path.parent}: {exc.strerror}") from None
        db: sqlite3.Connection | None = None
        try:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                 timeout=_BUSY_TIMEOUT_MS / 1000)
            db.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            app, version = (db.execute("PRAGMA application_id").fetchone()[0],
                            db.execute("PRAGMA user_version").fetchone()[0])
            if app not in (0, _APPLICATION_ID) or (app == 0 and version != 0):
                raise CacheUnusable("not a promptmill response cache")
            if version > _SCHEMA_VERSION:
                raise CacheUnusable(f"written by a newer promptmill (cache schema {version})")
            # NORMAL in WAL: a killed process keeps every commit; power loss may drop the last
            # few entries, which are then simply asked again (nor is a new file's schema worth
            # an fsync: a power cut leaves an empty file, which starts afresh).
            db.execute("PRAGMA synchronous=NORMAL")
            if version < _SCHEMA_VERSION:
                if version == 0:
                    db.execute("PRAGMA journal_mode=WAL")
                db.execute("BEGIN IMMEDIATE")
                try:
                    _upgrade(db)  # another process may have done it meanwhile: it checks
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db is not None:
                db.close()
            raise CacheUnusable(str(exc)) from None
        except CacheUnusable:
            assert db is not None
            db.close()
            raise
        return db

    def close(self) -> None:
        """Close the file."""
        with contextlib.suppress(sqlite3.Error):
            self.db.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, ids: Sequence[int]) -> dict[int, tuple[str, int]]:
        """The entries stored under ``ids``: entry id -> (response JSON, checksum)."""
        found: dict[int, tuple[str, int]] = {}
        total, done = len(ids), 0
        for size in _IDS_PER_LOOKUP:  # a few statement shapes, each prepared once
            sql = _lookup_sql(size)
            while total - done >= size:
                for id_, text, checksum in self.db.execute(sql, ids[done:done + size]):
                    found[id_] = (text, checksum)
                done += size
        return found

    def seen(self, identity: int) -> bool:
        """Whether entries of this job identity may be here (a write of one was recorded)."""
        return self.db.execute("SELECT 1 FROM identities WHERE id IN (?, ?)",
                               (identity, _ANY_IDENTITY)).fetchone() is not None

    def fill(self, identity: int, writer: int, entries: Sequence[int | str],
             span: tuple[float, int] | None, model_id: int, created_at: float
             ) -> tuple[int, bool]:
        """Write one job identity's entries in one transaction: ``entries`` given flat as
        ``entry id, response JSON, checksum, ...``, and those of the attached job store's
        answers in ``span`` (since, lowest request id). How many were written, and whether
        another run wrote entries of this identity since ``writer``'s last write."""
        db = self.db
        done = len(entries) // 3
        # Deferred: its first statement takes the cache's write lock (waiting for another
        # job's), while the attached store is only read (IMMEDIATE would lock it too).
        with self._writing("BEGIN"):
            others = self._claim(identity, writer)
            insert_many(db, "INSERT OR REPLACE INTO responses VALUES ", _ENTRY_ROW,
                        sorted(((*entries[i:i + 3], model_id, created_at)
                                for i in range(0, 3 * done, 3)), key=_first),  # id order
                        _ROWS_PER_INSERT)
            if span is not None:
                since, lowest = span
                done += db.execute(_FILL_SQL, (model_id, created_at, lowest, since)).rowcount
        return done, others

    def _claim(self, identity: int, writer: int) -> bool:
        """Record ``writer`` as the last run to write ``identity``'s entries; whether another
        run wrote some since ``writer`` last did (or before it ever did)."""
        db = self.db
        if db.execute("UPDATE identities SET writer = ?1 WHERE id = ?2 AND writer = ?1",
                      (writer, identity)).rowcount:
            return False
        others = self.seen(identity)
        db.execute("INSERT OR REPLACE INTO identities (id, writer) VALUES (?, ?)",
                   (identity, writer))
        return others

    def model_id(self, label: str) -> int:
        """The id entries of model ``label`` (provider!model) are stored with."""
        db = self.db
        row = db.execute("SELECT id FROM models WHERE label = ?", (label,)).fetchone()
        if row is None:
            with self._writing():
                db.execute("INSERT OR IGNORE INTO models (label) VALUES (?)", (label,))
            row = db.execute("SELECT id FROM models WHERE label = ?", (label,)).fetchone()
        return int(row[0])

    def stats(self) -> CacheStats:
        """Entries, size on disk, age range and entries per model."""
        db = self.db
        count, oldest, newest = db.execute(
            "SELECT COUNT(*), MIN(created_at), MAX(created_at) FROM responses").fetchone()
        models = db.execute("SELECT m.label, COUNT(*) AS c FROM responses r JOIN models m "
                            "ON m.id = r.model GROUP BY r.model ORDER BY c DESC").fetchall()
        size = sum(p.stat().st_size for p in _files_of(self.path) if p.exists())
        return CacheStats(self.path, int(count), size, oldest, newest,
                          [(str(m), int(c)) for m, c in models])

    def prune(self, older_than: float) -> int:
        """Delete entries stored more than ``older_than`` seconds ago; how many."""
        cutoff = time.time() - older_than
        with self._writing() as db:
            removed = db.execute("DELETE FROM responses WHERE created_at < ?", (cutoff,)).rowcount
        self._compact()
        return int(removed)

    def clear(self) -> int:
        """Delete every entry; how many."""
        with self._writing() as db:
            removed = db.execute("DELETE FROM responses").rowcount
            db.execute("DELETE FROM identities")
        self._compact()
        return int(removed)

    @contextlib.contextmanager
    def _writing(self, begin: str = "BEGIN IMMEDIATE") -> Iterator[sqlite3.Connection]:
        self.db.execute(begin)
        try:
            yield self.db
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _compact(self) -> None:
        # Give the space back; skipped while another job reads or writes the file.
        with contextlib.suppress(sqlite3.Error):
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.db.execute("VACUUM")


def _upgrade(db: sqlite3.Connection) -> None:
    """Bring a new (schema 0) or older file to the current schema, in the caller's
    transaction.

    Schema 2 keys an entry by an integer id (its request key's first 64 bits XOR its sample
    index): one B-tree insert a write, where schema 1's (BLOB key, sample) rows also fed a
    unique index. Schema 3 records the job identities written (``identities``: its digest's
    first 64 bits, and the run that wrote last), so a job of an identity never written looks
    nothing up. Schema 4 lets an entry be a list of its one response (``[{...}]``, copied
    from the job store as it is) beside a bare response (``{...}``, as before), its checksum
    over the text either way: promptmill before it would read such a list as a response.
    """
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version >= _SCHEMA_VERSION:
        return
    if version < 2:
        if version == 1:
            # Schema 1's keys were hashed another way: its entries cannot be found again.
            db.execute("DROP TABLE responses")
        # No index by age: only `cache prune` reads it. The model as an id: shorter rows.
        db.execute("CREATE TABLE responses (id INTEGER PRIMARY KEY, response TEXT NOT NULL, "
                   "checksum INTEGER NOT NULL, model INTEGER NOT NULL, "
                   "created_at REAL NOT NULL)")
        db.execute("CREATE TABLE models (id INTEGER PRIMARY KEY, label TEXT NOT NULL UNIQUE)")
    if version < 3:
        db.execute("CREATE TABLE identities (id INTEGER PRIMARY KEY, writer INTEGER NOT NULL)")
    if version == 2 and db.execute("SELECT 1 FROM responses LIMIT 1").fetchone():
        # A schema-2 file's entries name no identity: every job looks up while any is left.
        db.execute("INSERT INTO identities (id, writer) VALUES (?, 0)", (_ANY_IDENTITY,))
    db.execute(f"PRAGMA application_id={_APPLICATION_ID}")
    db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")


@functools.cache
def _lookup_sql(ids: int) -> str:
    """A lookup of ``ids`` entry ids: one rowid seek each, the ids read as a common table
    expression's rows in the order given. (``IN (...)`` sorts the list into a temporary
    index first; a plain join of a VALUES subquery copies it into a temporary table: 3.9k
    and 3.5k instructions an id against 2.5k, on 512 ids into 200 entries.)"""
    values = ",".join(["(?)"] * ids)
    return ("WITH v(id) AS (VALUES " + values + ") SELECT r.id, r.response, r.checksum "
            "FROM v CROSS JOIN responses AS r ON r.id = v.id")


def _files_of(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


def _check_file(path: Path) -> None:
    """CacheUnusable if the file is not a whole SQLite database (cut short mid-write)."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(100)
        size = path.stat().st_size
    except OSError as exc:
        raise CacheUnusable(f"cannot read it ({exc.strerror})") from None
    if size == 0:
        return  # created by a process killed before its first write: SQLite starts afresh
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        raise CacheUnusable("not an SQLite file")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    wal = path.with_name(path.name + "-wal")
    # Without a WAL the file holds every page its header counts; a shorter file was cut off.
    if (size % page_size or (pages and size < pages * page_size)) and not (
            wal.exists() and wal.stat().st_size):
        raise CacheUnusable(f"damaged: {size:,} bytes where its header counts "
                            f"{pages * page_size:,} (cut off mid-write?)")


def is_cache_file(path: Path) -> bool:
    """Whether ``path`` starts as a promptmill cache file does (however damaged after)."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(72)
    except OSError:
        return False
    return (header.startswith(_SQLITE_MAGIC)
            and int.from_bytes(header[68:72], "big") == _APPLICATION_ID)


@dataclass(frozen=True)
class CacheStats:
    """What ``promptmill cache stats`` prints."""

    path: Path
    entries: int
    bytes: int
    oldest: float | None
    newest: float | None
    models: list[tuple[str, int]] = field(default_factory=list)


def open_cache(path: Path | None) -> ResponseCache | None:
    """The cache at ``path`` (None: the default file), or None with a warning if unusable."""
    try:
        return ResponseCache(path)
    except CacheUnusable as exc:
        shown = path if path is not None else default_cache_path()
        log.warning("response cache %s skipped: %s; the job runs without it (`promptmill "
                    "cache clear` starts a new one)", shown, redact_secrets(str(exc)))
        return None


def endpoint_of(generator: Any) -> str | None:
    """Where a remote generator sends requests (credentials and secrets removed)."""
    base = getattr(generator, "api_base", None)
    if not base:
        return None
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(str(base))
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return redact_secrets(urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", "")))


def identity_bytes(identity: Mapping[str, Any]) -> bytes:
    """The canonical bytes of a job's request identity (its digest keys every request's hash)."""
    text = json.dumps(identity, sort_keys=True, ensure_ascii=False, default=str,
                      separators=(",", ":"))
    return b"promptmill-cache-v1\0" + text.encode() + b"\0"


__all__ = [
    "MODES",
    "CacheStats",
    "CacheUnusable",
    "ResponseCache",
    "default_cache_path",
    "endpoint_of",
    "identity_bytes",
    "is_cache_file",
    "open_cache",
]
