"""A job's input read as a Ray Dataset, its rows rendered in Ray tasks, planned in order.

With ``--ray`` the input is read by Ray Data: Parquet with ``read_parquet``, CSV with
``read_csv`` (every column read as text, as ``csv.DictReader`` gives it), ``hf:`` datasets
with ``from_huggingface``, and JSONL with :class:`JsonLinesSource`, a Ray Data file source of
ours: ``read_json`` parses with Arrow, which retypes rows (a date-like string becomes a
timestamp, a field that is a number in one row and text in another fails, nested objects
gain null keys) and ``read_text`` splits lines on U+2028 and other separators JSON strings
may hold, so neither gives back the job's rows. Each block is then parsed, checked and
rendered with the job's template, chat format and token budget in ``map_batches`` tasks.

The job stays the job it is on one machine (the same rows, requests, store and fingerprint,
so a job started with ``--ray`` resumes without it and the other way round):

- Order: Ray Data runs the reads and renders in parallel but is told to preserve order
  (``DataContext.execution_options.preserve_order``), so blocks reach the driver in input
  order; the driver numbers rows as they arrive, the indices ``data.read_rows`` gives.
- Checks that need every row (the duplicate-id check, the output-type check, the output
  field clash) run on the driver, in that order, exactly as ``Job.plan`` runs them on one
  machine, so the first offending row is the one named.
- Errors: a task never has to name a row (it does not know its index); it marks the row
  failed and the driver reads and renders that one row again with promptmill's own reader
  and planner, raising the error one machine raises (file, line, field and fix). A block
  Ray Data cannot read at all (a CSV line with too few values, which ``csv`` accepts) is
  read from that row on by promptmill's reader on the driver, with a warning.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from promptmill import data
from promptmill.datasets_ import is_hf_source, parse_hf_source
from promptmill.errors import PromptmillError

log = logging.getLogger("promptmill")

# Rows per block of a JSONL input read by JsonLinesSource: a render task's share of work.
READ_BLOCK_ROWS = 512
# Bytes read from a JSONL file at a time (the file is streamed, never read whole).
_READ_BYTES = 1 << 20
# Columns of a rendered block: the row as the store keeps it, the request's payload, prompt
# tokens, why it cannot be sent ("": it can), 1 when cut to fit, 1 when the row failed.
RENDERED_COLUMNS = ("row", "payload", "tokens", "problem", "cut", "failed")


class RayRowPlanner:
    """Plans a job's rows as ``job.RowPlanner`` does, from a Ray Dataset rendered in Ray
    tasks; the driver numbers, checks and stores them (see the module's docstring)."""

    def __init__(self, spec: Any, params: Any) -> None:
        from promptmill.job import RowPlanner
        from promptmill.ray_ import RayOptions, replica_spec

        self.spec = spec
        self.params = params
        # What the tasks plan with: the job with a generator of its own, never loaded here (the
        # driver's may hold its tokenizer, which does not travel).
        cls, model, kwargs = replica_spec(spec.generator, RayOptions())
        self.task_spec = dataclasses.replace(spec, generator=cls(model, **kwargs), ray=None)
        self.local = RowPlanner(spec, params)  # sample groups; rows read or rendered here
        self._cut = 0  # rows cut to fit in Ray tasks so far
        # The last row read from Ray: (index, payload, tokens, problem, row JSON), or None
        # where the row is planned here (a failed row, or one read after a Ray read failed).
        self._last: tuple[int, str, int, str | None, str] | None = None

    @property
    def cut_rows(self) -> int:
        """Rows cut to fit so far."""
        return self._cut + self.local.cut_rows

    def read_records(self, start: int = 0) -> Iterator[tuple[int, dict[str, Any], None]]:
        """``(index, row, None)`` from ``start``, in input order, as ``data.read_rows`` gives
        them, each already rendered by a Ray task (its JSON is kept for ``plan``)."""
        return ((index, row, None) for index, row in self._read_rows(start))

    def _read_rows(self, start: int) -> Iterator[tuple[int, dict[str, Any]]]:
        from promptmill.ray_ import joined

        ray = joined(self.spec.ray)
        configure_data_context(ray)
        source = self.spec.input
        dataset = input_dataset(ray, source)
        if self.spec.limit is not None:
            dataset = dataset.limit(self.spec.limit)
        rendered = dataset.map_batches(
            render_block, fn_args=(self.task_spec, self.params, input_kind(source)),
            batch_format="pyarrow", batch_size=None)
        index = 0
        try:
            for batch in rendered.iter_batches(batch_size=None, batch_format="pyarrow"):
                for row_text, payload, tokens, problem, cut, failed in zip(
                        *(batch.column(name).to_pylist() for name in RENDERED_COLUMNS),
                        strict=True):
                    if index >= start:
                        if failed:
                            self._last = None
                            yield index, self._row_here(index)
                        else:
                            self._last = (index, payload, tokens, problem or None, row_text)
                            self._cut += cut
                            yield index, json.loads(row_text)
                    index += 1
        except PromptmillError:
            raise
        except Exception as exc:  # Ray wraps a read task's failure in its own types
            log.warning("Ray Data could not read %s from row %d (%s); the rest is read here",
                        source, index + 1, _innermost(exc))
            self._last = None
            yield from data.read_rows(source, start=max(index, start))

    def plan(self, index: int, row: dict[str, Any], requests: list[Any],
             unsendable: list[Any], *, text: str | None = None) -> tuple[dict[str, Any], str]:
        """Add one row's requests, as rendered by its Ray task (or render it here); the row
        and its JSON as the store keeps it."""
        from promptmill.job import check_row

        last, self._last = self._last, None
        if last is None or last[0] != index:
            return self.local.plan(index, row, requests, unsendable, text=text)
        check_row(self.spec.input, index, row)
        _, payload, tokens, problem, row_text = last
        self.local.add_requests(index, payload, tokens, problem, requests, unsendable)
        return row, row_text

    def finish_chunk(self) -> None:
        """Nothing: each row's requests were added as it was planned."""

    def _row_here(self, index: int) -> dict[str, Any]:
        """Row ``index`` read by promptmill's reader: raises the reading error one machine
        raises (its render's error is raised by ``plan``, which renders it here)."""
        for _, row in data.read_rows(self.spec.input, start=index):
            return row
        raise PromptmillError(f"{self.spec.input}: row {index + 1} vanished while planning: "
                              "was the file changed? run the job again")


def _innermost(exc: BaseException) -> str:
    """The first line of the error at the bottom of a Ray error's chain (its own text is a
    remote traceback ending in retry advice)."""
    from promptmill.redaction import redact_secrets

    seen = {id(exc)}
    inner: Any = exc
    while True:
        deeper = getattr(inner, "cause", None) or inner.__cause__
        if not isinstance(deeper, BaseException) or id(deeper) in seen:
            break
        seen.add(id(deeper))
        inner = deeper
    lines = str(inner).strip().splitlines()
    return redact_secrets(lines[0] if lines else type(inner).__name__)[:300]


def configure_data_context(ray: Any) -> None:
    """Blocks in input order; Ray Data's progress bars, log lines and its tracebacks of a
    failed task kept away from the job's console (all still go to the session's
    ray-data.log): promptmill shows its own progress, and a failed task reaches the user as
    promptmill's error (or is read again here, with a warning)."""
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    for handler in logging.getLogger("ray.data").handlers:
        # Ray Data may share the root logger's handlers (the job's console among them):
        # only its own records are dropped from them.
        if not isinstance(handler, logging.FileHandler) and _RAY_DATA_OFF not in (
                handler.filters):
            handler.addFilter(_RAY_DATA_OFF)


def _not_ray_data(record: logging.LogRecord) -> bool:
    """Whether a log record is not Ray Data's."""
    return not record.name.startswith("ray.data")


_RAY_DATA_OFF = _not_ray_data


def input_kind(source: Path) -> str:
    """How a render task turns a block's records into rows: "jsonl" (raw lines) or "table"."""
    return "jsonl" if not is_hf_source(source) and data.input_format(source) == "jsonl" \
        else "table"


def input_dataset(ray: Any, source: Path) -> Any:
    """The job's input as a Ray Dataset of raw records, in input order."""
    if is_hf_source(source):
        from promptmill import datasets_

        dataset = datasets_.load(parse_hf_source(source))
        try:
            return ray.data.from_huggingface(dataset)
        except OSError as exc:  # it asks the Hub for Parquet copies; offline that can fail
            log.warning("Ray Data could not reach the Hugging Face Hub (%s); the dataset's "
                        "local Arrow files are read instead", exc)
            return ray.data.from_arrow(dataset.with_format("arrow")[:])
    fmt = data.input_format(source)
    path = str(source.resolve())
    if fmt == "jsonl":
        return ray.data.read_datasource(jsonl_source(path))
    if fmt == "parquet":
        return ray.data.read_parquet(path, partitioning=None, file_extensions=None)
    import pyarrow
    from pyarrow import csv as arrow_csv

    delimiter = "\t" if source.suffix.lower() == ".tsv" else ","
    columns = _csv_header(source, delimiter)
    if columns is None:  # an empty file: no rows, as csv.DictReader reads it
        return ray.data.from_items([])
    return ray.data.read_csv(
        path, partitioning=None, file_extensions=None,
        parse_options=arrow_csv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
        convert_options=arrow_csv.ConvertOptions(
            column_types={name: pyarrow.string() for name in columns},
            strings_can_be_null=False))


def _csv_header(source: Path, delimiter: str) -> list[str] | None:
    """A CSV file's column names (None: the file is empty)."""
    with open(source, newline="", encoding="utf-8-sig", errors="replace") as handle:
        return next(csv.reader(handle, delimiter=delimiter), None)


def jsonl_source(path: str) -> Any:
    """A Ray Data source reading a JSONL file's non-blank lines as raw bytes, streamed in
    blocks of ``READ_BLOCK_ROWS`` (split on ``\\n`` only, as ``data.read_rows`` splits)."""
    from ray.data.datasource import FileBasedDatasource

    class JsonLinesSource(FileBasedDatasource):  # type: ignore[misc]
        """A JSONL file's non-blank lines, raw, in blocks."""

        def __init__(self, paths: str, rows_per_block: int) -> None:
            super().__init__(paths)
            self.rows_per_block = rows_per_block

        def _read_stream(self, f: Any, path: str) -> Iterator[Any]:
            import pyarrow

            lines: list[bytes] = []
            rest = b""
            first = True
            while True:
                chunk = f.read(_READ_BYTES)
                if not chunk:
                    break
                if first:  # a byte order mark (Notepad's UTF-8) is no part of the first row
                    chunk, first = data.without_bom(chunk), False
                *complete, rest = (rest + chunk).split(b"\n")
                lines.extend(line for line in complete if line.strip())
                while len(lines) >= self.rows_per_block:
                    block, lines = lines[:self.rows_per_block], lines[self.rows_per_block:]
                    yield pyarrow.table({"line": pyarrow.array(block, pyarrow.binary())})
            if rest.strip():
                lines.append(rest)
            if lines:
                yield pyarrow.table({"line": pyarrow.array(lines, pyarrow.binary())})

    return JsonLinesSource(path, READ_BLOCK_ROWS)


def render_block(batch: Any, spec: Any, params: Any, kind: str) -> Any:
    """A Ray Data task: parse and render a block's rows with a planner of its own; an Arrow
    table of ``RENDERED_COLUMNS``, one row per input row. A row that fails (bad JSON, a
    template error) is marked failed, to be planned again where its index is known."""
    import pyarrow

    from promptmill.job import RowPlanner, row_json

    planner = RowPlanner(spec, params)
    records = batch.column("line").to_pylist() if kind == "jsonl" else batch.to_pylist()
    out: dict[str, list[Any]] = {name: [] for name in RENDERED_COLUMNS}
    for position, record in enumerate(records):
        before = planner.cut_rows
        try:
            row = json.loads(record.decode("utf-8")) if kind == "jsonl" else record
            if not isinstance(row, dict):
                raise ValueError("not a JSON object")
            # The index only names the row in errors, which are raised again on the driver.
            payload, tokens, problem = planner.render(position, row)
            values = (row_json(row), payload, tokens, problem or "", planner.cut_rows - before,
                      0)
        except (ValueError, PromptmillError):  # UnicodeDecodeError and JSON's are ValueErrors
            values = ("", "", 0, "", 0, 1)
        for name, value in zip(RENDERED_COLUMNS, values, strict=True):
            out[name].append(value)
    return pyarrow.table(out)


__all__ = ["READ_BLOCK_ROWS", "RayRowPlanner", "configure_data_context", "input_dataset",
           "input_kind", "jsonl_source", "render_block"]
