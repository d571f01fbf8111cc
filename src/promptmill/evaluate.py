"""Grading many results files at once, in flat memory, on every core:
``promptmill extract results/ -o graded/``.

Each file is cut into chunks of whole lines (``promptmill.resultfiles.plan_chunks``), and a
pool of worker processes grades them: extraction and math-verify are pure Python CPU work,
so one process per core is what uses the cores (threads would share one). A chunk is read
from disk, graded and written to a part file row by row; what it sends back is a ``Tally``
(the report's numbers as counts) and, per row, its question's 8-byte key, its correct count
and its majority vote (for the comparison of question sets): nothing grows with the number
of files but those 11 bytes a row. Each file's parts are joined, in order, into its graded
file once they are all done; the graded file appears whole or not at all.

Workers are started with ``spawn`` (no copy of the caller's threads or locks): a script that
calls :func:`grade_files` with more than one worker runs it under ``if __name__ ==
"__main__":``. Small inputs (under two chunks) are graded in this process.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import tempfile
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptmill.errors import InputError, PromptmillError, UsageError
from promptmill.extraction.equivalence import DEFAULT_TIMEOUT
from promptmill.grading import row_question, row_responses
from promptmill.resultfiles import (
    Chunk,
    GradedWriter,
    graded_schema,
    plan_chunks,
    read_results,
    results_format,
    row_format,
)
from promptmill.tally import Tally

if TYPE_CHECKING:
    import pyarrow as pa

    from promptmill.grading import GradeReport, RowGrade

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "FileGrades",
    "GradeOptions",
    "file_grades_of",
    "grade_files",
    "iter_grade_files",
    "question_key",
    "results_in",
]

DEFAULT_CHUNK_BYTES = 1 << 20
"""About how much of a results file one worker grades at a time (whole lines)."""
# Directory members read as results files (.json is left out: reports live beside results).
_LISTED_SUFFIXES = (".jsonl", ".ndjson", ".parquet", ".pq")


@dataclass(frozen=True)
class GradeOptions:
    """How every row is graded and written: ``extract``'s --type, --gold-field, --format."""

    type: str = "auto"
    gold_field: str | None = None
    out_format: str = "jsonl"
    timeout: int = DEFAULT_TIMEOUT


@dataclass
class _ChunkGrades:
    """What grading one chunk sends back to the parent: counts, and 11 bytes a row."""

    tally: Tally = field(default_factory=Tally)
    keys: array[int] = field(default_factory=lambda: array("Q"))  # question_key per row
    correct: array[int] = field(default_factory=lambda: array("H"))  # correct responses
    majority: array[int] = field(default_factory=lambda: array("B"))  # majority vote right
    models: Counter[str] = field(default_factory=Counter)  # the rows' ``model`` fields
    formats: Counter[str] = field(default_factory=Counter)  # promptmill / seed002 rows

    def count(self, row: dict[str, Any], line: int, result: RowGrade) -> None:
        """Take one graded row in."""
        self.tally.add(result)
        self.keys.append(question_key(row, line))
        self.correct.append(min(result.correct, 0xFFFF))
        self.majority.append(result.majority_correct)
        model = row.get("model")
        if isinstance(model, str) and model:
            self.models[model] += 1
        self.formats[row_format(row)] += 1

    def merge(self, other: _ChunkGrades) -> None:
        self.tally.merge(other.tally)
        self.keys.extend(other.keys)
        self.correct.extend(other.correct)
        self.majority.extend(other.majority)
        self.models.update(other.models)
        self.formats.update(other.formats)


@dataclass
class FileGrades:
    """One results file graded: its numbers, its model, where its graded file went."""

    path: Path
    model: str
    tally: Tally
    keys: array[int]  # each row's question_key, in file order
    correct: array[int]  # each row's correct responses
    majority: array[int]  # whether each row's majority vote is right (0/1)
    formats: Counter[str]  # rows per input format (promptmill, seed002)
    graded: Path | None = None
    models: Counter[str] = field(default_factory=Counter)

    @property
    def input_format(self) -> str:
        """``promptmill``, ``seed002``, or ``mixed`` for a file holding both."""
        kinds = [kind for kind, count in self.formats.items() if count]
        return kinds[0] if len(kinds) == 1 else ("mixed" if kinds else "promptmill")

    def report(self) -> dict[str, Any]:
        """This file's report: ``GradeReport.to_dict``'s numbers, its file and model."""
        return {"file": str(self.path), "model": self.model, "format": self.input_format,
                "graded": str(self.graded) if self.graded else None, **self.tally.to_dict()}


def question_key(row: dict[str, Any], line: int) -> int:
    """An 8-byte key naming a row's question: its ``unique_id``, else its question text, else
    its line (so that the files of a comparison can be matched question by question)."""
    unique_id = row.get("unique_id")
    if unique_id is not None:
        text = "id\0" + json.dumps(unique_id, sort_keys=True, default=str)
    else:
        question = row_question(row)
        text = f"q\0{question}" if question is not None else f"line\0{line}"
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


def grade_chunk(chunk: Chunk, options: GradeOptions, part: Path | None,
                schema: pa.Schema | None) -> _ChunkGrades:
    """Grade one chunk: every row extracted, judged and counted, written to ``part``."""
    from promptmill.extract import equivalence_cache, grade_row

    equivalent = equivalence_cache(options.timeout)
    grades = _ChunkGrades()
    writer = (contextlib.nullcontext() if part is None
              else GradedWriter(part, options.out_format, schema))
    with writer as written:
        for line, where, row in read_results(chunk.path, chunk):
            result = grade_row(row, where, line, options.type, options.gold_field, equivalent)
            grades.count(row, line, result)
            if written is not None:
                written.write(row, result)
    return grades


def file_grades_of(path: Path, report: GradeReport, graded: Path | None) -> FileGrades:
    """A file graded whole by ``promptmill.extract.grade`` (with a judge, say) as
    :func:`grade_files` gives it."""
    grades = _ChunkGrades()
    for (line, _, row), result in zip(read_results(path), report.rows, strict=True):
        grades.count(row, line, result)
    return _file_grades(path, grades, graded)


def results_in(paths: Sequence[Path]) -> tuple[list[Path], list[str]]:
    """The results files that ``paths`` name (a folder: its results files, by name) and a
    note for each folder member left out as no results file; UsageError for a missing path."""
    files: list[Path] = []
    notes: list[str] = []
    for path in paths:
        if not path.exists():
            raise UsageError(f"{path}: no such file or folder")
        if not path.is_dir():
            results_format(path)  # an unknown extension fails here, before any work
            _check_first_row(path)
            files.append(path)
            continue
        listed = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
                        and p.suffix.lower() in _LISTED_SUFFIXES)
        for member in listed:
            try:
                _check_first_row(member)
            except InputError as exc:
                notes.append(f"left out {exc}")
                continue
            files.append(member)
        if not listed:
            notes.append(f"{path} holds no results files (.jsonl, .parquet)")
    return files, notes


def _check_first_row(path: Path) -> None:
    """InputError unless the file's first row is a results row (bad input fails before any
    grading starts)."""
    for _, where, row in read_results(path):
        row_responses(row, where)
        return
    raise InputError(f"{path}: no rows")


def grade_files(
    paths: Sequence[Path],
    *,
    targets: Sequence[Path | None] | None = None,
    options: GradeOptions | None = None,
    workers: int | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> list[FileGrades]:
    """Grade results files, writing each one's graded rows to its target (None: none).

    ``workers`` processes grade chunks of about ``chunk_bytes`` (default: one per core
    available); inputs smaller than two chunks are graded here. A file's graded target
    appears whole once its last chunk is graded; a bad row stops the run with an InputError
    naming its file and line, and the files finished before it are kept.
    """
    return list(iter_grade_files(paths, targets=targets, options=options, workers=workers,
                                 chunk_bytes=chunk_bytes))


def iter_grade_files(
    paths: Sequence[Path],
    *,
    targets: Sequence[Path | None] | None = None,
    options: GradeOptions | None = None,
    workers: int | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> Iterator[FileGrades]:
    """:func:`grade_files`, each file's grades given as soon as the file is done."""
    options = options or GradeOptions()
    targets = list(targets) if targets is not None else [None] * len(paths)
    if len(targets) != len(paths):
        raise ValueError("one target per results file")
    workers = workers or _available_cores()
    total = sum(path.stat().st_size for path in paths)
    parallel = workers > 1 and total >= 2 * chunk_bytes
    folder = next((t.parent for t in targets if t is not None), None)
    scratch = Path(tempfile.mkdtemp(prefix=".promptmill-extract-", dir=folder))
    try:
        with _runner(workers if parallel else 1) as submit:
            planned = [
                _submit_file(submit, path, target, options, chunk_bytes, scratch / str(index))
                for index, (path, target) in enumerate(zip(paths, targets, strict=True))
            ]
            for plan in planned:
                yield _finish_file(plan)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@dataclass(frozen=True)
class _FilePlan:
    """One file handed to the workers: its chunks' futures and part files."""

    path: Path
    target: Path | None
    futures: list[Future[_ChunkGrades]]
    parts: list[Path]
    schema: pa.Schema | None
    out_format: str


def _submit_file(submit: Callable[..., Future[_ChunkGrades]], path: Path,
                 target: Path | None, options: GradeOptions, chunk_bytes: int,
                 parts: Path) -> _FilePlan:
    """Plan one file's chunks and hand them to the workers."""
    schema = None
    if target is not None and options.out_format == "parquet":
        # typed over every row before any is written, as promptmill's own exports are
        schema = graded_schema(((i, row) for i, (_, _, row) in enumerate(read_results(path))),
                               path)
    chunks = plan_chunks(path, chunk_bytes)
    files = [parts.with_name(f"{parts.name}.{n}") for n in range(len(chunks))]
    futures = [submit(grade_chunk, chunk, options, part if target is not None else None, schema)
               for chunk, part in zip(chunks, files, strict=True)]
    return _FilePlan(path, target, futures, files, schema, options.out_format)


def _finish_file(plan: _FilePlan) -> FileGrades:
    """Wait for a file's chunks, join their parts into its graded file, sum their numbers."""
    from concurrent.futures.process import BrokenProcessPool

    grades = _ChunkGrades()
    for future in plan.futures:
        try:
            grades.merge(future.result())
        except BrokenProcessPool:
            raise PromptmillError(
                f"{plan.path}: a grading worker process died (killed, or out of memory?); "
                "the files graded before it are kept: rerun with fewer --workers") from None
    if plan.target is not None:
        with GradedWriter(plan.target, plan.out_format, plan.schema) as writer:
            for part in plan.parts:
                _copy_part(part, writer, plan.out_format)
                part.unlink()
    return _file_grades(plan.path, grades, plan.target)


def _file_grades(path: Path, grades: _ChunkGrades, graded: Path | None) -> FileGrades:
    return FileGrades(path=path, model=_model_of(path, grades.models), tally=grades.tally,
                      keys=grades.keys, correct=grades.correct, majority=grades.majority,
                      formats=grades.formats, graded=graded, models=grades.models)


def _copy_part(part: Path, writer: GradedWriter, fmt: str) -> None:
    """One chunk's graded rows into the file's writer, streamed."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        writer.write_batches(pq.ParquetFile(part).iter_batches(use_threads=False))
        return
    with part.open("rb") as file:
        writer.write_bytes(iter(lambda: file.read(1 << 20), b""))


def _model_of(path: Path, models: Counter[str]) -> str:
    """The file's model: its rows' ``model`` field, else its job's, else the file's name."""
    if models:
        return models.most_common(1)[0][0]
    store = path.with_name(path.name + ".promptmill.db")
    if store.exists():
        from promptmill.store import JobStore

        with contextlib.suppress(Exception), JobStore(store, lock=False) as job:
            fingerprint = job.get_meta("fingerprint")
            if isinstance(fingerprint, dict) and isinstance(fingerprint.get("model"), str):
                return str(fingerprint["model"])
    return path.stem


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _ignore_interrupts() -> None:
    """Workers leave Ctrl-C to the parent, which cancels what is left and cleans up."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def _runner(workers: int) -> Iterator[Callable[..., Future[_ChunkGrades]]]:
    """``submit(fn, *args)``: in a pool of ``workers`` processes, or here (1) when asked."""
    if workers <= 1:
        yield _deferred
        return
    import multiprocessing

    pool = ProcessPoolExecutor(max_workers=workers, initializer=_ignore_interrupts,
                               mp_context=multiprocessing.get_context("spawn"))
    try:
        yield pool.submit
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


class _Deferred(Future[_ChunkGrades]):
    """A future that runs its call in this process when its result is first asked for, so
    that one file's parts are joined before the next file is graded."""

    def __init__(self, call: Callable[[], _ChunkGrades]) -> None:
        super().__init__()
        self._call = call

    def result(self, timeout: float | None = None) -> _ChunkGrades:
        if not self.done():
            try:
                self.set_result(self._call())
            except BaseException as exc:
                self.set_exception(exc)
        return super().result(timeout)


def _deferred(fn: Callable[..., _ChunkGrades], *args: Any) -> Future[_ChunkGrades]:
    return _Deferred(lambda: fn(*args))
