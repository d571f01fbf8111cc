"""Results files as ``promptmill extract`` reads them, and the graded files it writes.

Read: promptmill's results (JSONL, or Parquet from ``export`` or ``-o x.parquet``) and seed
002's inference results (``problem``, ``is_mcq``, ``responses: [{"full_response"}]``), whole
or by chunks (a JSONL byte range, a run of Parquet row groups), so that several processes can
share one file. Every row says where it came from (``file, line N``; ``file, row N``).

Written, one graded row per results row, in the results' order (``GRADED_FORMATS``):

- ``jsonl`` (the default): the row as it was, plus ``extractions``: one object per response
  (``response_index``, ``extracted``, ``correct``, ``method``, ``uncertain``; ``rule`` and
  ``judge`` with ``--judge``).
- ``parquet``: the same, with ``promptmill.arrow``'s fixed schema for promptmill's columns
  and ``extractions`` a list of structs, so graded files of any model or format concatenate
  and load in pandas, polars or DuckDB without parsing JSON (seed rows' ``full_response``
  becomes ``text`` there).
- ``seed002``: seed 002's processed format: the row as it was, each response an object
  ``{"full_response", ..., "extracted_answer", "is_correct"}``, and ``problem`` and
  ``is_mcq`` added where the row lacks them, so analysis code written for it keeps working.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from promptmill.errors import InputError, UsageError

if TYPE_CHECKING:
    import pyarrow as pa

    from promptmill.grading import RowGrade

__all__ = [
    "Chunk",
    "GRADED_FORMATS",
    "GradedWriter",
    "RESULTS_SUFFIXES",
    "graded_format",
    "graded_row",
    "graded_schema",
    "plan_chunks",
    "read_results",
    "results_format",
    "row_format",
]

GRADED_FORMATS = ("jsonl", "parquet", "seed002")
# File name endings read as results: JSONL (promptmill's or seed 002's) and Parquet.
RESULTS_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
                    ".parquet": "parquet", ".pq": "parquet"}


def results_format(path: Path) -> str:
    """``jsonl`` or ``parquet``, by the file's extension; InputError for anything else."""
    kind = RESULTS_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise InputError(f"{path}: not a results file (.jsonl or .parquet); pass the -o file "
                         "of a promptmill run (a CSV one: `promptmill export OUT --format "
                         "jsonl` first), its Parquet export or seed 002's inference JSONL")
    return kind


@dataclass(frozen=True)
class Chunk:
    """A part of a results file that one process grades: JSONL lines from byte ``start`` to
    ``end`` (``first_line`` the number of the first), or Parquet row groups ``start`` to
    ``end`` (``first_line`` the number of the first row)."""

    path: Path
    start: int
    end: int
    first_line: int


def plan_chunks(path: Path, chunk_bytes: int) -> list[Chunk]:
    """A results file cut into chunks of about ``chunk_bytes`` (whole lines, whole row
    groups), in order; one chunk for a small file."""
    if results_format(path) == "parquet":
        return _parquet_chunks(path, chunk_bytes)
    chunks = []
    start = size = 0
    first_line = 1
    try:
        with path.open("rb") as file:
            for number, raw in enumerate(file, 1):
                size += len(raw)
                if size - start >= chunk_bytes:
                    chunks.append(Chunk(path, start, size, first_line))
                    start, first_line = size, number + 1
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    if size > start or not chunks:
        chunks.append(Chunk(path, start, size, first_line))
    return chunks


def _parquet_file(path: Path) -> Any:
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise InputError(f"{path}: not a readable Parquet file ({exc}): check the file") from None


def _parquet_chunks(path: Path, chunk_bytes: int) -> list[Chunk]:
    metadata = _parquet_file(path).metadata
    chunks = []
    start, first_row, size, rows = 0, 1, 0, 0
    for group in range(metadata.num_row_groups):
        size += metadata.row_group(group).total_byte_size
        rows += metadata.row_group(group).num_rows
        if size >= chunk_bytes:
            chunks.append(Chunk(path, start, group + 1, first_row))
            start, first_row, size = group + 1, rows + 1, 0
    if start < metadata.num_row_groups or not chunks:
        chunks.append(Chunk(path, start, metadata.num_row_groups, first_row))
    return chunks


def read_results(
    path: Path, chunk: Chunk | None = None
) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """Rows of a results file (or of one chunk of it) as ``(line, where, row)``; a bad line
    raises InputError naming the file and line."""
    if results_format(path) == "parquet":
        yield from _parquet_rows(path, chunk)
        return
    start, end, number = (0, None, 1) if chunk is None else (
        chunk.start, chunk.end, chunk.first_line)
    try:
        with path.open("rb") as file:
            file.seek(start)
            position = start
            for raw in file:
                if end is not None and position >= end:
                    break
                position += len(raw)
                if raw.strip():
                    yield number, f"{path}, line {number}", _parse(raw, path, number)
                number += 1
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None


def _parse(raw: bytes, path: Path, number: int) -> dict[str, Any]:
    where = f"{path}, line {number}"
    try:
        row = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{where}: not UTF-8 text ({exc.reason}); is it a results JSONL?") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not valid JSON ({exc.msg}); fix or delete that line") from None
    if not isinstance(row, dict):
        raise InputError(f"{where}: expected a JSON object per line, got {row!r:.40}")
    return row


def _parquet_rows(path: Path, chunk: Chunk | None) -> Iterator[tuple[int, str, dict[str, Any]]]:
    parquet = _parquet_file(path)
    groups = range(parquet.metadata.num_row_groups) if chunk is None else range(
        chunk.start, chunk.end)
    number = 1 if chunk is None else chunk.first_line
    if not groups:
        return
    # No reader threads, as promptmill.data reads Parquet input: flat memory.
    for batch in parquet.iter_batches(batch_size=4096, row_groups=list(groups),
                                      use_threads=False):
        for row in batch.to_pylist():
            yield number, f"{path}, row {number}", row
            number += 1


def row_format(row: Mapping[str, Any]) -> str:
    """``seed002`` for seed 002's inference rows (responses with ``full_response``), else
    ``promptmill``."""
    responses = row.get("responses")
    if isinstance(responses, list) and any(
        isinstance(r, dict) and "full_response" in r for r in responses
    ):
        return "seed002"
    return "promptmill"


def graded_row(row: Mapping[str, Any], result: RowGrade, fmt: str) -> dict[str, Any]:
    """One graded output row in ``fmt`` (see the module docstring)."""
    if fmt == "seed002":
        return _seed002_row(row, result)
    graded = {key: value for key, value in row.items() if key != "extractions"}
    if fmt == "parquet" and isinstance(graded.get("responses"), list):
        graded["responses"] = [_promptmill_response(r) for r in graded["responses"]]
    graded["extractions"] = [e.to_dict() for e in result.extractions]
    return graded


def _promptmill_response(response: Any) -> Any:
    """A response in promptmill's shape (``text``), whichever format it came in."""
    if isinstance(response, str):
        return {"text": response}
    if isinstance(response, dict) and "text" not in response and "full_response" in response:
        return {"text": response["full_response"],
                **{k: v for k, v in response.items() if k != "full_response"}}
    return response


def _seed002_row(row: Mapping[str, Any], result: RowGrade) -> dict[str, Any]:
    from promptmill.grading import row_question

    graded = dict(row)
    if "problem" not in graded:
        graded["problem"] = row_question(row)
    if "is_mcq" not in graded:
        graded["is_mcq"] = result.type == "mcq"
    found = {e.response_index: e for e in result.extractions}
    responses = []
    for index, response in enumerate(row.get("responses") or []):
        if isinstance(response, dict):
            text = response.get("full_response", response.get("text"))
            rest = {k: v for k, v in response.items() if k not in ("full_response", "text")}
        else:
            text, rest = response, {}
        extraction = found.get(index)
        responses.append({
            "full_response": text,
            **rest,
            "extracted_answer": extraction.extracted if extraction else None,
            "is_correct": extraction.correct if extraction else False,
        })
    graded["responses"] = responses
    return graded


def graded_schema(rows: Iterable[tuple[int, Mapping[str, Any]]],
                  source: Path | None = None) -> pa.Schema:
    """The Parquet schema of graded rows: the rows' own fields typed over every row, then
    promptmill's fixed columns and ``extractions``; InputError if a field changes type."""
    from promptmill import arrow

    own = ((index, {k: v for k, v in row.items() if k != "extractions"})
           for index, row in rows)
    try:
        fields = arrow.infer_row_types(own, source)
    except InputError as exc:
        raise InputError(f"{exc} (extract: --format jsonl)") from None
    return arrow.graded_schema(fields)


def graded_format(target: Path | None, fmt: str | None) -> str:
    """The format to write graded rows in: ``fmt``, else by ``target``'s extension
    (``.parquet``), else ``jsonl``; UsageError where the two disagree."""
    by_name = "parquet" if target is not None and target.suffix.lower() in (".parquet", ".pq") \
        else None
    if fmt is None:
        return by_name or "jsonl"
    if fmt not in GRADED_FORMATS:
        raise UsageError(f"unknown --format {fmt!r}: use one of {', '.join(GRADED_FORMATS)}")
    if target is not None and (by_name == "parquet") != (fmt == "parquet"):
        wanted = ".parquet" if fmt == "parquet" else ".jsonl"
        raise UsageError(f"--out {target}: --format {fmt} writes {wanted} files; name it "
                         f"{target.with_suffix(wanted).name} or drop --format")
    return fmt


class GradedWriter:
    """Graded rows into ``target`` in one of ``GRADED_FORMATS``; the file appears whole when
    the writer closes without an error, and not at all otherwise. Parquet needs ``schema``
    (:func:`graded_schema` over the same rows)."""

    __slots__ = ("_batch", "_fmt", "_handle", "_parquet", "_schema", "_stack", "count")

    def __init__(self, target: Path, fmt: str, schema: pa.Schema | None = None) -> None:
        from promptmill.grading import written_whole

        if fmt == "parquet" and schema is None:
            raise ValueError("a Parquet graded file needs its schema")
        self._fmt = fmt  # one of GRADED_FORMATS
        self._schema = schema  # the Parquet schema; None for JSONL
        self._batch: list[dict[str, Any]] = []  # Parquet rows not yet written
        self._stack = ExitStack()  # the file, closed (and put in place) on exit
        handle = self._stack.enter_context(written_whole(target, binary=True))
        assert handle is not None  # a target was given
        self._handle = handle  # the partial file, renamed to target on a clean close
        self._parquet: Any = None  # the ParquetWriter, opened on the first batch
        self.count = 0  # rows written

    def write(self, row: Mapping[str, Any], result: RowGrade) -> None:
        """Write one graded row."""
        graded = graded_row(row, result, self._fmt)
        self.count += 1
        if self._fmt != "parquet":
            line = json.dumps(graded, ensure_ascii=False, default=str) + "\n"
            self._handle.write(line.encode("utf-8"))
            return
        self._batch.append(graded)
        if len(self._batch) >= 5000:
            self._flush()

    def write_batches(self, batches: Iterable[pa.RecordBatch]) -> None:
        """Write record batches already in the schema (a Parquet part graded elsewhere)."""
        for batch in batches:
            self._parquet_writer().write_batch(batch)
            self.count += batch.num_rows

    def write_bytes(self, blocks: Iterable[bytes]) -> None:
        """Write JSONL already graded elsewhere (a part file's blocks)."""
        for block in blocks:
            self._handle.write(block)

    def _parquet_writer(self) -> Any:
        if self._parquet is None:
            import pyarrow.parquet as pq

            self._parquet = pq.ParquetWriter(self._handle, self._schema)
        return self._parquet

    def _flush(self) -> None:
        from promptmill.arrow import record_batches

        assert self._schema is not None
        for batch in record_batches(self._batch, self._schema):
            self._parquet_writer().write_batch(batch)
        self._batch = []

    def __enter__(self) -> GradedWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        try:
            if error is None and self._fmt == "parquet":
                self._flush()
                self._parquet_writer()  # no rows: the file still has its schema
            if self._parquet is not None:
                self._parquet.close()
        except BaseException as failure:
            self._stack.__exit__(type(failure), failure, failure.__traceback__)
            raise
        self._stack.__exit__(kind, error, trace)
