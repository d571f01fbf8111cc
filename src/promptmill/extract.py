"""Answer extraction: each response's final committed answer, and ``grade`` over a results file.

A response is read as a careful grader reads it: every answer statement is found with its
position and kind, and the last of the strongest kind wins, so a model that changes its mind
is graded on what it ended with ("Answer: A. Wait, actually it's B." is B); denied options
("not A"), hypotheticals ("if ..., the answer would be D") and asides after the answer do
not count; a statement naming two answers ("A, C", "either 6 or 8"), a refusal, an empty
response or one cut off before it answers (``finish_reason == "length"``) has no answer and
is wrong, never its first letter. Multiple choice maps restated option text (exact or close),
ordinals and "choice N" to letters, for any number of options; math compares, with
math-verify where plain arithmetic cannot tell, the committed expression: the right-hand side
of ``x = ...``, a set for ``±`` and "or", an interval for ``-2 ≤ x ≤ 4``, Unicode math and
words for simple fractions.

Each extraction names the ``method`` that decided it, so a user can audit it. Multiple
choice: ``answer_tag`` (``<answer>B</answer>``), ``json``, ``boxed``, ``answer_statement``
("the answer is (B)", "I'll go with B", "so D."), ``option_text`` (a statement restating the
option), ``ordinal`` ("the third option"), ``letter_is_correct``, ``bare`` (a line holding
only a letter or an option's text), ``letter_and_text`` ("B. Paris" alone on a line),
``headline`` (an answer-first opening line), ``table`` (a table's one bold row),
``option_mention`` (the option the closing sentence names), ``option_restated`` (the one option
the closing sentence restates in its own words). Math: ``boxed``, ``answer_tag``,
``json``, ``final_answer``, ``gsm8k`` (``#### 42``), ``answer_statement``, ``table`` (a
bold total row), ``headline``, ``last_statement`` (what the closing sentence states),
``last_number``. No single answer: ``multiple``, ``hedge``, ``refusal``, ``truncated``,
``none``. A ``--judge`` model's answer is ``judge`` (see ``promptmill.extraction.judge``).

Judging and the report's numbers live in ``promptmill.grading``; the names users need are
re-exported here.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptmill.errors import InputError
from promptmill.extraction.choice import extract_choice_method, option_letter
from promptmill.extraction.equivalence import DEFAULT_TIMEOUT, math_equal
from promptmill.extraction.mathanswer import extract_math_method
from promptmill.extraction.mathnorm import normalise_math
from promptmill.extraction.options import LETTERS, Options
from promptmill.grading import (
    Extraction,
    GradeReport,
    JudgeAnswer,
    RowGrade,
    RuleAnswer,
    majority_vote,
    math_gold,
    mcq_gold,
    pass_at_k,
    read_results,
    row_question,
    row_responses,
    row_type,
    same_file,
)
from promptmill.resultfiles import GradedWriter, graded_format, graded_schema

if TYPE_CHECKING:
    from promptmill.extraction.judge import JudgeItem, JudgeOptions

__all__ = [
    "UNCERTAIN_METHODS",
    "Extraction",
    "GradeReport",
    "RowGrade",
    "equivalence_cache",
    "extract_answer",
    "extract_choice",
    "extract_math",
    "grade",
    "grade_row",
    "is_equivalent",
    "normalise_math",
    "pass_at_k",
]

UNCERTAIN_METHODS = frozenset(
    {"headline", "table", "option_mention", "option_restated", "bold_option", "last_statement",
     "last_number", "none"}
)
"""Methods that infer an answer rather than read a stated one (and ``none``, where the rules
found nothing): ``--judge`` asks its model about these responses."""

def extract_choice(text: str, choices: Sequence[Any], *, truncated: bool = False) -> int | None:
    """The 0-based index of the option a response chose, or None if it commits to none."""
    return extract_choice_method(text, choices, truncated)[0]


def extract_math(
    text: str, *, truncated: bool = False, question: str | None = None
) -> str | None:
    """The final answer of a math response, LaTeX-normalised, or None if it commits to none."""
    return extract_math_method(text, truncated, question)[0]


def extract_answer(
    text: str,
    choices: Sequence[Any] | None = None,
    *,
    truncated: bool = False,
    question: str | None = None,
) -> tuple[str | None, str]:
    """A response's answer (a letter with ``choices``, else math) and the method that found it."""
    if choices:
        index, method = extract_choice_method(text, choices, truncated, None, question)
        return option_letter(index), method
    return extract_math_method(text, truncated, question)


def is_equivalent(pred: str | None, gold: str | None, *, timeout: int = DEFAULT_TIMEOUT) -> bool:
    """Whether a math answer equals the gold answer (``\\frac{1}{2}`` = ``0.5``)."""
    if pred is None or gold is None:
        return False
    return math_equal(normalise_math(pred), normalise_math(gold), timeout=timeout)


def grade_row(
    row: Mapping[str, Any],
    where: str,
    line: int,
    requested: str,
    gold_field: str | None,
    equivalent: Callable[[str, str], bool],
    to_judge: Callable[[int, bool], None] | None = None,
) -> RowGrade:
    """Extract and judge every response of one row (``where``: its file and line, for
    errors); ``to_judge(index, uncertain)`` is told of each response, for a judge pass to
    pick the ones it will ask about."""
    kind = row_type(row, requested)
    responses = row_responses(row, where)
    extractions = []
    if kind == "mcq":
        choices = row["choices"] if isinstance(row.get("choices"), list) else []
        question = row_question(row)
        options = Options(choices, question)
        gold_index = mcq_gold(row, gold_field, where)
        gold = LETTERS[gold_index]
        for index, (text, truncated) in enumerate(responses):
            choice, method = extract_choice_method(text, choices, truncated, options, question)
            uncertain = method in UNCERTAIN_METHODS
            extractions.append(
                Extraction(index, option_letter(choice), choice == gold_index, method, uncertain)
            )
        same: Callable[[str, str], bool] = str.__eq__
    else:
        gold = math_gold(row, gold_field, where, normalise_math)
        question = row_question(row)
        for index, (text, truncated) in enumerate(responses):
            answer, method = extract_math_method(text, truncated, question)
            correct = answer is not None and equivalent(answer, gold)
            uncertain = method in UNCERTAIN_METHODS
            extractions.append(Extraction(index, answer, correct, method, uncertain))
        same = equivalent
    if to_judge is not None:
        for extraction in extractions:
            to_judge(extraction.response_index, extraction.uncertain)
    majority, majority_correct = majority_vote(extractions, same)
    category = row.get("category")
    return RowGrade(
        line=line,
        unique_id=row.get("unique_id"),
        category=str(category) if category not in (None, "") else "(none)",
        type=kind,
        gold=gold,
        extractions=extractions,
        status_failed=row.get("status") == "failed",
        majority=majority,
        majority_correct=majority_correct,
    )


def _numbered(
    rows: Iterable[Mapping[str, Any]] | str | os.PathLike[str],
) -> Callable[[], Iterator[tuple[int, str, Mapping[str, Any]]]]:
    """A way to read the rows (again: a judge pass writes ``--out`` on a second reading)."""
    if isinstance(rows, (str, os.PathLike)):
        source = Path(rows)
        return lambda: read_results(source)
    listed = list(rows)
    return lambda: ((i, f"row {i}", row) for i, row in enumerate(listed, 1))


def grade(
    rows: Iterable[Mapping[str, Any]] | str | os.PathLike[str],
    *,
    type: str = "auto",  # noqa: A002  # the CLI's --type, by design
    gold_field: str | None = None,
    out: str | os.PathLike[str] | None = None,
    out_format: str | None = None,
    timeout: int = DEFAULT_TIMEOUT,
    judge: str | JudgeOptions | None = None,
) -> GradeReport:
    """Grade a results file (or its rows); write per-response extractions to ``out`` if given.

    ``type`` is ``mcq``, ``math`` or ``auto`` (by a row's ``is_mcq``, else whether it has
    choices). Gold answers come from the row's ``choice_index_correct`` / ``answer_correct``
    or from ``gold_field``. ``out`` is written whole or not at all and may not be the results
    file itself; ``out_format`` is one of ``promptmill.resultfiles.GRADED_FORMATS`` (default:
    Parquet for a ``.parquet`` name, else promptmill's JSONL). ``judge`` (a model identifier
    or ``JudgeOptions``) asks that model for the final answer of the uncertain responses (of
    all, with ``judge_all``) in a promptmill job of its own. Many files, in flat memory and
    on every core: ``promptmill.evaluate.grade_files``.
    """
    if type not in ("auto", "mcq", "math"):
        raise InputError(f"type {type!r} is not one of auto, mcq, math")
    source = Path(rows) if isinstance(rows, (str, os.PathLike)) else None
    target = Path(out) if out is not None else None
    if target is not None and source is not None and same_file(target, source):
        raise InputError(f"--out {target} is the results file itself; write to another path")
    fmt = graded_format(target, out_format)
    options = _judge_options(judge)
    numbered = _numbered(rows)
    equivalent = equivalence_cache(timeout)
    schema = None
    if target is not None and fmt == "parquet":
        schema = graded_schema(((i, row) for i, (_, _, row) in enumerate(numbered())), source)

    def writer(to: Path | None) -> contextlib.AbstractContextManager[GradedWriter | None]:
        return contextlib.nullcontext() if to is None else GradedWriter(to, fmt, schema)

    graded: list[RowGrade] = []
    items: list[JudgeItem] = []
    with writer(target if options is None else None) as written:
        for line, where, row in numbered():
            if not isinstance(row, Mapping):
                raise InputError(f"{where}: expected a mapping per row, got {row!r:.40}")
            collect = (
                None if options is None else _collector(options, row, where, items, len(graded))
            )
            result = grade_row(row, where, line, type, gold_field, equivalent, collect)
            graded.append(result)
            if written is not None:
                written.write(row, result)
    k = max((len(r.extractions) for r in graded), default=0) or 1
    if options is None:
        return GradeReport(rows=graded, k=k)

    from promptmill.extraction.judge import run_judge

    run = run_judge(items, options, beside=source or target or Path("extract"))
    graded = [
        _judged(result, run.answers, position, equivalent)
        for position, result in enumerate(graded)
    ]
    if target is not None:
        with writer(target) as written:
            assert written is not None
            for (_, _, row), result in zip(numbered(), graded, strict=True):
                written.write(row, result)
    return GradeReport(rows=graded, k=k, judge=run.summary)


def equivalence_cache(timeout: int = DEFAULT_TIMEOUT) -> Callable[[str, str], bool]:
    """``math_equal`` remembering its answers (a row's k responses often say the same)."""
    cache: dict[tuple[str, str], bool] = {}

    def equivalent(pred: str, gold: str) -> bool:
        if (pred, gold) not in cache:
            if len(cache) >= _CACHE_SIZE:
                cache.clear()  # bounded: a directory of files is graded in flat memory
            cache[(pred, gold)] = math_equal(pred, gold, timeout=timeout)
        return cache[(pred, gold)]

    return equivalent


_CACHE_SIZE = 100_000


def _judge_options(judge: str | JudgeOptions | None) -> JudgeOptions | None:
    """The judge's options with its model built and checked: a bad identifier or a missing
    key fails here, before any grading and with nothing sent."""
    if judge is None:
        return None
    from promptmill.extraction.judge import JudgeOptions

    options = judge if isinstance(judge, JudgeOptions) else JudgeOptions(model=judge)
    return replace(options, model=options.generator())


def _collector(
    options: JudgeOptions,
    row: Mapping[str, Any],
    where: str,
    items: list[JudgeItem],
    position: int,
) -> Callable[[int, bool], None]:
    """Collects the responses of one row that the judge will be asked about."""
    from promptmill.extraction.judge import JudgeItem

    responses = row_responses(row, where)
    choices = row.get("choices") if isinstance(row.get("choices"), list) else None

    def collect(index: int, uncertain: bool) -> None:
        if uncertain or options.judge_all:
            text, truncated = responses[index]
            items.append(
                JudgeItem(position, index, row_question(row) or "", choices, text, truncated)
            )

    return collect


def _judged(
    result: RowGrade,
    answers: Mapping[tuple[int, int], tuple[str | None, str | None, str | None]],
    position: int,
    equivalent: Callable[[str, str], bool],
) -> RowGrade:
    """A row's grades with the judge's answers in place of the rules' where it answered."""
    changed = []
    for extraction in result.extractions:
        judged = answers.get((position, extraction.response_index))
        if judged is None:
            changed.append(extraction)
            continue
        reply, answer, error = judged
        if result.type == "mcq":
            correct = answer is not None and answer == result.gold
            agrees = answer == extraction.extracted
        else:
            correct = answer is not None and equivalent(answer, result.gold)
            rule = extraction.extracted
            agrees = (answer is None and rule is None) or (
                answer is not None and rule is not None and equivalent(answer, rule)
            )
        verdict = JudgeAnswer(reply, answer, correct, agrees, error)
        rule_answer = RuleAnswer(extraction.extracted, extraction.correct, extraction.method)
        if error is not None:
            changed.append(replace(extraction, judge=verdict))
        else:
            changed.append(replace(extraction, extracted=answer, correct=correct, method="judge",
                                   rule=rule_answer, judge=verdict))
    same: Callable[[str, str], bool] = str.__eq__ if result.type == "mcq" else equivalent
    majority, majority_correct = majority_vote(changed, same)
    return replace(result, extractions=changed, majority=majority,
                   majority_correct=majority_correct)
