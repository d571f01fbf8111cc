"""A remote job's slow start (one request until its answer's limit headers are read) is paid
once per endpoint that sends no such headers: a later job to it starts at full concurrency.
An endpoint that sends them is probed by every job.

Jobs run for real against the test server; when each request went out is read back from the
job store's attempt records.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import promptmill
from promptmill import endpoints
from promptmill.store import store_path_for
from promptmill.testing import Faults, RateLimits, serve_in_thread

LATENCY = 0.5  # the server's, in seconds: a probe holds the others back this long
ROWS = 12  # all in flight at once (default concurrency 64) once nothing holds them back


def _sends(server: Any, tmp_path: Path, name: str, model: str = "test-model",
           **options: Any) -> list[float]:
    """Run a job of its own prompts (none answered from the response cache); the seconds
    after its first send at which each of its requests was sent."""
    output = tmp_path / f"{name}.jsonl"
    promptmill.run([{"prompt": f"{name} question {i}"} for i in range(ROWS)],
                   f"http!{model},api_base={server.url},api_key=sk-endpoint-memory-secret",
                   output=output, **options)
    with sqlite3.connect(store_path_for(output)) as db:
        sent = sorted(ms for (ms,) in db.execute("SELECT sent_ms FROM attempts"))
    return [(ms - sent[0]) / 1000 for ms in sent]


def _probed(sent: list[float]) -> bool:
    """Whether the job sent one request and waited for its answer before the others."""
    assert len(sent) >= ROWS
    if sent[1] >= 0.9 * LATENCY:
        return True
    assert sent[-1] < 0.5 * LATENCY, f"neither a probe nor one wave: {sent}"
    return False


def test_a_second_job_to_an_endpoint_without_limit_headers_sends_no_probe(make_server,
                                                                         tmp_path):
    server = make_server(latency=LATENCY)
    assert _probed(_sends(server, tmp_path, "first"))
    record = endpoints.memory_path().read_text()
    assert "sk-endpoint-memory-secret" not in record  # the key is never written
    assert not _probed(_sends(server, tmp_path, "second"))
    # Per model: another model on the same server is probed once, then remembered too.
    assert _probed(_sends(server, tmp_path, "third", model="other-model"))
    assert not _probed(_sends(server, tmp_path, "fourth", model="other-model"))


def test_an_endpoint_that_sends_limit_headers_is_probed_by_every_job(make_server, tmp_path):
    server = make_server(latency=LATENCY, limits=RateLimits(requests=100_000, window=60))
    assert _probed(_sends(server, tmp_path, "first"))
    assert _probed(_sends(server, tmp_path, "second"))
    records = json.loads(endpoints.memory_path().read_text())
    assert [record["limit_headers"] for record in records.values()] == [True]


def test_limit_headers_met_at_a_remembered_endpoint_bring_the_probe_back(tmp_path):
    with serve_in_thread(latency=LATENCY) as plain:
        port = plain.port
        assert _probed(_sends(plain, tmp_path, "first"))
    # The same address, now a server that states its limits in headers: the next job trusts
    # the record and sends at once, meets the headers and says so; the one after probes.
    with serve_in_thread(latency=LATENCY, port=port,
                         limits=RateLimits(requests=100_000, window=60)) as limited:
        assert not _probed(_sends(limited, tmp_path, "second"))
        assert _probed(_sends(limited, tmp_path, "third"))


def test_a_job_with_no_answer_remembers_nothing(make_server, tmp_path):
    failing = make_server(latency=LATENCY, faults=Faults(server_error=1.0, seed=1))
    _sends(failing, tmp_path, "first", max_attempts=1)
    assert not endpoints.memory_path().exists()


def test_an_old_or_unreadable_record_is_not_believed(make_server, tmp_path):
    server = make_server(latency=LATENCY)
    assert _probed(_sends(server, tmp_path, "first"))
    path = endpoints.memory_path()
    records = json.loads(path.read_text())
    (key,) = records
    records[key]["seen"] = time.time() - endpoints.MEMORY_S - 60
    path.write_text(json.dumps(records))
    assert _probed(_sends(server, tmp_path, "stale"))
    path.write_text("{not json")
    assert _probed(_sends(server, tmp_path, "garbled"))
    assert json.loads(path.read_text())[key]["limit_headers"] is False  # written anew
    assert not _probed(_sends(server, tmp_path, "after"))
