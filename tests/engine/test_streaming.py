"""The streaming seam: a local engine's results are committed as they finish, not per batch."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import promptmill
from promptmill.testing import FakeLocalEngine


def done_count(store: Path) -> int:
    try:
        db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
        try:
            return int(db.execute("SELECT COUNT(*) FROM requests WHERE status='done'")
                       .fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return 0


async def test_results_are_committed_while_their_batch_still_runs(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": i, "prompt": f"row {i}"}) + "\n"
                              for i in range(300)))
    out = tmp_path / "out.jsonl"
    engine = FakeLocalEngine(delay=0.01)
    job = asyncio.create_task(promptmill.arun(source, engine, output=out, k=2))
    store = tmp_path / "out.jsonl.promptmill.db"
    seen: list[int] = []
    while not job.done():
        seen.append(done_count(store))
        await asyncio.sleep(0.02)
    rows = await job
    # A batch of 64 takes 0.64 s (the engine runs two at once): its first results were in the
    # store long before its last was made. Recording per batch would jump by 64 at a time.
    first_visible = next(count for count in seen if count)
    assert 0 < first_visible < 32, seen[:20]
    assert engine.batch_sizes[0] == FakeLocalEngine.max_batch
    assert engine.most_running_calls == FakeLocalEngine.concurrent_batches
    assert [row["id"] for row in rows] == list(range(300))
    assert all(row["status"] == "done" and len(row["responses"]) == 2 for row in rows)
    assert rows[5]["responses"][1]["text"] == "5 wor #1"
