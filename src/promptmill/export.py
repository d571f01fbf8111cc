"""Exporting a job's results from its store: every planned row with its answers, in input
order, streamed, in any output format (JSONL from the stored text: ``jsonl_export``; Parquet
and Arrow by pyarrow's JSON reader where it serves: ``arrow_export``).

Kept apart from ``job`` so that ``promptmill export`` imports only the store, the writers
and what its format needs, not the engine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from promptmill import data, fastjson
from promptmill.errors import UsageError
from promptmill.store import JobStore, row_status


def iter_results(store: JobStore, model: str | None = None) -> Iterator[dict[str, Any]]:
    """Every planned row with its responses, usage, attempts, status and error."""
    model = model or stored_model(store)
    for _, raw, outcomes in store.iter_rows():
        row: dict[str, Any] = fastjson.loads_exact(raw)
        # A request file's rows name their own model; an input row never has one (check_row).
        row_model = row.pop("model", None) or model
        responses: list[Any] = []
        prompt_tokens = completion_tokens = attempts = 0
        errors: list[str] = []
        endpoints: list[str] = []
        statuses = set()
        for _group, status, tries, answers, p_tokens, c_tokens, error, endpoint in outcomes:
            statuses.add(status)
            if endpoint and endpoint not in endpoints:
                endpoints.append(endpoint)
            attempts += tries
            if answers:
                responses.extend(fastjson.loads_exact(answers))
            prompt_tokens += p_tokens or 0
            completion_tokens += c_tokens or 0
            if error:
                errors.append(error)
        row.update(
            responses=responses,
            usage={"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
            model=row_model,
            attempts=attempts,
            status=row_status(statuses),
            error="; ".join(errors) if errors else None,
            # The fleet endpoint(s) that answered the row's requests; None for one endpoint.
            endpoint="; ".join(endpoints) if endpoints else None,
        )
        yield row


def export_results(store: JobStore, output: Path, fmt: str, *, model: str | None = None,
                   source: Path | None = None, flatten_json: bool = False) -> int:
    """Write every row with its results to ``output`` in ``fmt``, streamed; how many rows.

    Parquet, Arrow and HF dataset exports have the fixed schema of ``promptmill.arrow``; the
    row fields' types are read from every stored row first (``source`` names rows in errors).
    ``flatten_json`` adds a column per top-level field of the job's structured output.
    """
    if fmt == data.BATCH_OUTPUT_FORMAT:
        from promptmill.batch_export import write_batch_output

        return write_batch_output(store, output, model=model)
    if fmt not in data.ARROW_FORMATS and fmt != "hf":
        if flatten_json:
            raise UsageError("--flatten-json applies to --format parquet, arrow or hf")
        if fmt == "jsonl":
            from promptmill import jsonl_export

            if jsonl_export.can_export(store):
                return data.write_rows(
                    jsonl_export.result_lines(store, model or stored_model(store)), output, fmt)
        return data.write_rows(iter_results(store, model), output, fmt)
    from promptmill import arrow

    arrow_rows = fmt != "hf" and not flatten_json
    if arrow_rows:
        from promptmill import arrow_export

        arrow_rows = arrow_export.can_export(store)
        if arrow_rows and (started := arrow_export.one_pass(
                store, model := model or stored_model(store))) is not None:
            with contextlib.suppress(arrow_export.TypesChanged):  # then in two passes
                return data.write_batches(started[1], output, fmt, started[0])
    schema = arrow.result_schema(arrow.store_row_types(store, source))
    if arrow_rows:
        return data.write_batches(arrow_export.record_batches(
            store, schema, model or stored_model(store)), output, fmt, schema)
    rows = iter_results(store, model)
    if flatten_json:
        from promptmill.structured import schema_of

        fingerprint = store.get_meta("fingerprint") or {}
        response_format = (fingerprint.get("params") or {}).get("response_format")
        k = int(fingerprint.get("k") or 1)
        columns = arrow.json_columns(schema_of(response_format), k, schema.names)
        schema = arrow.with_columns(schema, columns)
        rows = arrow.flatten_json(rows, columns, k)
    if fmt == "hf":
        return arrow.write_hf_dataset(rows, schema, output)
    return data.write_rows(rows, output, fmt, schema=schema)


def stored_model(store: JobStore) -> str:
    """The model identifier the job's rows are exported with."""
    fingerprint = store.get_meta("fingerprint") or {}
    return str(store.get_meta("model_identifier") or fingerprint.get("model"))


__all__ = ["export_results", "iter_results", "stored_model"]
