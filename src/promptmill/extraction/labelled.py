"""Measuring extraction against responses a careful grader labelled.

A labelled case is one response with its question, ``choices`` (or none, for math), the
dataset's ``gold`` and the answer a grader records (``expected``: a letter, a math answer, or
None where the response commits to none); ``family`` groups cases by difficulty. ``score``
grades the cases as a results file, exactly as ``promptmill extract`` grades one (a judge
too, if given), and counts how often the extracted answer is the grader's.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptmill.extraction.options import LETTERS

if TYPE_CHECKING:
    from promptmill.extraction.judge import JudgeOptions
    from promptmill.grading import GradeReport


@dataclass
class Scores:
    """How many cases were read as the grader read them: overall, per family, per method."""

    right: Counter[str] = field(default_factory=Counter)  # by family
    total: Counter[str] = field(default_factory=Counter)  # by family
    methods: Counter[str] = field(default_factory=Counter)  # responses each method decided
    misses: list[dict[str, Any]] = field(default_factory=list)
    report: GradeReport | None = None

    @property
    def accuracy(self) -> float:
        """The share of all cases read as the grader read them."""
        return sum(self.right.values()) / max(1, sum(self.total.values()))

    def family_accuracy(self, family: str) -> float:
        """The share of one family's cases read as the grader read them."""
        return self.right[family] / max(1, self.total[family])


def read_cases(path: str | Path) -> list[dict[str, Any]]:
    """The labelled cases of a JSONL file."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def as_results(cases: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The cases as ``promptmill run`` results rows: one response each, gold as datasets give it."""
    rows = []
    for case in cases:
        row: dict[str, Any] = {
            "unique_id": case["id"],
            "question": case["question"],
            "choices": case["choices"],
            "category": case.get("family", "original"),
            "responses": [{"text": case["response"], "finish_reason": case["finish_reason"]}],
            "status": "done",
        }
        if case["choices"]:
            row["choice_index_correct"] = LETTERS.index(case["gold"])
        else:
            row["answer_correct"] = case["gold"]
        rows.append(row)
    return rows


def score(
    cases: list[dict[str, Any]],
    *,
    judge: str | JudgeOptions | None = None,
    folder: str | Path | None = None,
) -> Scores:
    """Grade the cases (with ``judge``, its job kept in ``folder``) and compare each final
    answer with the grader's."""
    from promptmill.extract import grade, is_equivalent

    with tempfile.TemporaryDirectory(prefix="promptmill-cases-") as scratch:
        place = Path(folder) if folder is not None else Path(scratch)
        place.mkdir(parents=True, exist_ok=True)
        results = place / "cases.results.jsonl"
        results.write_text(
            "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in as_results(cases)),
            encoding="utf-8",
        )
        report = grade(results, judge=judge)
    scores = Scores(report=report)
    for case, row in zip(cases, report.rows, strict=True):
        extraction = row.extractions[0]
        got, expected = extraction.extracted, case["expected"]
        if got is None or expected is None:
            right = got is None and expected is None
        elif case["choices"]:
            right = got == expected
        else:
            right = is_equivalent(got, expected)
        family = case.get("family", "original")
        scores.total[family] += 1
        scores.right[family] += right
        scores.methods[extraction.method] += 1
        if not right:
            scores.misses.append(
                {"id": case["id"], "family": family, "expected": expected, "got": got,
                 "method": extraction.method}
            )
    return scores


__all__ = ["Scores", "as_results", "read_cases", "score"]
