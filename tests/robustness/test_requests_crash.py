"""A request file's job killed with SIGKILL mid-dispatch and rerun: every request once, each
with its own model and parameters, in input order.

``python -m promptmill run requests.jsonl --requests`` runs in a child process against a test
server in this process (it outlives every kill). The stored payload is what a rerun sends:
if a line's params or model were lost on resume, its answer (a pure function of the body)
would differ, and the server would count a body it never should have seen.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from robustness_helpers import done_count, read_jsonl, wait_for, write_jsonl

from promptmill.engine.dispatch import EngineConfig
from promptmill.testing import TestServer, expected_answers, serve_in_thread

LINES = 3000
CONCURRENCY = 32
LATENCY = 0.02  # seconds per answer: requests are in flight when a kill lands
# A kill loses at most one commit's worth of results plus the requests in flight.
LOST_PER_KILL = EngineConfig().flush_size + 2 * CONCURRENCY


@pytest.fixture(scope="module")
def slow_server() -> Iterator[TestServer]:
    with serve_in_thread(latency=LATENCY) as server:
        yield server


def request_lines(count: int) -> list[dict[str, Any]]:
    """Cookbook request bodies: three models, a chat or a text prompt, per-line fields."""
    lines = []
    for i in range(count):
        line: dict[str, Any] = {"model": ("model-a", "model-b", "model-c")[i % 3],
                                "metadata": {"i": i}}
        if i % 5 == 4:
            line["prompt"] = f"Complete line {i}:"
        else:
            line["messages"] = [{"role": "user", "content": f"Line {i}: say something."}]
        line["temperature"] = (i % 7) / 4
        if i % 2:
            line["max_tokens"] = 3 + i % 6
        if i % 3 == 2:
            line["seed"] = i
        if i % 11 == 0:
            line["n"] = 2
        lines.append(line)
    return lines


def sent(line: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in line.items() if key != "metadata"}


@pytest.mark.slow
def test_a_request_file_killed_twice_completes_every_request_once(
        tmp_path: Path, slow_server: TestServer,
        promptmill: Callable[..., subprocess.CompletedProcess[str]],
        start_promptmill: Callable[..., subprocess.Popen[str]]) -> None:
    server = slow_server
    lines = request_lines(LINES)
    write_jsonl(tmp_path / "requests.jsonl", lines)
    store = tmp_path / "out.jsonl.promptmill.db"
    args = ["run", "requests.jsonl", "--requests", "-m",
            f"http!model-a,api_base={server.url}", "-o", "out.jsonl",
            "--max-concurrency", str(CONCURRENCY)]
    server.stats.reset()
    for target in (600, 1800):
        process = start_promptmill(*args)
        wait_for(lambda target=target: done_count(store) >= target, process=process)
        process.send_signal(signal.SIGKILL)
        process.communicate()
        assert process.returncode == -signal.SIGKILL
        assert done_count(store) < LINES
        time.sleep(3 * LATENCY)  # let the server finish what was in flight
    final = promptmill(*args)
    assert final.returncode == 0, final.stderr

    rows = read_jsonl(tmp_path / "out.jsonl")
    assert [row["metadata"] for row in rows] == [line["metadata"] for line in lines]
    for line, row in zip(lines, rows, strict=True):
        assert row["request"] == sent(line)
        assert [r["text"] for r in row["responses"]] == expected_answers(sent(line))
        assert row["status"] == "done"
    # Every line's body (its own params and model) was answered; a second time only for
    # what the two kills left in flight or uncommitted. No other body was ever sent.
    answered = {json.dumps(sent(line), sort_keys=True): server.stats.times_answered(sent(line))
                for line in lines}
    assert min(answered.values()) >= 1
    assert sum(answered.values()) == server.stats.total_completed
    assert server.stats.total_completed - LINES <= 2 * LOST_PER_KILL
