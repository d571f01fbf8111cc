"""``promptmill view``'s JSON API on a job still running: pending rows, paging, a row."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promptmill.store import FinishedRequest, JobStore

ROWS = 120


@pytest.fixture
def running_job(tmp_path: Path) -> Iterator[str]:
    """A job of 120 rows: 0-59 done, 60-69 failed, the rest pending (70-79 submitted in a
    Batch API batch: status ``batched``); served by ``promptmill view``; its URL."""
    output = tmp_path / "out.jsonl"
    with JobStore(output.with_name(output.name + ".promptmill.db")) as store:
        store.bind_job({"model": "http!m", "k": 1})
        ids = range(ROWS)
        store.add_planned(
            [ids, [json.dumps({"question": f"q{i} <i>x</i>", "category": "c"}) for i in ids]],
            [ids, ids, [0] * ROWS, [1] * ROWS,
             [json.dumps({"prompt": f"q{i} <i>x</i>"}) for i in ids], [10] * ROWS],
            ROWS)
        store.record([FinishedRequest(i, 1, json.dumps([{"text": f"answer {i}"}]), 3, 4)
                      for i in range(60)]
                     + [FinishedRequest(i, 2, error="HTTP 500: down", error_kind="server_error")
                        for i in range(60, 70)],
                     [(i, 10.0, 10.5, 0) for i in range(60)], (), 1_700_000_000.0)
        store.db.execute("UPDATE requests SET status = 'batched' WHERE id BETWEEN 70 AND 79")
    process = subprocess.Popen(
        [sys.executable, "-m", "promptmill", "view", str(output), "--port", "0"],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ), cwd=tmp_path)
    assert process.stdout is not None
    line = process.stdout.readline()
    try:
        assert " at " in line, line
        yield line.split(" at ", 1)[1].split()[0]
    finally:
        process.terminate()
        process.communicate(timeout=30)


def _get(url: str) -> Any:
    with urllib.request.urlopen(url) as response:
        return json.loads(response.read())


def test_pending_rows_paging_and_a_row(running_job: str) -> None:
    job = _get(running_job + "api/job")
    assert job["rows"] == ROWS
    assert job["requests"] == {"done": 60, "failed": 10, "pending": 50}
    pending = _get(running_job + "api/rows?status=pending")
    assert [r["row"] for r in pending["rows"]] == list(range(70, 120))
    assert {r["status"] for r in pending["rows"]} == {"pending"} and not pending["more"]
    assert _get(running_job + "api/count?status=pending") == {"count": 50}
    done = _get(running_job + "api/rows?status=done")
    assert [r["row"] for r in done["rows"]] == list(range(50)) and done["more"]
    following = _get(running_job + "api/rows?status=done&after=49")
    assert [r["row"] for r in following["rows"]] == list(range(50, 60))
    assert _get(running_job + "api/rows?kind=server_error")["rows"][0]["row"] == 60
    row = _get(running_job + "api/row/5")
    assert row["prompt"] == {"messages": [], "text": "q5 <i>x</i>"}  # text, escaped by the page
    assert row["responses"] == [{"text": "answer 5", "finish_reason": None, "logprobs": None}]
    assert _get(running_job + "api/row/5/attempts") == {"attempts": [
        {"request": 5, "sent_ms": 1_700_000_010_000, "duration_ms": 500, "outcome": "done"}]}
    assert _get(running_job + "api/row/75")["status"] == "pending"
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(running_job + "api/row/500")
    assert missing.value.code == 404
