"""Batch API mode end to end, over real HTTP against the test server's /v1/files and /v1/batches.

Each job is run through ``promptmill.api.execute`` as the CLI runs it: planned into a real
job store, sent as batch input files, polled, downloaded and recorded, exported. What a user
relies on is checked: the export (the same bytes as an online run's), which requests were
sent again after failed lines, expired or cancelled batches, and that nothing is answered
twice.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from promptmill.api import RunOutcome, execute
from promptmill.batch import BatchOptions, BatchRunner
from promptmill.batch_api import BatchAPI
from promptmill.batch_files import custom_id, parse_output_line, request_of
from promptmill.engine.dispatch import EngineConfig
from promptmill.engine.retry import RetryPolicy
from promptmill.errors import InputError, JobMismatchError
from promptmill.generators import get_generator
from promptmill.generators.base import GenerationRequest, GenerationResult, Generator
from promptmill.job import Job, JobSpec
from promptmill.prompts.render import PromptSpec
from promptmill.store import JobStore
from promptmill.testing import BatchFaults, BatchTimings, TestServer


def questions(count: int) -> list[dict[str, Any]]:
    return [{"id": i, "question": f"Question {i}: what comes after {i}?"} for i in range(count)]


def job_spec(tmp_path: Path, server: TestServer, rows: int, *, k: int = 1,
             name: str = "answers.jsonl", mode: str = "batch", chat: bool = True) -> JobSpec:
    source = tmp_path / "questions.jsonl"
    if not source.exists():
        source.write_text("".join(json.dumps(row) + "\n" for row in questions(rows)))
    return JobSpec(input=source, output=tmp_path / name,
                   generator=get_generator(f"http!test-model,api_base={server.url}"),
                   prompts=PromptSpec.build("{{ question }}", None, None, None, chat), k=k,
                   mode=mode)


async def run_job(spec: JobSpec, *, wait: bool = True, max_attempts: int = 8,
                  **options: Any) -> RunOutcome:
    config = EngineConfig(retry=RetryPolicy(max_attempts=max_attempts, backoff_base=0.01))
    return await execute(spec, config, batch=BatchOptions(wait=wait, poll_interval=0.02,
                                                          **options))


def batches_of(server: TestServer) -> list[dict[str, Any]]:
    assert server.batch_service is not None
    return list(server.batch_service.batches.values())


def answered_once(server: TestServer, requests: int) -> None:
    """Every request was answered with a 200 exactly once, whatever was sent again."""
    by_prompt = server.stats.completed_by_prompt
    assert len(by_prompt) == requests
    assert set(by_prompt.values()) == {1}


async def until_ended(server: TestServer, count: int, timeout: float = 30) -> None:
    for _ in range(int(timeout / 0.02)):
        ended = [b for b in batches_of(server)
                 if b["status"] in ("completed", "expired", "failed", "cancelled")]
        if len(ended) >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"batches did not end: {[b['status'] for b in batches_of(server)]}")


async def test_a_batch_job_exports_the_same_bytes_as_an_online_run(
        tmp_path: Path, make_server: Callable[..., TestServer]) -> None:
    server = make_server()
    online = await execute(job_spec(tmp_path, server, 250, k=2, name="online.jsonl",
                                    mode="online"), EngineConfig())
    assert online.complete
    server.stats.reset()
    spec = job_spec(tmp_path, server, 250, k=2)

    outcome = await run_job(spec, max_requests=100)

    assert outcome.complete and outcome.pending == 0 and outcome.batches_active == 0
    assert spec.output.read_bytes() == (tmp_path / "online.jsonl").read_bytes()
    batches = batches_of(server)
    assert [b["request_counts"]["total"] for b in batches] == [100, 100, 50]
    assert all(b["status"] == "completed" for b in batches)
    assert server.stats.received["/v1/chat/completions"] == 0  # nothing went online
    answered_once(server, 250)
    # The downloads and input files are gone once recorded; the store holds everything.
    assert not [p for p in (tmp_path / "answers.jsonl.promptmill.batches").iterdir()]


async def test_text_completions_go_through_the_completions_endpoint(
        tmp_path: Path, make_server: Callable[..., TestServer]) -> None:
    server = make_server()
    await execute(job_spec(tmp_path, server, 40, k=3, name="online.jsonl", mode="online",
                           chat=False), EngineConfig())
    spec = job_spec(tmp_path, server, 40, k=3, chat=False)

    assert (await run_job(spec)).complete

    assert [b["endpoint"] for b in batches_of(server)] == ["/v1/completions"]
    assert spec.output.read_bytes() == (tmp_path / "online.jsonl").read_bytes()


async def test_one_run_submits_and_returns_the_next_collects(
        tmp_path: Path, make_server: Callable[..., TestServer]) -> None:
    server = make_server()
    spec = job_spec(tmp_path, server, 30)

    first = await run_job(spec, wait=False)
    assert first.batches_active == 1 and first.batched == 30 and first.pending == 30
    assert not spec.output.exists()
    await until_ended(server, 1)
    second = await run_job(spec, wait=False)

    assert second.complete and second.batches_active == 0
    assert len(spec.output.read_text().splitlines()) == 30
    assert len(batches_of(server)) == 1  # collecting created no second batch


async def test_files_are_split_under_the_byte_limit(
        tmp_path: Path, make_server: Callable[..., TestServer]) -> None:
    server = make_server()
    spec = job_spec(tmp_path, server, 60)
    line_bytes = 200  # about one line: test-model, a short question, the custom_id

    outcome = await run_job(spec, max_bytes=10 * line_bytes)

    assert outcome.complete
    assert server.batch_service is not None
    sizes = [server.batch_service.files[b["input_file_id"]]["bytes"] for b in batches_of(server)]
    assert len(sizes) >= 6 and max(sizes) <= 10 * line_bytes
    assert sum(b["request_counts"]["total"] for b in batches_of(server)) == 60


async def test_failed_lines_alone_are_sent_again(
        tmp_path: Path, make_server: Callable[..., TestServer]) -> None:
    server = make_server(batch_faults=BatchFaults(line_error=0.1, seed=4))
    spec = job_spec(tmp_path, server, 400)

    outcome = await run_job(spec, wait=False)
    await until_ended(server, 1)
    first = batches_of(server)[0]["request_counts"]
    assert 10 < first["failed"] < 80
    outcome = await run_job(spec, wait=False)  # records, sends the failed lines again

    resent = batches_of(server)[1]
    assert resent["request_counts"]["total"] == first["failed"]
    assert outcome.batched == first["failed"]
    outcome = await run_job(spec)
    assert outcome.complete and outcome.failed == 0
    rows = [json.loads(line) for line in spec.output.read_text().splitlines()]
    assert sum(row["attempts"] for row in rows) >= 400 + first["failed"]
    assert sum(row["attempts"] == 2 for row in rows) >= first["failed"] - resent[
        "request_counts"]["failed"]
    assert all(row["status"] == "done" and row["error"] is None for row in rows)
    answered_once(server, 400)


async def test_an_expired_batch_keeps_its_answers_and_sends_the_rest_again(
        tmp_path: Path, make_server: Callable[..., TestServer]) -> None:
    server = make_server(batch_faults=BatchFaults(expire=1.0, expire_after=0.4))
    spec = job_spec(tmp_path, server, 1000)

    await run_job(spec, wait=False)
    await until_ended(server, 1)
    assert server.batch_service is not None
    server.batch_service.faults = BatchFaults()  # the next batches run to the end
    expired = batches_of(server)[0]
    assert expired["status"] == "expired" and expired["expired_at"]
    assert expired["request_counts"] == {"total": 1000, "completed": 400, "failed": 600}
    outcome = await run_job(spec)

    assert outcome.complete
    assert [b["request_counts"]["total"] for b in batches_of(server)] == [1000, 600]
    rows = [json.loads(line) for line in spec.output.read_text().splitlines()]
    assert sorted(row["attempts"] for row in rows) == [1] * 400 + [2] * 600
    answered_once(server, 1000)


async def test_a_cancelled_batch_is_recorded_and_its_rest_sent_again(
        tmp_path: Path, make_server: Callable[..., TestServer]) -> None:
    server = make_server(batch_timings=BatchTimings(validating=5.0))
    spec = job_spec(tmp_path, server, 50)
    await run_job(spec, wait=False)
    batch = batches_of(server)[0]
    async with BatchAPI(server.url, None) as api:
        cancelling = await api.cancel_batch(batch["id"])
    assert cancelling["status"] == "cancelling"
    await until_ended(server, 1)
    assert server.batch_service is not None
    server.batch_service.timings = BatchTimings()

    outcome = await run_job(spec)

    assert batches_of(server)[0]["status"] == "cancelled"
    assert outcome.complete and len(batches_of(server)) == 2
    with JobStore(spec.store_path) as store:
        errors = store.db.execute("SELECT COUNT(*) FROM requests WHERE attempts = 2").fetchone()
    assert errors[0] == 50


async def test_a_failed_validation_uses_up_attempts_then_fails_the_requests(
        tmp_path: Path, make_server: Callable[..., TestServer]) -> None:
    server = make_server(batch_faults=BatchFaults(fail_validation=1.0))
    spec = job_spec(tmp_path, server, 20)

    outcome = await run_job(spec, max_attempts=2)

    assert outcome.failed == 20 and outcome.pending == 0 and outcome.batches_active == 0
    assert [b["status"] for b in batches_of(server)] == ["failed", "failed"]
    rows = [json.loads(line) for line in spec.output.read_text().splitlines()]
    assert all(row["status"] == "failed" and row["attempts"] == 2 for row in rows)
    assert "token_limit_exceeded" in rows[0]["error"]


async def test_an_upload_refused_with_500_is_tried_again(
        tmp_path: Path, make_server: Callable[..., TestServer]) -> None:
    server = make_server(batch_faults=BatchFaults(upload_error=0.5, seed=1))
    spec = job_spec(tmp_path, server, 40)

    outcome = await run_job(spec, max_requests=10)

    assert outcome.complete
    assert server.batch_service is not None
    counts = server.batch_service.counts
    assert counts["upload_errors"] >= 1 and counts["uploads"] == 4 and counts["batches"] == 4


async def test_finish_online_sends_the_leftovers_online_not_in_a_new_batch(
        tmp_path: Path, make_server: Callable[..., TestServer]) -> None:
    server = make_server(batch_faults=BatchFaults(line_error=0.2, seed=2))
    spec = job_spec(tmp_path, server, 200)
    await run_job(spec, wait=False)
    await until_ended(server, 1)
    failed = batches_of(server)[0]["request_counts"]["failed"]
    assert failed > 10

    outcome = await run_job(spec, wait=False, finish_online=True)

    assert outcome.complete and outcome.stats.done == failed
    assert len(batches_of(server)) == 1
    assert server.stats.received["/v1/chat/completions"] == failed
    answered_once(server, 200)


async def test_an_online_run_leaves_batched_requests_to_their_batch(
        tmp_path: Path, make_server: Callable[..., TestServer]) -> None:
    server = make_server(batch_timings=BatchTimings(validating=30.0))
    spec = job_spec(tmp_path, server, 20)
    await run_job(spec, wait=False)

    online = await execute(job_spec(tmp_path, server, 20, mode="online"), EngineConfig())

    assert online.pending == 20 and online.batched == 20 and not spec.output.exists()
    assert server.stats.received["/v1/chat/completions"] == 0
    # Another job at the same -o is refused, even with --new-job: the batches would be lost.
    with pytest.raises(JobMismatchError, match="holds a different job"):
        await execute(job_spec(tmp_path, server, 20, k=2, mode="online"), EngineConfig())
    with pytest.raises(JobMismatchError, match="batch cancel"):
        await execute(job_spec(tmp_path, server, 20, k=2, mode="online"), EngineConfig(),
                      new_job=True)


async def test_a_missing_input_file_is_written_again_identically(
        tmp_path: Path, make_server: Callable[..., TestServer]) -> None:
    server = make_server()
    spec = job_spec(tmp_path, server, 30)
    job = Job.open(spec)
    try:
        job.plan()
        runner = BatchRunner(job, BatchOptions(), 8)
        runner.folder.mkdir()
        [number] = runner.form()
        path = runner.input_path(number)
        original = path.read_bytes()
        path.unlink()  # as after a kill between recording the batch and renaming its file
        assert runner.ensure_input(runner.ledger.get(number)).read_bytes() == original
    finally:
        job.close()


def test_custom_ids_name_one_request_of_one_job() -> None:
    assert request_of(custom_id("ab12cd34", 17), "ab12cd34") == 17
    assert request_of(custom_id("ab12cd34", 17), "ffffffff") is None  # another job's line
    assert request_of("request-17", "ab12cd34") is None
    assert request_of(None, "ab12cd34") is None


def test_output_lines_are_read_as_answers_or_errors() -> None:
    done = parse_output_line(json.dumps({
        "id": "batch_req_1", "custom_id": "pm-t-1", "error": None, "response": {
            "status_code": 200, "request_id": "r", "body": {
                "object": "chat.completion", "usage": {"prompt_tokens": 3,
                                                       "completion_tokens": 2},
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "Paris"}}]}}}).encode())
    assert done.responses == [{"text": "Paris", "finish_reason": "stop"}]
    assert (done.prompt_tokens, done.completion_tokens, done.error) == (3, 2, None)
    expired = parse_output_line(json.dumps({
        "id": "x", "custom_id": "pm-t-2", "response": None,
        "error": {"code": "batch_expired", "message": "not run in time"}}).encode())
    assert expired.retryable and "batch_expired" in (expired.error or "")
    refused = parse_output_line(json.dumps({
        "id": "x", "custom_id": "pm-t-3", "error": None, "response": {
            "status_code": 400, "body": {"error": {"message": "bad max_tokens"}}}}).encode())
    assert not refused.retryable and "bad max_tokens" in (refused.error or "")


def test_a_backend_without_a_batch_api_is_refused_before_anything_runs(tmp_path: Path) -> None:
    class LocalOnly(Generator):
        provider = "localonly"

        async def generate(self, requests: list[GenerationRequest]
                           ) -> list[GenerationResult]:  # type: ignore[override]
            raise AssertionError("never called")

    with pytest.raises(InputError, match="localonly! has no Batch API"):
        JobSpec(input=tmp_path / "q.jsonl", output=tmp_path / "a.jsonl",
                generator=LocalOnly("m"), mode="batch")


def test_the_library_runs_a_batch_job_and_returns_its_rows(
        tmp_path: Path, make_server: Callable[..., TestServer]) -> None:
    import promptmill
    from promptmill.errors import UsageError

    server = make_server()
    model = f"http!test-model,api_base={server.url}"
    rows = promptmill.run([{"question": "2+2?"}, {"question": "3+3?"}], model, mode="batch",
                          template="{{ question }}", k=2, poll_interval=0.02)
    assert [len(row["responses"]) for row in rows] == [2, 2]
    assert all(row["status"] == "done" for row in rows)
    assert "You said: 3+3?" in rows[1]["responses"][0]["text"]
    with pytest.raises(UsageError, match="needs output=PATH"):
        promptmill.run([{"question": "2+2?"}], model, mode="batch", wait=False)


async def test_a_server_that_cannot_be_reached_is_one_error_saying_to_rerun(
        tmp_path: Path, make_server: Callable[..., TestServer]) -> None:
    from promptmill.errors import BatchAPIError

    server = make_server()
    spec = job_spec(tmp_path, server, 5)
    server.set_outage(True)
    async with BatchAPI(server.url, None, retries=2, backoff=0.01) as api:
        with pytest.raises(BatchAPIError, match="could not be reached; rerun the same command"):
            await api.list_batches()
    with pytest.raises(BatchAPIError, match="could not be reached"):
        await run_job(spec, wait=False, retries=2)
    with JobStore(spec.store_path) as store:  # the batch waits, prepared, for the rerun
        assert [b[0] for b in store.db.execute("SELECT step FROM batches")] == ["uploading"]
    server.set_outage(False)
    assert (await run_job(spec)).complete


async def test_a_batch_line_with_fewer_samples_than_asked_is_never_done(
        tmp_path: Path, make_server: Callable[..., TestServer]) -> None:
    server = make_server(ignores=("n",))
    spec = job_spec(tmp_path, server, 3, k=2)
    outcome = await run_job(spec, max_attempts=1)
    rows = [json.loads(line) for line in spec.output.read_text().splitlines()] \
        if spec.output.exists() else []
    assert outcome.stats.done == 0
    store = JobStore(Path(f"{spec.output}.promptmill.db"))
    try:
        statuses = store.db.execute("SELECT status, error FROM requests").fetchall()
    finally:
        store.close()
    assert len(statuses) == 3 and all(
        status == "failed" and "answered 1 of the 2 samples" in error
        for status, error in statuses), (statuses, rows)

    # Sent online instead, the missing samples go one by one: every row gets its 2.
    online = await execute(job_spec(tmp_path, server, 3, k=2, mode="online"), EngineConfig(),
                           retry_failed=True)
    assert online.stats.done == 3
