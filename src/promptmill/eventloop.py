"""The event loop promptmill runs its own jobs on: uvloop where it installs, else asyncio's.

uvloop is a plain dependency on Linux and macOS (not an option a user must find): where the
client's CPU is what limits a job (a fast local server, answers mostly from the cache) its
loop spends about a third fewer instructions a request than asyncio's
(``docs/benchmarks.md``). Only the loops promptmill starts itself use it: a coroutine a user
awaits (``await promptmill.arun(...)`` in a notebook) runs on the user's own loop, whatever
that is. ``PROMPTMILL_EVENT_LOOP=asyncio`` keeps asyncio's loop (to compare, or to debug).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

_T = TypeVar("_T")


def uses_uvloop() -> bool:
    """Whether the loops promptmill starts are uvloop's (it imports, and is not turned off)."""
    if os.environ.get("PROMPTMILL_EVENT_LOOP", "").lower() == "asyncio":
        return False
    try:
        import uvloop  # noqa: F401
    except ImportError:  # Windows, or an install without it: asyncio's loop does the job
        return False
    return True


def run(coro: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run(coro)`` on uvloop where it is available (no loop may run in this thread)."""
    if not uses_uvloop():
        return asyncio.run(coro)
    import uvloop

    # asyncio.Runner with uvloop's loop on 3.11+, its own copy of asyncio.run on 3.10.
    return uvloop.run(coro)


def run_async(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine from sync code, also where an event loop already runs in this thread
    (a notebook's): then on a loop of its own in a worker thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run(coro)
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run, coro).result()
