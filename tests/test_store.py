"""The SQLite job store: migrations, fingerprints, idempotent planning, exactly-once records."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from promptmill.errors import JobMismatchError, StoreError
from promptmill.store import MIGRATIONS, SCHEMA_VERSION, FinishedRequest, JobStore


def planned(store: JobStore, rows: int) -> None:
    ids = range(rows)
    store.add_planned([ids, [f'{{"i": {i}}}' for i in ids]],
                      [ids, ids, [0] * rows, [1] * rows, ['{"prompt": "p"}'] * rows, [10] * rows],
                      rows)


def test_planning_is_idempotent(tmp_path: Path) -> None:
    with JobStore(tmp_path / "s.db") as store:
        planned(store, 50)
        planned(store, 50)
        assert store.status().requests == 50
        assert len(list(store.iter_pending(chunk=7))) == 50


def test_a_result_is_recorded_once_even_if_sent_twice(tmp_path: Path) -> None:
    with JobStore(tmp_path / "s.db") as store:
        planned(store, 3)
        store.record([FinishedRequest(id=1, attempts=1, responses='[{"text": "a"}]')])
        store.record([FinishedRequest(id=1, attempts=2, responses='[{"text": "b"}]')])
        outcomes = {index: o for index, _, o in store.iter_rows()}
        assert outcomes[1][0][3] == '[{"text": "a"}]'
        assert [r.id for r in store.iter_pending()] == [0, 2]


def test_retry_failed_makes_failed_pending_again(tmp_path: Path) -> None:
    with JobStore(tmp_path / "s.db") as store:
        planned(store, 2)
        store.record([FinishedRequest(id=0, attempts=8, error="HTTP 500", error_kind="retryable")])
        assert store.status().failed == 1
        assert store.retry_failed() == 1
        assert [r.id for r in store.iter_pending()] == [0, 1]
        assert next(store.iter_pending()).attempts == 8


def test_a_different_job_is_refused_naming_the_change(tmp_path: Path) -> None:
    with JobStore(tmp_path / "s.db") as store:
        store.bind_job({"template": "A {{ x }}", "k": 1})
        assert store.bind_job({"template": "A {{ x }}", "k": 1}) is True
        with pytest.raises(JobMismatchError, match="k 1 -> 3|the k"):
            store.bind_job({"template": "A {{ x }}", "k": 3})


def test_a_store_from_a_newer_promptmill_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    JobStore(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(StoreError, match="newer promptmill"):
        JobStore(path)


def test_one_process_at_a_time(tmp_path: Path) -> None:
    with JobStore(tmp_path / "s.db"), pytest.raises(StoreError, match="in use"):
        JobStore(tmp_path / "s.db")


@pytest.mark.parametrize("version", [1, 3, 4, 6])
def test_an_older_store_gains_the_endpoint_column_and_keeps_its_results(
        tmp_path: Path, version: int) -> None:
    path = tmp_path / "old.promptmill.db"
    db = sqlite3.connect(path, isolation_level=None)
    # A store written before fleets: schema 1, 3, or 4 (structured output's invalid_output
    # outcome, the last migration before the endpoint column).
    for migration in MIGRATIONS[:version]:
        migration(db)
    db.execute(f"PRAGMA user_version={version}")
    db.execute("INSERT INTO requests (id, row_index, sample_group, n, payload, est_tokens, "
               "status, attempts, responses) VALUES (0, 0, 0, 1, '{}', 5, 'done', 1, '[]')")
    db.execute("INSERT INTO requests (id, row_index, sample_group, n, payload, est_tokens, "
               "status, attempts) VALUES (1, 1, 0, 1, '{}', 5, 'pending', 0)")
    db.close()
    with JobStore(path) as store:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 7
        assert store.status().done == 1
        # Planned without response cache keys: dispatch hashes them (migration 7).
        assert [(r.id, r.cache_key, r.cache_seed) for r in store.iter_pending()] == [
            (1, None, None)]
        store.record([FinishedRequest(1, 1, "[]", endpoint="http!m,api_base=http://b/v1")])
        assert store.db.execute("SELECT id, endpoint FROM requests ORDER BY id").fetchall() == [
            (0, None), (1, "http!m,api_base=http://b/v1")]
