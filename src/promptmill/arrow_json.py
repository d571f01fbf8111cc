"""Arrow arrays straight from the store's JSON text, read by pyarrow's C++ JSON reader.

Parquet and Arrow exports spent most of their time turning the stored text into Python
objects and those into Arrow arrays. Here SQLite joins a chunk's rows into one JSON document
(``group_concat``: no Python object a row) and the chunk's answers and request columns into
others, and ``pyarrow.json.read_json`` builds the arrays from them, for the row fields' types
(``row_types``, ``infer_row_types``) and for the record batches (``arrow_export``). The
queries live here, beside the reader they feed, not in ``store``.

What this reads must be what the Python path gives (``arrow.RowTypes``, ``arrow_export``), so
it declines wherever that is not sure, and the caller takes the Python path: an integer past
64 bits (``fastjson.may_overflow``: the reader makes it a float), a line break in a stored
text (the reader takes it for the end of a document), a field holding two types or a key
given twice (the reader refuses; the Python path names the rows), a chunk whose rows do not
have one request each, answers with logprobs or parsed JSON (reshaped in Python). The
reader's own inference differs from pyarrow's reading of Python values in one way, mended
here: it reads ISO dates and times as timestamps.
"""

from __future__ import annotations

import array
import sqlite3
from collections.abc import Iterator
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.json as pa_json

from promptmill import arrow, fastjson
from promptmill.store import BATCHED, PENDING, JobStore

CHUNK = 5000
# The rows row_index first..last (a range of the table's key, read in its order): how many,
# and their own text as one JSON document.
_ROWS_SQL = ("SELECT count(*), '{\"rows\":[' || group_concat(data, ',') || ']}' FROM rows "
             "WHERE row_index BETWEEN ? AND ?")
# The requests of those rows, of a job of one sample group a row, whose ids are their rows'
# indices (RowPlanner's ids: row_index * groups + group): how many, how many have their row's
# index as id (all: one a row, in row order), the answers as one document, each other column
# as a JSON array, and how many errors and endpoints there are (mostly none, read apart when
# some), each value as export.iter_results gives it (no answers: [], no tokens: 0, a batched
# request pending, an empty error or endpoint: null).
_REQUESTS_SQL = (
    "SELECT count(*), sum(row_index = id), '{\"responses\":[' || "
    "group_concat(coalesce(nullif(responses, ''), '[]'), ',') || '],\"status\":' || "
    f"json_group_array(CASE status WHEN '{BATCHED}' THEN '{PENDING}' ELSE status END) || '}}', "
    "json_group_array(attempts), json_group_array(coalesce(prompt_tokens, 0)), "
    "json_group_array(coalesce(completion_tokens, 0)), "
    "count(nullif(error, '')) + count(nullif(endpoint, '')) FROM requests "
    "WHERE id BETWEEN ? AND ?")
_TEXTS_SQL = ("SELECT '{\"error\":' || json_group_array(nullif(error, '')) || "
              "',\"endpoint\":' || json_group_array(nullif(endpoint, '')) || '}' "
              "FROM requests WHERE id BETWEEN ? AND ?")
_TEXTS = pa.schema([("error", pa.list_(pa.string())), ("endpoint", pa.list_(pa.string()))])
_NUMBERS = ("attempts", "prompt_tokens", "completion_tokens")
# Keys of a stored answer that arrow.response_value reshapes (the Python path does it): two
# of _OTHER_KEYS.
_RESHAPED = (b'"logprobs"', b'"json"')
# A chunk's answers as the reader reads them: every field of a response, or (answers that
# name none of _OTHER_KEYS) text and finish reason alone.
_STATUS = pa.field("status", pa.list_(pa.string()))
_ANSWERS = pa.schema([("responses", pa.list_(arrow.RESULT_FIELDS.field("responses").type)),
                      _STATUS])
_PLAIN_ANSWERS = pa.schema([("responses", pa.list_(pa.list_(pa.struct(
    [arrow.RESPONSE.field("text"), arrow.RESPONSE.field("finish_reason")])))), _STATUS])
_OTHER_KEYS = tuple(f'"{field.name}"'.encode() for field in arrow.RESPONSE
                    if field.name not in ("text", "finish_reason"))
_LONGEST = 2**31 - 2
_READ_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError)
_INFERRED = (pa.types.is_null, pa.types.is_boolean, pa.types.is_int64, pa.types.is_float64,
             pa.types.is_string)


def row_documents(store: JobStore, chunk: int = CHUNK) -> Iterator[tuple[int, int, int, bytes]]:
    """Every planned row in input order, ``chunk`` indices at a time: ``(first, last, count,
    document)``, the document ``{"rows": [row, ...]}`` of the ``count`` rows' stored text."""
    low, high = store.db.execute("SELECT min(row_index), max(row_index) FROM rows").fetchone()
    for first in range(low or 0, -1 if high is None else high + 1, chunk):
        yield from _row_documents(store, first, first + chunk - 1)


def _row_documents(store: JobStore, first: int, last: int,
                   ) -> Iterator[tuple[int, int, int, bytes]]:
    try:
        count, document = store.db.execute(_ROWS_SQL, (first, last)).fetchone()
    except sqlite3.DataError:  # the rows' text past SQLite's longest string: in halves
        if first == last:  # one row that long: no document (the Python path reads it)
            yield first, last, 1, b""
            return
        middle = (first + last) // 2
        yield from _row_documents(store, first, middle)
        yield from _row_documents(store, middle + 1, last)
        return
    if count:
        yield first, last, count, document.encode()


def read(document: bytes, schema: pa.Schema | None = None) -> pa.Table | None:
    """``document`` (one JSON object on one line) read as a one-row table, of ``schema``
    where given (keys it does not name left out); None where the Python path must read it."""
    # A line break inside a stored text would read as two documents; the reader's block size
    # is a 32-bit count.
    if b"\n" in document or len(document) >= _LONGEST:
        return None
    parse = (pa_json.ParseOptions() if schema is None else pa_json.ParseOptions(
        explicit_schema=schema, unexpected_field_behavior="ignore"))
    try:
        table = pa_json.read_json(
            pa.BufferReader(document), parse_options=parse,
            read_options=pa_json.ReadOptions(use_threads=False, block_size=len(document) + 1))
    except _READ_ERRORS:
        return None
    return table if table.num_rows == 1 else None


def row_types(document: bytes, leave_out: frozenset[str] = frozenset(),
              ) -> tuple[pa.Table, pa.Schema] | None:
    """A :func:`row_documents` document read with the types the reader infers, and the row
    fields' types as ``arrow.RowTypes`` would find them in those rows (fields named in
    ``leave_out`` left out); None where the Python path must infer them."""
    # An integer past 64 bits: the reader makes it a float where RowTypes refuses the row.
    # (So rows read with types from here or from infer_row_types never hold one.)
    table = None if fastjson.may_overflow(document) else read(document)
    if table is None:
        return None
    fields = [field for field in table.schema.field("rows").type.value_type
              if field.name not in leave_out]
    kinds = [_as_python_infers(field.type) for field in fields]
    if any(kind is None for kind in kinds):
        return None
    return table, pa.schema([pa.field(field.name, kind)
                             for field, kind in zip(fields, kinds, strict=True)])


def infer_row_types(store: JobStore, leave_out: frozenset[str]) -> pa.Schema | None:
    """The row fields' types unified over every stored row as ``arrow.RowTypes`` unifies
    them (before it writes nulls as text), fields named in ``leave_out`` left out; None where
    the Python path must infer them."""
    unified = pa.schema([])
    for _, _, _, document in row_documents(store):
        read_types = row_types(document, leave_out)
        if read_types is None:
            return None
        try:
            unified = pa.unify_schemas([unified, read_types[1]], promote_options="permissive")
        except _READ_ERRORS:
            return None  # a field changes type between chunks: RowTypes names the rows
    return unified


def _as_python_infers(kind: pa.DataType) -> pa.DataType | None:
    """The type pyarrow infers from the Python values the JSON reader read as ``kind`` (None:
    a type the Python path may not infer alike)."""
    if pa.types.is_timestamp(kind):  # an ISO date or time: a string in Python
        return pa.string()
    if any(check(kind) for check in _INFERRED):
        return kind
    if pa.types.is_list(kind):
        item = _as_python_infers(kind.value_type)
        return None if item is None else pa.list_(item)
    if pa.types.is_struct(kind):
        children = [_as_python_infers(field.type) for field in kind]
        if any(child is None for child in children):
            return None
        return pa.struct([pa.field(field.name, child)
                          for field, child in zip(kind, children, strict=True)])
    return None


def row_columns(table: pa.Table) -> dict[str, pa.Array]:
    """The row fields of a :func:`read` rows document, an array each."""
    rows: Any = table.column(0).chunk(0).flatten()
    return dict(zip([field.name for field in rows.type], rows.flatten(), strict=True))


def chunk_columns(store: JobStore, first: int, last: int, count: int, rows: bytes,
                  own: pa.DataType) -> dict[str, pa.Array] | None:
    """The columns of rows ``first``..``last`` (their ``count`` and ``rows`` document from
    :func:`row_documents`): the row fields of struct type ``own``, then ``responses`` and the
    request columns, each an array of one value a row; None where the Python path must
    build them."""
    row_table = read(rows, pa.schema([("rows", pa.list_(own))]))
    if row_table is None:
        return None
    columns = request_columns(store, first, last, count)
    return None if columns is None else {**row_columns(row_table), **columns}


def request_columns(store: JobStore, first: int, last: int, count: int,
                    ) -> dict[str, pa.Array] | None:
    """``responses`` and the request columns of the ``count`` rows ``first``..``last``, each
    an array of one value a row; None where the Python path must build them."""
    try:
        found, aligned, answers, *numbers, texts = store.db.execute(
            _REQUESTS_SQL, (first, last)).fetchone()
    except sqlite3.DataError:  # the answers' text past SQLite's longest string
        return None
    if not found == aligned == count:  # not one request a row, ids their rows' indices
        return None
    answers = answers.encode()
    # Answers of text and finish reason alone (most) are read as such, then given the other
    # fields as nulls: the reader builds every field of the type it is given, row by row.
    plain = not any(key in answers for key in _OTHER_KEYS)
    if not plain and any(key in answers for key in _RESHAPED):
        return None
    answer_table = read(answers, _PLAIN_ANSWERS if plain else _ANSWERS)
    if answer_table is None:
        return None
    # Errors and endpoints only where the chunk has some (mostly none: nulls).
    try:
        text_table = read(store.db.execute(_TEXTS_SQL, (first, last)).fetchone()[0].encode(),
                          _TEXTS) if texts else None
    except sqlite3.DataError:
        return None
    if texts and text_table is None:
        return None
    responses, status = (column.chunk(0).flatten() for column in answer_table.columns)
    try:
        columns = {"responses": responses.cast(_ANSWERS.field(0).type.value_type) if plain
                   else responses, "status": status}
    except _READ_ERRORS:  # an older pyarrow, which cannot add fields to a struct by a cast
        return None
    for name in ("error", "endpoint"):
        columns[name] = (pa.nulls(count, pa.string()) if text_table is None
                         else text_table.column(name).chunk(0).flatten())
    # Whole numbers: orjson's list made a C array for Arrow, no Python object a value (which
    # pyarrow's conversion of Python values would take, and import pandas for).
    for name, text in zip(_NUMBERS, numbers, strict=True):
        values = array.array("q", orjson.loads(text))
        columns[name] = pa.Array.from_buffers(pa.int64(), len(values),
                                              [None, pa.py_buffer(values)])
    return columns


def repeated(text: str, count: int) -> pa.Array:
    """A string array of ``count`` times ``text``, built from its buffers (no Python object a
    value)."""
    data = text.encode()
    offsets = array.array("i", range(0, (count + 1) * len(data), len(data)) if data
                          else bytes(4 * (count + 1)))
    return pa.Array.from_buffers(pa.string(), count,
                                 [None, pa.py_buffer(offsets), pa.py_buffer(data * count)])


__all__ = ["CHUNK", "chunk_columns", "infer_row_types", "read", "repeated", "request_columns",
           "row_columns", "row_documents", "row_types"]
