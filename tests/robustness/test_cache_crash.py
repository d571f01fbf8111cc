"""Kill a job that feeds the response cache: no entry for an answer the store lost.

The cache is written after the job store commits (same answers, a later transaction), so a
kill leaves the cache holding a subset of the store's committed answers, never one the
store does not have; a kill between the two commits only leaves entries unwritten, which
the rerun copies from the store before it sends anything.
"""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from robustness_helpers import clean_env, cli_command, done_count, wait_for, write_jsonl

from promptmill.testing import TestServer, serve_in_thread

ROWS = 4000


@pytest.fixture(scope="module")
def slow_server() -> Iterator[TestServer]:
    """A deterministic test server answering after 20 ms."""
    with serve_in_thread(latency=0.02) as server:
        yield server


def cached_texts(path: Path) -> list[str]:
    """Every response the cache file holds (an entry copied from a job store is the list of
    its one response, as the store keeps it)."""
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [text[1:-1] if text.startswith("[") else text
                for (text,) in db.execute("SELECT response FROM responses")]
    except sqlite3.OperationalError:  # killed before its schema was committed
        return []
    finally:
        db.close()


def stored_texts(path: Path) -> set[str]:
    """Every response the job store committed, as the cache stores one (a JSON object)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {json.dumps(response, ensure_ascii=False)
                for (text,) in db.execute("SELECT responses FROM requests WHERE status = 'done'")
                for response in json.loads(text)}
    finally:
        db.close()


@pytest.mark.slow
def test_a_kill_leaves_no_cache_entry_the_store_lost(tmp_path: Path, slow_server: TestServer):
    source = write_jsonl(tmp_path / "in.jsonl", [{"question": f"What follows {i}?"}
                                                 for i in range(ROWS)])
    store, cache = tmp_path / "out.jsonl.promptmill.db", tmp_path / "cache.sqlite"
    command = cli_command("run", source.name, "-o", "out.jsonl", "--template", "{{ question }}",
                          "-m", f"http!test-model,api_base={slow_server.url},temperature=0",
                          "--cache", cache.name, "--max-concurrency", "8")
    rng = random.Random()
    kills = 0
    for life in range(30):
        child = subprocess.Popen(command, cwd=tmp_path, env=clean_env(), text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        before = len(cached_texts(cache))
        # Kill at a random moment after this life's first cache write (one every 2 s).
        if wait_for(lambda before=before: len(cached_texts(cache)) > before, timeout=120,
                    interval=0.05, process=child) is not None:
            time.sleep(rng.uniform(0, 2.5))
        if child.poll() is not None:
            _, err = child.communicate()
            assert child.returncode == 0, err
            break
        child.kill()
        child.communicate()
        kills += 1
        entries = cached_texts(cache)
        kept = stored_texts(store)
        assert all(json.dumps(json.loads(text), ensure_ascii=False) in kept
                   for text in entries), f"life {life}: a cache entry the store does not hold"
    assert kills >= 2 and done_count(store) == ROWS
    # Each rerun first copied what the life before it committed and never copied (killed
    # between the two commits): in the end the cache holds every answer, once.
    entries = cached_texts(cache)
    assert len(entries) == ROWS
    assert {json.dumps(json.loads(text), ensure_ascii=False) for text in entries} == \
        stored_texts(store)
