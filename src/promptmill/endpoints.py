"""What promptmill remembers of remote endpoints between jobs: whether their answers carry
rate-limit headers.

A remote job starts slowly: one request until its answer, whose headers may tell the
provider's limits before a whole concurrency's worth of requests goes out blind
(``engine/limiter.py``). An endpoint whose answers carried no limit headers (a vLLM or
llama.cpp server, most proxies, ``promptmill serve``, the test server) tells nothing that way:
for it the first answer only costs a round trip. So a job that finds such an answer in its
endpoint's record (same provider, model and endpoint, within ``MEMORY_S``) starts at full
concurrency; everything else it does is the same (a limit it meets is learned from refusals,
as after a slow start, and headers seen later are followed as ever). An endpoint whose answers
did carry headers is probed by every job: its limits may have moved since.

One small JSON file beside the response cache (``endpoints.json`` in the user cache
directory); a record holds the provider, model and endpoint without credentials (as the
response cache's keys do), never a key. Unreadable or unwritable: every job starts slowly, as
if the file were not there.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

# How long an endpoint's record is believed. A server restarted behind the same address with
# limits stated in headers is probed again after this at the latest (and a job that meets its
# headers rewrites the record at once).
MEMORY_S = 7 * 24 * 3600.0
# Records kept at most (the oldest go first): the file stays a few kilobytes.
_MAX_RECORDS = 256


def memory_path() -> Path:
    """``endpoints.json`` in the user cache directory (beside the response cache's file)."""
    from promptmill.cache import default_cache_path

    return default_cache_path().parent / "endpoints.json"


def endpoint_key(generator: Any) -> str | None:
    """A remote generator's record name (provider, model and endpoint without credentials);
    None for one with no endpoint (a local engine, a fleet)."""
    from promptmill.cache import endpoint_of

    endpoint = endpoint_of(generator)
    if endpoint is None or getattr(generator, "is_local", False):
        return None
    return f"{generator.provider}!{generator.model} {endpoint}"


def _read(path: Path) -> dict[str, Any]:
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return records if isinstance(records, dict) else {}


def answers_without_limit_headers(key: str | None, *, now: float | None = None) -> bool:
    """Whether the endpoint ``key`` names answered a recent job without limit headers."""
    if key is None:
        return False
    record = _read(memory_path()).get(key)
    if not isinstance(record, dict) or record.get("limit_headers") is not False:
        return False
    now = time.time() if now is None else now
    return 0 <= now - _seen(record) <= MEMORY_S


def remember(key: str | None, *, limit_headers: bool, now: float | None = None) -> None:
    """Record whether the endpoint ``key`` names answered with limit headers this job."""
    if key is None:
        return
    path = memory_path()
    records = _read(path)
    records[key] = {"limit_headers": limit_headers, "seen": time.time() if now is None else now}
    if len(records) > _MAX_RECORDS:
        newest = sorted(records.items(), key=lambda item: _seen(item[1]))[-_MAX_RECORDS:]
        records = dict(newest)
    # Written whole beside the old file and renamed over it: a reader sees one or the other.
    # Two jobs ending together may each drop the other's record: it is learned again.
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".endpoints-")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(records, out, sort_keys=True, indent=0)
            os.replace(temporary, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)


def _seen(record: object) -> float:
    seen = record.get("seen") if isinstance(record, dict) else None
    return float(seen) if isinstance(seen, (int, float)) else 0.0


__all__ = ["MEMORY_S", "answers_without_limit_headers", "endpoint_key", "memory_path",
           "remember"]
