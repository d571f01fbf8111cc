"""The results browser's reads: pages of rows, search and filters, one row in full.

Pages are keyed by row index (``after``), never by OFFSET, so that page 2,000 of a 1M-row
job costs what page 1 costs. Filters become conditions on the first request of each row,
with the requests' indexes doing the work: a status or error kind is looked up through
``requests_by_status``; search is a ``LIKE`` over the prompt as sent and the responses,
read in row order and stopped as soon as a page is full; category and correctness are
checked per candidate row. Every text handed out is redacted.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptmill.redaction import redact_secrets
from promptmill.report.accuracy import RowExtractions
from promptmill.store import ATTEMPT_OUTCOMES

PAGE_SIZE = 50
_PREVIEW = 160  # characters of a prompt or response shown in the list
_LOGPROB_TOKENS = 400  # tokens of a response's logprobs sent to the page, at most
STATUSES = ("done", "failed", "pending")
CORRECTNESS = ("all", "some", "none")


@dataclass(frozen=True)
class Filters:
    """What the list shows: search text and filters (empty: no filter)."""

    q: str = ""
    status: str = ""
    kind: str = ""
    category: str = ""
    correct: str = ""

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> Filters:
        """From a request's query string; unknown values are ignored, not errors."""
        status = query.get("status", "")
        correct = query.get("correct", "")
        return cls(q=query.get("q", "").strip()[:500],
                   status=status if status in STATUSES else "",
                   kind=query.get("kind", "")[:100], category=query.get("category", "")[:500],
                   correct=correct if correct in CORRECTNESS else "")


def _like(text: str) -> str:
    """A LIKE pattern for ``text`` as it appears inside JSON-encoded store columns."""
    encoded = json.dumps(text, ensure_ascii=False)[1:-1]  # quotes and newlines as stored
    escaped = encoded.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def connect(path: Path) -> sqlite3.Connection:
    """A connection of the browser's own to the job store (reads only)."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA busy_timeout=10000")
    return db


def load_grades(db: sqlite3.Connection, grades: Mapping[int, RowExtractions]) -> None:
    """Put extractions in a temporary table of this connection, for correctness filters."""
    db.execute("CREATE TEMP TABLE IF NOT EXISTS grades (row_index INTEGER PRIMARY KEY, "
               "correct INTEGER NOT NULL, responses INTEGER NOT NULL)")
    db.execute("DELETE FROM temp.grades")
    db.executemany("INSERT INTO temp.grades VALUES (?, ?, ?)",
                   [(row, g.correct, len(g.answers)) for row, g in grades.items()])


def groups_per_row(db: sqlite3.Connection) -> int:
    """Requests per row (1 unless k is split over several requests); the same for every row."""
    found = db.execute("SELECT COUNT(*) FROM requests WHERE row_index = "
                       "(SELECT MIN(row_index) FROM requests)").fetchone()[0]
    return max(1, int(found))


def _conditions(filters: Filters, graded: bool, groups: int) -> tuple[list[str], list[Any]]:
    """SQL conditions on ``q`` (a row's first request) and their parameters."""
    where: list[str] = []
    params: list[Any] = []
    # Every status but done and failed is pending for the user (a Batch API mode's
    # "batched" too: submitted, its answer not yet in).
    if filters.status == "failed":
        where.append("q.row_index IN (SELECT row_index FROM requests WHERE status = 'failed')")
    elif filters.status == "pending":
        where.append("q.row_index IN (SELECT row_index FROM requests "
                     "WHERE status NOT IN ('done', 'failed'))")
    elif filters.status == "done":
        where.append("q.row_index NOT IN (SELECT row_index FROM requests "
                     "WHERE status != 'done')")
    if filters.kind:
        where.append("q.row_index IN (SELECT row_index FROM requests "
                     "WHERE status = 'failed' AND error_kind = ?)")
        params.append(filters.kind)
    if filters.q:
        pattern = _like(filters.q)
        if groups == 1:  # the row's one request holds all its responses
            where.append("(q.payload LIKE ? ESCAPE '\\' OR q.responses LIKE ? ESCAPE '\\')")
        else:
            where.append("(q.payload LIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM requests x "
                         "WHERE x.row_index = q.row_index AND x.responses LIKE ? ESCAPE '\\'))")
        params += [pattern, pattern]
    if filters.category:
        where.append("EXISTS (SELECT 1 FROM rows r WHERE r.row_index = q.row_index AND "
                     "CAST(json_extract(r.data, '$.category') AS TEXT) = ?)")
        params.append(filters.category)
    if filters.correct and graded:
        condition = {"all": "correct = responses AND responses > 0", "some": "correct > 0",
                     "none": "correct = 0"}[filters.correct]
        where.append(f"q.row_index IN (SELECT row_index FROM temp.grades WHERE {condition})")
    elif filters.correct:
        where.append("0")  # nothing is graded: no row is correct or wrong
    return where, params


def page_indexes(db: sqlite3.Connection, filters: Filters, after: int, graded: bool,
                 groups: int = 1, limit: int = PAGE_SIZE) -> tuple[list[int], bool]:
    """The row indexes of one page after row ``after``, and whether more follow."""
    where, params = _conditions(filters, graded, groups)
    if not where:  # no filter: the rows table's own key
        found = [row for (row,) in db.execute(
            "SELECT row_index FROM rows WHERE row_index > ? ORDER BY row_index LIMIT ?",
            (after, limit + 1))]
    else:
        sql = ("SELECT q.row_index FROM requests q WHERE q.sample_group = 0 AND q.row_index > ? "
               + "".join(f" AND {w}" for w in where) + " ORDER BY q.row_index LIMIT ?")
        found = [row for (row,) in db.execute(sql, [after, *params, limit + 1])]
    return found[:limit], len(found) > limit


def count_matches(db: sqlite3.Connection, filters: Filters, graded: bool,
                  groups: int = 1) -> int:
    """How many rows the filters match (a whole scan for a search: asked for separately)."""
    where, params = _conditions(filters, graded, groups)
    if not where:
        last = db.execute("SELECT MAX(row_index) FROM rows").fetchone()[0]
        return 0 if last is None else int(last) + 1
    sql = ("SELECT COUNT(*) FROM requests q WHERE q.sample_group = 0"
           + "".join(f" AND {w}" for w in where))
    return int(db.execute(sql, params).fetchone()[0])


def _text_of(content: Any) -> str:
    """A message's content as text (a list of parts: their text parts joined)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else json.dumps(content, ensure_ascii=False)


def _prompt_preview(payload: str) -> str:
    prompt = json.loads(payload)
    if prompt.get("prompt") is not None:
        return str(prompt["prompt"])
    messages = prompt.get("messages") or []
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    return _text_of((users or messages or [{}])[-1].get("content"))


def _cut(text: str, limit: int = _PREVIEW) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _row_status(statuses: list[str]) -> str:
    if any(status not in ("done", "failed") for status in statuses):
        return "pending"
    return "failed" if "failed" in statuses else "done"


def page_rows(db: sqlite3.Connection, indexes: list[int],
              grades: Mapping[int, RowExtractions]) -> list[dict[str, Any]]:
    """The list's entries for ``indexes``: previews, status, attempts, kind, category."""
    if not indexes:
        return []
    marks = ",".join("?" * len(indexes))
    data = dict(db.execute(f"SELECT row_index, data FROM rows WHERE row_index IN ({marks})",
                           indexes))
    requests: dict[int, list[tuple[Any, ...]]] = {}
    for request in db.execute(
            "SELECT row_index, status, attempts, payload, responses, error_kind FROM requests "
            f"WHERE row_index IN ({marks}) ORDER BY row_index, sample_group", indexes):
        requests.setdefault(request[0], []).append(request[1:])
    entries = []
    for index in indexes:
        fields = json.loads(data.get(index, "{}"))
        outcomes = requests.get(index, [])
        responses = [r for o in outcomes if o[3] for r in json.loads(o[3])]
        grade = grades.get(index)
        entries.append({
            "row": index,
            "status": _row_status([o[0] for o in outcomes]),
            "attempts": sum(o[1] for o in outcomes),
            "kind": next((o[4] for o in outcomes if o[4]), None),
            "category": _category(fields),
            "prompt": redact_secrets(_cut(_prompt_preview(outcomes[0][2]))) if outcomes else "",
            "response": redact_secrets(_cut(str(responses[0].get("text", "")))) if responses
            else "",
            "responses": len(responses),
            "correct": None if grade is None else grade.correct,
        })
    return entries


def _category(fields: Mapping[str, Any]) -> str | None:
    value = fields.get("category")
    return None if value in (None, "") else redact_secrets(str(value))


def error_kinds(db: sqlite3.Connection) -> list[tuple[str, int]]:
    """Error kinds of failed requests, with how many rows have each."""
    return [(str(kind), count) for kind, count in db.execute(
        "SELECT error_kind, COUNT(DISTINCT row_index) FROM requests WHERE status = 'failed' "
        "AND error_kind IS NOT NULL GROUP BY 1 ORDER BY 2 DESC")]


def categories(db: sqlite3.Connection, limit: int = 500) -> list[str]:
    """The rows' ``category`` values (a scan of every row: asked for after the first page)."""
    return [redact_secrets(str(value)) for (value,) in db.execute(
        "SELECT DISTINCT CAST(json_extract(data, '$.category') AS TEXT) AS c FROM rows "
        "WHERE c IS NOT NULL AND c != '' ORDER BY c LIMIT ?", (limit,))]


def row_detail(db: sqlite3.Connection, index: int) -> dict[str, Any] | None:
    """One row in full: fields, the prompt as sent, every response, requests, attempts."""
    found = db.execute("SELECT data FROM rows WHERE row_index = ?", (index,)).fetchone()
    if found is None:
        return None
    fields = json.loads(found[0])
    requests = db.execute(
        "SELECT id, sample_group, n, status, attempts, payload, responses, prompt_tokens, "
        "completion_tokens, error, error_kind FROM requests WHERE row_index = ? "
        "ORDER BY sample_group", (index,)).fetchall()
    responses: list[dict[str, Any]] = []
    for request in requests:
        for response in json.loads(request[6]) if request[6] else []:
            responses.append({
                "text": redact_secrets(str(response.get("text", ""))),
                "finish_reason": response.get("finish_reason"),
                "logprobs": _logprobs(response.get("logprobs")),
            })
    prompt = json.loads(requests[0][5]) if requests else {}
    return {
        "row": index,
        "status": _row_status([r[3] for r in requests]),
        "fields": {redact_secrets(str(k)): redact_secrets(
            v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
            for k, v in fields.items()},
        "prompt": {
            "messages": [{"role": redact_secrets(str(m.get("role", ""))),
                          "content": redact_secrets(_text_of(m.get("content")))}
                         for m in prompt.get("messages") or [] if isinstance(m, dict)],
            "text": None if prompt.get("prompt") is None else redact_secrets(str(prompt["prompt"])),
        },
        "responses": responses,
        "requests": [{"group": r[1], "n": r[2], "status": r[3], "attempts": r[4],
                      "prompt_tokens": r[7], "completion_tokens": r[8],
                      "error": None if r[9] is None else redact_secrets(str(r[9])),
                      "kind": r[10]} for r in requests],
        "results_row": {**fields, "responses": [{"text": r["text"],
                                                  "finish_reason": r["finish_reason"]}
                                                 for r in responses],
                        "status": _row_status([r[3] for r in requests])},
    }


def row_attempts(db: sqlite3.Connection, index: int) -> list[dict[str, Any]]:
    """Every attempt of row ``index``'s requests, in time order.

    The attempts table has no index (it is kept small and cheap to append to), so this
    scans it: about a second for a million attempts; the page asks after showing the row.
    """
    ids = [r for (r,) in db.execute("SELECT id FROM requests WHERE row_index = ?", (index,))]
    marks = ",".join("?" * len(ids)) or "NULL"
    return [
        {"request": request_id, "sent_ms": sent, "duration_ms": duration,
         "outcome": ATTEMPT_OUTCOMES[outcome] if 0 <= outcome < len(ATTEMPT_OUTCOMES)
         else "fatal"}
        for request_id, sent, duration, outcome in db.execute(
            f"SELECT request_id, sent_ms, duration_ms, outcome FROM attempts "
            f"WHERE request_id IN ({marks}) ORDER BY sent_ms LIMIT 200", ids)]


def _logprobs(logprobs: Any) -> list[dict[str, Any]] | None:
    """A response's logprobs for the page: token, logprob, alternatives; redacted, capped."""
    if not isinstance(logprobs, list):
        return None
    out = []
    for entry in logprobs[:_LOGPROB_TOKENS]:
        if not isinstance(entry, dict):
            continue
        out.append({
            "token": redact_secrets(str(entry.get("token", ""))),
            "logprob": entry.get("logprob"),
            "top": [[redact_secrets(str(t.get("token", ""))), t.get("logprob")]
                    for t in entry.get("top_logprobs") or [] if isinstance(t, dict)][:10],
        })
    return out
