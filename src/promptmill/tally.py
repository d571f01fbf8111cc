"""The report's numbers from counts of graded rows (``promptmill.grading`` says what each
number means).

A row counts only by what the numbers need (category, type, responses received, how many
are correct, whether its majority vote is, whether its job failed), so a tally of a million
rows is as small as one of ten, two tallies add up (chunks of a file graded in separate
processes, the files of a comparison), and ``k`` is read at the end, once every row is in.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from promptmill.grading import RowGrade

__all__ = ["RowCount", "Tally", "k_values", "pass_at_k", "summary"]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for n samples with c correct: 1 - C(n-c, k) / C(n, k), as a product."""
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def k_values(k: int) -> list[int]:
    """1, every power of two below k, and k."""
    values = [1]
    while values[-1] * 2 < k:
        values.append(values[-1] * 2)
    return values + [k] if k > 1 else values


class RowCount(NamedTuple):
    """What one graded row contributes to the numbers; rows alike are counted together."""

    category: str
    type: str
    received: int  # responses the row has (a failed row may have fewer than k)
    correct: int
    majority_correct: bool
    failed: bool  # the job gave up on the row


@dataclass(slots=True)
class Tally:
    """Counts of graded rows and responses, from which :meth:`to_dict` computes the report."""

    rows: Counter[RowCount] = field(default_factory=Counter)
    methods: Counter[tuple[str, bool]] = field(default_factory=Counter)  # (method, correct)
    uncertain: set[str] = field(default_factory=set)  # methods that infer an answer
    unanswered: int = 0  # responses with no extracted answer

    @classmethod
    def of(cls, rows: Iterable[RowGrade]) -> Tally:
        """The tally of some graded rows."""
        tally = cls()
        for row in rows:
            tally.add(row)
        return tally

    def add(self, row: RowGrade) -> None:
        """Count one graded row."""
        self.rows[RowCount(row.category, row.type, len(row.extractions), row.correct,
                           row.majority_correct, row.status_failed)] += 1
        for extraction in row.extractions:
            self.methods[(extraction.method, extraction.correct)] += 1
            if extraction.uncertain and extraction.rule is None:
                self.uncertain.add(extraction.method)
            self.unanswered += extraction.extracted is None

    def merge(self, other: Tally) -> None:
        """Add another tally's counts to this one."""
        self.rows.update(other.rows)
        self.methods.update(other.methods)
        self.uncertain |= other.uncertain
        self.unanswered += other.unanswered

    @property
    def k(self) -> int:
        """Samples per row: the most responses any row has (1 for no rows)."""
        return max((count.received for count in self.rows), default=0) or 1

    @property
    def row_count(self) -> int:
        """How many rows were counted."""
        return sum(self.rows.values())

    def to_dict(self, k: int | None = None) -> dict[str, Any]:
        """The JSON report: overall, per category, per answer type and per method."""
        k = k or self.k
        groups = sorted(self.rows.items())  # sums in one order, however the rows came in
        received = sum(count.received * n for count, n in groups)
        report = summary(groups, k)
        categories = sorted({count.category for count, _ in groups})
        report.update(
            extraction_failure_rate=self.unanswered / received if received else 0.0,
            failed_rows=sum(n for count, n in groups if count.failed or count.received < k),
            k=k,
            per_category={
                name: summary([g for g in groups if g[0].category == name], k)
                for name in categories
            },
            by_type={
                kind: {
                    key: value
                    for key, value in summary([g for g in groups if g[0].type == kind], k).items()
                    if key in ("rows", "responses", "accuracy")
                }
                for kind in ("mcq", "math")
            },
            per_method=self.per_method(),
        )
        return report

    def per_method(self) -> dict[str, dict[str, Any]]:
        """Responses each method decided and how many of them are correct, most used first."""
        decided: Counter[str] = Counter()
        right: Counter[str] = Counter()
        for (method, correct), n in self.methods.items():
            decided[method] += n
            right[method] += n if correct else 0
        return {
            method: {
                "responses": count,
                "correct": right[method],
                "accuracy": right[method] / count,
                "uncertain": method in self.uncertain,
            }
            for method, count in sorted(decided.items(), key=lambda item: (-item[1], item[0]))
        }


def summary(groups: Iterable[tuple[RowCount, int]], k: int) -> dict[str, Any]:
    """Accuracy, pass@k and majority accuracy over counted rows (``(row, how many)`` pairs)."""
    groups = list(groups)
    count = sum(n for _, n in groups)

    def mean(values: Iterable[float]) -> float:
        return sum(values) / count if count else 0.0

    return {
        "accuracy": sum(row.correct * n for row, n in groups) / (count * k) if count else 0.0,
        "pass_at_k": {
            str(j): mean(pass_at_k(k, row.correct, j) * n for row, n in groups)
            for j in k_values(k)
        },
        "majority_accuracy": mean(n for row, n in groups if row.majority_correct),
        "rows": count,
        "responses": sum(row.received * n for row, n in groups),
    }
