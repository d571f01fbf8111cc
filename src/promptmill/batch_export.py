"""A job's results in the Batch API's output format (``--format openai-batch``).

Scripts written for Batch API output files read any job's results unchanged: one line per
answered request, ``{"id", "custom_id", "response": {"status_code": 200, "request_id",
"body"}, "error": null}``, the body a ``chat.completion`` or ``text_completion`` built from
the job store; failed requests go to ``NAME.errors.jsonl`` beside it with ``response`` null
and ``error`` ``{"code", "message"}``, as the Batch API's error file has them. Lines come in
input order (the Batch API's come in none). Requests not yet answered are left out.

custom_ids: a request file's own (Batch API lines), else the row's id (``id``/``unique_id``),
else ``request-N`` (N the row's index), with ``-G`` per sample group when a row has several
requests: the ids ``promptmill batch create`` writes for the same input.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from promptmill import data
from promptmill.batch_files import completion_body, errors_file_for
from promptmill.request_files import ID_FIELD
from promptmill.row_ids import ID_FIELDS
from promptmill.store import DONE, FAILED, JobStore

log = logging.getLogger("promptmill")

_CHUNK = 1000  # requests read per query


def write_batch_output(store: JobStore, output: Path, *, model: str | None = None) -> int:
    """Write the answered requests to ``output`` and the failed ones beside it; how many
    lines in ``output``. Both files are written whole or not at all (streamed, renamed)."""
    errors = errors_file_for(output)
    default_model = _model_name(model or store.get_meta("model_identifier") or "")
    job = _job_tag(store)
    count = data.write_rows(_lines(store, job, default_model, DONE), output, "jsonl")
    failed = data.write_rows(_lines(store, job, default_model, FAILED), errors, "jsonl")
    if not failed:
        errors.unlink(missing_ok=True)  # an empty error file is none, as the Batch API's
    status = store.status()
    if status.pending:
        log.warning("%s: %d requests not yet answered are left out", output, status.pending)
    return count


def _lines(store: JobStore, job: str, default_model: str, wanted: str
           ) -> Iterator[dict[str, Any]]:
    """The output (``done``) or error (``failed``) lines of the job, in input order."""
    last = -1
    while True:
        chunk = store.db.execute(
            "SELECT q.id, q.row_index, q.sample_group, q.payload, q.responses, q.prompt_tokens, "
            "q.completion_tokens, q.error, q.error_kind, q.finished_at, r.data, "
            "(SELECT COUNT(*) FROM requests s WHERE s.row_index = q.row_index) "
            "FROM requests q JOIN rows r ON r.row_index = q.row_index "
            "WHERE q.id > ? AND q.status = ? ORDER BY q.id LIMIT ?",
            (last, wanted, _CHUNK)).fetchall()
        if not chunk:
            return
        for (request_id, row_index, group, payload, responses, prompt_tokens,
             completion_tokens, error, error_kind, finished_at, row, groups) in chunk:
            kept = json.loads(row)
            custom = custom_id_of(kept, row_index, group, groups > 1)
            line_id = f"{job}-{request_id}"
            if wanted == FAILED:
                yield {"id": f"batch_req_{line_id}", "custom_id": custom, "response": None,
                       "error": {"code": error_kind or "error", "message": error}}
                continue
            request = json.loads(payload)
            sent = kept.get("request")
            model = (sent.get("model") if isinstance(sent, dict) else None) or request.get(
                "model") or default_model
            body = completion_body("messages" in request, line_id, int(finished_at or 0),
                                   str(model), json.loads(responses or "[]"),
                                   prompt_tokens or 0, completion_tokens or 0)
            yield {"id": f"batch_req_{line_id}", "custom_id": custom,
                   "response": {"status_code": 200, "request_id": f"req_{line_id}",
                                "body": body},
                   "error": None}
        last = chunk[-1][0]


def custom_id_of(row: dict[str, Any], row_index: int, group: int, several: bool, *,
                 id_field: str | None = None, use_ids: bool = True) -> str:
    """The custom_id of a row's request: the row's ``id_field``, else its own custom_id or id
    (``use_ids``: ids checked unique), else ``request-N``; ``-G`` added for sample group G
    when the row has ``several`` requests."""
    name = None
    if use_ids:
        name = id_field or next(
            (f for f in (ID_FIELD, *ID_FIELDS) if row.get(f) not in (None, "")), None)
    base = str(row[name]) if name else f"request-{row_index}"
    return f"{base}-{group}" if several else base


def _model_name(identifier: str) -> str:
    """The model of an identifier (``http!m,api_base=...`` -> ``m``)."""
    from promptmill.identifiers import parse_identifier

    try:
        return parse_identifier(identifier).model
    except Exception:  # an identifier stored by an older promptmill: show it as it is
        return identifier


def _job_tag(store: JobStore) -> str:
    """A short tag of the job (its fingerprint's hash), so that line ids differ between jobs."""
    fingerprint = json.dumps(store.get_meta("fingerprint"), sort_keys=True, default=str)
    return "pm" + hashlib.sha256(fingerprint.encode()).hexdigest()[:12]
