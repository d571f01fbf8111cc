"""``promptmill view``: a local results browser served from the job store with aiohttp.

The page (``static/view.*``) is static; it asks a small JSON API for what it shows and
builds every element with ``textContent``, so text from the store is never parsed as HTML.
A Content-Security-Policy allows only the page's own script, and requests must name this
server as their ``Host`` (a page elsewhere cannot read the results by DNS rebinding).

Reads run on worker threads, one SQLite connection per lane: the list, the match count,
single rows, a row's attempts and the category scan. A new request for the list, the count
or attempts interrupts the one before it on its lane, so a search typed quickly never
queues behind the scans of its prefixes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from promptmill.redaction import redact_secrets
from promptmill.report import queries
from promptmill.report.accuracy import RowExtractions, extract_row, read_extractions
from promptmill.store import JobStore

_T = TypeVar("_T")
_STATIC = {"view.js": "text/javascript", "view.css": "text/css", "view.html": "text/html"}
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass
class _Lane:
    """One SQLite connection and the single thread that uses it."""

    db: sqlite3.Connection
    pool: concurrent.futures.ThreadPoolExecutor = field(
        default_factory=lambda: concurrent.futures.ThreadPoolExecutor(max_workers=1))
    running: int = 0  # queries started and not finished


class ResultsBrowser:
    """The browser's state for one job store: its connections and extractions."""

    def __init__(self, store_path: Path, label: str, extractions: Path | None = None) -> None:
        self.label = redact_secrets(label)
        with JobStore(store_path, lock=False) as store:  # brings an old store's schema up
            fingerprint = store.get_meta("fingerprint") or {}
            self.model = redact_secrets(str(store.get_meta("model_identifier")
                                            or fingerprint.get("model", "?")))
            self.k = int(fingerprint.get("k") or 1)
        self.grades: dict[int, RowExtractions] = (
            read_extractions(extractions) if extractions is not None else {})
        self._lanes = {name: _Lane(queries.connect(store_path))
                       for name in ("list", "count", "row", "attempts", "facets")}
        for name in ("list", "count"):
            queries.load_grades(self._lanes[name].db, self.grades)
        self.groups = queries.groups_per_row(self._lanes["row"].db)

    def close(self) -> None:
        """Close the connections and threads."""
        for lane in self._lanes.values():
            lane.pool.shutdown(wait=False, cancel_futures=True)
            lane.db.interrupt()
            lane.db.close()

    async def _read(self, lane_name: str, read: Callable[..., _T], *args: Any,
                    interrupt: bool = False) -> _T:
        lane = self._lanes[lane_name]
        if interrupt and lane.running:
            lane.db.interrupt()  # what runs now was asked for by a request now outdated
        lane.running += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(
                lane.pool, read, lane.db, *args)
        finally:
            lane.running -= 1

    # -- handlers ------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.StreamResponse:
        """The page itself."""
        return self._static("view.html")

    async def static(self, request: web.Request) -> web.StreamResponse:
        """The page's script and style sheet."""
        name = request.match_info["name"]
        if name not in _STATIC or name == "view.html":
            raise web.HTTPNotFound()
        return self._static(name)

    def _static(self, name: str) -> web.Response:
        body = resources.files("promptmill.report").joinpath(f"static/{name}").read_bytes()
        return web.Response(body=body, content_type=_STATIC[name], charset="utf-8",
                            headers=_HEADERS)

    async def job(self, request: web.Request) -> web.StreamResponse:
        """What the page's header shows: the job, counts by status, error kinds."""
        def read(db: sqlite3.Connection) -> dict[str, Any]:
            counts = dict(db.execute("SELECT status, COUNT(*) FROM requests GROUP BY status"))
            done, failed = counts.pop("done", 0), counts.pop("failed", 0)
            return {"output": self.label, "model": self.model, "k": self.k,
                    "rows": queries.count_matches(db, queries.Filters(), False),
                    "requests": {"done": done, "failed": failed,
                                 "pending": sum(counts.values())},
                    "kinds": queries.error_kinds(db), "graded": bool(self.grades)}
        return _json(await self._read("row", read))

    async def facets(self, request: web.Request) -> web.StreamResponse:
        """The rows' categories (a scan: the page asks after its first rows are drawn)."""
        return _json({"categories": await self._read("facets", _categories)})

    async def rows(self, request: web.Request) -> web.StreamResponse:
        """One page of rows matching the filters, after row ``after``."""
        filters = queries.Filters.from_query(request.query)
        after = _int(request.query.get("after"), -1)
        graded = bool(self.grades)

        def read(db: sqlite3.Connection) -> dict[str, Any]:
            indexes, more = queries.page_indexes(db, filters, after, graded, self.groups)
            return {"rows": queries.page_rows(db, indexes, self.grades), "more": more,
                    "graded": graded}
        try:
            return _json(await self._read("list", read, interrupt=True))
        except sqlite3.OperationalError as exc:
            return _interrupted(exc)

    async def count(self, request: web.Request) -> web.StreamResponse:
        """How many rows match the filters."""
        filters = queries.Filters.from_query(request.query)
        try:
            found = await self._read("count", queries.count_matches, filters,
                                     bool(self.grades), self.groups, interrupt=True)
        except sqlite3.OperationalError as exc:
            return _interrupted(exc)
        return _json({"count": found})

    async def row(self, request: web.Request) -> web.StreamResponse:
        """One row in full, with its responses' extracted answers."""
        index = _int(request.match_info["index"], -1)
        detail = await self._read("row", queries.row_detail, index)
        if detail is None:
            raise web.HTTPNotFound(text=f"no row {index + 1} in this job")
        results_row = detail.pop("results_row")
        grade = self.grades.get(index)
        if grade is None:
            grade = await self._read("row", lambda db: extract_row(results_row))
        detail["extractions"] = None if grade is None else [
            {"answer": None if answer is None else redact_secrets(answer), "correct": correct,
             "method": method} for answer, correct, method in grade.answers]
        return _json(detail)

    async def attempts(self, request: web.Request) -> web.StreamResponse:
        """Every attempt of one row (a scan of the attempts: asked for after the row)."""
        index = _int(request.match_info["index"], -1)
        try:
            found = await self._read("attempts", queries.row_attempts, index, interrupt=True)
        except sqlite3.OperationalError as exc:
            return _interrupted(exc)
        return _json({"attempts": found})


def _categories(db: sqlite3.Connection) -> list[str]:
    return queries.categories(db)


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def _json(value: Any) -> web.Response:
    return web.json_response(value, headers=_HEADERS)


def _interrupted(exc: sqlite3.OperationalError) -> web.Response:
    if "interrupt" not in str(exc):
        raise exc
    return _json({"interrupted": True})


def make_app(browser: ResultsBrowser, allowed_hosts: set[str]) -> web.Application:
    """The aiohttp application serving ``browser``; requests must name an allowed Host
    (an empty set: any, for a server bound to a public address on purpose)."""

    @web.middleware
    async def host_check(request: web.Request, handler: Any) -> web.StreamResponse:
        if allowed_hosts and request.host not in allowed_hosts:
            raise web.HTTPMisdirectedRequest(text="unknown Host: open the address "
                                                  "promptmill view printed")
        response: web.StreamResponse = await handler(request)
        return response

    app = web.Application(middlewares=[host_check])
    app.router.add_get("/", browser.index)
    app.router.add_get("/static/{name}", browser.static)
    app.router.add_get("/api/job", browser.job)
    app.router.add_get("/api/facets", browser.facets)
    app.router.add_get("/api/rows", browser.rows)
    app.router.add_get("/api/count", browser.count)
    app.router.add_get("/api/row/{index}", browser.row)
    app.router.add_get("/api/row/{index}/attempts", browser.attempts)
    return app


async def serve(browser: ResultsBrowser, host: str, port: int,
                on_ready: Callable[[str], None]) -> None:
    """Serve until cancelled; ``on_ready`` gets the URL once the socket listens."""
    import socket

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    loopback = host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")
    hosts = {f"{shown}:{port}", f"localhost:{port}"} if loopback else set()
    runner = web.AppRunner(make_app(browser, hosts), access_log=None)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        on_ready(f"http://{shown}:{port}/")
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
