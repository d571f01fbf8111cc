"""Helpers for the robustness suite (its fixtures are in conftest.py).

- ``store_state(path)``: what a job store holds, read without changing it, also while the
  child writing it runs or after it was killed.
- ``FAILPOINTS``: a ``sitecustomize.py`` that, put first on the child's PYTHONPATH, makes it
  pause for good inside a chosen store transaction or export, so a kill lands exactly there.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

# A fake key nobody would type by accident: the secrets suite looks for it everywhere.
CANARY_KEY = "sk-promptmill-SECRET-canary-1234567890"

FAILPOINTS = '''\
"""Failpoints for promptmill's crash suite (loaded as sitecustomize through PYTHONPATH).

PROMPTMILL_FAILPOINT=WHERE:N pauses the N-th time WHERE is reached, after writing
PROMPTMILL_FAILPOINT_MARK, for the test to kill the process right there:
  plan    inside JobStore.add_planned's transaction, its rows written, before COMMIT
  commit  inside JobStore.record's transaction, its results written, before COMMIT
  answers like commit, counting only the transactions that hold finished requests (a
          commit may hold only attempts or limiter events)
  export  halfway through writing the export's temporary file (at row
          PROMPTMILL_FAILPOINT_EXPORT_ROW, default 3000)
Batch API mode:
  upload  after an input file was uploaded, before its file id is recorded
  create  after a batch was created, before its batch id is recorded
  poll    after a batch was polled, before what it said is recorded
  record  inside the transaction recording a chunk of a batch's output lines, before COMMIT
The mark is JSON: {"where": WHERE, "visible": N}, N being what the process sees from inside
the paused transaction (plan: rows in the store; commit, answers: finished requests), or the
export's row. A store that shows fewer after the kill proves the kill landed inside that
transaction.
"""
import os

_SPEC = os.environ.get("PROMPTMILL_FAILPOINT")
if _SPEC:
    import contextlib
    import json
    import time

    _where, _, _nth = _SPEC.partition(":")
    _nth = int(_nth or 1)
    _seen = [0]

    def _hit(visible):
        _seen[0] += 1
        if _seen[0] == _nth:
            path = os.environ["PROMPTMILL_FAILPOINT_MARK"]
            with open(path + ".part", "w") as mark:
                mark.write(json.dumps({"where": _where, "visible": visible()}))
            os.replace(path + ".part", path)  # whole when it appears: the kill may come next
            time.sleep(120)  # the test kills the process here

    if _where in ("plan", "commit", "answers", "record"):
        from promptmill import store as _store

        _transaction = _store.JobStore.transaction
        _owner = _store.JobStore
        if _where == "record":
            from promptmill import batch_ledger

            _owner = batch_ledger.BatchLedger
        _method_name = {"plan": "add_planned", "commit": "record", "answers": "record",
                        "record": "record_lines"}[_where]
        _method = getattr(_owner, _method_name)
        _armed = [False]
        _visible = ("SELECT COUNT(*) FROM rows" if _where == "plan" else
                    "SELECT COUNT(*) FROM requests WHERE status != 'pending'")

        @contextlib.contextmanager
        def _paused_transaction(self):
            with _transaction(self) as db:
                yield db
                if _armed[0]:
                    _armed[0] = False
                    _hit(lambda: db.execute(_visible).fetchone()[0])

        def _armed_method(self, *args, **kwargs):
            _armed[0] = _where != "answers" or bool(args and len(args[0]))
            try:
                return _method(self, *args, **kwargs)
            finally:
                _armed[0] = False

        _store.JobStore.transaction = _paused_transaction
        setattr(_owner, _method_name, _armed_method)
    elif _where in ("upload", "create", "poll"):
        from promptmill import batch_api as _batch_api

        _call_name = {"upload": "upload", "create": "create_batch",
                      "poll": "retrieve_batch"}[_where]
        _call = getattr(_batch_api.BatchAPI, _call_name)

        async def _paused_call(self, *args, **kwargs):
            answer = await _call(self, *args, **kwargs)
            _hit(lambda: None)  # the remote call is done, its answer not yet recorded
            return answer

        setattr(_batch_api.BatchAPI, _call_name, _paused_call)
    elif _where == "export":
        from promptmill import data as _data

        _export_row = int(os.environ.get("PROMPTMILL_FAILPOINT_EXPORT_ROW", "3000"))

        _write_rows = _data.write_rows

        def _paused_write_rows(rows, path, fmt, **options):
            def rows_then_pause():
                for index, row in enumerate(rows):
                    if index == _export_row:  # JSONL goes out in blocks of 64K chars: some on disk
                        _hit(lambda: index)
                    yield row
            return _write_rows(rows_then_pause(), path, fmt, **options)

        _data.write_rows = _paused_write_rows
'''


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a promptmill child: no OpenAI settings inherited from ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI")}
    env.pop("PROMPTMILL_FAILPOINT", None)
    env.update(extra)
    return env


def cli_command(*args: str | Path) -> list[str]:
    """``python -m promptmill ARGS``."""
    return [sys.executable, "-m", "promptmill", *map(str, args)]


def failpoint_env(folder: Path, where: str, nth: int, mark: Path) -> dict[str, str]:
    """A child environment that pauses at the ``nth`` ``where`` (see FAILPOINTS)."""
    path = os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))
    return clean_env(PYTHONPATH=path, PROMPTMILL_FAILPOINT=f"{where}:{nth}",
                     PROMPTMILL_FAILPOINT_MARK=str(mark))


def wait_for(condition: Callable[[], Any], timeout: float = 60, interval: float = 0.005,
             process: subprocess.Popen[str] | None = None) -> Any:
    """Poll until ``condition()`` is truthy (returned); fail on timeout or if ``process`` ends."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            return None
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {condition}")
        time.sleep(interval)


def batch_steps(path: Path) -> list[tuple[int, str, str | None, str | None]]:
    """A job store's batches: (number, step, file id, batch id), read without changing it."""
    if not path.exists():
        return []
    db = _read_only(path)
    try:
        return [tuple(row) for row in db.execute(  # type: ignore[misc]
            "SELECT id, step, file_id, batch_id FROM batches ORDER BY id")]
    except sqlite3.Error:
        return []
    finally:
        db.close()


@dataclass
class StoreState:
    """What a job store holds: counts, and every finished request's stored outcome."""

    rows: int = 0
    planned_rows: int = 0
    planned_complete: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    finished: dict[int, tuple[str, int, str | None, str | None]] = field(default_factory=dict)
    integrity: str = "missing"

    @property
    def done(self) -> int:
        return self.counts.get("done", 0)

    @property
    def requests(self) -> int:
        return sum(self.counts.values())


def _read_only(path: Path) -> sqlite3.Connection:
    # Read-only: closing it must not checkpoint the WAL of a store a killed child left behind.
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)


def store_state(path: Path, *, outcomes: bool = True) -> StoreState:
    """Read a job store without changing it (safe while its writer runs)."""
    if not path.exists():
        return StoreState()
    db = _read_only(path)
    try:
        if not db.execute("SELECT name FROM sqlite_master WHERE name = 'requests'").fetchone():
            return StoreState(integrity="empty")
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        state = StoreState(
            rows=db.execute("SELECT COUNT(*) FROM rows").fetchone()[0],
            planned_rows=json.loads(meta.get("planned_rows", "0")),
            planned_complete=bool(json.loads(meta.get("planned_complete", "false"))),
            counts=dict(db.execute("SELECT status, COUNT(*) FROM requests GROUP BY status")),
            integrity=db.execute("PRAGMA integrity_check").fetchone()[0],
        )
        if outcomes:
            state.finished = {
                row[0]: row[1:]
                for row in db.execute("SELECT id, status, attempts, responses, error "
                                      "FROM requests WHERE status != 'pending'")
            }
        return state
    finally:
        db.close()


def done_count(path: Path) -> int:
    """Requests done in a store (0 while it does not exist yet)."""
    if not path.exists():
        return 0
    try:
        db = _read_only(path)
        try:
            row = db.execute("SELECT COUNT(*) FROM requests WHERE status = 'done'").fetchone()
        finally:
            db.close()
    except sqlite3.Error:  # not created yet, or its schema not yet committed
        return 0
    return int(row[0])


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write rows as JSONL."""
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read JSONL rows."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@contextlib.contextmanager
def serve_app(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
              ) -> Iterator[str]:
    """Serve one aiohttp handler for every path, in a background thread; yield its base URL.

    For servers the promptmill test server is not meant to imitate: a web page where an API
    should be, a backend with its own error format.
    """
    started: concurrent.futures.Future[tuple[asyncio.AbstractEventLoop, asyncio.Event, int]] = (
        concurrent.futures.Future())

    async def serve() -> None:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        stop = asyncio.Event()
        started.set_result((asyncio.get_running_loop(), stop, port))
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    loop, stop, port = started.result(timeout=30)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)
