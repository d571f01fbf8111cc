"""Results as Arrow: one fixed schema for promptmill's own columns, the row's fields typed.

Every job's Parquet (and Arrow IPC) export has the same types for the columns promptmill
adds, whatever the backend and whether anything failed, so the files of different jobs and
models concatenate without casting; the row's own fields keep the types they have in the
input (lists stay lists, objects become structs), inferred over every row, not the first.
A field whose type changes between rows is refused with the two rows named.

A field that holds only empty objects (an Arrow struct with no fields, which Parquet cannot
store) is written as JSON text, marked so in its field metadata. A field that is null in
every row is a string column, so that it concatenates with a job where it is set.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from promptmill.errors import InputError

TOP_LOGPROB = pa.struct([
    ("token", pa.string()),
    ("logprob", pa.float64()),
    ("bytes", pa.list_(pa.int32())),
])
LOGPROB = pa.struct([
    ("token", pa.string()),
    ("logprob", pa.float64()),
    ("bytes", pa.list_(pa.int32())),
    ("top_logprobs", pa.list_(TOP_LOGPROB)),
])
RESPONSE = pa.struct([
    ("text", pa.string()),
    ("finish_reason", pa.string()),
    ("logprobs", pa.list_(LOGPROB)),
    # The prompt's tokens in the same shape (vLLM's prompt_logprobs); null for the first.
    ("prompt_logprobs", pa.list_(LOGPROB)),
    # Structured output's parsed value, as JSON text (its shape is the job's schema's, so
    # the column keeps one type across jobs); null without a schema.
    ("json", pa.string()),
    # Taken from the response cache instead of sent (null: sent).
    ("cached", pa.bool_()),
])
USAGE = pa.struct([("prompt_tokens", pa.int64()), ("completion_tokens", pa.int64())])
# The columns promptmill adds to every row, in output order, with their one type.
RESULT_FIELDS = pa.schema([
    ("responses", pa.list_(RESPONSE)),
    ("usage", USAGE),
    ("model", pa.string()),
    ("attempts", pa.int64()),
    ("status", pa.string()),
    ("error", pa.string()),
    ("endpoint", pa.string()),
])
_RESULT_NAMES = frozenset(RESULT_FIELDS.names)
# What `promptmill extract` found in each response (promptmill.grading.Extraction), the
# column it adds beside ``responses`` in a graded Parquet file.
RULE_ANSWER = pa.struct([("extracted", pa.string()), ("correct", pa.bool_()),
                         ("method", pa.string())])
JUDGE_ANSWER = pa.struct([("reply", pa.string()), ("extracted", pa.string()),
                          ("correct", pa.bool_()), ("agrees", pa.bool_()),
                          ("error", pa.string())])
EXTRACTION = pa.struct([
    ("response_index", pa.int64()),
    ("extracted", pa.string()),
    ("correct", pa.bool_()),
    ("method", pa.string()),
    ("uncertain", pa.bool_()),
    ("rule", RULE_ANSWER),
    ("judge", JUDGE_ANSWER),
])
EXTRACTIONS = pa.field("extractions", pa.list_(EXTRACTION))
# Field metadata of a row field written as JSON text rather than as its own Arrow type.
JSON_TEXT = {b"promptmill.encoding": b"json"}
_CHUNK = 5000
_INFER_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError)


def _describe(kind: pa.DataType) -> str:
    if pa.types.is_integer(kind):
        return "a number"
    if pa.types.is_floating(kind):
        return "a number"
    if pa.types.is_boolean(kind):
        return "true/false"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "text"
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return "a list"
    if pa.types.is_struct(kind):
        return "an object"
    return str(kind)


class RowTypes:
    """The Arrow types of the rows' own fields, unified over every row given to :meth:`add`.

    Numbers promote (an integer field with a 1.5 in it is a float field), nulls take the type
    of the field's other rows, objects merge their keys; anything else that changes type
    between rows is an InputError naming both rows and the field.
    """

    __slots__ = ("_schema", "_first", "_source")

    def __init__(self, source: Path | None = None) -> None:
        self._schema = pa.schema([])  # unified over the rows added so far
        self._first: dict[str, int] = {}  # field -> first row index where it is not null
        self._source = source  # the input file, to name rows by line in errors

    def add(self, rows: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """Take a chunk of ``(row_index, row)`` into the schema; InputError on a type change."""
        if not rows:
            return
        # Every field of every row: from_pylist would take the first row's fields only, and a
        # field missing from it (an optional one, a request file's metadata) would be lost.
        names = dict.fromkeys(name for _, row in rows for name in row)
        try:
            chunk = pa.Table.from_pydict(
                {name: [row.get(name) for _, row in rows] for name in names}).schema
            merged = pa.unify_schemas([self._schema, chunk], promote_options="permissive")
        except _INFER_ERRORS:
            self._add_one_by_one(rows)  # raises, naming the rows
            return
        for field in chunk:
            if field.name not in self._first and not pa.types.is_null(field.type):
                self._first[field.name] = next(
                    index for index, row in rows if row.get(field.name) is not None)
        self._schema = merged

    def _add_one_by_one(self, rows: Sequence[tuple[int, dict[str, Any]]]) -> None:
        for index, row in rows:
            for name, value in row.items():
                try:
                    kind = pa.array([value]).type
                except _INFER_ERRORS:
                    raise InputError(
                        f"{self._place(index)}: field {name!r} mixes types inside one value "
                        f"({_short(value)}): give its items one type, or export as JSONL or CSV"
                    ) from None
                try:
                    self._schema = pa.unify_schemas(
                        [self._schema, pa.schema([(name, kind)])], promote_options="permissive")
                except _INFER_ERRORS:
                    before = self._schema.field(name).type
                    first = self._first.get(name, index)
                    raise InputError(
                        f"{self._place(index)}: field {name!r} is {_describe(kind)} "
                        f"({_short(value)}) where earlier rows have {_describe(before)} (first "
                        f"on {self._place(first)}): give it one type in every row, or export "
                        "as JSONL or CSV, which take any value"
                    ) from None
                if value is not None:
                    self._first.setdefault(name, index)

    def _place(self, index: int) -> str:
        if self._source is None:
            return f"input row {index + 1}"
        from promptmill.data import row_place

        return row_place(self._source, index)

    def schema(self) -> pa.Schema:
        """The row fields' schema as written: nulls as text, empty objects as JSON text."""
        return written_types(self._schema)


def written_types(unified: pa.Schema) -> pa.Schema:
    """Row fields' types unified over the rows (``RowTypes``) as written: nulls as text,
    empty objects as JSON text."""
    fields = []
    for field in unified:
        if _has_empty_struct(field.type):
            fields.append(pa.field(field.name, pa.string(), metadata=JSON_TEXT))
        else:
            fields.append(pa.field(field.name, _without_null(field.type)))
    return pa.schema(fields)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _has_empty_struct(kind: pa.DataType) -> bool:
    if pa.types.is_struct(kind):
        return kind.num_fields == 0 or any(_has_empty_struct(f.type) for f in kind)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _has_empty_struct(kind.value_type)
    return False


def _without_null(kind: pa.DataType) -> pa.DataType:
    """``kind`` with every null type (a field or list item never seen set) made a string."""
    if pa.types.is_null(kind):
        return pa.string()
    if pa.types.is_list(kind):
        return pa.list_(_without_null(kind.value_type))
    if pa.types.is_large_list(kind):
        return pa.large_list(_without_null(kind.value_type))
    if pa.types.is_struct(kind):
        return pa.struct([pa.field(f.name, _without_null(f.type)) for f in kind])
    return kind


def describe_result_fields() -> str:
    """promptmill's fixed columns as ``name: arrow type`` lines (the README shows them)."""
    return "\n".join(f"{field.name}: {field.type}" for field in RESULT_FIELDS)


def result_schema(row_fields: pa.Schema) -> pa.Schema:
    """The schema of exported results: the row's fields, then promptmill's fixed columns."""
    own = [field for field in row_fields if field.name not in RESULT_FIELDS.names]
    return pa.schema(own + list(RESULT_FIELDS))


def graded_schema(row_fields: pa.Schema) -> pa.Schema:
    """The schema of graded results (``promptmill extract``): :func:`result_schema`, then
    ``extractions``."""
    own = pa.schema([field for field in row_fields if field.name != EXTRACTIONS.name])
    return result_schema(own).append(EXTRACTIONS)


def infer_row_types(rows: Iterable[tuple[int, dict[str, Any]]],
                    source: Path | None = None) -> pa.Schema:
    """The written schema of rows' own fields (promptmill's columns left out), over all rows."""
    types = RowTypes(source)
    chunk: list[tuple[int, dict[str, Any]]] = []
    for index, row in rows:
        chunk.append((index, _own_fields(row)))
        if len(chunk) >= _CHUNK:
            types.add(chunk)
            chunk = []
    types.add(chunk)
    return types.schema()


def _own_fields(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row without promptmill's columns (a request file's output row has some)."""
    ours = _RESULT_NAMES
    return row if ours.isdisjoint(row) else {k: v for k, v in row.items() if k not in ours}


def record_batches(rows: Iterable[dict[str, Any]], schema: pa.Schema,
                   size: int = _CHUNK) -> Iterator[pa.RecordBatch]:
    """Rows as record batches of ``schema`` (a :func:`result_schema`), ``size`` rows each."""
    json_fields = [f.name for f in schema if f.metadata and f.metadata.get(
        b"promptmill.encoding") == b"json"]
    chunk: list[dict[str, Any]] = []
    for row in rows:
        if json_fields:
            row = {**row, **{name: json_text(row.get(name)) for name in json_fields}}
        if row.get("responses"):
            row["responses"] = [response_value(r) for r in row["responses"]]
        chunk.append(row)
        if len(chunk) >= size:
            yield pa.RecordBatch.from_pylist(chunk, schema=schema)
            chunk = []
    if chunk:
        yield pa.RecordBatch.from_pylist(chunk, schema=schema)


def json_text(value: Any) -> str | None:
    """A field written as JSON text (empty objects): its value's text, None for null."""
    return None if value is None else json.dumps(value, ensure_ascii=False)


def response_value(response: Any) -> Any:
    """One response in the fixed shape: logprobs' alternatives always a list of entries,
    the parsed JSON as text."""
    if not isinstance(response, dict):
        return response
    if "json" in response:
        response = {**response, "json": json.dumps(response["json"], ensure_ascii=False)}
    if not response.get("logprobs"):
        return response
    return {**response, "logprobs": [_logprob(entry) for entry in response["logprobs"]]}


def _logprob(entry: Any) -> Any:
    if not isinstance(entry, dict):
        return entry
    top = entry.get("top_logprobs")
    if isinstance(top, dict):  # text completions' {token: logprob} (stores before 0.2)
        return {**entry, "top_logprobs": [{"token": t, "logprob": lp} for t, lp in top.items()]}
    return entry


# Arrow types of a JSON Schema's scalar types; anything else is written as JSON text.
_JSON_TYPES = {"string": pa.string(), "integer": pa.int64(), "number": pa.float64(),
               "boolean": pa.bool_()}


def json_columns(schema: dict[str, Any] | None, k: int, taken: Sequence[str]) -> pa.Schema:
    """Columns ``json_NAME`` for each top-level property of a structured-output schema (a
    list of the k responses' values when k > 1); InputError if there are none or a name is
    taken."""
    properties = (schema or {}).get("properties")
    if not isinstance(properties, dict) or not properties:
        raise InputError("--flatten-json needs a job run with --schema whose top level is an "
                         "object with properties: this job has none")
    fields = []
    for name, spec in properties.items():
        column = f"json_{name}"
        if column in taken:
            raise InputError(f"--flatten-json: column {column!r} is already an input field: "
                             "rename that field")
        kind = spec.get("type") if isinstance(spec, dict) else None
        scalar = _JSON_TYPES.get(kind) if isinstance(kind, str) else None
        # Nested values as JSON text (encoded here, not marked JSON_TEXT: a list of texts
        # when k > 1).
        arrow_type = scalar or pa.string()
        fields.append(pa.field(column, pa.list_(arrow_type) if k > 1 else arrow_type,
                               metadata={b"promptmill.json_type": str(kind).encode()}))
    return pa.schema(fields)


def with_columns(schema: pa.Schema, columns: pa.Schema) -> pa.Schema:
    """``schema`` with ``columns`` appended."""
    return pa.schema(list(schema) + list(columns))


def flatten_json(rows: Iterable[dict[str, Any]], columns: pa.Schema,
                 k: int) -> Iterator[dict[str, Any]]:
    """Rows with each ``json_NAME`` column set from their responses' parsed JSON."""
    names = [(field.name, field.name[len("json_"):],
              field.metadata[b"promptmill.json_type"].decode() not in _JSON_TYPES,
              _scalar_type(field.type)) for field in columns]
    for row in rows:
        values = [r.get("json") if isinstance(r, dict) else None
                  for r in row.get("responses") or []]
        for column, name, as_text, kind in names:
            picked = [_flat_value(v.get(name) if isinstance(v, dict) else None, as_text, kind)
                      for v in values]
            row[column] = picked if k > 1 else (picked[0] if picked else None)
        yield row


def _scalar_type(kind: pa.DataType) -> pa.DataType:
    return kind.value_type if pa.types.is_list(kind) else kind


def _flat_value(value: Any, as_text: bool, kind: pa.DataType) -> Any:
    if value is None:
        return None
    if as_text:
        return json.dumps(value, ensure_ascii=False)
    if pa.types.is_integer(kind) and isinstance(value, float) and value.is_integer():
        return int(value)  # JSON Schema's integer admits 3.0
    return value


def load(path: str | Path) -> pa.Table:
    """A job's results as an Arrow table: from an exported Parquet/Arrow file, or the job store.

    ``path`` is what ``-o`` named (its store beside it is read), a ``.promptmill.db`` store,
    or an exported ``.parquet`` / ``.arrow`` file. Use ``.to_pandas()``,
    ``polars.from_arrow(...)`` or ``duckdb.sql("select ... from table")`` on the result.
    """
    return pa.Table.from_batches(list(iter_load(path)), schema=load_schema(path))


def load_schema(path: str | Path) -> pa.Schema:
    """The schema :func:`load` returns for ``path``."""
    return _open(Path(path))[0]


def iter_load(path: str | Path) -> Iterator[pa.RecordBatch]:
    """:func:`load` as a stream of record batches (flat memory for any size of job)."""
    yield from _open(Path(path))[1]


def _open(path: Path) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq") and path.is_file():
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(path)
        return parquet.schema_arrow, parquet.iter_batches()
    if suffix in (".arrow", ".feather") and path.is_file():
        reader = pa.ipc.open_file(path)
        return reader.schema, (reader.get_batch(i) for i in range(reader.num_record_batches))
    from promptmill.export import iter_results
    from promptmill.store import JobStore, existing_store_path

    store_path = existing_store_path(path)
    with JobStore(store_path, lock=False) as store:
        schema = result_schema(store_row_types(store))

    def batches() -> Iterator[pa.RecordBatch]:
        with JobStore(store_path, lock=False) as store:
            yield from record_batches(iter_results(store), schema)

    return schema, batches()


def write_hf_dataset(rows: Iterable[dict[str, Any]], schema: pa.Schema, folder: Path) -> int:
    """Write rows as a Hugging Face dataset folder (``save_to_disk`` layout); how many rows.

    The rows stream into a Parquet file that ``datasets`` reads back memory-mapped; the folder
    is put in place whole (a folder already there is replaced only once the new one is done).
    """
    import shutil
    import tempfile

    try:
        import datasets
    except ImportError as exc:
        from promptmill.errors import MissingDependency

        raise MissingDependency(
            'exporting a Hugging Face dataset needs the datasets package: pip install '
            '"promptmill[datasets]"') from exc
    import pyarrow.parquet as pq

    folder = Path(folder)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{folder.name}.") as scratch:
        parquet = Path(scratch) / "rows.parquet"
        count = 0
        with pq.ParquetWriter(parquet, schema) as writer:
            for batch in record_batches(rows, schema):
                writer.write_batch(batch)
                count += batch.num_rows
        dataset = datasets.Dataset.from_parquet(str(parquet), cache_dir=str(Path(scratch) / "c"))
        built = Path(scratch) / "dataset"
        dataset.save_to_disk(str(built))
        del dataset  # its memory map points into scratch
        old = Path(scratch) / "old"
        if folder.exists():
            folder.rename(old)
        built.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    return count


def store_row_types(store: Any, source: Path | None = None) -> pa.Schema:
    """The written schema of the row fields of every row a job store holds."""
    from promptmill import arrow_json
    from promptmill.fastjson import loads_exact_many

    unified = arrow_json.infer_row_types(store, _RESULT_NAMES)  # in C++, where it is sure
    if unified is not None:
        return written_types(unified)
    types = RowTypes(source)
    for chunk in store.row_chunks(_CHUNK):  # parsed a chunk at a time: one check for big numbers
        indices, texts = zip(*chunk, strict=True)
        types.add(list(zip(indices, map(_own_fields, loads_exact_many(list(texts))),
                           strict=True)))
    return types.schema()


__all__ = [
    "EXTRACTIONS",
    "JSON_TEXT",
    "flatten_json",
    "json_columns",
    "RESULT_FIELDS",
    "describe_result_fields",
    "graded_schema",
    "RowTypes",
    "infer_row_types",
    "iter_load",
    "json_text",
    "load",
    "load_schema",
    "record_batches",
    "response_value",
    "result_schema",
    "store_row_types",
    "with_columns",
    "write_hf_dataset",
    "written_types",
]
