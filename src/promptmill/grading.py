"""Scoring extracted answers: gold answers read from results rows, and the report's numbers
over rows of ``k`` samples (``k``: the most responses any row has).

- ``accuracy``: correct responses / (rows * k); a response a failed row never got is wrong.
- ``pass_at_k``: the unbiased estimator of Chen et al. 2021 with n = k, for k' = 1, every
  power of two below k, and k itself (keys are the k' as strings).
- ``majority_accuracy``: each row's most frequent extracted answer (equivalent math answers
  vote together, failed extractions do not vote) against the gold; a tie goes to the answer
  that appeared first among the row's responses; a row with no extracted answer is wrong.
- ``extraction_failure_rate``: responses with no extractable answer / responses received.
- ``per_method``: for each method that decided a response (see ``promptmill.extract``), how
  many responses it decided and how many of those are correct, so a user sees which rules to
  trust; ``uncertain`` responses are those decided by a rule that only infers the answer.
- ``judge`` (with ``--judge``): responses asked, answered, where the judge's answer differs
  from the rule's, and failures; a judged response's answer is the judge's, the rule's is kept.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from promptmill.errors import InputError
from promptmill.extraction.equivalence import DEFAULT_TIMEOUT, math_equal
from promptmill.extraction.options import LETTERS
from promptmill.resultfiles import read_results
from promptmill.tally import Tally, pass_at_k

if TYPE_CHECKING:
    from rich.table import Table

__all__ = [
    "DEFAULT_TIMEOUT",
    "LETTERS",
    "Extraction",
    "GradeReport",
    "JudgeAnswer",
    "JudgeRun",
    "RowGrade",
    "RuleAnswer",
    "majority_vote",
    "math_equal",
    "math_gold",
    "mcq_gold",
    "method_table",
    "pass_at_k",
    "read_results",
    "report_table",
    "row_question",
    "row_responses",
    "row_type",
    "same_file",
    "written_whole",
]

AnswerType = Literal["mcq", "math"]


@dataclass(frozen=True)
class RuleAnswer:
    """What the extraction rules found, kept beside a judge's answer that replaced it."""

    extracted: str | None
    correct: bool
    method: str


@dataclass(frozen=True)
class JudgeAnswer:
    """A judge model's reading of one response: its reply, the answer in it (None: the
    judge says the response commits to none), and an error if the judge gave no reply."""

    reply: str | None
    extracted: str | None
    correct: bool
    agrees: bool
    error: str | None = None


@dataclass(frozen=True)
class Extraction:
    """One response's extracted answer, whether it is correct, and how it was found.

    With a judge, ``extracted``/``correct`` are the judge's answer (``method`` ``judge``)
    where it gave one, and ``rule`` keeps what the rules found."""

    response_index: int
    extracted: str | None
    correct: bool
    method: str
    uncertain: bool = False
    rule: RuleAnswer | None = None
    judge: JudgeAnswer | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written to the ``--out`` file."""
        out: dict[str, Any] = {
            "response_index": self.response_index,
            "extracted": self.extracted,
            "correct": self.correct,
            "method": self.method,
            "uncertain": self.uncertain,
        }
        if self.rule is not None:
            out["rule"] = vars_of(self.rule)
        if self.judge is not None:
            out["judge"] = vars_of(self.judge)
        return out


def vars_of(answer: RuleAnswer | JudgeAnswer) -> dict[str, Any]:
    """A rule's or judge's answer as JSON (no null error field)."""
    return {key: value for key, value in asdict(answer).items() if key != "error" or value}


@dataclass(frozen=True)
class RowGrade:
    """The grades of one results row: its responses, and its majority-vote answer."""

    line: int
    unique_id: Any
    category: str
    type: AnswerType
    gold: str
    extractions: list[Extraction]
    status_failed: bool
    majority: str | None
    majority_correct: bool

    @property
    def correct(self) -> int:
        """How many of the row's responses are correct."""
        return sum(e.correct for e in self.extractions)


@dataclass(frozen=True)
class JudgeRun:
    """How a judge pass went: which model, which prompt, where its job lives."""

    model: str
    prompt_version: str
    job: str  # the judge job's results file (its store beside it)
    judge_all: bool


@dataclass(frozen=True)
class GradeReport:
    """Every row's grades, with the summary numbers of the module docstring."""

    rows: list[RowGrade]
    k: int
    judge: JudgeRun | None = None

    def failed_rows(self) -> int:
        """Rows whose job failed or that got fewer than k responses."""
        return sum(r.status_failed or len(r.extractions) < self.k for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        """The JSON report: overall, per category, per answer type and per method."""
        report = Tally.of(self.rows).to_dict(self.k)
        if self.judge is not None:
            report["judge"] = self.judge_summary([e for r in self.rows for e in r.extractions])
        return report

    def judge_summary(self, received: Sequence[Extraction]) -> dict[str, Any]:
        """The judge pass in numbers: asked, answered, disagreeing with the rules, failed."""
        assert self.judge is not None
        judged = [e.judge for e in received if e.judge is not None]
        return {
            "model": self.judge.model,
            "prompt_version": self.judge.prompt_version,
            "job": self.judge.job,
            "all": self.judge.judge_all,
            "asked": len(judged),
            "answered": sum(j.error is None for j in judged),
            "disagreed": sum(j.error is None and not j.agrees for j in judged),
            "failed": sum(j.error is not None for j in judged),
            "judge_correct": sum(j.error is None and j.correct for j in judged),
            "rule_correct": sum(
                e.rule.correct if e.rule is not None else e.correct
                for e in received
                if e.judge is not None
            ),
            "by_rule_method": self._judged_by_rule(received),
        }

    @staticmethod
    def _judged_by_rule(received: Sequence[Extraction]) -> dict[str, dict[str, int]]:
        """Per rule method: responses judged, disagreements, and who was right how often."""
        out: dict[str, dict[str, int]] = {}
        for e in received:
            if e.judge is None:
                continue
            rule = e.rule or RuleAnswer(e.extracted, e.correct, e.method)
            numbers = out.setdefault(
                rule.method, {"asked": 0, "disagreed": 0, "rule_correct": 0, "judge_correct": 0}
            )
            numbers["asked"] += 1
            answered = e.judge.error is None
            numbers["disagreed"] += answered and not e.judge.agrees
            numbers["rule_correct"] += rule.correct
            numbers["judge_correct"] += answered and e.judge.correct
        return dict(sorted(out.items()))

    def to_table(self) -> Table:
        """The report as a rich table: one line per category, then the total."""
        return report_table(self.to_dict())

    def method_table(self) -> Table:
        """Which rule decided how many responses, and how often it was right."""
        return method_table(self.to_dict())


def report_table(report: Mapping[str, Any]) -> Table:
    """A report (``GradeReport.to_dict``) as a rich table: one line per category, the total."""
    from rich.table import Table

    table = Table(title=f"answers graded ({report['k']} per row)")
    table.add_column("category")
    for name in ("rows", "responses", "accuracy"):
        table.add_column(name, justify="right")
    for j in report["pass_at_k"]:
        table.add_column(f"pass@{j}", justify="right")
    table.add_column("majority", justify="right")

    def cells(summary: Mapping[str, Any]) -> list[str]:
        return [
            str(summary["rows"]),
            str(summary["responses"]),
            f"{summary['accuracy']:.1%}",
            *(f"{v:.1%}" for v in summary["pass_at_k"].values()),
            f"{summary['majority_accuracy']:.1%}",
        ]

    for name, summary in report["per_category"].items():
        table.add_row(name, *cells(summary))
    table.add_row("all", *cells(report), style="bold", end_section=True)
    table.caption = (
        f"extraction failures {report['extraction_failure_rate']:.1%} of responses; "
        f"failed rows {report['failed_rows']}"
    )
    return table


def method_table(report: Mapping[str, Any]) -> Table:
    """Which rule decided how many responses of a report, and how often it was right."""
    from rich.table import Table

    table = Table(title="answers by the method that found them")
    table.add_column("method")
    for name in ("responses", "correct", "accuracy"):
        table.add_column(name, justify="right")
    for method, numbers in report["per_method"].items():
        name = f"{method} (uncertain)" if numbers["uncertain"] else method
        table.add_row(name, str(numbers["responses"]), str(numbers["correct"]),
                      f"{numbers['accuracy']:.1%}")
    judge = report.get("judge")
    if judge:
        table.caption = (
            f"judge {judge['model']} ({judge['prompt_version']}): asked {judge['asked']}, "
            f"answered {judge['answered']}, disagreed with the rules {judge['disagreed']}, "
            f"failed {judge['failed']}"
        )
    return table


def majority_vote(
    extractions: Sequence[Extraction], same: Callable[[str, str], bool]
) -> tuple[str | None, bool]:
    """The most voted answer and whether it is correct; a tie goes to the earliest answer."""
    clusters: list[tuple[Extraction, list[Extraction]]] = []  # (first member, members)
    for extraction in extractions:
        if extraction.extracted is None:
            continue  # a failed extraction does not vote
        for first, members in clusters:
            # correct answers all equal the gold, so they vote together without a comparison
            if first.correct == extraction.correct and (
                first.correct or same(extraction.extracted, first.extracted or "")
            ):
                members.append(extraction)
                break
        else:
            clusters.append((extraction, [extraction]))
    if not clusters:
        return None, False
    first, _ = max(clusters, key=lambda c: (len(c[1]), -c[0].response_index))
    return first.extracted, first.correct


# ---------------------------------------------------------------------------------------
# reading results rows and their gold answers; writing the extractions file


_QUESTION_FIELDS = ("question", "problem", "prompt")


def row_question(row: Mapping[str, Any]) -> str | None:
    """The row's question (the first of ``question``, ``problem``, ``prompt`` that is text)."""
    return next((row[name] for name in _QUESTION_FIELDS if isinstance(row.get(name), str)), None)


def row_type(row: Mapping[str, Any], requested: str) -> AnswerType:
    """mcq or math for this row: as requested, else as its ``is_mcq`` says, else by whether
    it has choices."""
    if requested == "mcq":
        return "mcq"
    if requested == "math":
        return "math"
    choices = row.get("choices")
    is_mcq = row.get("is_mcq")  # seed 002's inference results say it outright
    if isinstance(is_mcq, bool):
        return "mcq" if is_mcq else "math"
    return "mcq" if isinstance(choices, list) and choices else "math"


def mcq_gold(row: Mapping[str, Any], gold_field: str | None, where: str) -> int:
    """The gold option's index, from a letter, an index, or an option's text."""
    choices = row.get("choices")
    if not isinstance(choices, list) or not choices:
        raise InputError(f"{where}: multiple-choice row has no 'choices' list; use --type math")
    fields = [gold_field] if gold_field else ["choice_index_correct", "answer_correct"]
    for name in fields:
        value = row.get(name)
        if value is None or value == "":
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            if 0 <= value < len(choices):
                return value
            raise InputError(
                f"{where}: {name}={value} is outside the {len(choices)} choices (0-based index)"
            )
        text = str(value).strip()
        letter = re.fullmatch(r"\(?([A-Za-z])\)?\.?", text)
        if letter and LETTERS.index(letter.group(1).upper()) < len(choices):
            return LETTERS.index(letter.group(1).upper())
        if text in (str(c).strip() for c in choices):
            return [str(c).strip() for c in choices].index(text)
        if text.isdigit() and int(text) < len(choices):
            return int(text)
        raise InputError(
            f"{where}: {name}={text!r} is not a letter, index or text of the row's choices"
        )
    wanted = f"field {gold_field!r}" if gold_field else "'choice_index_correct' or 'answer_correct'"
    raise InputError(f"{where}: no gold answer in {wanted}; add it or pass --gold-field FIELD")


def math_gold(
    row: Mapping[str, Any], gold_field: str | None, where: str, normalise: Callable[[str], str]
) -> str:
    """The gold answer of a math row, normalised."""
    name = gold_field or "answer_correct"
    value = row.get(name)
    gold = normalise(str(value)) if value is not None else ""
    if not gold:
        raise InputError(
            f"{where}: no gold answer in field {name!r}; add it or pass --gold-field FIELD"
        )
    return gold


def row_responses(row: Mapping[str, Any], where: str) -> list[tuple[str, bool]]:
    """Each response's text and whether it was cut off by the token limit."""
    responses = row.get("responses")
    if not isinstance(responses, list):
        raise InputError(
            f"{where}: no 'responses' list; extract reads the file that `promptmill run` writes"
        )
    out = []
    for response in responses:
        if isinstance(response, str):
            out.append((response, False))
        elif isinstance(response, dict):
            # promptmill's results say "text"; seed 002's inference results "full_response"
            text = response.get("text", response.get("full_response"))
            out.append(
                (text if isinstance(text, str) else "", response.get("finish_reason") == "length")
            )
        else:
            raise InputError(
                f"{where}: each response must be an object with 'text' (or 'full_response')")
    return out


def same_file(one: Path, other: Path) -> bool:
    """Whether two paths name one file (through links too)."""
    if one.exists() and other.exists():
        return os.path.samefile(one, other)
    return one.resolve() == other.resolve()


@contextmanager
def written_whole(target: Path | None, *, binary: bool = False) -> Iterator[IO[Any] | None]:
    """A file (text, or bytes when ``binary``) that appears at ``target`` only once the block
    completes (None: no file)."""
    if target is None:
        yield None
        return
    partial = target.with_name(target.name + ".partial")
    try:
        file = partial.open("wb") if binary else partial.open("w", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"--out {target}: cannot write there ({exc.strerror})") from None
    try:
        with file:
            yield file
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
