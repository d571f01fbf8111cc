"""The test server's Batch API (/v1/files, /v1/batches), spoken to over real HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from promptmill.batch_api import BatchAPI
from promptmill.errors import BatchAPIError
from promptmill.testing import (
    BatchFaults,
    BatchTimings,
    TestServer,
    expected_answers,
    serve_in_process,
)


def line(custom: str, content: str = "Hello", *, model: str = "test-model",
         url: str = "/v1/chat/completions") -> dict[str, Any]:
    return {"custom_id": custom, "method": "POST", "url": url,
            "body": {"model": model, "messages": [{"role": "user", "content": content}]}}


def write_lines(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join((raw if isinstance(raw, str) else json.dumps(raw)) + "\n"
                            for raw in lines))
    return path


async def submit(api: BatchAPI, path: Path) -> dict[str, Any]:
    uploaded = await api.upload(path, path.name)
    return await api.create_batch(uploaded["id"], "/v1/chat/completions")


async def until(api: BatchAPI, batch_id: str, statuses: set[str],
                seen: list[str] | None = None) -> dict[str, Any]:
    for _ in range(2000):
        batch = await api.retrieve_batch(batch_id)
        if seen is not None and (not seen or seen[-1] != batch["status"]):
            seen.append(batch["status"])
        if batch["status"] in statuses:
            return batch
        await asyncio.sleep(0.005)
    raise AssertionError(f"batch stayed {batch['status']}")


async def test_a_batch_goes_through_every_state_and_answers_as_online(
        tmp_path: Path, make_server: Callable[..., TestServer]) -> None:
    server = make_server(batch_timings=BatchTimings(validating=0.2, in_progress=0.3,
                                                    finalizing=0.2))
    source = write_lines(tmp_path / "in.jsonl", [line(f"r{i}", f"Say {i}") for i in range(30)])
    async with BatchAPI(server.url, None) as api:
        batch = await submit(api, source)
        seen: list[str] = []
        batch = await until(api, batch["id"], {"completed"}, seen)
        assert seen == ["validating", "in_progress", "finalizing", "completed"]
        assert batch["in_progress_at"] <= batch["finalizing_at"] <= batch["completed_at"]
        assert batch["request_counts"] == {"total": 30, "completed": 30, "failed": 0}
        assert batch["expires_at"] == batch["created_at"] + 24 * 3600
        assert batch["error_file_id"] is None and batch["model"] == "test-model"
        await api.download(batch["output_file_id"], tmp_path / "out.jsonl")
    output = [json.loads(raw) for raw in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert sorted(o["custom_id"] for o in output) == sorted(f"r{i}" for i in range(30))
    assert [o["custom_id"] for o in output] != [f"r{i}" for i in range(30)]  # in no order
    for answer in output:
        body = answer["response"]["body"]
        number = answer["custom_id"][1:]
        assert [c["message"]["content"] for c in body["choices"]] == expected_answers(
            line("x", f"Say {number}")["body"])


async def test_validation_refuses_bad_lines_naming_each(
        tmp_path: Path, make_server: Callable[..., TestServer]) -> None:
    server = make_server()
    source = write_lines(tmp_path / "bad.jsonl", [
        line("a"), line("a"), "{not json", line("b", url="/v1/completions"),
        line("c", model="other-model")])
    async with BatchAPI(server.url, None) as api:
        batch = await until(api, (await submit(api, source))["id"], {"failed"})
    errors = [(e["code"], e["line"]) for e in batch["errors"]["data"]]
    assert ("duplicate_custom_id", 2) in errors and ("invalid_json_line", 3) in errors
    assert ("invalid_url", 4) in errors and ("mismatched_model", 0) in errors
    assert batch["failed_at"] and batch["output_file_id"] is None


async def test_uploads_are_checked_like_openai_checks_them(
        tmp_path: Path, make_server: Callable[..., TestServer]) -> None:
    server = make_server(batch_max_bytes=200)
    small = write_lines(tmp_path / "small.jsonl", [line("a")])
    big = write_lines(tmp_path / "big.jsonl", [line(f"r{i}") for i in range(10)])
    async with BatchAPI(server.url, None) as api:
        with pytest.raises(BatchAPIError, match="Must be .jsonl"):
            await api.upload(small, "small.txt")
        with pytest.raises(BatchAPIError, match="File is too large"):
            await api.upload(big, big.name)
        with pytest.raises(BatchAPIError, match="HTTP 404 .*No such File object: file-nope"):
            await api.retrieve_file("file-nope")
        with pytest.raises(BatchAPIError, match="No batch found with id 'batch_nope'"):
            await api.retrieve_batch("batch_nope")
        with pytest.raises(BatchAPIError, match="only '24h'"):
            uploaded = await api.upload(small, small.name)
            await api.create_batch(uploaded["id"], "/v1/chat/completions", "1h")
    async with aiohttp.ClientSession() as session, session.post(
            server.url + "/files", data=aiohttp.FormData({"purpose": "batch"},
                                                         default_to_multipart=True)) as response:
        assert response.status == 400
        assert (await response.json())["error"]["param"] == "file"


async def test_lists_are_cursor_pages_newest_first(
        tmp_path: Path, make_server: Callable[..., TestServer]) -> None:
    server = make_server()
    source = write_lines(tmp_path / "in.jsonl", [line("a")])
    async with BatchAPI(server.url, None) as api:
        ids = [(await submit(api, source))["id"] for _ in range(3)]
        first = await api.list_batches(limit=2)
        assert [b["id"] for b in first["data"]] == ids[::-1][:2] and first["has_more"]
        rest = await api.list_batches(limit=2, after=first["last_id"])
        assert [b["id"] for b in rest["data"]] == [ids[0]] and not rest["has_more"]
        assert [b["id"] async for b in api.iter_batches(page_size=1)] == ids[::-1]
        files = [f async for f in api.list_files()]
        assert len([f for f in files if f["purpose"] == "batch"]) == 3


async def test_cancel_keeps_what_was_answered_and_refuses_a_finished_batch(
        tmp_path: Path, make_server: Callable[..., TestServer]) -> None:
    server = make_server(batch_timings=BatchTimings(validating=10.0))
    source = write_lines(tmp_path / "in.jsonl", [line("a")])
    async with BatchAPI(server.url, None) as api:
        batch = await submit(api, source)
        assert (await api.cancel_batch(batch["id"]))["status"] == "cancelling"
        batch = await until(api, batch["id"], {"cancelled"})
        assert batch["cancelled_at"] and batch["cancelling_at"]
        with pytest.raises(BatchAPIError, match="Cannot cancel a batch with status 'cancelled'"):
            await api.cancel_batch(batch["id"])


async def test_faults_fail_lines_expire_batches_and_refuse_uploads(
        tmp_path: Path, make_server: Callable[..., TestServer]) -> None:
    server = make_server(batch_faults=BatchFaults(line_error=0.25, expire_batches=(2,),
                                                  expire_after=0.5, seed=5))
    source = write_lines(tmp_path / "in.jsonl", [line(f"r{i}", f"Say {i}") for i in range(200)])
    async with BatchAPI(server.url, None) as api:
        first = await until(api, (await submit(api, source))["id"], {"completed"})
        counts = first["request_counts"]
        assert counts["total"] == 200 and 25 < counts["failed"] < 75
        await api.download(first["error_file_id"], tmp_path / "errors.jsonl")
        errors = [json.loads(raw) for raw in (tmp_path / "errors.jsonl").read_text().splitlines()]
        assert len(errors) == counts["failed"]
        assert {e["response"]["status_code"] for e in errors} == {500}
        second = await until(api, (await submit(api, source))["id"], {"expired"})
        assert second["expired_at"] and second["request_counts"]["total"] == 200
        await api.download(second["error_file_id"], tmp_path / "expired.jsonl")
        expired = [json.loads(raw) for raw in
                   (tmp_path / "expired.jsonl").read_text().splitlines()]
        assert sum(e["error"] is not None and e["error"]["code"] == "batch_expired"
                   for e in expired) == 100
        assert second["request_counts"]["completed"] + len(expired) == 200
    assert server.batch_service is not None
    server.batch_service.faults = BatchFaults(upload_error=1.0)
    async with BatchAPI(server.url, None, retries=2, backoff=0.01) as api:
        with pytest.raises(BatchAPIError, match="HTTP 500 on POST /v1/files"):
            await api.upload(source, source.name)
    assert server.batch_service.counts["upload_errors"] == 2


async def test_a_server_in_another_process_offers_the_batch_api(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.jsonl", [line(f"r{i}") for i in range(10)])
    with serve_in_process(batch_faults=BatchFaults(line_error=1.0)) as server:
        async with BatchAPI(server.url, None) as api:
            batch = await until(api, (await submit(api, source))["id"], {"completed"})
    assert batch["request_counts"] == {"total": 10, "completed": 0, "failed": 10}
