"""A job's use of the response cache: its requests' keys, lookups, and the answers copied in.

A request's key is a BLAKE2b of the exact messages or prompt as sent, salted with the digest
of the job's identity (``cache.identity_bytes``: provider, endpoint, model, parameters...);
each sample is its own entry, under the key's first 64 bits XOR the sample's index in its
row, checked on read by a CRC-32 seeded with 32 more bits of the key. ``cache`` explains
what keeps this cheap on dispatch: no lookups for an identity never written, keys hashed at
planning, and answers copied from the job store by SQL.

Keys hashed at planning (``PlannedKeys``) are stored with each request (``cache_key``,
``cache_seed``) and the identity they were hashed under in the store's meta
(``cache_keys``); dispatch reads them with the row only when its own identity is that one
(the fingerprint refuses most changes of identity, but a fleet's endpoints may change
between runs), and hashes any request planned without one (a job planned before store
migration 7, or while the cache was off).
"""

from __future__ import annotations

import hashlib
import logging
import random
import sqlite3
import struct
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any

from promptmill.cache import CacheUnusable, ResponseCache, identity_bytes, open_cache
from promptmill.generators.base import GenerationRequest
from promptmill.redaction import redact_secrets
from promptmill.store import FinishedRequest, JobStore, RequestRow

log = logging.getLogger("promptmill")

# When the answers recorded in the job store are copied to the cache: once as many wait as
# the run has copied so far (4,096 at least), or once as long has passed since the last copy
# as the run had been going at it (2 s at first, 5 minutes at most), and when the job ends.
# Entry ids are random (hashes), so each copy rewrites pages all over the cache's B-tree:
# copies that double (in answers or in time) rewrite about as many pages in all as the run
# writes entries, where copies of a fixed size cost each in step with the whole file (a
# 100,000-answer job copied 4,096 at a time: 6 µs an answer, against 2.4 µs at 20,000).
_WRITE_EVERY = 4096
_WRITE_INTERVAL_S = 2.0
_WRITE_INTERVAL_MAX_S = 300.0
# Samples per sample group where a backend takes n (promptmill.job's _MAX_N): sample index
# within a row = group x this + index within the request.
_MAX_N = 128


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


@dataclass(slots=True)
class Lookup:
    """A chunk of requests being looked up: their keys, and the read of their entries."""

    keys: list[CacheKey]
    rows: Sequence[RequestRow]
    reading: Future[dict[int, tuple[str, int]]] | None  # None: none can be stored


def marked_cached(text: str) -> str:
    """A stored response's JSON object with ``"cached": true`` added."""
    return text[:-1] + ',"cached":true}'


class JobCache:
    """A job's view of the cache: its requests' keys, lookups, and the answers to copy in.

    The copies run on a thread of their own, with a connection of their own (SQLite works
    without the GIL), so the event loop's thread goes on sending while the cache file is
    written and checkpointed; at most one copy runs at a time. Lookups read the file on
    another thread (``cache.db``'s), a chunk of requests ahead of the dispatcher's need, so
    the loop's thread does not wait on the file's pages either. Any error of the file
    (damaged, locked for longer than the busy timeout, disk full) turns the cache off for
    the rest of the run with one warning.
    """

    __slots__ = ("cache", "hasher", "identity", "planned", "model_id", "stride", "looking",
                 "_writer", "_spans", "_queued", "_unfilled", "_span", "_started", "_written_at",
                 "_off", "stored", "_copier", "_thread", "_reader", "_copying", "_flying")

    def __init__(self, cache: ResponseCache, identity: Mapping[str, Any], model: str,
                 stride: int, store_path: Path,
                 unfilled: tuple[float, int] | None = None,
                 planned_keys: int | None = None) -> None:
        self.cache = cache
        self.hasher, self.identity = identity_hasher(identity)
        # Whether the keys planning stored with the requests are this identity's: then
        # dispatch reads them instead of hashing (rows planned without one are hashed).
        self.planned = planned_keys == self.identity
        self.model_id = cache.model_id(model)  # provider!model, shown by `cache stats`
        self.stride = stride  # samples per sample group: sample index = group * stride + i
        # Whether any entry could hit: the identity was written before (by any run), or
        # another run wrote it since this one started. False: lookups are skipped.
        self.looking = cache.seen(self.identity)
        self._writer = random.getrandbits(62)  # this run, as ``identities`` names its writes
        # Entries to write from Python, flat as fill() takes them: id, response JSON, checksum.
        self._queued: list[int | str] = []
        self._unfilled = 0  # answers recorded with their entry in the store, not yet copied
        # Where the answers committed to the store and not yet copied begin: (Unix time of
        # the first such commit, lowest request id); None: none.
        self._span = unfilled
        self._spans = unfilled is not None  # whether the store's meta holds a span
        self._started = self._written_at = time.monotonic()  # when entries were last written
        self._off = False  # a failure turned the cache off for this run
        self.stored = 0  # samples written to the cache this run
        # The copies' own connection, the job store attached (lookups keep ``cache.db``).
        self._copier = ResponseCache(cache.path)
        try:
            self._copier.db.execute("ATTACH DATABASE ? AS job", (str(store_path),))
        except sqlite3.Error:
            self._copier.close()
            raise
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="promptmill-cache")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="promptmill-cache-read")
        self._copying: Future[tuple[int, bool]] | None = None  # the copy running, if one is
        # Where the running copy's answers begin: until it commits, the store's meta must
        # still point there (a kill would leave them uncopied).
        self._flying: tuple[float, int] | None = None
        if unfilled is not None:  # a run killed between a store commit and its copy
            self.flush(now=True)

    def look_up(self, rows: Sequence[RequestRow]) -> Lookup | None:
        """Start looking ``rows`` up: each request's key (by its payload as sent), and the
        read of their stored samples on the lookup thread (``found`` takes it). None when
        the cache is off."""
        if self._off:
            return None
        stride = self.stride
        if self.planned:
            keys = list(map(_planned_key, rows))
            if _NOT_PLANNED in keys:  # rows planned without keys (with the cache off then)
                unkeyed = [i for i, key in enumerate(keys) if key == _NOT_PLANNED]
                hashed = request_keys(self.hasher, [rows[i].payload for i in unkeyed])
                for i, key in zip(unkeyed, hashed, strict=True):
                    keys[i] = key
        else:
            keys = request_keys(self.hasher, map(_payload, rows))
        if not self.looking:  # nothing of this identity stored: no request can hit
            return Lookup(keys, rows, None)
        if max(map(_sample_group, rows)) == 0 and max(map(_n, rows)) == 1:
            ids = list(map(_base, keys))  # one sample each, its entry id the key's base
        else:
            ids = [base ^ (row.sample_group * stride)
                   for (base, _), row in zip(keys, rows, strict=True)]
            for (base, _), row in zip(keys, rows, strict=True):  # every sample's entry id
                if row.n > 1:
                    first = row.sample_group * stride
                    ids.extend(base ^ index for index in range(first + 1, first + row.n))
        return Lookup(keys, rows, self._reader.submit(self.cache.get, ids))

    def found(self, lookup: Lookup) -> dict[int, CachedSamples] | None:
        """By position in the lookup's rows, the samples stored for those that have any
        (waiting for the read if it is still going). None: the read failed, and the cache
        is off."""
        if lookup.reading is None:
            return {}
        try:
            stored = lookup.reading.result()
        except sqlite3.Error as exc:
            self._fail(exc)
            return None
        found: dict[int, CachedSamples] = {}
        if stored:
            stride = self.stride
            damaged = 0
            for position, ((base, seed), row) in enumerate(
                    zip(lookup.keys, lookup.rows, strict=True)):
                first = row.sample_group * stride
                samples = {}
                for offset in range(row.n):
                    entry = stored.get(base ^ (first + offset))
                    if entry is None:
                        continue
                    text, checksum = entry
                    if zlib.crc32(text.encode(), seed) == checksum:
                        # A list of its one response, as copied from a job store: unwrapped.
                        samples[offset] = text[1:-1] if text.startswith("[") else text
                    else:  # damaged, or another key's entry under the same id
                        damaged += 1
                if samples:
                    found[position] = CachedSamples((base, seed), first, row.n, samples)
            if damaged:
                log.warning("response cache %s: %d damaged entries ignored (asked again)",
                            self.cache.path, damaged)
        return found

    def add(self, key: CacheKey, index: int, response: str) -> None:
        """Queue one newly answered sample (its index within its row) for the next write."""
        if not self._off:
            base, seed = key
            self._queued += (base ^ index, response, zlib.crc32(response.encode(), seed))

    def keep(self, key: CacheKey, group: int, responses: list[dict[str, Any]],
             encode: Callable[[Any], str]) -> tuple[str, int | None, int | None]:
        """The stored responses of a request the cache held nothing for, with the entry id
        and checksum the store records for its one response (None: queued here instead, or
        the cache is off)."""
        first = group * self.stride
        if len(responses) == 1:  # the usual case: its entry is copied from the store
            encoded = encode(responses)
            if self._off:
                return encoded, None, None
            self._unfilled += 1
            base, seed = key
            # The entry is the stored list as it is (cache._FILL_SQL copies it).
            return encoded, base ^ first, zlib.crc32(encoded.encode(), seed)
        fresh = [encode(response) for response in responses]
        for offset, text in enumerate(fresh):
            self.add(key, first + offset, text)
        return "[" + ",".join(fresh) + "]", None, None

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

    def store_meta(self, finished: Sequence[FinishedRequest]) -> dict[str, Any] | None:
        """What the job store's next commit (of ``finished``) keeps of the answers not yet
        copied to the cache: meta ``cache_fill`` when where they begin moves, else None."""
        if self._off or not finished:
            return None
        lowest = min(map(_request_id, finished))
        span = self._span
        if span is None:  # taken before the commit: its answers are stamped later
            self._span = span = (time.time(), lowest)
        elif lowest < span[1]:  # a request read long ago (retried) finished now
            self._span = span = (span[0], lowest)
        else:
            return None
        self._spans = True
        flying = self._flying
        if flying is not None:  # a copy still running: its answers stay in the span recorded
            span = (min(span[0], flying[0]), min(span[1], flying[1]))
        return {"cache_fill": list(span)}

    def flush(self, *, now: bool = False) -> None:
        """Start copying the answers the store committed (and writing the queued entries) in
        one transaction on the copy thread, if enough wait or enough time has passed since
        the last write and no copy runs (``now``: whatever waits, once the running copy
        ends). Call it right after a store commit."""
        copying = self._copying
        if copying is not None:
            if not (now or copying.done()):
                return  # one copy at a time: what waits goes with the next
            self._copied(copying)
        if self._off or (self._span is None and not self._queued):
            return
        waiting = self._unfilled + len(self._queued) // 3
        written_at = self._written_at
        interval = max(_WRITE_INTERVAL_S, min(_WRITE_INTERVAL_MAX_S, written_at - self._started))
        if not now and waiting < max(_WRITE_EVERY, self.stored) and (
                time.monotonic() - written_at < interval):
            return
        queued, span = self._queued, self._span
        self._queued, self._span, self._unfilled = [], None, 0
        self._written_at = time.monotonic()
        self._flying = span
        self._copying = self._thread.submit(self._copier.fill, self.identity, self._writer,
                                            queued, span, self.model_id, time.time())

    def _copied(self, copying: Future[tuple[int, bool]]) -> None:
        """Take the result of a copy (waiting for it to end)."""
        self._copying = self._flying = None
        try:
            written, others = copying.result()
        except sqlite3.Error as exc:
            self._fail(exc)
            return
        self.stored += written
        if others:  # another run writes this identity's entries: they may hit from now on
            self.looking = True

    def close(self) -> bool:
        """Write what waits and close the file; whether the job store's meta ``cache_fill``
        was written and every answer it points to is now copied (it can be cleared)."""
        try:
            self.flush(now=True)
            if self._copying is not None:
                self._copied(self._copying)
        finally:
            self._reader.shutdown()  # a chunk read ahead of a job that stopped
            self._thread.shutdown()
            self._copier.close()
            self.cache.close()
        return self._spans and not self._off

    def _fail(self, exc: sqlite3.Error) -> None:
        self._off = True
        self._queued = []
        log.warning("response cache %s skipped for the rest of this run: %s (`promptmill "
                    "cache clear` starts a new one)", self.cache.path, exc)


_request_id = itemgetter(0)  # FinishedRequest.id, read in C
_payload = itemgetter(4)  # RequestRow.payload and a planned request's payload
_sample_group, _n, _base = itemgetter(2), itemgetter(3), itemgetter(0)  # read in C
_planned_key = itemgetter(7, 8)  # RequestRow.cache_key, cache_seed
_NOT_PLANNED = (None, None)


def identity_hasher(identity: Mapping[str, Any]) -> tuple[Any, int]:
    """The hasher every request key of a job identity starts as a copy of, and the
    identity's id (its digest's first 64 bits)."""
    # The identity's digest is the hasher's salt and personalization: unlike a key, they
    # cost no extra compression per hash.
    digest = hashlib.blake2b(identity_bytes(identity), digest_size=32).digest()
    return (hashlib.blake2b(digest_size=16, salt=digest[:16], person=digest[16:]),
            int.from_bytes(digest[:8], "little", signed=True))


def request_keys(hasher: Any, payloads: Iterable[str]) -> list[CacheKey]:
    """Each payload's key: 128 bits of BLAKE2b salted with the identity's digest, of which
    the first 96 are used. (Not SHA-256: OpenSSL 3 looks the algorithm up on every call,
    several times the cost of hashing a prompt.)"""
    return list(zip(*_key_columns(hasher, payloads), strict=True))


def _key_columns(hasher: Any, payloads: Iterable[str]) -> tuple[list[int], list[int]]:
    """The payloads' keys as two lists, bases and seeds: the digests joined and read as
    arrays in C (a ``struct`` unpack and its tuple a key cost planning 50 ns a row more)."""
    digests: list[bytes] = []
    copy, append = hasher.copy, digests.append
    for payload in payloads:
        one = copy()
        one.update(payload.encode())
        append(one.digest())
    if not _LITTLE_ENDIAN:  # the arrays read native order; keys are little-endian
        keys = [_KEY.unpack(digest) for digest in digests]
        return [base for base, _ in keys], [seed for _, seed in keys]
    joined = memoryview(b"".join(digests))
    return joined.cast("q")[::2].tolist(), joined.cast("I")[2::4].tolist()


_LITTLE_ENDIAN = sys.byteorder == "little"


class PlannedKeys:
    """Hashes the response cache key of each request planning stores, so dispatch reads it
    with the row instead of hashing it (the job's hot path)."""

    __slots__ = ("hasher", "identity")

    def __init__(self, hasher: Any, identity: int) -> None:
        self.hasher = hasher
        self.identity = identity  # kept in the store's meta ``cache_keys`` with the rows

    def columns(self, payloads: list[str]) -> tuple[list[int], list[int]]:
        """The keys of requests of these payloads as two columns, bases and seeds
        (``add_planned``'s two last request columns)."""
        return _key_columns(self.hasher, payloads)


def caches(spec: Any, params: Any) -> bool:
    """Whether a job of ``spec`` with these params uses the response cache: when asked, or
    by default for deterministic requests to a model whose weights the key can tell apart
    (not a model object wrapped from memory)."""
    if spec.cache != "auto":
        return bool(spec.cache == "on")
    return deterministic(params) and spec.generator.weights_stamp() is not None


def planned_keys(spec: Any, params: Any, store: JobStore) -> PlannedKeys | None:
    """What hashes the cache keys of the requests planning stores now, or None: the job does
    not use the cache, or rows were stored before without keys or under another identity
    (a fleet's endpoints changed), whose keys dispatch then hashes itself."""
    if not caches(spec, params):
        return None
    hasher, identity = identity_hasher(spec.cache_identity(params))
    stored = store.get_meta("cache_keys")
    if stored != identity and (stored is not None or int(store.get_meta("planned_rows") or 0)):
        return None
    return PlannedKeys(hasher, identity)


def deterministic(params: Any) -> bool:
    """Whether requests with these params answer the same each time (temperature 0 or a
    fixed seed): the ones cached without ``--cache``."""
    return params.temperature == 0 or params.seed is not None


def job_cache(spec: Any, params: Any, store: JobStore) -> JobCache | None:
    """The cache view a job's dispatch into ``store`` uses, or None (off, sampled without
    --cache, or the file unusable: then with a warning)."""
    if not caches(spec, params):
        return None
    cache = open_cache(spec.cache_path)
    if cache is None:
        return None
    generator = spec.generator
    stride = _MAX_N if generator.supports_n else 1
    unfilled = store.get_meta("cache_fill")
    try:
        return JobCache(cache, spec.cache_identity(params), f"{generator.provider}!"
                        f"{generator.model}", stride, store.path,
                        (float(unfilled[0]), int(unfilled[1])) if unfilled else None,
                        store.get_meta("cache_keys"))
    except (sqlite3.Error, CacheUnusable) as exc:
        cache.close()
        log.warning("response cache %s skipped: %s; the job runs without it", cache.path,
                    redact_secrets(str(exc)))
        return None


__all__ = [
    "CacheKey",
    "CachedSamples",
    "JobCache",
    "PlannedKeys",
    "caches",
    "deterministic",
    "identity_hasher",
    "job_cache",
    "marked_cached",
    "planned_keys",
    "request_keys",
]
