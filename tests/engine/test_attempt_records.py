"""What the job store remembers of each attempt and of the rate limiter, for the run report.

Jobs run for real against the test server, whose own counters say what it answered: every
request it received is one attempt in the store, with the outcome the server chose.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import promptmill
from promptmill.store import (
    ATTEMPT_OUTCOMES,
    MIGRATIONS,
    SCHEMA_VERSION,
    JobStore,
    outcome_code,
    store_path_for,
)
from promptmill.testing import Faults, RateLimits


def _run(server: Any, tmp_path: Path, rows: int, **options: Any) -> sqlite3.Connection:
    output = tmp_path / "out.jsonl"
    model = options.pop("model", f"http!test-model,api_base={server.url}")
    promptmill.run([{"prompt": f"question {i}"} for i in range(rows)], model, output=output,
                   **options)
    return sqlite3.connect(store_path_for(output))


def test_every_attempt_is_kept_with_its_outcome_time_and_tokens(make_server, tmp_path):
    server = make_server(latency=0.05, faults=Faults(rate_limit=0.08, server_error=0.08,
                                                     malformed=0.05, seed=5, retry_after=0.1))
    started = time.time()
    db = _run(server, tmp_path, 300, max_attempts=20)
    ended = time.time()
    stats = server.stats.to_dict()
    outcomes = dict(db.execute("SELECT outcome, COUNT(*) FROM attempt_log GROUP BY 1"))
    # One attempt per request the server received, each with the server's own outcome.
    assert sum(outcomes.values()) == stats["received"]["/v1/chat/completions"]
    assert outcomes == {"done": 300, "rate_limited": stats["faults"]["rate_limit"],
                        "server_error": stats["faults"]["server_error"],
                        "malformed": stats["faults"]["malformed"]}
    # Sent within the run, each taking at least the server's latency.
    first, last, shortest = db.execute(
        "SELECT MIN(sent_ms), MAX(sent_ms + duration_ms), MIN(duration_ms) FROM attempts"
    ).fetchone()
    assert started * 1000 - 5 <= first and last <= ended * 1000 + 5
    assert shortest >= 45
    # Answered attempts carry their request's tokens; failed ones none.
    assert db.execute("SELECT SUM(prompt_tokens), SUM(completion_tokens) FROM attempt_log "
                      "WHERE outcome = 'done'").fetchone() == (
        stats["prompt_tokens"], stats["completion_tokens"])
    assert db.execute("SELECT COUNT(*) FROM attempt_log WHERE outcome != 'done' "
                      "AND prompt_tokens IS NOT NULL").fetchone() == (0,)
    # The attempts counted on each request agree with the records (malformed, 5xx and 429
    # all spend an attempt).
    assert db.execute("SELECT SUM(attempts) FROM requests").fetchone()[0] == sum(
        outcomes.values())
    events = db.execute("SELECT kind, value, detail FROM events ORDER BY at_ms").fetchall()
    assert events[0] == ("run_start", 300.0, "")
    assert events[-1] == ("run_end", 300.0, "finished")
    pauses = [e for e in events if e[0] == "pause"]
    assert pauses and all(e[2] == "HTTP 429" and e[1] >= 0.09 for e in pauses)


def test_timeouts_and_lost_connections_are_their_own_outcomes(make_server, tmp_path):
    server = make_server(faults=Faults(hang=0.1, drop=0.1, seed=2))
    db = _run(server, tmp_path, 80,
              model=f"http!test-model,api_base={server.url},timeout=0.3", max_attempts=20)
    outcomes = dict(db.execute("SELECT outcome, COUNT(*) FROM attempt_log GROUP BY 1"))
    faults = server.stats.to_dict()["faults"]
    assert outcomes == {"done": 80, "timeout": faults["hang"], "unavailable": faults["drop"]}
    assert db.execute("SELECT MIN(duration_ms) FROM attempts WHERE outcome = 5"
                      ).fetchone()[0] >= 290


def test_limits_learned_from_429s_and_reported_by_headers_are_kept(make_server, tmp_path):
    quiet = make_server(limits=RateLimits(requests=40, window=1.0), send_limit_headers=False)
    (tmp_path / "learned").mkdir()
    db = _run(quiet, tmp_path / "learned", 200)
    learned = db.execute("SELECT value, detail FROM events WHERE kind = 'learned_rate' "
                         "AND value > 0").fetchall()
    assert learned and all(detail == "learned from 429s" for _, detail in learned)
    # What it learned is near the 40 requests/s the server allows (within the first guess).
    assert 5 < learned[-1][0] < 60
    told = make_server(limits=RateLimits(requests=40, window=1.0))
    (tmp_path / "told").mkdir()
    db = _run(told, tmp_path / "told", 100)
    assert db.execute("SELECT value, detail FROM events WHERE kind = 'provider_requests'"
                      ).fetchall() == [(40.0, "x-ratelimit-limit header")]


def test_stated_limits_are_kept(server, tmp_path):
    db = _run(server, tmp_path, 30, rpm=6000, tpm=10_000_000)
    assert db.execute("SELECT kind, value FROM events WHERE kind LIKE 'stated_%' ORDER BY kind"
                      ).fetchall() == [("stated_rpm", 6000.0), ("stated_tpm", 10_000_000.0)]


def test_an_old_store_gains_the_tables_and_keeps_its_results(tmp_path):
    path = tmp_path / "old.promptmill.db"
    db = sqlite3.connect(path, isolation_level=None)
    MIGRATIONS[0](db)  # a store written before attempts were kept (schema 1)
    db.execute("PRAGMA user_version=1")
    db.execute("INSERT INTO requests (id, row_index, sample_group, n, payload, est_tokens, "
               "status, attempts, responses) VALUES (0, 0, 0, 1, '{}', 5, 'done', 1, '[]')")
    db.close()
    with JobStore(path) as store:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert store.status().done == 1
        assert store.db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0] == 0
        store.record([], [(0, 10.0, 10.25, 1)], [(10.0, "pause", 1.5, "HTTP 429")],
                     clock_offset=1_700_000_000.0)
        assert store.db.execute("SELECT * FROM attempts").fetchall() == [
            (0, 1_700_000_010_000, 250, 1)]
        assert store.db.execute("SELECT * FROM attempt_log").fetchall() == [
            (0, 0, 1_700_000_010_000, 250, "rate_limited", None, None)]
        store.reset()
        assert store.db.execute("SELECT (SELECT COUNT(*) FROM attempts) + "
                                "(SELECT COUNT(*) FROM events)").fetchone() == (0,)


def test_a_store_of_schema_3_gains_the_invalid_output_outcome(tmp_path):
    path = tmp_path / "three.promptmill.db"
    db = sqlite3.connect(path, isolation_level=None)
    for migration in MIGRATIONS[:3]:  # written by promptmill before structured output
        migration(db)
    db.execute("PRAGMA user_version=3")
    db.execute("INSERT INTO attempts VALUES (0, 1700000000000, 250, 2)")
    db.close()
    with JobStore(path) as store:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 7
        names = dict(store.db.execute("SELECT code, name FROM attempt_outcomes"))
        assert names == dict(enumerate(ATTEMPT_OUTCOMES))
        assert names[7] == "invalid_output"
        store.record([], [(0, 10.0, 10.5, outcome_code("invalid_output", True))],
                     clock_offset=1_800_000_000.0)
        assert [row[0] for row in store.db.execute(
            "SELECT outcome FROM attempt_log ORDER BY sent_ms")] == ["server_error",
                                                                      "invalid_output"]
