"""A client of the OpenAI Batch API's two resources, ``/files`` and ``/batches``, over aiohttp.

It speaks to OpenAI and to any server offering the same endpoints (``promptmill.testing``,
vLLM-style gateways). Transient failures (no connection, 429, 5xx) are retried with backoff
inside each call; a refusal (4xx) is a :class:`~promptmill.errors.BatchAPIError` at once,
its message taken from the server and redacted. Downloads stream to disk, never whole in
memory. The key travels only in the ``Authorization`` header.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from promptmill.aiohttp_ import aiohttp
from promptmill.errors import BatchAPIError
from promptmill.redaction import redact_secrets

log = logging.getLogger("promptmill")

# Statuses worth another try: the server was busy or broken for a moment.
_TRANSIENT = frozenset({408, 429, 500, 502, 503, 504})
_CHUNK = 1 << 16  # bytes read or written at a time when streaming a file


class BatchAPI:
    """``async with BatchAPI(api_base, key) as api``: files and batches of one server."""

    def __init__(self, api_base: str, api_key: str | None, *, timeout: float = 600.0,
                 retries: int = 6, backoff: float = 0.5, backoff_max: float = 30.0) -> None:
        self.api_base = api_base.rstrip("/")
        self._key = api_key  # sent in the Authorization header, never kept anywhere else
        self.timeout = timeout
        self.retries = retries  # tries of one call before its failure is raised
        self.backoff = backoff  # seconds before the second try; doubling up to backoff_max
        self.backoff_max = backoff_max
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> BatchAPI:
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        self._session = aiohttp.ClientSession(
            headers=headers, raise_for_status=False,
            timeout=aiohttp.ClientTimeout(total=self.timeout,
                                          sock_connect=min(30.0, self.timeout)))
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- files ----------------------------------------------------------------------------

    async def upload(self, path: Path, filename: str, purpose: str = "batch") -> dict[str, Any]:
        """Upload a file (streamed from disk) as ``filename``; the file object."""

        def form(stack: contextlib.ExitStack) -> aiohttp.FormData:
            data = aiohttp.FormData()
            data.add_field("purpose", purpose)
            # Opened per try (a retry sends the file from its start), closed after it.
            handle = stack.enter_context(open(path, "rb"))  # noqa: SIM115 - the stack closes it
            data.add_field("file", handle, filename=filename, content_type="application/jsonl")
            return data

        return await self._json("POST", "/files", form=form)

    async def list_files(self, purpose: str | None = "batch",
                         page_size: int = 10_000) -> AsyncIterator[dict[str, Any]]:
        """Every file (of ``purpose``), newest first, page by page."""
        after: str | None = None
        while True:
            params: dict[str, str] = {"limit": str(page_size), "order": "desc"}
            if purpose:
                params["purpose"] = purpose
            if after:
                params["after"] = after
            page = await self._json("GET", "/files", params=params)
            data = page.get("data") or []
            for item in data:
                yield item
            if not page.get("has_more") or not data:
                return
            after = str(data[-1]["id"])

    async def find_file(self, filename: str, size: int) -> dict[str, Any] | None:
        """The newest uploaded batch file named ``filename`` of ``size`` bytes, if any."""
        async for item in self.list_files():
            if item.get("filename") == filename and item.get("bytes") == size and (
                    item.get("status") != "error"):
                return item
        return None

    async def retrieve_file(self, file_id: str) -> dict[str, Any]:
        """A file object."""
        return await self._json("GET", f"/files/{file_id}")

    async def delete_file(self, file_id: str) -> dict[str, Any]:
        """Delete a file; the deletion object."""
        return await self._json("DELETE", f"/files/{file_id}")

    async def download(self, file_id: str, destination: Path) -> int:
        """Stream a file's content to ``destination`` (atomically, via a temporary file).

        Returns the bytes written. A download cut off midway leaves no partial file behind
        under ``destination``'s name.
        """
        temporary = destination.with_name(f".{destination.name}.{os.getpid()}.part")
        for attempt in range(1, self.retries + 1):
            try:
                async with self._request("GET", f"/files/{file_id}/content") as response:
                    if response.status != 200:
                        await self._raise_for(response, attempt)
                        continue
                    written = 0
                    with open(temporary, "wb") as handle:
                        async for block in response.content.iter_chunked(_CHUNK):
                            handle.write(block)
                            written += len(block)
                os.replace(temporary, destination)
                return written
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                temporary.unlink(missing_ok=True)
                if isinstance(exc, OSError) and not isinstance(exc, aiohttp.ClientError):
                    raise BatchAPIError(f"cannot write {destination}: {exc}") from None
                await self._transient(f"GET /files/{file_id}/content", exc, attempt)
            finally:
                temporary.unlink(missing_ok=True)
        raise AssertionError("unreachable")  # _transient raises on the last attempt

    # -- batches --------------------------------------------------------------------------

    async def create_batch(self, file_id: str, endpoint: str, completion_window: str = "24h",
                           metadata: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Create a batch from an uploaded input file; the batch object."""
        body: dict[str, Any] = {"input_file_id": file_id, "endpoint": endpoint,
                                "completion_window": completion_window}
        if metadata:
            body["metadata"] = dict(metadata)
        return await self._json("POST", "/batches", body=body)

    async def retrieve_batch(self, batch_id: str) -> dict[str, Any]:
        """A batch object, as it is now."""
        return await self._json("GET", f"/batches/{batch_id}")

    async def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        """Ask for a batch to be cancelled; the batch object (``cancelling``)."""
        return await self._json("POST", f"/batches/{batch_id}/cancel")

    async def list_batches(self, limit: int = 20, after: str | None = None) -> dict[str, Any]:
        """One page of batches, newest first (``data``, ``has_more``, ``last_id``)."""
        params = {"limit": str(limit)}
        if after:
            params["after"] = after
        return await self._json("GET", "/batches", params=params)

    async def iter_batches(self, page_size: int = 100) -> AsyncIterator[dict[str, Any]]:
        """Every batch, newest first, page by page."""
        after: str | None = None
        while True:
            page = await self.list_batches(page_size, after)
            data = page.get("data") or []
            for item in data:
                yield item
            if not page.get("has_more") or not data:
                return
            after = str(page.get("last_id") or data[-1]["id"])

    async def find_batch(self, file_id: str, not_before: float) -> dict[str, Any] | None:
        """The batch created from input file ``file_id``, searching back to ``not_before``."""
        async for item in self.iter_batches():
            if item.get("input_file_id") == file_id:
                return item
            if int(item.get("created_at") or 0) < not_before:
                return None
        return None

    # -- the exchange ---------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        if self._session is None:
            raise RuntimeError("BatchAPI used outside `async with`")
        return self._session.request(method, self.api_base + path, **kwargs)

    async def _json(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                    body: Mapping[str, Any] | None = None,
                    form: Callable[[contextlib.ExitStack], aiohttp.FormData] | None = None,
                    ) -> dict[str, Any]:
        """One call's JSON answer, retrying what is transient."""
        for attempt in range(1, self.retries + 1):
            with contextlib.ExitStack() as stack:
                kwargs: dict[str, Any] = {"params": params}
                if body is not None:
                    kwargs["data"] = json.dumps(body).encode()
                    kwargs["headers"] = {"Content-Type": "application/json"}
                if form is not None:
                    kwargs["data"] = form(stack)
                try:
                    async with self._request(method, path, **kwargs) as response:
                        if response.status != 200:
                            await self._raise_for(response, attempt)
                            continue
                        raw = await response.read()
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    await self._transient(f"{method} {path}", exc, attempt)
                    continue
            try:
                answer = json.loads(raw)
            except ValueError:
                answer = None
            if not isinstance(answer, dict):
                raise BatchAPIError(
                    f"{method} {self.api_base}{path} answered 200 with a body that is not a JSON "
                    f"object ({len(raw)} bytes): check that the api_base ends with /v1 and that "
                    "the server offers the Batch API", status=200)
            return answer
        raise AssertionError("unreachable")  # _transient / _raise_for raise on the last attempt

    async def _raise_for(self, response: aiohttp.ClientResponse, attempt: int) -> None:
        """Raise the refusal, or wait before the next try of a transient failure."""
        raw = await response.read()
        status = response.status
        where = f"{response.method} {response.url.path}"
        message = f"HTTP {status} on {where}: {_error_message(raw)}"
        if status in _TRANSIENT and attempt < self.retries:
            retry_after = _retry_after(response.headers)
            log.info("%s; trying again (%d/%d)", redact_secrets(message), attempt, self.retries)
            await asyncio.sleep(retry_after if retry_after is not None
                                else self._delay(attempt))
            return
        hint = _HINTS.get(status, "")
        raise BatchAPIError(redact_secrets(message + hint), status=status)

    async def _transient(self, what: str, exc: BaseException, attempt: int) -> None:
        message = f"{type(exc).__name__} on {what} at {self.api_base}: {exc}"
        if attempt >= self.retries:
            raise BatchAPIError(redact_secrets(
                f"{message}: the server could not be reached; rerun the same command when it "
                "is back (the job store keeps every batch)")) from None
        log.info("%s; trying again (%d/%d)", redact_secrets(message), attempt, self.retries)
        await asyncio.sleep(self._delay(attempt))

    def _delay(self, attempt: int) -> float:
        ceiling = min(self.backoff_max, self.backoff * 2.0 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


_HINTS = {
    401: ": check the API key",
    403: ": check the API key and that it may use the Batch API",
    404: ": check the id, and that the server at api_base offers /files and /batches",
}


def _retry_after(headers: Mapping[str, str]) -> float | None:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            with contextlib.suppress(ValueError):
                return max(0.0, float(value) * scale)
    return None


def _error_message(raw: bytes) -> str:
    """The server's error message, shortened (OpenAI's ``{"error": {"message"}}`` or text)."""
    try:
        data = json.loads(raw)
        error = data.get("error", data) if isinstance(data, dict) else data
        message = error.get("message") if isinstance(error, dict) else str(error)
    except ValueError:
        message = raw[:200].decode("utf-8", "replace")
    return redact_secrets(str(message or "no message")).strip().replace("\n", " ")[:300]
