"""The SQLite job store: migrations, fingerprints, idempotent planning, exactly-once records."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from promptmill.errors import JobMismatchError, StoreError
from promptmill.store import FinishedRequest, JobStore


def planned(store: JobStore, rows: int) -> None:
    store.add_planned(
        [(i, f'{{"i": {i}}}') for i in range(rows)],
        [(i, i, 0, 1, '{"prompt": "p"}', 10) for i in range(rows)],
        rows,
    )


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
