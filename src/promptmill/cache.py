"""The response cache across jobs: one SQLite file, content-addressed, sample by sample.

A request's key is a BLAKE2b over everything that decides its answer: the provider, the
endpoint (``api_base``, credentials stripped), the model and its options, every effective
parameter but ``n`` (the job's base ``seed`` included), the response format, the model's
files (adapter weights), and the exact messages or prompt as sent (after chat formats).
Each sample of a request is its own entry, ``(key, sample index)``, so a job asking k=5
where 3 are cached asks the backend for the other 2 only. Keys are hashes and the key's
parts are chosen without secrets: no key, header or password is ever hashed or stored.

The cache never fails a job. A file that cannot be opened, is damaged (truncated mid-write)
or stays locked is skipped with one warning; an entry whose checksum does not match its
text is a miss. Writes are queued and written in batches (4,096 entries or 2 s), each
right after a commit of the job store, so a kill never leaves an entry for an answer the
store lost (between the two commits it leaves entries unwritten: asked again later). Only
a store that cannot commit at all (disk full) leaves entries it lacks: real answers to
those requests, which the rerun then takes from the cache.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import sqlite3
import struct
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptmill.generators.base import GenerationRequest
from promptmill.redaction import redact_secrets
from promptmill.store import RequestRow

log = logging.getLogger("promptmill")

# Identifies promptmill's cache files (PRAGMA application_id): "pmc1".
_APPLICATION_ID = 0x706D6331
_SCHEMA_VERSION = 2
_SQLITE_MAGIC = b"SQLite format 3\x00"
# Seconds a write waits for another job's write to the same file before it is skipped.
_BUSY_TIMEOUT_MS = 2000
# Entry ids per lookup statement: 512 (a read-ahead chunk of single-sample requests), the
# rest in 64s, 8s and ones.
_IDS_PER_LOOKUP = (512, 64, 8, 1)
# Rows per INSERT statement: whole statements of 64 rows, the rest in 16s, 4s and ones.
_ROWS_PER_INSERT = (64, 16, 4, 1)
# Entries kept in memory before they are written: big transactions write each page of the
# file once for many entries. A write also happens at least this often (seconds), and when
# the job ends; a kill loses what was not written, which is then asked again next time.
_WRITE_EVERY = 4096
_WRITE_INTERVAL_S = 2.0
# Cache modes: "auto" caches deterministic requests only (temperature 0 or a fixed seed),
# "on" every request, "off" none.
MODES = ("auto", "on", "off")
# Samples per sample group where a backend takes n (promptmill.job's _MAX_N): sample index
# within a row = group x this + index within the request.
_MAX_N = 128


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
            # NORMAL in WAL: a killed process keeps every commit; power loss may drop the last
            # few entries, which are then simply asked again.
            db.execute("PRAGMA synchronous=NORMAL")
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

    def put(self, entries: Sequence[int | str], model_id: int, created_at: float) -> None:
        """Store entries, given flat as ``entry id, response JSON, checksum, ...``, of one
        model, in one transaction."""
        db = self.db
        total, done = len(entries) // 3, 0
        with self._writing():
            # Many rows a statement: executemany's per-row bind, step and reset cost more
            # than the insert itself.
            for rows in _ROWS_PER_INSERT:
                sql = _insert_sql(rows)
                while total - done >= rows:
                    db.execute(sql, [*entries[3 * done:3 * (done + rows)], model_id, created_at])
                    done += rows

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
        self._compact()
        return int(removed)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
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
    """Bring a new (schema 0) or schema-1 file to the current schema, in the caller's
    transaction.

    Schema 2 keys an entry by an integer id (its request key's first 64 bits XOR its sample
    index): one B-tree insert a write, where schema 1's (BLOB key, sample) rows also fed a
    unique index.
    """
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version >= _SCHEMA_VERSION:
        return
    if version == 1:
        # Schema 1's keys were hashed another way: its entries cannot be found again.
        db.execute("DROP TABLE responses")
    # No index by age: only `cache prune` reads it. The model as an id: shorter rows.
    db.execute("CREATE TABLE responses (id INTEGER PRIMARY KEY, response TEXT NOT NULL, "
               "checksum INTEGER NOT NULL, model INTEGER NOT NULL, created_at REAL NOT NULL)")
    db.execute("CREATE TABLE models (id INTEGER PRIMARY KEY, label TEXT NOT NULL UNIQUE)")
    db.execute(f"PRAGMA application_id={_APPLICATION_ID}")
    db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")


@functools.cache
def _lookup_sql(ids: int) -> str:
    """A lookup of ``ids`` entry ids: a join, one rowid seek each (``IN (...)`` would sort
    the list into a temporary index first)."""
    values = ",".join(["(?)"] * ids)
    return ("SELECT r.id, r.response, r.checksum FROM (VALUES " + values + ") AS v "
            "JOIN responses r ON r.id = v.column1")


@functools.cache
def _insert_sql(rows: int) -> str:
    """An INSERT of ``rows`` entries: three parameters each, then the model id and time."""
    model, created = 3 * rows + 1, 3 * rows + 2
    values = ",".join(f"(?{3 * i + 1},?{3 * i + 2},?{3 * i + 3},?{model},?{created})"
                      for i in range(rows))
    return f"INSERT OR REPLACE INTO responses VALUES {values}"


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


# A request's key: the first 12 bytes of its 128-bit BLAKE2b, read as (64-bit signed id
# base, 32-bit checksum seed).
CacheKey = tuple[int, int]
_KEY = struct.Struct("<qI4x")


@dataclass(slots=True)
class CachedSamples:
    """One request's entry in the cache: its key, first sample index, and samples found."""

    key: CacheKey
    first: int  # the index (within its row) of the request's first sample
    n: int  # samples the request asks for
    found: dict[int, str]  # offset within the request -> stored response JSON

    @property
    def complete(self) -> bool:
        """Whether every sample of the request is cached."""
        return len(self.found) >= self.n

    def missing(self) -> list[int]:
        """Offsets of the samples still to ask for, in order."""
        return [offset for offset in range(self.n) if offset not in self.found]

    def stored(self) -> str:
        """The job store's responses of a request the cache answered whole."""
        return "[" + ",".join(marked_cached(self.found[i]) for i in range(self.n)) + "]"

    def request_for_missing(self, request: GenerationRequest) -> GenerationRequest:
        """The request for the samples the cache does not hold.

        With a seed, the seed moves past every cached sample's (a backend that seeds sample
        i with seed + i then gives new samples, not copies of cached ones).
        """
        params = request.params
        updates: dict[str, Any] = {"n": len(self.missing())}
        if params.seed is not None:
            updates["seed"] = params.seed + max(self.found) + 1
        return GenerationRequest(request.request_id, params.model_copy(update=updates),
                                 request.messages, request.prompt, request.adapter)


def marked_cached(text: str) -> str:
    """A stored response's JSON object with ``"cached": true`` added."""
    return text[:-1] + ',"cached":true}'


class JobCache:
    """A job's view of the cache: its requests' keys, lookups, and writes queued for commit.

    Any error of the file (damaged, locked for longer than the busy timeout, disk full)
    turns the cache off for the rest of the run with one warning.
    """

    __slots__ = ("cache", "hasher", "model_id", "stride", "_queued", "_written_at", "_off",
                 "hits", "stored")

    def __init__(self, cache: ResponseCache, identity: Mapping[str, Any], model: str,
                 stride: int) -> None:
        self.cache = cache
        # Every request's hash starts as a copy of this one, whose parameter block holds the
        # identity's digest as salt and personalization: unlike a key, they cost no extra
        # compression per hash.
        digest = hashlib.blake2b(identity_bytes(identity), digest_size=32).digest()
        self.hasher = hashlib.blake2b(digest_size=16, salt=digest[:16], person=digest[16:])
        self.model_id = cache.model_id(model)  # provider!model, shown by `cache stats`
        self.stride = stride  # samples per sample group: sample index = group * stride + i
        # Entries to write, flat as put() takes them: entry id, response JSON, checksum.
        self._queued: list[int | str] = []
        self._written_at = time.monotonic()  # when entries were last written
        self._off = False  # a failure turned the cache off for this run
        self.hits = 0  # samples answered from the cache this run
        self.stored = 0  # samples written to the cache this run

    def lookup(self, rows: Sequence[RequestRow]
               ) -> tuple[list[CacheKey], dict[int, CachedSamples]] | None:
        """Each request's key (by its payload as sent) and, by position in ``rows``, the
        samples stored for those that have any. None when the cache is off."""
        if self._off:
            return None
        # 128 bits of BLAKE2b salted with the identity's digest, of which the first 96 are
        # used. (Not SHA-256: OpenSSL 3 looks the algorithm up on every call, several times
        # the cost of hashing a prompt.)
        keys: list[CacheKey] = []
        ids: list[int] = []
        wide: list[tuple[int, RequestRow]] = []  # requests of several samples
        copy, unpack, stride = self.hasher.copy, _KEY.unpack, self.stride
        for row in rows:
            hasher = copy()
            hasher.update(row.payload.encode())
            key = unpack(hasher.digest())
            keys.append(key)
            ids.append(key[0] ^ (row.sample_group * stride))
            if row.n > 1:
                wide.append((key[0], row))
        for base, row in wide:  # every sample's entry id, not only the first's
            first = row.sample_group * stride
            ids.extend(base ^ index for index in range(first + 1, first + row.n))
        try:
            stored = self.cache.get(ids)
        except sqlite3.Error as exc:
            self._fail(exc)
            return None
        found: dict[int, CachedSamples] = {}
        if stored:
            damaged = 0
            for position, ((base, seed), row) in enumerate(zip(keys, rows, strict=True)):
                first = row.sample_group * stride
                samples = {}
                for offset in range(row.n):
                    entry = stored.get(base ^ (first + offset))
                    if entry is None:
                        continue
                    text, checksum = entry
                    if zlib.crc32(text.encode(), seed) == checksum:
                        samples[offset] = text
                    else:  # damaged, or another key's entry under the same id
                        damaged += 1
                if samples:
                    found[position] = CachedSamples((base, seed), first, row.n, samples)
            if damaged:
                log.warning("response cache %s: %d damaged entries ignored (asked again)",
                            self.cache.path, damaged)
        return keys, found

    def add(self, key: CacheKey, index: int, response: str) -> None:
        """Queue one newly answered sample (its index within its row) for the next flush."""
        if not self._off:
            base, seed = key
            self._queued += (base ^ index, response, zlib.crc32(response.encode(), seed))

    def keep(self, key: CacheKey, group: int, responses: list[dict[str, Any]],
             encode: Callable[[Any], str]) -> str:
        """The stored responses of a request the cache held nothing for; its answers are
        queued for the cache."""
        first = group * self.stride
        if len(responses) == 1:  # the usual case, kept short
            encoded = encode(responses)
            if not self._off:
                text = encoded[1:-1]  # one response: the list's only item
                base, seed = key
                self._queued += (base ^ first, text, zlib.crc32(text.encode(), seed))
            return encoded
        fresh = [encode(response) for response in responses]
        for offset, text in enumerate(fresh):
            self.add(key, first + offset, text)
        return "[" + ",".join(fresh) + "]"

    def merge(self, hit: CachedSamples, responses: list[dict[str, Any]],
              encode: Callable[[Any], str]) -> tuple[str, int]:
        """The stored responses of a request some of whose samples the cache held, in
        sample order, and how many came from the cache; its new answers are queued."""
        new = iter(responses)
        texts: list[str] = []
        taken = 0
        for offset in range(hit.n):
            cached = hit.found.get(offset)
            if cached is not None:
                texts.append(marked_cached(cached))
                taken += 1
                continue
            response = next(new, None)
            if response is None:  # fewer answers than asked: keep what came
                continue
            text = encode(response)
            self.add(hit.key, hit.first + offset, text)
            texts.append(text)
        return "[" + ",".join(texts) + "]", taken

    def flush(self, *, now: bool = False) -> None:
        """Write the queued entries in one transaction, if enough are queued or enough time
        has passed since the last write (``now``: whatever is queued)."""
        queued = self._queued
        if not queued or self._off:
            return
        if not now and len(queued) < 3 * _WRITE_EVERY and (
                time.monotonic() - self._written_at < _WRITE_INTERVAL_S):
            return
        self._queued = []
        self._written_at = time.monotonic()
        try:
            self.cache.put(queued, self.model_id, time.time())
        except sqlite3.Error as exc:
            self._fail(exc)
            return
        self.stored += len(queued) // 3

    def close(self) -> None:
        """Write what is queued and close the file."""
        self.flush(now=True)
        self.cache.close()

    def _fail(self, exc: sqlite3.Error) -> None:
        self._off = True
        self._queued = []
        log.warning("response cache %s skipped for the rest of this run: %s (`promptmill "
                    "cache clear` starts a new one)", self.cache.path, exc)


def deterministic(params: Any) -> bool:
    """Whether requests with these params answer the same each time (temperature 0 or a
    fixed seed): the ones cached without ``--cache``."""
    return params.temperature == 0 or params.seed is not None


def job_cache(spec: Any, params: Any) -> JobCache | None:
    """The cache view a job's dispatch uses, or None (off, sampled without --cache, or the
    file unusable: then with a warning)."""
    if spec.cache == "off" or (spec.cache == "auto" and not deterministic(params)):
        return None
    cache = open_cache(spec.cache_path)
    if cache is None:
        return None
    generator = spec.generator
    stride = _MAX_N if generator.supports_n else 1
    try:
        return JobCache(cache, spec.cache_identity(params), f"{generator.provider}!"
                        f"{generator.model}", stride)
    except sqlite3.Error as exc:
        cache.close()
        log.warning("response cache %s skipped: %s; the job runs without it", cache.path,
                    redact_secrets(str(exc)))
        return None


__all__ = [
    "MODES",
    "CacheStats",
    "CachedSamples",
    "JobCache",
    "ResponseCache",
    "default_cache_path",
    "deterministic",
    "endpoint_of",
    "identity_bytes",
    "is_cache_file",
    "marked_cached",
    "job_cache",
    "open_cache",
]
