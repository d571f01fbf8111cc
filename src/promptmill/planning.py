"""Planning a job's rows into its store: read, check, render, store, a chunk at a time.

One pass over the input: each row is parsed (orjson), checked (output-field clashes, its id
against every earlier one, its field types for a Parquet/Arrow output), rendered and counted,
and its requests added to the chunk; each chunk is stored in one transaction, so memory stays
flat however long the input. The chunk is stored here, not by a writer thread beside the
reading: a signal (SIGTERM, Ctrl-C) must roll back the chunk being written, which it cannot
do to another thread's transaction.

Dispatch starts only once the whole input is planned: a bad row anywhere stops the job before
a single request is sent. (Dispatching planned chunks early would have to stop at a later bad
row with requests already sent for the rows before it; whole-input validation first costs a
few seconds per million rows and keeps "bad input fails before anything is sent" literal.)
A kill during planning leaves whole chunks stored, each with its ``planned_rows`` mark in the
same transaction; the next run goes on from there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
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
    store, spec = job.store, job.spec
    planned = int(store.get_meta("planned_rows") or 0)
    limit = spec.limit
    planner = job.planner()
    cut_before = int(store.get_meta("truncated_rows") or 0)
    rows: list[tuple[int, str]] = []
    requests: list[tuple[int, int, int, int, str, int]] = []
    unsendable: list[tuple[int, str]] = []  # requests of rows over the context: failed
    next_index = planned
    reached_end = True
    ids = spec.unique_ids_check()
    # A Parquet/Arrow output needs one type per field: a field that changes type between
    # rows is refused now, before anything is sent, not when the export would fail. The
    # fields are those kept (an input row; a request file's output row, never re-read).
    reread = ids is not None and not spec.requests
    types = job.row_types(planned, reread=reread)
    typed: list[tuple[int, dict[str, Any]]] = []
    plan = planner.plan
    try:
        # With an id check, rows planned before an interruption are read again for their ids.
        for index, row, text in planner.read_records(start=0 if ids else planned):
            if limit is not None and index >= limit:
                reached_end = False
                break
            if ids is not None:
                ids.add(index, row)
            if index < planned:
                if types is not None and reread:
                    typed.append((index, row))
                continue
            kept, text = plan(index, row, requests, unsendable, text=text)
            rows.append((index, text))
            if types is not None:
                typed.append((index, kept))
            if len(rows) >= PLAN_CHUNK:
                next_index = index + 1
                if ids is not None:
                    ids.flush()
                if types is not None:
                    types.add(typed)
                    typed = []
                planner.finish_chunk()
                store.add_planned(rows, requests, next_index, unsendable=unsendable,
                                  meta={"truncated_rows": cut_before + planner.cut_rows})
                rows, requests, unsendable = [], [], []
        if rows:
            next_index = rows[-1][0] + 1
        if ids is not None:
            ids.flush()
        if types is not None:
            types.add(typed)
    finally:
        if ids is not None:
            ids.close()
    planner.finish_chunk()
    store.add_planned(rows, requests, next_index, unsendable=unsendable,
                      meta={"truncated_rows": cut_before + planner.cut_rows,
                            "planned_complete": reached_end})


__all__ = ["PLAN_CHUNK", "payload_json", "plan_rows"]
