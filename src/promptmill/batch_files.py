"""Batch API files: input lines, splitting them under the API's limits, reading output lines.

An input line is ``{"custom_id", "method": "POST", "url", "body"}``, the body exactly what the
online path would send. A job's custom_ids are ``pm-TAG-REQUEST``: TAG is the job's own (kept
in its store), REQUEST the request's id, so an output line maps back to one request of one
job and a line of another job's file is never taken for one of ours. Output lines
(``{"id", "custom_id", "response": {"status_code", "request_id", "body"} | null, "error"}``)
come in no particular order, failures in a separate error file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptmill.errors import InputError
from promptmill.redaction import redact_secrets

# OpenAI's limits on one batch input file.
MAX_REQUESTS = 50_000
MAX_BYTES = 200 * 1024 * 1024
_RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_to_json = json.JSONEncoder(ensure_ascii=False).encode


def custom_id(tag: str, request_id: int) -> str:
    """The custom_id of request ``request_id`` of the job tagged ``tag``."""
    return f"pm-{tag}-{request_id}"


def request_of(value: object, tag: str) -> int | None:
    """The request id a custom_id names, or None if it is not one of this job's."""
    if not isinstance(value, str):
        return None
    prefix, _, number = value.rpartition("-")
    if prefix != f"pm-{tag}" or not number.isdigit():
        return None
    return int(number)


def input_line(custom: str, url: str, body: dict[str, Any]) -> bytes:
    """One line of a batch input file, newline included."""
    return (_to_json({"custom_id": custom, "method": "POST", "url": url, "body": body})
            + "\n").encode("utf-8")


@dataclass
class SplitFile:
    """One input file written by :class:`InputSplitter`: its lines' keys, size and hash."""

    path: Path
    keys: list[int] = field(default_factory=list)
    bytes: int = 0
    sha256: str = ""


class InputSplitter:
    """Writes lines to input files of at most ``max_requests`` lines and ``max_bytes`` bytes.

    ``path_for(n)`` names the n-th file (from 1). Each file is written under a temporary name
    and handed to ``on_file`` when full (or on ``close``); ``on_file`` decides where it goes.
    """

    def __init__(self, path_for: Callable[[int], Path], on_file: Callable[[SplitFile], None],
                 max_requests: int = MAX_REQUESTS, max_bytes: int = MAX_BYTES) -> None:
        if max_requests < 1 or max_bytes < 1:
            raise InputError("batch limits must be at least 1 request and 1 byte")
        self.path_for = path_for
        self.on_file = on_file
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self.files = 0  # files handed over so far
        self._current: SplitFile | None = None
        self._handle: Any = None
        self._digest: Any = None

    def add(self, line: bytes, key: int, where: str = "") -> None:
        """Append one line (``key`` names it to ``on_file``); a new file when this one is full."""
        size = len(line)
        if size > self.max_bytes:
            raise InputError(
                f"{where or 'a request'} makes a batch input line of {size:,} bytes, over the "
                f"limit of {self.max_bytes:,} bytes per file: shorten it or raise the limit")
        current = self._current
        if current is not None and (len(current.keys) >= self.max_requests
                                    or current.bytes + size > self.max_bytes):
            self._finish()
            current = None
        if current is None:
            current = self._start()
        self._handle.write(line)
        self._digest.update(line)
        current.keys.append(key)
        current.bytes += size

    def close(self) -> None:
        """Hand over the last file, if it has lines."""
        if self._current is not None:
            self._finish()

    def abort(self) -> None:
        """Drop the file being written (an error stopped the writing)."""
        if self._current is not None:
            self._handle.close()
            temporary(self._current.path).unlink(missing_ok=True)
            self._current = None

    def _start(self) -> SplitFile:
        path = self.path_for(self.files + 1)
        self._current = SplitFile(path)
        self._handle = open(temporary(path), "wb")  # noqa: SIM115 - closed in _finish/abort
        self._digest = hashlib.sha256()
        return self._current

    def _finish(self) -> None:
        current = self._current
        assert current is not None
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        current.sha256 = self._digest.hexdigest()
        self._current = None
        self.files += 1
        self.on_file(current)


def temporary(path: Path) -> Path:
    """The temporary name a file is written under before it is renamed to ``path``."""
    return path.with_name(f".{path.name}.tmp")


# -- output ----------------------------------------------------------------------------------


@dataclass(slots=True)
class LineOutcome:
    """What one output or error line says about its request."""

    custom_id: str | None
    responses: list[dict[str, Any]] | None = None  # as the job store keeps them
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None
    error_kind: str | None = None
    retryable: bool = False  # a failure that another submission may not meet


def parse_output_line(raw: bytes) -> LineOutcome:
    """One line of a batch output or error file."""
    from promptmill.generators.openai_ import parse_choice

    try:
        line = json.loads(raw)
        if not isinstance(line, dict):
            raise ValueError("not an object")
    except ValueError:
        return LineOutcome(None, error="an output line that is not JSON", error_kind="malformed",
                           retryable=True)
    custom = line.get("custom_id")
    custom = custom if isinstance(custom, str) else None
    response = line.get("response")
    error = line.get("error")
    if isinstance(response, dict) and response.get("status_code") == 200 and not error:
        body: Any = response.get("body")
        try:
            choices = body["choices"]
            chat = body.get("object") != "text_completion" and "message" in choices[0]
            parsed = [parse_choice(choice, chat) for choice in choices]
        except (KeyError, TypeError, IndexError, AttributeError):
            return LineOutcome(custom, error="a 200 line whose body is not a completion",
                               error_kind="malformed", retryable=True)
        usage = body.get("usage") or {}
        return LineOutcome(
            custom,
            [{"text": r.text, "finish_reason": r.finish_reason} if r.logprobs is None
             else {"text": r.text, "finish_reason": r.finish_reason, "logprobs": r.logprobs}
             for r in parsed],
            int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
    if isinstance(error, dict):
        code = str(error.get("code") or "error")
        message = str(error.get("message") or code)
        # Lines never run (expired, cancelled) and unknown codes are sent again, up to the
        # job's attempts; codes naming a fault of the line itself are not.
        return LineOutcome(custom, error=redact_secrets(f"Batch API {code}: {message}"),
                           error_kind=code, retryable=code not in _FATAL_CODES)
    status = response.get("status_code") if isinstance(response, dict) else None
    answer = response.get("body") if isinstance(response, dict) else None
    detail = answer.get("error") if isinstance(answer, dict) else None
    said = detail.get("message") if isinstance(detail, dict) else None
    kind = "server_error" if isinstance(status, int) and status >= 500 else (
        "rate_limited" if status == 429 else "fatal")
    return LineOutcome(custom,
                       error=redact_secrets(f"HTTP {status} in batch: {said or 'no message'}"),
                       error_kind=kind, retryable=status in _RETRYABLE_STATUS)


def output_line(line_id: str, custom: str, response: dict[str, Any] | None,
                error: dict[str, Any] | None) -> bytes:
    """One line of a batch output or error file, newline included."""
    return (_to_json({"id": line_id, "custom_id": custom, "response": response, "error": error})
            + "\n").encode("utf-8")


def completion_body(chat: bool, response_id: str, created: int, model: str,
                    responses: list[dict[str, Any]], prompt_tokens: int,
                    completion_tokens: int) -> dict[str, Any]:
    """A ``chat.completion`` or ``text_completion`` object holding stored responses (the
    inverse of ``parse_choice``): what the server answered, as far as the job store keeps it."""
    choices: list[dict[str, Any]] = []
    for index, response in enumerate(responses):
        logprobs = response.get("logprobs")
        choice: dict[str, Any] = {"index": index}
        if chat:
            choice["message"] = {"role": "assistant", "content": response["text"],
                                 "refusal": None}
            choice["logprobs"] = None if logprobs is None else {"content": logprobs,
                                                                "refusal": None}
        else:
            choice["text"] = response["text"]
            choice["logprobs"] = None if logprobs is None else _text_logprobs(logprobs)
        choice["finish_reason"] = response.get("finish_reason")
        choices.append(choice)
    return {
        "id": ("chatcmpl-" if chat else "cmpl-") + response_id,
        "object": "chat.completion" if chat else "text_completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
        "system_fingerprint": None,
    }


def _text_logprobs(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Stored logprobs (one shape for every backend) as a text completion gives them."""
    offsets: list[int] = []
    offset = 0
    for entry in entries:
        offsets.append(offset)
        offset += len(entry["token"])
    return {
        "tokens": [entry["token"] for entry in entries],
        "token_logprobs": [entry["logprob"] for entry in entries],
        "top_logprobs": [{top["token"]: top["logprob"] for top in entry.get("top_logprobs") or []}
                         for entry in entries],
        "text_offset": offsets,
    }


def errors_file_for(output: Path) -> Path:
    """Where the error lines of a batch output file go: ``NAME.errors.jsonl`` beside it."""
    return output.with_name(output.name.removesuffix(".jsonl") + ".errors.jsonl")


# Line error codes that another submission of the same line cannot fix.
_FATAL_CODES = frozenset({"invalid_request", "invalid_json_line", "missing_required_parameter",
                          "invalid_url", "invalid_method", "model_not_found"})


def iter_lines(path: Path) -> Iterator[bytes]:
    """The non-blank lines of a file, streamed."""
    for _, raw in _numbered_lines(path):
        yield raw


def _numbered_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            if raw.strip():
                yield number, raw


def reformat_rows(path: Path) -> Iterator[dict[str, Any]]:
    """A downloaded output (or error) file as flat rows: id, text, texts, usage, error.

    Streamed, in the file's order (a batch's output comes in no particular order).
    """
    for number, raw in _numbered_lines(path):
        outcome = parse_output_line(raw)
        if outcome.custom_id is None:
            raise InputError(
                f"{path}:{number}: not a Batch API output line (expected JSON with custom_id "
                "and response or error): pass a file from `promptmill batch download`")
        texts = [r["text"] for r in outcome.responses or []]
        yield {
            "id": outcome.custom_id,
            "text": texts[0] if texts else None,
            "texts": texts,
            "finish_reason": (outcome.responses or [{}])[0].get("finish_reason"),
            "usage": {"prompt_tokens": outcome.prompt_tokens or 0,
                      "completion_tokens": outcome.completion_tokens or 0},
            "error": outcome.error,
        }
