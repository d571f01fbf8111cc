"""JSONL export from the store's own JSON text: each line built without decoding the row.

The store keeps every row's fields and every request's answers as JSON text. A JSONL line is
that row's text with promptmill's fields appended (``responses``, ``usage``, ``model``,
``attempts``, ``status``, ``error``, ``endpoint``, in that order, as ``export.iter_results``
gives them): the row is never parsed nor the answers re-encoded, which is most of what an
export through Python objects costs. The values are the same as that export's; the row's
own fields keep the spelling of the input line (its spacing, its escapes).

A request file's rows name their own model (``iter_results`` moves it to the end): such a
store is exported through ``iter_results``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from promptmill.data import FIRST_BLOCK_LINES, block_lines
from promptmill.store import BATCHED, PENDING, JobStore, row_status

_dumps = orjson.dumps


def can_export(store: JobStore) -> bool:
    """Whether :func:`result_lines` serves this store (not a request file's job)."""
    fingerprint = store.get_meta("fingerprint") or {}
    return "requests" not in fingerprint


def result_lines(store: JobStore, model: str) -> Iterator[str]:
    """Every planned row's output line (without its newline), in input order."""
    for lines in result_chunks(store, model):
        yield from lines


def result_chunks(store: JobStore, model: str) -> Iterator[list[str]]:
    """Every planned row's output line (without its newline), in input order, a chunk of
    rows at a time."""
    model_text = _dumps(model).decode()
    if store.several_sample_groups():
        yield list(_grouped_lines(store, model_text))
        return
    # One sample group a row (k=1, or k up to 128 where the backend takes n): each row read
    # with its request in one query, its line in one f-string, a chunk in one comprehension.
    # (SQLite building the lines itself, by || or printf, cost more than this.)
    model_part = f', "model": {model_text}, "attempts": '
    after, size = -1, FIRST_BLOCK_LINES  # rows a chunk, sized as data's JSONL writes are
    while batch := store.single_rows_after(after, size):
        after = batch[-1][0]
        if any(row[2] is None for row in batch):  # a row without requests: one by one
            lines = [line for row in batch for line in (
                _grouped_lines(store, model_text, row[0]) if row[2] is None else
                _single_lines([row], model_part))]
        else:
            lines = _single_lines(batch, model_part)
        size = block_lines(len(batch), sum(map(len, lines)))
        yield lines


def _single_lines(batch: list[tuple[Any, ...]], model_part: str) -> list[str]:
    """The lines of rows read with their one request (``JobStore.iter_single_rows``)."""
    return [
        f'{(head := data[:-1].rstrip())}{"" if head[-1] == "{" else ", "}"responses": '
        f'{answers or "[]"}, "usage": {{"prompt_tokens": {p_tokens or 0}, '
        f'"completion_tokens": {c_tokens or 0}}}{model_part}{attempts}, "status": '
        f'"{PENDING if status == BATCHED else status}", "error": '
        f'{_dumps(error).decode() if error else "null"}, "endpoint": '
        f'{_dumps(endpoint).decode() if endpoint else "null"}}}'
        # the row's object without its closing brace ^ (head)
        for _, data, status, attempts, answers, p_tokens, c_tokens, error, endpoint in batch]


def _grouped_lines(store: JobStore, model_text: str, only: int | None = None) -> Iterator[str]:
    """The output lines of a job whose rows have several sample groups (or of row ``only``)."""
    rows = store.iter_rows() if only is None else store.iter_rows(first=only, last=only)
    for _, data, outcomes in rows:
        head = data[:-1].rstrip()  # the row's object without its closing brace
        if len(outcomes) == 1:
            _, status, attempts, answers, p_tokens, c_tokens, error, endpoint = outcomes[0]
            responses = answers or "[]"
            error_text = _dumps(error).decode() if error else "null"
            endpoint_text = "null" if not endpoint else _dumps(endpoint).decode()
            if status == BATCHED:
                status = PENDING
        else:
            status, attempts, responses, p_tokens, c_tokens, error_text, endpoint_text = (
                _combined(outcomes))
        yield (f'{head}{"" if head.endswith("{") else ", "}"responses": {responses}, '
               f'"usage": {{"prompt_tokens": {p_tokens or 0}, "completion_tokens": '
               f'{c_tokens or 0}}}, "model": {model_text}, "attempts": {attempts}, '
               f'"status": "{status}", "error": {error_text}, "endpoint": {endpoint_text}}}')


def _combined(outcomes: list[tuple[Any, ...]]) -> tuple[str, int, str, int, int, str, str]:
    """A row of several sample groups (or none): its status, attempts, responses (the groups'
    lists joined), tokens, error and endpoint texts, as ``iter_results`` combines them."""
    statuses = set()
    answers: list[str] = []
    errors: list[str] = []
    endpoints: list[str] = []
    attempts = prompt_tokens = completion_tokens = 0
    for _group, status, tries, text, p_tokens, c_tokens, error, endpoint in outcomes:
        statuses.add(status)
        attempts += tries
        if text:
            inner = text.strip()[1:-1].strip()
            if inner:
                answers.append(inner)
        prompt_tokens += p_tokens or 0
        completion_tokens += c_tokens or 0
        if error:
            errors.append(error)
        if endpoint and endpoint not in endpoints:
            endpoints.append(endpoint)
    return (row_status(statuses), attempts, "[" + ", ".join(answers) + "]", prompt_tokens,
            completion_tokens,
            _dumps("; ".join(errors)).decode() if errors else "null",
            _dumps("; ".join(endpoints)).decode() if endpoints else "null")


__all__ = ["can_export", "result_chunks", "result_lines"]
