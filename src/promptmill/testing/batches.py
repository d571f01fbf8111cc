"""OpenAI's Batch API on the test server: ``/v1/files`` and ``/v1/batches``, with faults.

Files (upload as multipart, list, retrieve, content, delete) are kept on disk, never whole in
memory. A batch follows OpenAI's state machine: ``validating`` (every input line checked:
JSON, ``custom_id`` unique, ``method`` POST, ``url`` the batch's endpoint, one model), then
``in_progress`` (lines answered a chunk at a time, in no particular order, exactly as the
online endpoints would answer them; ``request_counts`` grow as it goes), ``finalizing``,
``completed``; or ``failed`` (validation), ``expired`` (answered lines in the output file, the
rest in the error file as ``batch_expired``), ``cancelling`` then ``cancelled`` (answered
lines kept). Each state lasts at least its time in :class:`BatchTimings`.

Faults (:class:`BatchFaults`, drawn from a seeded stream): lines answered with a 500 in the
error file, batches expiring partway, batches failing validation, uploads refused with 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web

from promptmill.batch_files import output_line

__all__ = ["BatchFaults", "BatchService", "BatchTimings"]

Answer = Callable[[str, dict[str, Any]], tuple[int, dict[str, Any]]]
"""Answers one request line: (endpoint path, body) -> (HTTP status, response body)."""

ENDPOINTS = ("/v1/chat/completions", "/v1/completions")
PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
WINDOW_SECONDS = 24 * 3600
_CHUNK = 500  # lines answered between two yields to the event loop
_JSON = "application/json"


@dataclass(frozen=True)
class BatchTimings:
    """Seconds each state lasts at least (answering the lines may take longer)."""

    validating: float = 0.0
    in_progress: float = 0.0
    finalizing: float = 0.0
    cancelling: float = 0.0

    def __post_init__(self) -> None:
        for field in fields(self):
            if getattr(self, field.name) < 0:
                raise ValueError(f"batch {field.name} time must be >= 0 seconds")


@dataclass(frozen=True)
class BatchFaults:
    """Probabilities of injected Batch API faults, drawn from ``random.Random(seed)``.

    - ``line_error``: per line, a 500 ``server_error`` in the error file instead of an answer.
    - ``expire``: per batch, it expires after answering ``expire_after`` of its lines;
      ``expire_batches`` names batches that always do (1: the first batch created).
    - ``fail_validation``: per batch, it fails validation (``token_limit_exceeded``).
    - ``upload_error``: per upload, a 500 (nothing stored).
    """

    line_error: float = 0.0
    expire: float = 0.0
    expire_after: float = 0.5
    expire_batches: tuple[int, ...] = ()
    fail_validation: float = 0.0
    upload_error: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("line_error", "expire", "expire_after", "fail_validation", "upload_error"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"batch fault {name} must be within 0..1")


def _error(status: int, message: str, param: str | None = None,
           kind: str = "invalid_request_error") -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": param, "code": None}}
    return web.Response(status=status, body=json.dumps(body).encode(), content_type=_JSON)


def _ok(data: dict[str, Any]) -> web.Response:
    return web.Response(body=json.dumps(data).encode(), content_type=_JSON)


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


class BatchService:
    """The files and batches of one test server (``TestServer.batch_service``)."""

    def __init__(self, answer: Answer, *, folder: Path | None = None,
                 timings: BatchTimings | None = None, faults: BatchFaults | None = None,
                 max_requests: int = 50_000, max_bytes: int = 200 * 1024 * 1024) -> None:
        self.answer = answer
        self.timings = timings or BatchTimings()
        self.faults = faults or BatchFaults()  # may be replaced between batches by a test
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self.files: dict[str, dict[str, Any]] = {}  # file id -> file object, oldest first
        self.batches: dict[str, dict[str, Any]] = {}  # batch id -> batch object, oldest first
        self.lines_answered: dict[str, int] = {}  # batch id -> lines it answered with 200
        self.counts: dict[str, int] = {"uploads": 0, "upload_errors": 0, "batches": 0}
        self._own_folder: tempfile.TemporaryDirectory[str] | None = None
        if folder is None:
            self._own_folder = tempfile.TemporaryDirectory(prefix="promptmill-test-files-")
            folder = Path(self._own_folder.name)
        self.folder = Path(folder)
        self._random = random.Random(self.faults.seed)  # draws in arrival order
        self._cancel: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.received: Callable[[str], None] = lambda route: None  # counts requests

    def routes(self) -> list[web.RouteDef]:
        """The endpoints, for the server's route table."""
        return [
            web.post("/v1/files", self._upload),
            web.get("/v1/files", self._list_files),
            web.get("/v1/files/{file_id}", self._retrieve_file),
            web.delete("/v1/files/{file_id}", self._delete_file),
            web.get("/v1/files/{file_id}/content", self._file_content),
            web.post("/v1/batches", self._create),
            web.get("/v1/batches", self._list_batches),
            web.get("/v1/batches/{batch_id}", self._retrieve),
            web.post("/v1/batches/{batch_id}/cancel", self._cancel_batch),
        ]

    async def close(self) -> None:
        """Stop every batch being processed and delete the files."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._own_folder is not None:
            self._own_folder.cleanup()

    # -- files ----------------------------------------------------------------------------

    def path_of(self, file_id: str) -> Path:
        """Where a file's content is kept."""
        return self.folder / file_id

    def _add_file(self, file_id: str, filename: str, purpose: str, size: int) -> dict[str, Any]:
        item = {"id": file_id, "object": "file", "bytes": size, "created_at": int(time.time()),
                "expires_at": None, "filename": filename, "purpose": purpose,
                "status": "processed", "status_details": None}
        self.files[file_id] = item
        return item

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        self.received("POST /v1/files")
        if not request.content_type.startswith("multipart/"):
            return _error(400, "The request must be multipart/form-data with 'purpose' and "
                               "'file' fields.")
        file_id = _new_id("file-")
        path = self.path_of(file_id)
        purpose: str | None = None
        filename: str | None = None
        size = 0
        try:
            async for part in await request.multipart():
                if not isinstance(part, BodyPartReader) or part.name is None:
                    continue
                if part.name == "purpose":
                    purpose = (await part.text()).strip()
                elif part.name == "file":
                    filename = part.filename or "upload"
                    with open(path, "wb") as handle:
                        while block := await part.read_chunk(1 << 16):
                            size += len(block)
                            handle.write(block)
            error = self._check_upload(purpose, filename, size)
            if error is None and self._random.random() < self.faults.upload_error:
                self.counts["upload_errors"] += 1
                error = _error(500, "The server had an error processing your upload (injected "
                                    "by the promptmill test server).", kind="server_error")
            if error is not None:
                path.unlink(missing_ok=True)
                return error
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        assert purpose is not None and filename is not None
        self.counts["uploads"] += 1
        return _ok(self._add_file(file_id, filename, purpose, size))

    def _check_upload(self, purpose: str | None, filename: str | None,
                      size: int) -> web.Response | None:
        if purpose is None:
            return _error(400, "Missing required parameter: 'purpose'.", "purpose")
        if purpose not in PURPOSES:
            return _error(400, f"'{purpose}' is not one of {list(PURPOSES)} - 'purpose'",
                          "purpose")
        if filename is None:
            return _error(400, "Missing required parameter: 'file'.", "file")
        if purpose == "batch" and not filename.endswith(".jsonl"):
            return _error(400, "Invalid file format for Batch API. Must be .jsonl", "file")
        if size > self.max_bytes:
            return _error(400, f"File is too large: {size} bytes; the maximum for purpose "
                               f"'{purpose}' is {self.max_bytes} bytes.", "file")
        return None

    def _file(self, request: web.Request) -> dict[str, Any] | web.Response:
        return _lookup(self.files, request.match_info["file_id"], "No such File object: {}",
                       "id")

    async def _list_files(self, request: web.Request) -> web.StreamResponse:
        self.received("GET /v1/files")
        purpose = request.query.get("purpose")
        items = [f for f in self.files.values() if purpose in (None, f["purpose"])]
        if request.query.get("order", "desc") == "desc":
            items.reverse()
        return self._page(request, items, 10_000)

    async def _retrieve_file(self, request: web.Request) -> web.StreamResponse:
        self.received("GET /v1/files/{id}")
        item = self._file(request)
        return item if isinstance(item, web.Response) else _ok(item)

    async def _delete_file(self, request: web.Request) -> web.StreamResponse:
        self.received("DELETE /v1/files/{id}")
        item = self._file(request)
        if isinstance(item, web.Response):
            return item
        del self.files[item["id"]]
        self.path_of(item["id"]).unlink(missing_ok=True)
        return _ok({"id": item["id"], "object": "file", "deleted": True})

    async def _file_content(self, request: web.Request) -> web.StreamResponse:
        self.received("GET /v1/files/{id}/content")
        item = self._file(request)
        if isinstance(item, web.Response):
            return item
        return web.FileResponse(self.path_of(item["id"]),
                                headers={"Content-Type": "application/octet-stream"})

    # -- batches --------------------------------------------------------------------------

    async def _create(self, request: web.Request) -> web.StreamResponse:
        self.received("POST /v1/batches")
        try:
            body = json.loads(await request.read())
        except ValueError:
            return _error(400, "We could not parse the JSON body of your request.")
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object.")
        file_id = body.get("input_file_id")
        item = self.files.get(file_id) if isinstance(file_id, str) else None
        if item is None:
            return _error(400 if file_id is None else 404,
                          f"No such File object: {file_id}" if file_id else
                          "Missing required parameter: 'input_file_id'.", "input_file_id")
        if item["purpose"] != "batch":
            return _error(400, f"File {file_id} has purpose '{item['purpose']}': a batch's "
                               "input file must have purpose 'batch'.", "input_file_id")
        endpoint = body.get("endpoint")
        if endpoint not in ENDPOINTS:
            return _error(400, f"Invalid 'endpoint': {endpoint!r}; the test server supports "
                               f"{', '.join(ENDPOINTS)}.", "endpoint")
        if body.get("completion_window") != "24h":
            return _error(400, "Invalid 'completion_window': only '24h' is supported.",
                          "completion_window")
        metadata = body.get("metadata")
        if metadata is not None and not _valid_metadata(metadata):
            return _error(400, "Invalid 'metadata': at most 16 pairs of strings, keys up to 64 "
                               "characters, values up to 512.", "metadata")
        now = int(time.time())
        batch: dict[str, Any] = {
            "id": _new_id("batch_"), "object": "batch", "endpoint": endpoint, "errors": None,
            "input_file_id": file_id, "completion_window": "24h", "status": "validating",
            "output_file_id": None, "error_file_id": None, "created_at": now,
            "in_progress_at": None, "expires_at": now + WINDOW_SECONDS, "finalizing_at": None,
            "completed_at": None, "failed_at": None, "expired_at": None, "cancelling_at": None,
            "cancelled_at": None, "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": metadata, "model": None,
            "usage": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0,
                      "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens_details": {"reasoning_tokens": 0}},
        }
        self.batches[batch["id"]] = batch
        self.counts["batches"] += 1
        self._cancel[batch["id"]] = asyncio.Event()
        task = asyncio.get_running_loop().create_task(self._process(batch,
                                                                    self.counts["batches"]))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return _ok(batch)

    def _batch(self, request: web.Request) -> dict[str, Any] | web.Response:
        return _lookup(self.batches, request.match_info["batch_id"],
                       "No batch found with id '{}'.", "batch_id")

    async def _retrieve(self, request: web.Request) -> web.StreamResponse:
        self.received("GET /v1/batches/{id}")
        batch = self._batch(request)
        return batch if isinstance(batch, web.Response) else _ok(batch)

    async def _list_batches(self, request: web.Request) -> web.StreamResponse:
        self.received("GET /v1/batches")
        return self._page(request, list(reversed(self.batches.values())), 100)

    async def _cancel_batch(self, request: web.Request) -> web.StreamResponse:
        self.received("POST /v1/batches/{id}/cancel")
        batch = self._batch(request)
        if isinstance(batch, web.Response):
            return batch
        if batch["status"] not in ("validating", "in_progress", "cancelling"):
            return _error(409, f"Cannot cancel a batch with status '{batch['status']}'.")
        if batch["status"] != "cancelling":
            batch["status"] = "cancelling"
            batch["cancelling_at"] = int(time.time())
            self._cancel[batch["id"]].set()
        return _ok(batch)

    def _page(self, request: web.Request, items: list[dict[str, Any]],
              most: int) -> web.Response:
        """OpenAI's cursor page: ``limit`` items after the one named ``after``."""
        try:
            limit = int(request.query.get("limit", "20"))
        except ValueError:
            return _error(400, "Invalid 'limit': it must be an integer.", "limit")
        if not 1 <= limit <= most:
            return _error(400, f"Invalid 'limit': {limit}; it must be between 1 and {most}.",
                          "limit")
        after = request.query.get("after")
        if after is not None:
            ids = [item["id"] for item in items]
            items = items[ids.index(after) + 1:] if after in ids else []
        page = items[:limit]
        return _ok({"object": "list", "data": page,
                    "first_id": page[0]["id"] if page else None,
                    "last_id": page[-1]["id"] if page else None,
                    "has_more": len(items) > limit})

    # -- processing -----------------------------------------------------------------------

    async def _process(self, batch: dict[str, Any], number: int) -> None:
        """Take the ``number``-th batch through its states, answering its lines."""
        cancel = self._cancel[batch["id"]]
        timings, faults = self.timings, self.faults
        expire = self._random.random() < faults.expire or number in faults.expire_batches
        fail = self._random.random() < faults.fail_validation
        await _wait(cancel, timings.validating)
        if not cancel.is_set():
            errors = self._validate(batch)
            if not errors and fail:
                errors = [{"code": "token_limit_exceeded", "line": None, "param": None,
                           "message": f"Enqueued token limit reached for {batch['model']} "
                                      "(injected by the promptmill test server)."}]
            if errors:
                batch.update(status="failed", failed_at=int(time.time()),
                             errors={"object": "list", "data": errors})
                return
            batch.update(status="in_progress", in_progress_at=int(time.time()))
        else:
            await asyncio.sleep(timings.cancelling)
            self._finish(batch, "cancelled", 0, None)
            return
        started = time.monotonic()
        answered = await self._answer_lines(batch, cancel, expire)
        if cancel.is_set():
            await asyncio.sleep(timings.cancelling)
            self._finish(batch, "cancelled", answered, None)
            return
        if expire:
            self._finish(batch, "expired", answered, "batch_expired")
            return
        await _wait(cancel, timings.in_progress - (time.monotonic() - started))
        batch.update(status="finalizing", finalizing_at=int(time.time()))
        await asyncio.sleep(timings.finalizing)
        self._finish(batch, "completed", answered, None)

    def _validate(self, batch: dict[str, Any]) -> list[dict[str, Any]]:
        """OpenAI's checks of every input line; their errors (empty: valid)."""
        errors: list[dict[str, Any]] = []
        seen: set[str] = set()
        models: set[str] = set()
        count = 0

        def error(code: str, message: str, line: int, param: str | None = None) -> None:
            if len(errors) < 100:
                errors.append({"code": code, "message": message, "param": param, "line": line})

        with open(self.path_of(batch["input_file_id"]), "rb") as handle:
            for number, raw in enumerate(handle, 1):
                if not raw.strip():
                    continue
                count += 1
                try:
                    line = json.loads(raw)
                    if not isinstance(line, dict):
                        raise ValueError
                except ValueError:
                    error("invalid_json_line", "This line is not parseable as valid JSON.",
                          number)
                    continue
                custom = line.get("custom_id")
                body = line.get("body")
                if not isinstance(custom, str) or not custom:
                    error("missing_required_parameter", "Missing 'custom_id'.", number,
                          "custom_id")
                elif custom in seen:
                    error("duplicate_custom_id", f"The custom_id '{custom}' is used more than "
                          "once in this file.", number, "custom_id")
                else:
                    seen.add(custom)
                if line.get("method") != "POST":
                    error("invalid_method", "Only the POST method is supported.", number,
                          "method")
                if line.get("url") != batch["endpoint"]:
                    error("invalid_url", f"The url {line.get('url')!r} does not match the "
                          f"batch's endpoint {batch['endpoint']}.", number, "url")
                if not isinstance(body, dict) or not isinstance(body.get("model"), str):
                    error("missing_required_parameter", "Missing 'body.model'.", number, "body")
                else:
                    models.add(body["model"])
        if count == 0:
            error("empty_file", "The input file has no requests.", 0)
        if count > self.max_requests:
            error("too_many_requests", f"The input file has {count} requests; at most "
                  f"{self.max_requests} are allowed per batch.", count)
        if len(models) > 1:
            error("mismatched_model", "Every request of a batch must use the same model; "
                  f"found {sorted(models)[:3]}.", 0, "body.model")
        batch["model"] = min(models) if models else None
        batch["request_counts"]["total"] = count if not errors else 0
        return errors

    async def _answer_lines(self, batch: dict[str, Any], cancel: asyncio.Event,
                            expire: bool) -> int:
        """Answer lines into the batch's output and error files; how many were answered.

        A cancel stops between chunks (what is left is never answered); an expiring batch
        stops after ``expire_after`` of its lines and lists the rest as ``batch_expired``.
        """
        total = batch["request_counts"]["total"]
        room = int(total * self.faults.expire_after) if expire else total
        output = self.folder / f"{batch['id']}.output.jsonl"
        errors = self.folder / f"{batch['id']}.errors.jsonl"
        answered = 0
        chunk: list[bytes] = []
        with open(self.path_of(batch["input_file_id"]), "rb") as source, \
                open(output, "wb") as out, open(errors, "wb") as err:
            for raw in source:
                if not raw.strip():
                    continue
                if answered + len(chunk) >= room:  # expired: never run
                    err.write(_output_line(json.loads(raw)["custom_id"], None, {
                        "code": "batch_expired", "message": "This request could not be "
                        "executed before the completion window expired."}))
                    continue
                chunk.append(raw)
                if len(chunk) >= _CHUNK:
                    answered += self._answer_chunk(batch, chunk, out, err)
                    chunk = []
                    await asyncio.sleep(0)
                    if cancel.is_set():
                        return answered
            answered += self._answer_chunk(batch, chunk, out, err)
        return answered

    def _answer_chunk(self, batch: dict[str, Any], chunk: list[bytes], out: Any,
                      err: Any) -> int:
        # Output lines come in no particular order: shuffled within each chunk.
        order = list(range(len(chunk)))
        self._random.shuffle(order)
        counts, usage = batch["request_counts"], batch["usage"]
        for index in order:
            line = json.loads(chunk[index])
            if self._random.random() < self.faults.line_error:
                status, body = 500, {"error": {
                    "message": "The server had an error while processing your request "
                               "(injected by the promptmill test server).",
                    "type": "server_error", "param": None, "code": None}}
            else:
                status, body = self.answer(batch["endpoint"], line["body"])
            response = {"status_code": status, "request_id": _new_id("req_"), "body": body}
            if status == 200:
                out.write(_output_line(line["custom_id"], response, None))
                counts["completed"] += 1
                self.lines_answered[batch["id"]] = self.lines_answered.get(batch["id"], 0) + 1
                tokens = body.get("usage") or {}
                usage["input_tokens"] += tokens.get("prompt_tokens", 0)
                usage["output_tokens"] += tokens.get("completion_tokens", 0)
                usage["total_tokens"] += tokens.get("total_tokens", 0)
            else:
                err.write(_output_line(line["custom_id"], response, None))
                counts["failed"] += 1
        return len(chunk)

    def _finish(self, batch: dict[str, Any], status: str, answered: int,
                missing_code: str | None) -> None:
        """The terminal state, with the output and error files it produced."""
        now = int(time.time())
        for kind, field in (("output", "output_file_id"), ("errors", "error_file_id")):
            path = self.folder / f"{batch['id']}.{kind}.jsonl"
            size = path.stat().st_size if path.exists() else 0
            if size:
                file_id = _new_id("file-")
                path.rename(self.path_of(file_id))
                self._add_file(file_id, f"{batch['id']}_{kind}.jsonl", "batch_output", size)
                batch[field] = file_id
            else:
                path.unlink(missing_ok=True)
        if missing_code is not None:
            counts = batch["request_counts"]
            counts["failed"] = counts["total"] - counts["completed"]
        batch.update(status=status, **{f"{status}_at": now})


def _lookup(table: dict[str, dict[str, Any]], key: str, missing: str,
            param: str) -> dict[str, Any] | web.Response:
    """The object under ``key``, or OpenAI's 404 naming it."""
    item = table.get(key)
    return item if item is not None else _error(404, missing.format(key), param)


async def _wait(event: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``event`` is set."""
    if seconds > 0:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)


def _valid_metadata(metadata: object) -> bool:
    return isinstance(metadata, dict) and len(metadata) <= 16 and all(
        isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 512
        for k, v in metadata.items())


def _output_line(custom: str, response: dict[str, Any] | None,
                 error: dict[str, Any] | None) -> bytes:
    return output_line(_new_id("batch_req_"), custom, response, error)
