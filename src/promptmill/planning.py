"""Planning a job's rows into its store: read, check, render, store, a chunk at a time.

One pass over the input: each row is parsed (orjson), checked (output-field clashes, its id
against every earlier one, its field types for a Parquet/Arrow output), rendered and counted,
and its requests added to the chunk; each chunk is stored in one transaction, so memory stays
flat however long the input. A JSONL input's rows are planned a chunk of lines at once where
the job's shape allows (``bulk_planning``); a chunk holding anything else goes row by row.
The chunk is stored here, not by a writer thread beside the reading: a signal (SIGTERM,
Ctrl-C) must roll back the chunk being written, which it cannot do to another thread's
transaction.

Dispatch starts only once the whole input is planned: a bad row anywhere stops the job before
a single request is sent. (Dispatching planned chunks early would have to stop at a later bad
row with requests already sent for the rows before it; whole-input validation first costs
about five seconds per million rows at the bulk planner's rate, and keeps "bad input fails
before anything is sent" literal.) A kill during planning leaves whole chunks stored, each
with its ``planned_rows`` mark in the same transaction; the next run goes on from there.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from itertools import chain
from typing import TYPE_CHECKING, Any, cast

import orjson

from promptmill import data
from promptmill.jobcache import planned_keys

if TYPE_CHECKING:
    from promptmill.bulk_planning import BulkPlanner
    from promptmill.job import Job

# Rows per stored chunk (one transaction each); a commit's fixed cost is spread thin already
# (a chunk of 20,000 gained nothing measurable).
PLAN_CHUNK = 5000
_dumps = orjson.dumps


def payload_json(fields: dict[str, Any], fallback: Callable[[Any], str]) -> str:
    """A request payload as JSON text, exactly as ``json.dumps(fields, ensure_ascii=False)``
    writes it (the response cache keys on this text), built with orjson's string encoder for
    the shapes rendering makes (a prompt string; messages of a role and a string content);
    ``fallback`` encodes any other payload."""
    parts = []
    for key, value in fields.items():
        if type(value) is str:
            parts.append(f"{_dumps(key).decode()}: {_dumps(value).decode()}")
            continue
        if key != "messages" or type(value) is not list:
            return fallback(fields)
        encoded = []
        for message in value:
            if (type(message) is not dict or len(message) != 2 or type(role := message.get(
                    "role")) is not str or type(content := message.get("content")) is not str
                    or next(iter(message)) != "role"):
                return fallback(fields)
            encoded.append(f'{{"role": {_dumps(role).decode()}, "content": '
                           f'{_dumps(content).decode()}}}')
        parts.append('"messages": [' + ", ".join(encoded) + "]")
    return "{" + ", ".join(parts) + "}"


def plan_rows(job: Job) -> None:
    """Plan every row of ``job``'s input not yet planned (see the module's docstring)."""
    from promptmill.bulk_planning import BulkPlanner, jsonl_chunks

    store, spec = job.store, job.spec
    planner = job.planner()
    chunks = _Chunks(job, planner)
    limit = spec.limit
    # With an id check, rows planned before an interruption are read again for their ids.
    start = 0 if chunks.ids is not None else chunks.planned
    bulk = BulkPlanner.for_job(job, planner)
    reached_end = True
    # Planning makes no garbage cycles (rows, strings, tuples freed by their counts), yet its
    # chunks' objects set off a collection every 700 allocations, and a full one walks every
    # object the process holds: 2.3k instructions a row (callgrind, 6% of planning). Any cycle
    # made meanwhile is found at the first collection after.
    collecting = gc.isenabled()
    gc.disable()
    try:
        with store.bulk_writes():
            if bulk is None:
                for index, row, text in planner.read_records(start=start):
                    if limit is not None and index >= limit:
                        reached_end = False
                        break
                    chunks.take(index, row, text)
            else:
                index = 0  # the next row's
                for line_number, lines in jsonl_chunks(spec.input, PLAN_CHUNK):
                    room = None if limit is None else limit - index
                    if room is not None and sum(1 for line in lines if line.strip()) > room:
                        reached_end = False  # rows past the limit: not read, not checked
                    if room == 0:
                        break
                    parsed = bulk.parse(lines)
                    rows, texts = parsed or data.jsonl_lines(spec.input, line_number, lines, room)
                    if room is not None:
                        rows, texts = rows[:room], texts[:room]
                    if index + len(rows) > start and (
                            parsed is None or not chunks.take_many(index, bulk, rows, texts)):
                        numbered = zip(range(index, index + len(rows)), rows, texts, strict=True)
                        for at, row, text in numbered:
                            if at >= start:
                                chunks.take(at, row, text)
                    index += len(rows)
                    if not reached_end:
                        break
            chunks.finish(reached_end)
    finally:
        chunks.close()
        if collecting:
            gc.enable()


class _Chunks:
    """The rows being planned, stored a chunk (one transaction) at a time."""

    def __init__(self, job: Job, planner: Any) -> None:
        self.store = job.store
        self.planner = planner
        self.planned = int(job.store.get_meta("planned_rows") or 0)
        self.cut_before = int(job.store.get_meta("truncated_rows") or 0)
        # The chunk's rows as two columns (row_index, data), and its requests as blocks of
        # columns (``RowPlanner.request_block``) in id order: the store takes columns, and
        # the bulk planner makes a block of thousands of rows without a tuple a row.
        self.row_indices: list[int] = []
        self.row_texts: list[str] = []
        self.requests: list[list[list[Any]]] = []
        self.unsendable: list[tuple[int, str]] = []  # requests of rows over the context: failed
        self.next_index = self.planned
        # Each request's response cache key, hashed here rather than on dispatch's hot path.
        self.keys = planned_keys(job.spec, job.params, job.store)
        self.ids = job.spec.unique_ids_check()
        # A Parquet/Arrow output needs one type per field: a field that changes type between
        # rows is refused now, before anything is sent, not when the export would fail. The
        # fields are those kept (an input row; a request file's output row, never re-read).
        self.reread = self.ids is not None and not job.spec.requests
        self.types = job.row_types(self.planned, reread=self.reread)
        self.typed: list[tuple[int, dict[str, Any]]] = []

    def take(self, index: int, row: dict[str, Any], text: str | None) -> None:
        """Check and plan one row (a row planned before an interruption: its id only)."""
        if self.ids is not None:
            self.ids.add(index, row)
        if index < self.planned:
            if self.types is not None and self.reread:
                self.typed.append((index, row))
            return
        kept, text = self.planner.plan(index, row, self.requests, self.unsendable, text=text)
        self.row_indices.append(index)
        self.row_texts.append(text)
        if self.types is not None:
            self.typed.append((index, kept))
        if len(self.row_indices) >= PLAN_CHUNK:
            self.store_chunk(index + 1)

    def take_many(self, first: int, bulk: BulkPlanner, rows: list[dict[str, Any]],
                  texts: Sequence[str | None]) -> bool:
        """Check and plan rows ``first``... at once; False (nothing taken) where they must be
        taken one by one."""
        end = first + len(rows)
        if first < self.planned < end:
            return False
        rendered = None if end <= self.planned else bulk.render(rows)
        if rendered is None and end > self.planned:
            return False
        if self.ids is not None:
            self.ids.add_many(first, rows)
        if self.types is not None and (rendered is not None or self.reread):
            self.typed.extend(zip(range(first, end), rows, strict=True))
        if rendered is not None:
            # Parsed by the bulk planner: every row's text is its line's.
            self.row_indices.extend(range(first, end))
            self.row_texts.extend(cast("list[str]", texts))
            self.requests.append(self.planner.request_block(first, *rendered))
            if len(self.row_indices) >= PLAN_CHUNK:
                self.store_chunk(end)
        return True

    def store_chunk(self, next_index: int, meta: dict[str, Any] | None = None) -> None:
        """Store the rows taken since the last chunk, in one transaction."""
        self.next_index = next_index
        if self.ids is not None:
            self.ids.flush()
        if self.types is not None:
            self.types.add(self.typed)
            self.typed = []
        self.planner.finish_chunk()
        meta = {"truncated_rows": self.cut_before + self.planner.cut_rows, **(meta or {})}
        blocks = self.requests
        columns = (blocks[0] if len(blocks) == 1 else  # a bulk-planned chunk: not copied
                   [list(chain.from_iterable(column)) for column in zip(*blocks, strict=True)]
                   if blocks else [[] for _ in range(6)])
        if self.keys is not None:
            columns = [*columns, *self.keys.columns(columns[4])]
            meta["cache_keys"] = self.keys.identity
        self.store.add_planned((self.row_indices, self.row_texts), columns, next_index,
                               unsendable=self.unsendable, meta=meta)
        self.row_indices, self.row_texts, self.requests = [], [], []
        self.unsendable = []
        # Collection is off while planning: a cycle an input reader makes (a dataset's
        # batches, a user's iterator) is freed here, a chunk at a time, so memory stays flat
        # over any input. Only what was made since the last chunk is walked.
        gc.collect(0)

    def finish(self, reached_end: bool) -> None:
        """Store the last chunk, marking whether the whole input is planned."""
        self.store_chunk(self.row_indices[-1] + 1 if self.row_indices else self.next_index,
                         {"planned_complete": reached_end})

    def close(self) -> None:
        """Drop the id check's temporary file."""
        if self.ids is not None:
            self.ids.close()
