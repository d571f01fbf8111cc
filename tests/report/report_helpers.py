"""The finished, graded job the report and browser tests share (see ``graded_job``).

The job runs through the real CLI (``python -m promptmill run``) as ``openai!gpt-4o-mini``
(a model with a known price) against the test server, with an API key in the environment
and that key written into one row's question: the report and the browser must never show
it. Answers are scripted: each holds HTML (``<script>``, ``<b>``) and ends in "Answer: X",
right for ``row % 4`` of its 3 samples; rows 5 and 9 fail with an error quoting an
``<img onerror>`` tag; row 11 alone holds the word "needle". Then ``promptmill extract``
grades it (``--report`` and ``--out``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptmill.testing import Faults, serve_in_thread

KEY = "sk-proj-Zq9TESTKEYvalue1234567890abcdef"
ROWS = 150
K = 3
CATEGORIES = ("algebra", "biology", "history")
FAILING = (5, 9)
NEEDLE_ROW = 11
KEY_ROW = 7
LETTERS = "ABCD"
ERROR_HTML = "<img src=x onerror=window.__pwned=2>"
ANSWER_HTML = "Thinking about <b>it</b> <script>window.__pwned = 1</script>."


def question(index: int) -> str:
    """Row ``index``'s question text."""
    text = f"[row {index}] Which option is right?"
    if index == NEEDLE_ROW:
        text += " Look for the needle."
    if index == KEY_ROW:
        text += f" My key is {KEY}, keep it."
    return text


def correct_samples(index: int) -> int:
    """How many of row ``index``'s samples answer right."""
    return min(index % 4, K)


def respond(body: dict[str, Any]) -> list[str]:
    """The scripted answers to one request (n samples)."""
    content = body["messages"][-1]["content"]
    index = int(re.search(r"\[row (\d+)\]", content).group(1))  # type: ignore[union-attr]
    if index in FAILING:
        raise ValueError(f"refused row {index} {ERROR_HTML}")
    gold = index % 4
    letters = [LETTERS[gold if j < correct_samples(index) else (gold + 1) % 4]
               for j in range(body.get("n", 1))]
    return [f"{ANSWER_HTML} Answer: {letter}" for letter in letters]


def cli(*args: Any, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The real CLI in a child process, with the key in its environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI")}
    env["OPENAI_API_KEY"] = KEY
    return subprocess.run([sys.executable, "-m", "promptmill", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


@dataclass
class GradedJob:
    """Paths of the finished job and of extract's files."""

    folder: Path
    output: Path
    accuracy: Path
    extractions: Path

    @property
    def store(self) -> Path:
        """The job store."""
        return self.output.with_name(self.output.name + ".promptmill.db")


def make_graded_job(folder: Path) -> GradedJob:
    """Run and grade the job of the module docstring in ``folder``."""
    source = folder / "questions.jsonl"
    with open(source, "w", encoding="utf-8") as handle:
        for index in range(ROWS):
            handle.write(json.dumps({
                "unique_id": f"q{index}", "question": question(index),
                "choices": [f"option {letter}" for letter in LETTERS],
                "choice_index_correct": index % 4, "category": CATEGORIES[index % 3],
            }) + "\n")
    job = GradedJob(folder, folder / "answers.jsonl", folder / "accuracy.json",
                    folder / "extractions.jsonl")
    with serve_in_thread(models=("gpt-4o-mini",), responder=respond, latency=0.01,
                         faults=Faults(rate_limit=0.08, seed=11, retry_after=0.2)) as server:
        model = f"openai!gpt-4o-mini,api_base={server.url},logprobs=true,top_logprobs=2"
        run = cli("run", source, "--template", "{{ question }}", "-m", model, "-k", K,
                  "-o", job.output, "--max-attempts", 2, "--rpm", 2400, cwd=folder)
    assert run.returncode == 1 and "requests failed" in run.stderr, run.stderr
    graded = cli("extract", job.output, "--report", job.accuracy, "--out", job.extractions,
                 cwd=folder)
    assert graded.returncode == 0, graded.stderr
    return job
