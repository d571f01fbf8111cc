"""Parquet and Arrow export of a job of one sample group a row (k=1, or k up to 128 where the
backend takes n), a chunk of rows at a time, column by column, from the stored text.

Each chunk's columns are read by pyarrow's JSON reader from documents SQLite joins
(``arrow_json``: no Python object a row) wherever it reads what the Python path gives; else
the chunk's rows are read with their one request (``JobStore.iter_single_rows``), parsed in
one pass (``fastjson.loads_exact_many``) and each column handed to Arrow as one Python list.
Where the first chunk's row fields have types that every later chunk's have too (most jobs),
that is one pass over the store (:func:`one_pass`); otherwise the row fields' types are read
from every row first (``arrow.store_row_types``) and the rows again (:func:`record_batches`).
The values are those of ``export.iter_results``, which every other job (several sample groups
a row, a request file's rows naming their own model, ``--flatten-json``) is exported through.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from promptmill import arrow, arrow_json, fastjson, jsonl_export
from promptmill.store import BATCHED, PENDING, JobStore

# Keys of a stored answer that ``arrow.response_value`` reshapes for the fixed schema.
_RESHAPED = ('"logprobs"', '"json"')
# promptmill's own columns, which a row's fields of that name give way to.
_OURS = frozenset(arrow.RESULT_FIELDS.names)


def can_export(store: JobStore) -> bool:
    """Whether :func:`one_pass` and :func:`record_batches` serve this store: one sample group
    a row, and not a request file's job."""
    return jsonl_export.can_export(store) and not store.several_sample_groups()


class TypesChanged(Exception):
    """A chunk's row fields have other types than the first chunk's (:func:`one_pass`)."""


def one_pass(store: JobStore, model: str,
             ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]] | None:
    """The schema of the first chunk's rows and every row's record batches, read in one pass
    where each later chunk's row fields have the very types of the first's (those of every
    row then); the batches raise :class:`TypesChanged` at the first chunk whose do not. None
    where the first chunk cannot say (``arrow.store_row_types`` then reads every row first)."""
    documents = arrow_json.row_documents(store)
    start = next(documents, None)
    found = None if start is None else arrow_json.row_types(start[3], _OURS)
    if start is None or found is None:
        return None
    types = found[1]
    schema = arrow.result_schema(arrow.written_types(types))
    if _json_text_fields(schema):
        return None
    own = _own_type(schema)

    def batches() -> Iterator[pa.RecordBatch]:
        chunk: tuple[int, int, int, bytes] | None = start
        read: tuple[pa.Table, pa.Schema] | None = found
        while chunk is not None:
            if read is None or not read[1].equals(types):
                raise TypesChanged
            first, last, count, rows = chunk
            if read[0].schema.field(0).type.value_type == own:
                columns = arrow_json.request_columns(store, first, last, count)
                if columns is not None:
                    columns.update(arrow_json.row_columns(read[0]))
            else:  # timestamps or nulls as the reader inferred them: read again as written
                columns = arrow_json.chunk_columns(store, first, last, count, rows, own)
            yield (_python_batch(store, first, last, schema, model) if columns is None
                   else _reader_batch(columns, schema, model))
            chunk = next(documents, None)
            read = None if chunk is None else arrow_json.row_types(chunk[3], _OURS)

    return schema, batches()


def record_batches(store: JobStore, schema: pa.Schema, model: str) -> Iterator[pa.RecordBatch]:
    """Every planned row with its results as record batches of ``schema``
    (``arrow.result_schema`` of ``arrow.store_row_types``), in input order."""
    own = _own_type(schema)
    # A field written as JSON text (empty objects) needs its value's text: Python's.
    by_reader = not _json_text_fields(schema)
    for first, last, count, rows in arrow_json.row_documents(store):
        columns = (arrow_json.chunk_columns(store, first, last, count, rows, own)
                   if by_reader else None)
        yield (_python_batch(store, first, last, schema, model) if columns is None
               else _reader_batch(columns, schema, model))


def _own_type(schema: pa.Schema) -> pa.DataType:
    """The row fields of ``schema`` as one struct type."""
    return pa.struct([field for field in schema if field.name not in _OURS])


def _json_text_fields(schema: pa.Schema) -> set[str]:
    """The fields of ``schema`` written as JSON text."""
    return {field.name for field in schema if field.metadata and field.metadata.get(
        b"promptmill.encoding") == b"json"}


def _reader_batch(columns: dict[str, pa.Array], schema: pa.Schema, model: str,
                  ) -> pa.RecordBatch:
    """A record batch of ``schema`` from ``arrow_json``'s columns."""
    columns["usage"] = pa.StructArray.from_arrays(
        [columns.pop("prompt_tokens"), columns.pop("completion_tokens")],
        fields=list(arrow.USAGE))
    columns["model"] = arrow_json.repeated(model, len(columns["status"]))
    return pa.RecordBatch.from_arrays([columns[name] for name in schema.names], schema=schema)


def _python_batch(store: JobStore, first: int, last: int, schema: pa.Schema, model: str,
                  ) -> pa.RecordBatch:
    """Rows ``first``..``last`` read with their one request (``JobStore.iter_single_rows``) as
    a record batch, through Python objects."""
    batch = next(store.iter_single_rows(last - first + 1, first=first, last=last))
    own = [field.name for field in schema if field.name not in arrow.RESULT_FIELDS.names]
    json_fields = _json_text_fields(schema)
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


__all__ = ["TypesChanged", "can_export", "one_pass", "record_batches"]
