"""What ``promptmill extract`` wrote, as the report and the browser read it.

Two files: the JSON report of ``extract --report`` (accuracy, pass@k, majority vote,
extraction failures, per category) and the JSONL of ``extract --out`` (every results row
with an ``extractions`` list, one per response). Their reading is kept here, in two small
functions, so that a change in extract's output changes only this module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptmill.errors import InputError


@dataclass
class AccuracyLine:
    """One line of the accuracy table: overall or one category."""

    name: str
    rows: int
    responses: int
    accuracy: float
    pass_at_k: dict[str, float]
    majority_accuracy: float


@dataclass
class Accuracy:
    """The accuracy table of an ``extract --report`` file."""

    overall: AccuracyLine
    per_category: list[AccuracyLine] = field(default_factory=list)
    extraction_failure_rate: float = 0.0
    failed_rows: int = 0


def read_accuracy(path: Path) -> Accuracy:
    """The accuracy table of the JSON ``promptmill extract --report`` wrote to ``path``."""
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
        overall = _line("all", report)
        per_category = [_line(str(name), summary)
                        for name, summary in dict(report.get("per_category") or {}).items()]
        return Accuracy(overall, per_category,
                        float(report.get("extraction_failure_rate", 0.0)),
                        int(report.get("failed_rows", 0)))
    except OSError as exc:
        raise InputError(f"--accuracy {path}: cannot read it ({exc.strerror})") from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise InputError(f"--accuracy {path}: not a report of `promptmill extract --report` "
                         f"({type(exc).__name__}: {exc}); pass the JSON file it wrote") from None


def _line(name: str, summary: dict[str, Any]) -> AccuracyLine:
    return AccuracyLine(
        name=name, rows=int(summary["rows"]), responses=int(summary.get("responses", 0)),
        accuracy=float(summary["accuracy"]),
        pass_at_k={str(k): float(v) for k, v in dict(summary.get("pass_at_k") or {}).items()},
        majority_accuracy=float(summary.get("majority_accuracy", 0.0)),
    )


@dataclass
class RowExtractions:
    """One results row's extracted answers: per response (answer, correct, method)."""

    answers: list[tuple[str | None, bool, str]]

    @property
    def correct(self) -> int:
        """How many of the row's responses are correct."""
        return sum(correct for _, correct, _ in self.answers)


def read_extractions(path: Path) -> dict[int, RowExtractions]:
    """Row index -> extractions, from the JSONL ``promptmill extract --out`` wrote.

    That file has one line per results row, in the results' order, which is the job's
    input order: line N is input row N - 1.
    """
    rows: dict[int, RowExtractions] = {}
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle):
                if not line.strip():
                    continue
                try:
                    extractions = json.loads(line)["extractions"]
                    rows[number] = RowExtractions(
                        [(None if e.get("extracted") is None else str(e["extracted"]),
                          bool(e.get("correct")), str(e.get("method", "")))
                         for e in extractions])
                except (ValueError, TypeError, KeyError, AttributeError):
                    raise InputError(
                        f"--extractions {path}, line {number + 1}: not a line of `promptmill "
                        "extract --out` (a row with an extractions list); pass that file"
                    ) from None
    except OSError as exc:
        raise InputError(f"--extractions {path}: cannot read it ({exc.strerror})") from None
    return rows


def extract_row(row: dict[str, Any]) -> RowExtractions | None:
    """One results row's answers extracted now, as ``promptmill extract`` would (None: the
    row cannot be graded, e.g. it has no gold answer)."""
    from promptmill.errors import PromptmillError
    from promptmill.extract import grade

    try:
        graded = grade([row]).rows[0]
    except (PromptmillError, LookupError, ValueError, TypeError):
        return None
    return RowExtractions([(e.extracted, e.correct, e.method) for e in graded.extractions])
