"""The comparison of graded results files: one line per file (its model), sorted by accuracy.

Each line has the rows and responses it was computed on, ``k``, accuracy, pass@k, majority
vote, the extraction failure rate and the failed rows, and per category the same. Where
the files do not cover the same questions (matched by ``unique_id``, else question text),
a warning says which file lacks or repeats how many, and each line also gets its numbers on
the questions every file has (``shared``), the fair column to compare.

``to_dict`` is the JSON ``--report`` writes; ``write_csv`` the CSV beside it (tidy: one row
per model and category, ``(all)`` first); ``table`` and ``category_table`` what is printed.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptmill.tally import k_values, pass_at_k

if TYPE_CHECKING:
    import pyarrow as pa
    from rich.table import Table

    from promptmill.evaluate import FileGrades

__all__ = ["ALL", "Comparison"]

ALL = "(all)"
"""The CSV's category for a model's overall numbers."""


@dataclass(frozen=True)
class _Line:
    """One file's line of the comparison."""

    grades: FileGrades
    label: str  # the model, with the file's name where two files have one model
    report: dict[str, Any]
    questions: int  # distinct questions
    repeated: int  # rows whose question an earlier row of the file already had
    missing: int  # questions some other file has and this one does not
    shared: dict[str, Any] | None  # numbers on the questions every file has


@dataclass
class Comparison:
    """Files graded by ``promptmill.evaluate.grade_files``, compared (see the module)."""

    files: Sequence[FileGrades]
    notes: list[str] = field(default_factory=list)  # files left out, and why
    _lines: list[_Line] = field(init=False, repr=False)
    _shared: int = field(init=False, repr=False)  # questions every file has
    _any: int = field(init=False, repr=False)  # questions any file has

    def __post_init__(self) -> None:
        import pyarrow.compute as pc

        keys = [_as_arrow(f.keys) for f in self.files]
        distinct = [pc.unique(k) for k in keys]
        every = _in_every(distinct)
        self._any = len(pc.unique(_concat(distinct))) if distinct else 0
        self._shared = len(every)
        same = all(len(d) == self._any for d in distinct)
        labels = _labels(self.files)
        lines = []
        for grades, key, unique, label in zip(self.files, keys, distinct, labels, strict=True):
            report = grades.tally.to_dict()
            shared = None
            if not same and self._shared:
                shared = _subset(grades, pc.is_in(key, value_set=every), report["k"])
            lines.append(_Line(grades, label, report, len(unique), len(key) - len(unique),
                               self._any - len(unique), shared))
        lines.sort(key=lambda line: (-line.report["accuracy"], line.label))
        self._lines = lines

    @property
    def same_questions(self) -> bool:
        """Whether every file covers the same questions."""
        return all(line.missing == 0 for line in self._lines)

    def warnings(self) -> list[str]:
        """What a reader of the table must know: files left out, unequal question sets."""
        out = list(self.notes)
        if not self.same_questions:
            lacking = ", ".join(f"{line.grades.path.name} lacks {line.missing}"
                                for line in self._lines if line.missing)
            out.append(
                f"the files cover different questions ({self._any} in all, {self._shared} in "
                f"every file: {lacking}): their accuracies are over different questions; "
                "the 'shared' numbers are over the questions every file has"
                if self._shared else
                f"the files cover different questions and none is in every file ({lacking}):"
                " their accuracies are not comparable"
            )
        out.extend(f"{line.grades.path.name} holds {line.repeated} rows whose question "
                   "(unique_id) an earlier row has" for line in self._lines if line.repeated)
        out.extend(f"{line.grades.path} has rows of {n} models ({', '.join(line.grades.models)}):"
                   " its line is labelled with the most common"
                   for line in self._lines if (n := len(line.grades.models)) > 1)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The comparison as JSON: a line per model (best first), questions, warnings."""
        models = []
        for rank, line in enumerate(self._lines, 1):
            entry: dict[str, Any] = {
                "rank": rank, "model": line.grades.model, "label": line.label,
                "file": str(line.grades.path), "format": line.grades.input_format,
                "graded": str(line.grades.graded) if line.grades.graded else None,
                "questions": line.questions, **line.report,
            }
            if line.shared is not None:
                entry["shared"] = line.shared
            models.append(entry)
        return {
            "models": models,
            "categories": self.categories(),
            "questions": {"any_file": self._any, "every_file": self._shared,
                          "same": self.same_questions},
            "warnings": self.warnings(),
        }

    def categories(self) -> list[str]:
        """Every category any file has, sorted."""
        return sorted({name for line in self._lines for name in line.report["per_category"]})

    def write_csv(self, path: Path) -> None:
        """The comparison as a tidy CSV: one row per model and category (``(all)`` first)."""
        ks = sorted({int(j) for line in self._lines for j in line.report["pass_at_k"]})
        columns = ["rank", "model", "file", "category", "rows", "responses", "k", "accuracy",
                   *(f"pass@{j}" for j in ks), "majority_accuracy", "extraction_failure_rate",
                   "failed_rows", "shared_rows", "shared_accuracy", "shared_majority_accuracy"]
        with path.open("w", encoding="utf-8", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=columns)
            writer.writeheader()
            for rank, line in enumerate(self._lines, 1):
                report = line.report
                shared = line.shared or {}
                base = {"rank": rank, "model": line.grades.model, "file": str(line.grades.path),
                        "k": report["k"]}
                writer.writerow({
                    **base, **_numbers(report), "category": ALL,
                    "extraction_failure_rate": report["extraction_failure_rate"],
                    "failed_rows": report["failed_rows"], "shared_rows": shared.get("rows"),
                    "shared_accuracy": shared.get("accuracy"),
                    "shared_majority_accuracy": shared.get("majority_accuracy"),
                })
                for name, numbers in report["per_category"].items():
                    writer.writerow({**base, **_numbers(numbers), "category": name})

    def table(self) -> Table:
        """The comparison as a rich table, best model first."""
        from rich.table import Table

        ks = sorted({int(j) for line in self._lines for j in line.report["pass_at_k"]})
        shared = any(line.shared for line in self._lines)
        table = Table(title=f"models compared ({len(self._lines)} results files, by accuracy)")
        table.add_column("#", justify="right")
        table.add_column("model")
        for name in ("rows", "k", "accuracy", *(f"pass@{j}" for j in ks), "majority",
                     "no answer", *(("shared acc.", "shared rows") if shared else ())):
            table.add_column(name, justify="right")
        table.add_column("file")
        for rank, line in enumerate(self._lines, 1):
            report = line.report
            passes = report["pass_at_k"]
            table.add_row(
                str(rank), line.label, f"{report['rows']:,}", str(report["k"]),
                f"{report['accuracy']:.1%}",
                *(f"{passes[str(j)]:.1%}" if str(j) in passes else "-" for j in ks),
                f"{report['majority_accuracy']:.1%}", f"{report['extraction_failure_rate']:.1%}",
                *((f"{line.shared['accuracy']:.1%}", f"{line.shared['rows']:,}")
                  if line.shared else ("-", "-") if shared else ()),
                line.grades.path.name,
            )
        table.caption = ("accuracy: correct responses / (rows x k); pass@k: unbiased "
                         "estimator; majority: each row's most given answer; no answer: "
                         "responses with no extractable answer")
        return table

    def category_table(self) -> Table:
        """Accuracy per category (rows in brackets), a column per model, best model first."""
        from rich.table import Table

        table = Table(title="accuracy by category (rows)")
        table.add_column("category")
        for rank, line in enumerate(self._lines, 1):
            table.add_column(f"#{rank} {line.label}", justify="right")
        for name in self.categories():
            cells = []
            for line in self._lines:
                numbers = line.report["per_category"].get(name)
                cells.append(f"{numbers['accuracy']:.1%} ({numbers['rows']:,})"
                             if numbers else "-")
            table.add_row(name, *cells)
        table.add_row("all", *(f"{line.report['accuracy']:.1%} ({line.report['rows']:,})"
                               for line in self._lines), style="bold")
        return table


def _numbers(summary: dict[str, Any]) -> dict[str, Any]:
    """A summary's figures as CSV cells."""
    return {"rows": summary["rows"], "responses": summary["responses"],
            "accuracy": summary["accuracy"], "majority_accuracy": summary["majority_accuracy"],
            **{f"pass@{j}": value for j, value in summary["pass_at_k"].items()}}


def _labels(files: Sequence[FileGrades]) -> list[str]:
    """Each file's model, with the file's name where two files share a model."""
    counts = Counter(f.model for f in files)
    return [f.model if counts[f.model] == 1 else f"{f.model} ({f.path.name})" for f in files]


def _as_arrow(values: Any) -> pa.Array:
    """An ``array('Q')`` of question keys as an Arrow array, without copying."""
    import pyarrow as pa

    return pa.Array.from_buffers(pa.uint64(), len(values), [None, pa.py_buffer(values)])


def _concat(arrays: Sequence[pa.Array]) -> pa.Array:
    import pyarrow as pa

    return pa.concat_arrays(list(arrays))


def _in_every(distinct: Sequence[pa.Array]) -> pa.Array:
    """The keys present in every one of the files' distinct keys."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not distinct:
        return pa.array([], pa.uint64())
    counts = pc.value_counts(_concat(distinct))
    return pc.filter(counts.field("values"), pc.equal(counts.field("counts"), len(distinct)))


def _subset(grades: FileGrades, mask: pa.Array, k: int) -> dict[str, Any]:
    """Accuracy, pass@k and majority accuracy over the rows ``mask`` keeps."""
    import pyarrow.compute as pc

    kept = mask.to_pylist()
    correct = Counter(c for c, keep in zip(grades.correct, kept, strict=True) if keep)
    majority = sum(m for m, keep in zip(grades.majority, kept, strict=True) if keep)
    rows = int(pc.sum(mask).as_py() or 0)
    return {
        "rows": rows,
        "accuracy": sum(c * n for c, n in correct.items()) / (rows * k) if rows else 0.0,
        "pass_at_k": {str(j): sum(pass_at_k(k, c, j) * n for c, n in correct.items()) / rows
                      if rows else 0.0 for j in k_values(k)},
        "majority_accuracy": majority / rows if rows else 0.0,
    }
