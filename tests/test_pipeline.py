"""The README's evaluation pipeline: `promptmill run -k 5` on multiple choice, then `extract`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

QUESTIONS = [
    {"unique_id": "geo-1", "question": "Capital of France?", "choices": ["Rome", "Paris", "Oslo"],
     "choice_index_correct": 1, "answer_correct": "Paris", "category": "geography"},
    {"unique_id": "geo-2", "question": "Capital of Norway?", "choices": ["Rome", "Paris", "Oslo"],
     "choice_index_correct": 2, "answer_correct": "Oslo", "category": "geography"},
    {"unique_id": "sci-1", "question": "H2O is?", "choices": ["water", "salt", "gold"],
     "choice_index_correct": 0, "answer_correct": "water", "category": "science"},
]


def answer_like_a_model(body: dict[str, Any]) -> list[str]:
    """A scripted model: right on France, sometimes right on Norway, always wrong on H2O."""
    prompt = body["messages"][-1]["content"]
    n = body.get("n", 1)
    if "France" in prompt:
        return ["Paris is the capital, so the answer is (B)."] * n
    if "Norway" in prompt:
        return ["Answer: C", "I think it is A.", "The answer is c)", "Answer: C", "**A**"][:n]
    return ["The answer is (B)"] * n


def test_run_k5_then_extract_gives_the_report(tmp_path: Path, make_server) -> None:
    server = make_server(responder=answer_like_a_model)
    source = tmp_path / "mcq.jsonl"
    source.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    template = ("{{ question }}\n{% for c in choices %}{{ 'ABC'[loop.index0] }}. {{ c }}\n"
                "{% endfor %}")
    out, report = tmp_path / "answers.jsonl", tmp_path / "report.json"
    run = subprocess.run(
        [sys.executable, "-m", "promptmill", "run", source, "-m",
         f"http!test-model,api_base={server.url}", "-k", "5", "--template", template, "-o", out],
        capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stderr
    extract = subprocess.run(
        [sys.executable, "-m", "promptmill", "extract", out, "--report", report],
        capture_output=True, text=True,
    )
    assert extract.returncode == 0, extract.stderr
    assert "geography" in extract.stdout
    data = json.loads(report.read_text())
    # 5 + 3 + 0 correct out of 15 responses.
    assert data["accuracy"] == 8 / 15
    assert data["majority_accuracy"] == 2 / 3
    assert data["pass_at_k"]["5"] == 2 / 3
    assert data["per_category"]["science"]["accuracy"] == 0
    assert data["failed_rows"] == 0
