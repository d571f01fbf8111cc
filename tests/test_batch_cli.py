"""``run --mode batch``, ``promptmill batch ...`` and ``promptmill reformat`` through the real CLI,
over real HTTP against the test server's Batch API."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from promptmill.generators import get_generator
from promptmill.job import Job, JobSpec
from promptmill.testing import BatchFaults, BatchTimings, TestServer


def promptmill(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The real CLI in a fresh interpreter, no OPENAI_* variables inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI")}
    return subprocess.run([sys.executable, "-m", "promptmill", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def write_questions(path: Path, count: int) -> Path:
    path.write_text("".join(json.dumps({"id": i, "question": f"What is {i} + {i}?"}) + "\n"
                            for i in range(count)))
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def wait_until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_run_in_batch_mode_submits_then_collects_like_an_online_run(
        tmp_path: Path, server: TestServer) -> None:
    source = write_questions(tmp_path / "questions.jsonl", 300)
    args = ["run", source.name, "-m", f"http!test-model,api_base={server.url}", "-o",
            "answers.jsonl", "--mode", "batch", "--batch-max-requests", "120"]

    first = promptmill(*args, cwd=tmp_path)
    assert first.returncode == 75, first.stderr  # EX_TEMPFAIL: results not there yet
    assert "submitted 120 requests" in first.stderr
    assert f"3 batches are at the provider with 300 requests: run promptmill {' '.join(args)}" \
        in first.stderr.replace("'", "")
    assert not (tmp_path / "answers.jsonl").exists()
    status = promptmill("status", "answers.jsonl", cwd=tmp_path)
    assert "300 pending (300 in batches at the provider)" in status.stdout
    assert re.search(r"batches  3: ", status.stdout) and "batch_" in status.stdout

    second = promptmill(*args, "--wait", "--poll-interval", "0.1", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "wrote answers.jsonl" in second.stderr
    rows = read_jsonl(tmp_path / "answers.jsonl")
    assert [row["id"] for row in rows] == list(range(300))
    assert all(row["status"] == "done" and row["attempts"] == 1 for row in rows)
    status = promptmill("status", "answers.jsonl", cwd=tmp_path)
    assert "300 done, 0 failed, 0 pending" in status.stdout
    assert "3 completed" in status.stdout
    exported = promptmill("export", "answers.jsonl", "--format", "csv", cwd=tmp_path)
    assert exported.returncode == 0 and (tmp_path / "answers.csv").exists()


def test_wait_and_finish_online_need_batch_mode(tmp_path: Path, server: TestServer) -> None:
    source = write_questions(tmp_path / "questions.jsonl", 3)
    result = promptmill("run", source, "-m", f"http!test-model,api_base={server.url}",
                        "--wait", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: --wait and --finish-online apply to --mode batch: "
                                     "add it, or drop them")


def test_a_dry_run_in_batch_mode_prices_at_half(tmp_path: Path) -> None:
    source = write_questions(tmp_path / "questions.jsonl", 500)

    def dollars(*extra: str) -> list[float]:
        result = promptmill("run", source, "-m", "openai!gpt-4o-mini", "--param",
                            "max_tokens=100", "--dry-run", *extra, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        cost = next(line for line in result.stdout.splitlines() if line.startswith("cost"))
        return [float(x.replace(",", "")) for x in re.findall(r"\$([\d.,]+)", cost)]

    online, batch = dollars(), dollars("--mode", "batch")
    # Printed to 4 decimals: half of a rounded figure may round the other way.
    assert batch[:2] == pytest.approx([online[0] / 2, online[1] / 2], abs=0.0001)
    assert online[2:] == [0.15, 0.6] and batch[2:] == [0.075, 0.3]


def test_batch_create_writes_split_files_with_the_rows_ids_and_sends_nothing(
        tmp_path: Path, server: TestServer) -> None:
    write_questions(tmp_path / "questions.jsonl", 10)
    server.stats.reset()
    result = promptmill("batch", "create", "questions.jsonl", "-m",
                        "openai!gpt-4o-mini,temperature=0.5", "--template",
                        "Q: {{ question }}", "-o", "in.jsonl", "--max-requests", "4",
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    files = [tmp_path / f"in-00{n}.jsonl" for n in (1, 2, 3)]
    lines = [json.loads(line) for path in files for line in path.read_text().splitlines()]
    assert [line["custom_id"] for line in lines] == [str(i) for i in range(10)]
    assert lines[3] == {"custom_id": "3", "method": "POST", "url": "/v1/chat/completions",
                        "body": {"model": "gpt-4o-mini", "messages": [
                            {"role": "user", "content": "Q: What is 3 + 3?"}],
                            "temperature": 0.5, "n": 1}}
    assert not (tmp_path / "in.jsonl").exists() and sum(server.stats.received.values()) == 0
    assert "wrote 10 requests" in result.stderr and "nothing was sent" in result.stderr


def test_batch_create_from_a_job_uses_the_jobs_custom_ids(
        tmp_path: Path, server: TestServer) -> None:
    source = write_questions(tmp_path / "questions.jsonl", 5)
    spec = JobSpec(input=source, output=tmp_path / "answers.jsonl",
                   generator=get_generator(f"http!test-model,api_base={server.url}"),
                   mode="batch")
    job = Job.open(spec)
    job.plan()
    job.close()

    result = promptmill("batch", "create", "--job", "answers.jsonl", "-o", "job.jsonl",
                        cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    ids = [json.loads(line)["custom_id"] for line in
           (tmp_path / "job.jsonl").read_text().splitlines()]
    assert len(ids) == 5 and all(re.fullmatch(r"pm-[0-9a-f]{8}-\d", one) for one in ids)


def test_submit_status_download_list_and_reformat_by_hand(
        tmp_path: Path, make_server: Callable[..., TestServer]) -> None:
    server = make_server(batch_faults=BatchFaults(line_error=0.2, seed=3))
    write_questions(tmp_path / "questions.jsonl", 40)
    base = ["--api-base", server.url]
    promptmill("batch", "create", "questions.jsonl", "-m", "http!test-model", "-o", "in.jsonl",
               cwd=tmp_path)

    submitted = promptmill("batch", "submit", "in.jsonl", *base, "--metadata", "run=7",
                           cwd=tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    batch_id = submitted.stdout.strip()
    assert batch_id.startswith("batch_")
    assert json.loads((tmp_path / ".promptmill-last-batch").read_text())["id"] == batch_id
    assert server.batch_service is not None
    wait_until(lambda: server.batch_service is not None and server.batch_service.batches[
        batch_id]["status"] == "completed")

    status = promptmill("batch", "status", cwd=tmp_path)  # no id: the last one, its server
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith(f"{batch_id}  completed")
    listed = promptmill("batch", "list", *base, cwd=tmp_path)
    assert batch_id in listed.stdout and "/v1/chat/completions" in listed.stdout

    downloaded = promptmill("batch", "download", "-o", "out.jsonl", cwd=tmp_path)
    assert downloaded.returncode == 0, downloaded.stderr
    output = (tmp_path / "out.jsonl").read_text().splitlines()
    errors = (tmp_path / "out.errors.jsonl").read_text().splitlines()
    assert len(output) + len(errors) == 40 and len(errors) > 0

    for fmt in ("jsonl", "csv", "parquet"):
        flat = promptmill("reformat", "out.jsonl", "--format", fmt, cwd=tmp_path)
        assert flat.returncode == 0, flat.stderr
    rows = read_jsonl(tmp_path / "out.flat.jsonl")
    assert sorted(int(row["id"]) for row in rows) == sorted(
        int(json.loads(line)["custom_id"]) for line in output)
    assert all(row["text"].startswith(row["text"].split(".")[0]) and row["error"] is None
               and row["usage"]["completion_tokens"] > 0 for row in rows)
    assert f"You said: What is {rows[0]['id']} +" in rows[0]["text"]
    assert pq.read_table(tmp_path / "out.flat.parquet").num_rows == len(output)
    failures = promptmill("reformat", "out.errors.jsonl", "-o", "errors.csv", cwd=tmp_path)
    assert failures.returncode == 0
    assert "HTTP 500 in batch" in (tmp_path / "errors.csv").read_text()


def test_cancel_by_hand_and_a_job_knows_its_batches(
        tmp_path: Path, make_server: Callable[..., TestServer]) -> None:
    server = make_server(batch_timings=BatchTimings(validating=30.0))
    source = write_questions(tmp_path / "questions.jsonl", 8)
    run = promptmill("run", source.name, "-m", f"http!test-model,api_base={server.url}", "-o",
                     "answers.jsonl", "--mode", "batch", cwd=tmp_path)
    assert run.returncode == 75, run.stderr

    status = promptmill("batch", "status", "--job", "answers.jsonl", cwd=tmp_path)
    assert status.returncode == 0 and " validating " in status.stdout
    cancelled = promptmill("batch", "cancel", "--job", "answers.jsonl", cwd=tmp_path)
    assert cancelled.returncode == 0, cancelled.stderr
    assert " cancelling " in cancelled.stdout and "sends the rest again" in cancelled.stderr
    again = promptmill("batch", "cancel", "--job", "answers.jsonl", cwd=tmp_path)
    assert again.returncode == 1  # the server's refusal, in one line
    assert again.stderr.strip().endswith("Cannot cancel a batch with status 'cancelled'.")
    assert len(again.stderr.strip().splitlines()) == 1


def test_bad_input_gets_one_line_naming_the_fix(tmp_path: Path) -> None:
    (tmp_path / "answers.jsonl").write_text('{"id": 1, "text": "not batch output"}\n')
    reformat = promptmill("reformat", "answers.jsonl", cwd=tmp_path)
    assert reformat.returncode == 2
    assert reformat.stderr.strip() == (
        "error: answers.jsonl:1: not a Batch API output line (expected JSON with custom_id and "
        "response or error): pass a file from `promptmill batch download`")
    status = promptmill("batch", "status", "--api-base", "http://127.0.0.1:9/v1", cwd=tmp_path)
    assert status.returncode == 2
    assert "no batch id given and none submitted from this folder" in status.stderr
    assert len(status.stderr.strip().splitlines()) == 1
    submit = promptmill("batch", "submit", "answers.jsonl", "--api-base",
                        "http://127.0.0.1:9/v1", cwd=tmp_path)
    assert submit.returncode == 2 and "answers.jsonl:1: not a batch input line" in submit.stderr
