"""Judging and scoring extracted answers: gold answers read from results rows, math-verify
equivalence bounded in time in any thread, and the report's numbers over rows of ``k``
samples (``k``: the most responses any row has).

- ``accuracy``: correct responses / (rows * k); a response a failed row never got is wrong.
- ``pass_at_k``: the unbiased estimator of Chen et al. 2021 with n = k, for k' = 1, every
  power of two below k, and k itself (keys are the k' as strings).
- ``majority_accuracy``: each row's most frequent extracted answer (equivalent math answers
  vote together, failed extractions do not vote) against the gold; a tie goes to the answer
  that appeared first among the row's responses; a row with no extracted answer is wrong.
- ``extraction_failure_rate``: responses with no extractable answer / responses received.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import math
import os
import re
import select
import signal
import string
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from promptmill.errors import InputError

if TYPE_CHECKING:
    from rich.table import Table

__all__ = [
    "DEFAULT_TIMEOUT",
    "LETTERS",
    "Extraction",
    "GradeReport",
    "RowGrade",
    "majority_vote",
    "math_equal",
    "math_gold",
    "mcq_gold",
    "pass_at_k",
    "read_results",
    "row_responses",
    "row_type",
    "same_file",
    "written_whole",
]

AnswerType = Literal["mcq", "math"]

LETTERS = string.ascii_uppercase
"""Choice letters: index 0 is A."""

DEFAULT_TIMEOUT = 5
"""Seconds math-verify may spend on one parse or one comparison."""

# ---------------------------------------------------------------------------------------
# equivalence with math-verify, bounded in time in any thread


def _as_latex(answer: str) -> str:
    """An answer wrapped so math-verify reads the whole of it as one LaTeX expression."""
    balanced = answer.count("{") == answer.count("}")
    return f"\\boxed{{{answer}}}" if balanced else f"${answer}$"


@lru_cache(maxsize=4096)
def _parsed(answer: str, timeout: int | None) -> list[Any]:
    """math-verify's parse of one answer (cached: gold answers are parsed once per row)."""
    from math_verify import parse

    return list(parse(_as_latex(answer), parsing_timeout=timeout))


@contextmanager
def _outer_alarm_kept() -> Iterator[None]:
    """Re-arm a caller's SIGALRM timer (pytest-timeout, say) that math-verify's alarm cancels."""
    if not hasattr(signal, "setitimer"):
        yield  # no interval timers here, so none to keep
        return
    remaining, interval = signal.getitimer(signal.ITIMER_REAL)
    started = time.monotonic()
    try:
        yield
    finally:
        if remaining > 0:
            left = remaining - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001), interval)


def _drop_timeout_warning(record: logging.LogRecord) -> bool:
    """False for math-verify's timeout warnings, which quote the whole (maybe huge) input."""
    return not str(record.msg).startswith("Timeout during")


def _verify_here(pred: str, gold: str, timeout: int | None) -> bool:
    """math-verify on this thread, with its own SIGALRM timeouts (main thread only)."""
    from math_verify import verify
    from math_verify.errors import TimeoutException

    # a timeout is graded as a wrong answer; the warning would only flood stderr
    for name in ("math_verify.parser", "math_verify.grader"):
        logger = logging.getLogger(name)
        if _drop_timeout_warning not in logger.filters:
            logger.addFilter(_drop_timeout_warning)

    with _outer_alarm_kept():
        try:
            gold_parsed = _parsed(gold, timeout)
            pred_parsed = _parsed(pred, timeout)
            if not gold_parsed or not pred_parsed:
                return False
            return bool(verify(gold_parsed, pred_parsed, timeout_seconds=timeout))
        except (Exception, TimeoutException):
            return False  # pathological input is a wrong answer, never a crash


_SERVE = "from promptmill.grading import _serve_verify; _serve_verify()"


class _VerifyWorker:
    """A child Python that runs math-verify in its own main thread, where its alarms work.

    math-verify's timeouts use ``signal.alarm``, which only the main thread may set; off it,
    parse and verify raise. So other threads send their comparisons here, and a comparison
    that outlives its deadline (sympy stuck in C) costs a killed child, not a hung grade.
    """

    __slots__ = ("_code", "_lock", "_process", "_slack", "_warned")

    def __init__(self, code: str = _SERVE, slack: float = 5.0) -> None:
        self._code = code  # what the child runs: _serve_verify, or a fake in tests
        self._slack = slack  # seconds allowed beyond the child's own timeouts
        self._lock = threading.Lock()  # one comparison in flight: the pipe is a single channel
        self._process: subprocess.Popen[str] | None = None  # started on first use
        self._warned = False  # whether the "no child, no timeout" warning was given
        atexit.register(self.close)

    def verify(self, pred: str, gold: str, timeout: int) -> bool:
        """Whether pred matches gold; False when the child fails or overruns."""
        with self._lock:
            process = self._process or self._start()
            if process is None:
                return self._verify_unbounded(pred, gold)
            try:
                assert process.stdin is not None
                process.stdin.write(json.dumps([pred, gold, timeout]) + "\n")
                process.stdin.flush()
            except OSError:
                self.close(kill=True)
                return False
            reply = self._read_line(process, 3 * timeout + self._slack)  # 2 parses, 1 verify
            if reply is None:
                self.close(kill=True)  # overran or died: the next comparison gets a new child
            return reply == "1"

    def _start(self) -> subprocess.Popen[str] | None:
        """Start the child and wait until math-verify is imported there."""
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", self._code],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,  # math-verify logs every timeout
                text=True,
                env=env,
            )
        except OSError:
            return None
        self._process = process
        if self._read_line(process, 60 + self._slack) != "ready":
            self.close(kill=True)
            return None
        return process

    def _verify_unbounded(self, pred: str, gold: str) -> bool:
        """math-verify here without timeouts: the last resort where no child can start."""
        if not self._warned:
            self._warned = True
            warnings.warn(
                "promptmill.grading: cannot start a math-verify worker process; comparing "
                "off the main thread without a timeout",
                RuntimeWarning,
                stacklevel=3,
            )
        return _verify_here(pred, gold, None)

    @staticmethod
    def _read_line(process: subprocess.Popen[str], seconds: float) -> str | None:
        """One reply line from the child, or None if none comes within ``seconds``."""
        stdout: IO[str] | None = process.stdout
        if stdout is None:
            return None
        ready, _, _ = select.select([stdout], [], [], seconds)
        line = stdout.readline() if ready else ""
        return line.strip() if line else None

    def close(self, *, kill: bool = False) -> None:
        """Stop the child, if running: politely, or at once if it may be stuck."""
        process, self._process = self._process, None
        if process is None:
            return
        if kill:
            process.kill()
        elif process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()  # the child's loop ends at end of input
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):  # unsent input to a dead child
                    stream.close()


def _serve_verify() -> None:
    """The worker child's loop: one JSON request per stdin line, one 1/0 per stdout line."""
    import math_verify  # noqa: F401  # import before saying ready, so the parent's deadline is fair

    print("ready", flush=True)
    for line in sys.stdin:
        try:
            pred, gold, timeout = json.loads(line)
            same = _verify_here(str(pred), str(gold), int(timeout))
        except Exception:
            same = False
        print("1" if same else "0", flush=True)


_WORKER = _VerifyWorker()


def math_equal(pred: str, gold: str, *, timeout: int = DEFAULT_TIMEOUT) -> bool:
    """math-verify's judgement on two normalised answers, bounded in time in any thread."""
    if not pred or not gold:
        return False
    if pred == gold:
        return True
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGALRM"):
        return _verify_here(pred, gold, timeout)
    if os.name != "posix":
        return _verify_here(pred, gold, timeout)  # math-verify times out with processes there
    return _WORKER.verify(pred, gold, timeout)


@dataclass(frozen=True)
class Extraction:
    """One response's extracted answer, whether it is correct, and how it was found."""

    response_index: int
    extracted: str | None
    correct: bool
    method: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written to the ``--out`` file."""
        return asdict(self)


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


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for n samples with c correct: 1 - C(n-c, k) / C(n, k), as a product."""
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def _k_values(k: int) -> list[int]:
    """1, every power of two below k, and k."""
    values = [1]
    while values[-1] * 2 < k:
        values.append(values[-1] * 2)
    return values + [k] if k > 1 else values


def _summary(rows: Sequence[RowGrade], k: int) -> dict[str, Any]:
    """Accuracy, pass@k and majority accuracy over some rows."""
    count = len(rows)
    return {
        "accuracy": sum(r.correct for r in rows) / (count * k) if count else 0.0,
        "pass_at_k": {
            str(j): sum(pass_at_k(k, r.correct, j) for r in rows) / count if count else 0.0
            for j in _k_values(k)
        },
        "majority_accuracy": sum(r.majority_correct for r in rows) / count if count else 0.0,
        "rows": count,
        "responses": sum(len(r.extractions) for r in rows),
    }


@dataclass(frozen=True)
class GradeReport:
    """Every row's grades, with the summary numbers of the module docstring."""

    rows: list[RowGrade]
    k: int

    def failed_rows(self) -> int:
        """Rows whose job failed or that got fewer than k responses."""
        return sum(r.status_failed or len(r.extractions) < self.k for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        """The JSON report: overall, per category and per answer type."""
        report = _summary(self.rows, self.k)
        received = [e for r in self.rows for e in r.extractions]
        failures = sum(e.extracted is None for e in received)
        categories = sorted({r.category for r in self.rows})
        report.update(
            extraction_failure_rate=failures / len(received) if received else 0.0,
            failed_rows=self.failed_rows(),
            k=self.k,
            per_category={
                name: _summary([r for r in self.rows if r.category == name], self.k)
                for name in categories
            },
            by_type={
                kind: {
                    key: value
                    for key, value in _summary(
                        [r for r in self.rows if r.type == kind], self.k
                    ).items()
                    if key in ("rows", "responses", "accuracy")
                }
                for kind in ("mcq", "math")
            },
        )
        return report

    def to_table(self) -> Table:
        """The report as a rich table: one line per category, then the total."""
        from rich.table import Table

        report = self.to_dict()
        table = Table(title=f"answers graded ({self.k} per row)")
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


def read_results(path: Path) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """Rows of a results file with where each came from; bad lines raise InputError."""
    try:
        with path.open(encoding="utf-8") as file:
            for number, line in enumerate(file, 1):
                if not line.strip():
                    continue
                where = f"{path}, line {number}"
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(
                        f"{where}: not valid JSON ({exc.msg}); fix or delete that line"
                    ) from None
                if not isinstance(row, dict):
                    raise InputError(f"{where}: expected a JSON object per line, got {row!r:.40}")
                yield number, where, row
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason}); is it a results JSONL?") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None


def row_type(row: Mapping[str, Any], requested: str) -> AnswerType:
    """mcq or math for this row: as requested, or by whether it has choices."""
    if requested == "mcq":
        return "mcq"
    if requested == "math":
        return "math"
    choices = row.get("choices")
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
            text = response.get("text")
            out.append(
                (text if isinstance(text, str) else "", response.get("finish_reason") == "length")
            )
        else:
            raise InputError(f"{where}: each response must be an object with 'text'")
    return out


def same_file(one: Path, other: Path) -> bool:
    """Whether two paths name one file (through links too)."""
    if one.exists() and other.exists():
        return os.path.samefile(one, other)
    return one.resolve() == other.resolve()


@contextmanager
def written_whole(target: Path | None) -> Iterator[IO[str] | None]:
    """A file that appears at ``target`` only once the block completes (None: no file)."""
    if target is None:
        yield None
        return
    partial = target.with_name(target.name + ".partial")
    try:
        file = partial.open("w", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"--out {target}: cannot write there ({exc.strerror})") from None
    try:
        with file:
            yield file
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
