"""The response cache across jobs: one SQLite file, content-addressed, sample by sample.

A request's key is a 128-bit BLAKE2b over everything that decides its answer: the provider, the
endpoint (``api_base``, credentials stripped), the model and its options, every effective
parameter but ``n`` (the job's base ``seed`` included), the response format, the model's
files (adapter weights), and the exact messages or prompt as sent (after chat formats).
Each sample of a request is its own entry, ``(key, sample index)``, so a job asking k=5
where 3 are cached asks the backend for the other 2 only. Keys are hashes and the key's
parts are chosen without secrets: no key, header or password is ever hashed or stored.

The cache never fails a job. A file that cannot be opened, is damaged (truncated mid-write)
or stays locked is skipped with one warning; an entry whose checksum does not match its
text is a miss. Writes are queued and committed with the job's own group commits.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptmill.generators.base import GenerationRequest
from promptmill.redaction import redact_secrets

log = logging.getLogger("promptmill")

# Identifies promptmill's cache files (PRAGMA application_id): "pmc1".
_APPLICATION_ID = 0x706D6331
_SCHEMA_VERSION = 1
_SQLITE_MAGIC = b"SQLite format 3\x00"
# Seconds a write waits for another job's write to the same file before it is skipped.
_BUSY_TIMEOUT_MS = 2000
# Keys per lookup query (SQLite's host-parameter limit is 32,766 on current builds).
_LOOKUP_CHUNK = 500
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


def _checksum(text: str) -> int:
    return zlib.crc32(text.encode())


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
            if version == 0 and app == 0:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("BEGIN IMMEDIATE")
                if db.execute("PRAGMA user_version").fetchone()[0] == 0:
                    # Rows appended by rowid, found by a (key, sample) index: a table keyed
                    # by the random keys themselves (WITHOUT ROWID) costs three times as
                    # much a write. No index by age: only `cache prune` reads it.
                    db.execute(
                        "CREATE TABLE IF NOT EXISTS responses (key BLOB NOT NULL, sample INTEGER "
                        "NOT NULL, response TEXT NOT NULL, checksum INTEGER NOT NULL, model TEXT "
                        "NOT NULL, created_at REAL NOT NULL, UNIQUE (key, sample))")
                    db.execute(f"PRAGMA application_id={_APPLICATION_ID}")
                    db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
                db.execute("COMMIT")
            elif app != _APPLICATION_ID:
                raise CacheUnusable("not a promptmill response cache")
            elif version > _SCHEMA_VERSION:
                raise CacheUnusable(f"written by a newer promptmill (cache schema {version})")
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

    def get(self, keys: Sequence[bytes]) -> dict[bytes, dict[int, str]]:
        """The entries stored under ``keys``: key -> {sample index: response JSON}."""
        found: dict[bytes, dict[int, str]] = {}
        damaged = 0
        for start in range(0, len(keys), _LOOKUP_CHUNK):
            chunk = keys[start:start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            for key, sample, text, checksum in self.db.execute(
                    f"SELECT key, sample, response, checksum FROM responses WHERE key IN "
                    f"({marks})", chunk):
                if _checksum(text) != checksum:
                    damaged += 1
                    continue
                found.setdefault(key, {})[sample] = text
        if damaged:
            log.warning("response cache %s: %d damaged entries ignored (asked again)",
                        self.path, damaged)
        return found

    def put(self, entries: Sequence[tuple[bytes, int, str, str]]) -> None:
        """Store ``(key, sample, response JSON, model label)`` entries in one transaction."""
        now = time.time()
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT OR REPLACE INTO responses (key, sample, response, checksum, model, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                [(key, sample, text, _checksum(text), model, now)
                 for key, sample, text, model in entries])
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def stats(self) -> CacheStats:
        """Entries, size on disk, age range and entries per model."""
        db = self.db
        count, oldest, newest = db.execute(
            "SELECT COUNT(*), MIN(created_at), MAX(created_at) FROM responses").fetchone()
        models = db.execute("SELECT model, COUNT(*) AS c FROM responses GROUP BY model "
                            "ORDER BY c DESC").fetchall()
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


@dataclass(slots=True)
class CachedSamples:
    """One request's entry in the cache: its key, first sample index, and samples found."""

    key: bytes
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

    __slots__ = ("cache", "prefix", "model", "stride", "_queued", "_off", "hits", "stored")

    def __init__(self, cache: ResponseCache, identity: Mapping[str, Any], model: str,
                 stride: int) -> None:
        self.cache = cache
        # The key of every request's hash: a digest of the identity.
        self.prefix = hashlib.blake2b(identity_bytes(identity), digest_size=32).digest()
        self.model = model  # provider!model, shown by `cache stats`
        self.stride = stride  # samples per sample group: sample index = group * stride + i
        self._queued: list[tuple[bytes, int, str, str]] = []  # entries to write at next flush
        self._off = False  # a failure turned the cache off for this run
        self.hits = 0  # samples answered from the cache this run
        self.stored = 0  # samples written to the cache this run

    def lookup(self, payloads: Sequence[str]
               ) -> tuple[list[bytes], dict[bytes, dict[int, str]]] | None:
        """Each request's key (by its payload as sent) and the samples stored under them.

        None when the cache is off (then nothing is looked up or written).
        """
        if self._off:
            return None
        blake2b, prefix = hashlib.blake2b, self.prefix
        # 128 bits of BLAKE2b keyed with the identity's digest: collisions stay out of reach
        # at any cache size. (Not SHA-256: OpenSSL 3 looks the algorithm up on every call,
        # several times the cost of hashing a prompt.)
        keys = [blake2b(payload.encode(), digest_size=16, key=prefix).digest()
                for payload in payloads]
        try:
            return keys, self.cache.get(keys)
        except sqlite3.Error as exc:
            self._fail(exc)
            return None

    def entry(self, key: bytes, group: int, n: int,
              samples: dict[int, str] | None) -> CachedSamples | None:
        """The samples of a request (sample ``group``, ``n`` samples) among those stored
        under its key; None if none of them is."""
        if not samples:
            return None
        first = group * self.stride
        found = {index - first: text for index, text in samples.items()
                 if first <= index < first + n}
        return CachedSamples(key, first, n, found) if found else None

    def add(self, key: bytes, index: int, response: str) -> None:
        """Queue one newly answered sample (its index within its row) for the next flush."""
        if not self._off:
            self._queued.append((key, index, response, self.model))

    def merge(self, hit: bytes | CachedSamples, group: int, responses: list[dict[str, Any]],
              encode: Callable[[Any], str]) -> tuple[str, int]:
        """The stored responses of a request the cache took part in, in sample order, and
        how many came from the cache; its new answers are queued for the cache.

        ``hit``: the request's key (nothing was cached) or what was found.
        """
        if isinstance(hit, bytes):
            first = group * self.stride
            if len(responses) == 1:
                encoded = encode(responses)
                self.add(hit, first, encoded[1:-1])  # one response: the list's only item
                return encoded, 0
            fresh = [encode(response) for response in responses]
            for offset, text in enumerate(fresh):
                self.add(hit, first + offset, text)
            return "[" + ",".join(fresh) + "]", 0
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

    def flush(self) -> None:
        """Write the queued entries in one transaction."""
        if not self._queued or self._off:
            return
        queued, self._queued = self._queued, []
        try:
            self.cache.put(queued)
        except sqlite3.Error as exc:
            self._fail(exc)
            return
        self.stored += len(queued)

    def close(self) -> None:
        """Write what is queued and close the file."""
        self.flush()
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
    return JobCache(cache, spec.cache_identity(params), f"{generator.provider}!"
                    f"{generator.model}", stride)


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
