"""Parquet and Arrow export a chunk of rows at a time, column by column, from the stored text.

A job of one sample group a row (k=1, or k up to 128 where the backend takes n) is read with
each row's one request (``JobStore.iter_single_rows``); each chunk's rows and answers are
parsed in one pass (``fastjson.loads_exact_many``: one check for large numbers over the
chunk), and each column is built as one Python list handed to Arrow whole, instead of a dict
per row that Arrow then takes apart again. The values are those of ``export.iter_results``,
which every other job (several sample groups a row, a request file's rows naming their own
model, ``--flatten-json``) is still exported through.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from promptmill import arrow, arrow_json, fastjson, jsonl_export
from promptmill.store import BATCHED, PENDING, JobStore

# Keys of a stored answer that ``arrow.response_value`` reshapes for the fixed schema.
_RESHAPED = ('"logprobs"', '"json"')


def can_export(store: JobStore) -> bool:
    """Whether :func:`record_batches` serves this store: one sample group a row, and not a
    request file's job."""
    return jsonl_export.can_export(store) and not store.several_sample_groups()


def record_batches(store: JobStore, schema: pa.Schema, model: str) -> Iterator[pa.RecordBatch]:
    """Every planned row with its results as record batches of ``schema``
    (``arrow.result_schema``), in input order: read by pyarrow's JSON reader where it reads
    what this module's Python path would give (``arrow_json``), by that path otherwise."""
    own = pa.struct([field for field in schema if field.name not in arrow.RESULT_FIELDS.names])
    # A field written as JSON text (empty objects) needs its value's text: Python's.
    by_reader = not any(field.metadata and field.metadata.get(b"promptmill.encoding") == b"json"
                        for field in own)
    for first, last, indices, rows in arrow_json.row_documents(store):
        columns = (arrow_json.chunk_columns(store, first, last, indices, rows, own)
                   if by_reader else None)
        if columns is None:
            for batch in store.iter_single_rows(last - first + 1, first=first, last=last):
                yield _python_batch(batch, schema, model)
            continue
        count = len(columns["status"])
        columns["usage"] = pa.StructArray.from_arrays(
            [columns.pop("prompt_tokens"), columns.pop("completion_tokens")],
            fields=list(arrow.USAGE))
        columns["model"] = pa.repeat(pa.scalar(model, pa.string()), count)
        yield pa.RecordBatch.from_arrays([columns[name] for name in schema.names],
                                         schema=schema)


def _python_batch(batch: list[tuple[Any, ...]], schema: pa.Schema, model: str,
                  ) -> pa.RecordBatch:
    """Rows read with their one request (``JobStore.iter_single_rows``) as a record batch,
    through Python objects."""
    own = [field.name for field in schema if field.name not in arrow.RESULT_FIELDS.names]
    json_fields = {field.name for field in schema if field.metadata and field.metadata.get(
        b"promptmill.encoding") == b"json"}
    _, data, statuses, attempts, answers, p_tokens, c_tokens, errors, endpoints = zip(
        *batch, strict=True)
    rows = fastjson.loads_exact_many(list(data))
    answer_texts = [a or "[]" for a in answers]
    responses = fastjson.loads_exact_many(answer_texts)
    # Only answers with logprobs or parsed JSON change shape: a chunk whose text names
    # neither has none (a text that merely mentions them is reshaped, which changes nothing).
    joined = "\n".join(answer_texts)
    if any(name in joined for name in _RESHAPED):
        responses = [[arrow.response_value(r) for r in rs] for rs in responses]
    columns: dict[str, Any] = {
        name: ([arrow.json_text(row.get(name)) for row in rows] if name in json_fields
               else [row.get(name) for row in rows]) for name in own}
    columns.update(
        responses=responses,
        usage=pa.StructArray.from_arrays(
            [pa.array([p or 0 for p in p_tokens], pa.int64()),
             pa.array([c or 0 for c in c_tokens], pa.int64())],
            fields=list(arrow.USAGE)),
        model=[model] * len(rows),
        attempts=[a or 0 for a in attempts],
        # A row without requests has none of their columns: it is done, as iter_results
        # says of a row with nothing pending or failed.
        status=["done" if s is None else PENDING if s == BATCHED else s for s in statuses],
        error=[e or None for e in errors],
        endpoint=[e or None for e in endpoints])
    return pa.RecordBatch.from_pydict(columns, schema=schema)


__all__ = ["can_export", "record_batches"]
