"""Request files (``--requests``): a JSONL whose every line is one whole request, run as a job.

A file holds one of two shapes of line:

* request bodies, as the OpenAI cookbook's parallel processor reads them: ``{"model",
  "messages" | "prompt", sampling fields..., "metadata"}``. ``metadata`` is kept for the
  output and not sent (the cookbook's convention);
* Batch API input lines: ``{"custom_id", "method": "POST", "url", "body"}``. The url chooses
  chat or text; ``custom_id`` is the row's id, checked unique.

A line's own model and fields are its request. promptmill's parameters (temperature,
max_tokens, n, stop, seed, logprobs, ...) are checked as ``GenerateParams``; every other field
is passed through to the server (``extra``), or refused before anything is sent by a backend
that cannot take it. The job's params (``-m ...,k=v``, ``--param``) are defaults for lines
that do not set them; ``-m`` names the endpoint, and the model of lines without one.

Planning stores each line's payload (messages or prompt, model, params merged with the
defaults: exactly what is sent, on every resume) and the row the output keeps: ``custom_id``
or ``metadata``, the request as sent, and the line's model identifier.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptmill import data
from promptmill.errors import InputError, PromptmillError, UsageError
from promptmill.generators.base import GenerationRequest, Generator
from promptmill.identifiers import Identifier
from promptmill.job import DEFAULT_COMPLETION_RESERVE
from promptmill.paramfields import InvalidParam
from promptmill.params import FIELDS, GenerateParams
from promptmill.prompts.truncate import prompt_budget

if TYPE_CHECKING:
    from promptmill.job import JobSpec

# The two shapes of line.
BODY, BATCH_LINE = "request body", "Batch API line"
# Batch API urls promptmill sends, and whether each is a chat.
URLS = {"/v1/chat/completions": True, "/v1/completions": False}
# The fields of a Batch API input line.
ENVELOPE = frozenset({"custom_id", "method", "url", "body"})
# A Batch API line's custom_id: the row's id, checked unique.
ID_FIELD = "custom_id"
# Fields OpenAI's chat and text completion APIs document (with the cookbook's metadata): a
# line with a model, a prompt or messages and only these looks like a request body.
KNOWN_BODY_FIELDS = FIELDS | frozenset({
    "model", "messages", "prompt", "metadata", "max_completion_tokens", "response_format",
    "tools", "tool_choice", "parallel_tool_calls", "functions", "function_call", "logit_bias",
    "user", "service_tier", "store", "reasoning_effort", "modalities", "audio", "prediction",
    "stream", "stream_options", "suffix", "echo", "best_of", "web_search_options",
    "verbosity", "prompt_cache_key", "safety_identifier",
})
# Body fields that would carry a key: refused, keys come from the environment or .env only.
_SECRET_FIELD = re.compile(r"api[_-]?key|authorization|access[_-]?token|secret|password", re.I)


def check_options(spec: JobSpec) -> None:
    """Refuse job options that a request file's lines decide themselves."""
    prompts = spec.prompts
    given = [name for name, used in (
        ("--template", prompts.template), ("--prompt-field", prompts.prompt_field),
        ("--messages-field", prompts.messages_field), ("--prompt", prompts.prompt),
        ("--system", prompts.system), ("--text", not prompts.chat),
        ("--truncate-field", spec.truncation), ("--id-field", spec.id_field),
        ("--id-field none", not spec.unique_ids), ("--adapter-field", spec.adapter_field),
        ("-k", spec.k > 1)) if used]
    if given:
        raise UsageError(
            f"{given[0]} does not apply to --requests: each line is the whole request "
            "(its messages or prompt, its own n; custom_id is always checked unique)")


def line_kind(row: dict[str, Any]) -> str | None:
    """The shape of a line: BATCH_LINE, BODY, or None when it looks like neither."""
    if "custom_id" in row and isinstance(row.get("body"), dict) and set(row) <= ENVELOPE:
        return BATCH_LINE
    if (isinstance(row.get("model"), str)
            and (isinstance(row.get("messages"), list) or isinstance(row.get("prompt"), str))
            and set(row) <= KNOWN_BODY_FIELDS):
        return BODY
    return None


def detect(path: Path) -> str | None:
    """The shape of every line of ``path`` when all have one and the same, else None.

    Only a file whose first line looks like a request is read further (streamed).
    """
    kind: str | None = None
    for _, row in data.read_rows(path):
        this = line_kind(row)
        if this is None or (kind is not None and this != kind):
            return None
        kind = this
    return kind


def refuse_request_file(path: Path) -> None:
    """InputError when every line of ``path`` is a request: the job would misread it."""
    kind = detect(path)
    if kind is not None:
        what = "a Batch API input line" if kind == BATCH_LINE else (
            "a request body (model + messages or prompt)")
        raise InputError(
            f"{path}: every line is {what}: run it with --requests (from Python: "
            "promptmill.run_requests) to send each line as it is, with its own model and "
            "parameters")


def first_kind(path: Path) -> str:
    """The shape of the file's first line (every line must have it); InputError if none."""
    for _, row in data.read_rows(path):
        kind = line_kind(row)
        if kind is None:
            kind = BATCH_LINE if "custom_id" in row or "body" in row else BODY
        return kind
    raise InputError(f"{path} has no lines: put one request per line")


def default_model(path: Path) -> str | None:
    """The model named by the first line, for a run given no ``-m`` (None: it names none)."""
    for _, row in data.read_rows(path):
        body = row.get("body") if "custom_id" in row else row
        model = body.get("model") if isinstance(body, dict) else None
        return model if isinstance(model, str) and model else None
    return None


@dataclass(frozen=True, slots=True)
class RequestLine:
    """One line of a request file, checked: the request's parts and what the output keeps."""

    messages: list[dict[str, Any]] | None
    prompt: str | None
    model: str | None
    # The line's own fields: promptmill's checked, every other one in ``extra``.
    params: GenerateParams
    # ``custom_id`` (Batch API lines) or ``metadata`` (request bodies): first in the output.
    kept: dict[str, Any]


def read_line(source: Path, index: int, row: dict[str, Any], kind: str) -> RequestLine:
    """Check one line of a request file of ``kind``; InputError naming the line and field."""

    def where() -> str:
        return data.row_place(source, index)

    if kind == BATCH_LINE:
        unknown = sorted(set(row) - ENVELOPE)
        if unknown or "body" not in row:
            if line_kind(row) == BODY:
                raise InputError(f"{where()}: a request body among Batch API lines: give every "
                                 "line custom_id, method, url and body, or none of them")
            raise InputError(
                f"{where()}: " + (f"unknown field {unknown[0]!r} in a Batch API line"
                                  if unknown else "no 'body'")
                + ": a Batch API line has custom_id, method, url and body")
        custom = row.get("custom_id")
        if not isinstance(custom, str) or not custom:
            raise InputError(f"{where()}: 'custom_id' must be a non-empty string: give every "
                             "line its own custom_id")
        method = row.get("method", "POST")
        if method != "POST":
            raise InputError(f"{where()}: method {method!r}: the Batch API takes POST only")
        url = row.get("url")
        if url not in URLS:
            raise InputError(
                f"{where()}: url {url!r}: promptmill sends chat and text completions; use "
                f"{' or '.join(URLS)}")
        body = row.get("body")
        if not isinstance(body, dict):
            raise InputError(f"{where()}: 'body' must be a JSON object (the request)")
        messages, prompt, model, params = _read_body(where, body, URLS[str(url)])
        return RequestLine(messages, prompt, model, params, {"custom_id": custom})
    if "custom_id" in row or "body" in row:
        raise InputError(f"{where()}: a Batch API line among request bodies: write every line "
                         "as a request body, or every line as {custom_id, method, url, body}")
    body = dict(row)
    kept = {"metadata": body.pop("metadata")} if "metadata" in body else {}
    messages, prompt, model, params = _read_body(where, body, None)
    return RequestLine(messages, prompt, model, params, kept)


def _read_body(where: Any, body: dict[str, Any], chat: bool | None
               ) -> tuple[list[dict[str, Any]] | None, str | None, str | None, GenerateParams]:
    """A request body's messages or prompt, model and params; ``chat`` is what its url says."""
    secret = next((name for name in body if _SECRET_FIELD.search(name)), None)
    if secret is not None:
        raise InputError(f"{where()}: field {secret!r}: keys never go in request files; set "
                         "the key in the environment or a .env file (OPENAI_API_KEY, or "
                         "api_key_env=NAME in -m)")
    messages, prompt = body.get("messages"), body.get("prompt")
    if messages is not None and prompt is not None:
        raise InputError(f"{where()}: both 'messages' and 'prompt': a chat has messages, a "
                         "text completion a prompt; keep one")
    if chat is True and messages is None:
        raise InputError(f"{where()}: url /v1/chat/completions needs 'messages' in the body")
    if chat is False and prompt is None:
        raise InputError(f"{where()}: url /v1/completions needs 'prompt' in the body")
    if messages is None and prompt is None:
        raise InputError(f"{where()}: no 'messages' (chat) or 'prompt' (text completion): "
                         "every line is one request")
    if messages is not None and (not isinstance(messages, list) or not messages or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages)):
        raise InputError(f"{where()}: 'messages' must be a non-empty list of "
                         '{"role": ..., "content": ...} objects')
    if prompt is not None and not isinstance(prompt, str):
        raise InputError(f"{where()}: 'prompt' must be one string: put one prompt per line")
    model = body.get("model")
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise InputError(f"{where()}: 'model' must be a model name (a non-empty string)")
    if body.get("stream"):
        raise InputError(f"{where()}: 'stream': true is not supported (each answer is kept "
                         "whole): remove it")
    fields: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for name, value in body.items():
        if name in ("messages", "prompt", "model"):
            continue
        if name == "logprobs" and messages is None and isinstance(value, int) and not isinstance(
                value, bool):
            # A text completion's logprobs is the number of alternatives per token.
            fields["logprobs"], fields["top_logprobs"] = True, value
        elif name in FIELDS:
            fields[name] = value
        else:
            extra[name] = value
    try:
        params = GenerateParams(**fields, extra=extra)
    except InvalidParam as exc:
        raise InputError(f"{where()}: field {exc.field!r}: {exc.reason}: fix it or drop "
                         "the field") from None
    return messages, prompt, model, params


class RequestPlanner:
    """Plans a request file's lines for one job: each checked against the backend before
    anything is sent, stored as it will be sent."""

    cut_rows = 0  # request files are never truncated (the planner contract of job.Job.plan)

    def __init__(self, spec: JobSpec) -> None:
        self.spec = spec
        self.generator = spec.generator
        self.kind = first_kind(spec.input)
        self.chat_format = spec.chat_format
        self._identifiers: dict[str, str] = {}  # model -> its identifier in output rows
        self.prompt_tokens = 0  # over the lines planned (for --dry-run)
        self.too_long_rows = 0  # lines over the context: they fail unsent, the others go on
        self.models: dict[str, list[int]] = {}  # model -> [prompt tokens, reserved completion]

    def read_records(self, start: int = 0) -> Iterator[tuple[int, dict[str, Any], str | None]]:
        """``(index, line, its text)`` of the request file from ``start``
        (``data.read_records``)."""
        return data.read_records(self.spec.input, start=start)

    def finish_chunk(self) -> None:
        """Nothing: each line's request was added as it was planned."""

    def plan(self, index: int, row: dict[str, Any],
             requests: list[list[list[Any]]], unsendable: list[tuple[int, str]], *,
             text: str | None = None) -> tuple[dict[str, Any], str]:
        """Check and store one line: its request appended to ``requests`` as a block of
        columns (``RowPlanner.request_block``'s; to ``unsendable`` too, with the reason, when
        its prompt cannot fit the context); the output row (the line's own ``text`` is not
        it: the row kept is the line less its request)."""
        spec, gen = self.spec, self.generator
        source = spec.input
        line = read_line(source, index, row, self.kind)
        params, model, messages, prompt = self._request_of(index, line)
        request = GenerationRequest("plan", params, messages, prompt, model=model)
        tokens = gen.count_prompt_tokens(request)
        name = model or gen.model
        # An engine told to truncate (truncate=true) cuts what does not fit itself.
        context = None if gen.config.get("truncate") is True else gen.context_length()
        try:
            budget = prompt_budget(spec.max_prompt_tokens, context, params.max_tokens,
                                   f"{gen.provider}!{name}")
        except UsageError as exc:
            raise InputError(f"{data.row_place(source, index)}: {exc}") from None
        if budget is not None and tokens > budget.tokens:
            # As for a dataset's row: that line fails unsent, never the job.
            self.too_long_rows += 1
            unsendable.append((index, f"the prompt has {tokens:,} tokens, over the "
                                      f"{budget.tokens:,} of {budget.why}: shorten it or lower "
                                      "max_tokens"))
        payload: dict[str, Any] = {"messages": messages} if messages is not None else {
            "prompt": prompt}
        if model is not None:
            payload["model"] = model
        payload["params"] = params.model_dump(exclude_unset=True, exclude_none=True)
        n = params.n or 1
        reserve = completion_reserve(params) * n
        requests.append([[index], [index], [0], [n], [_to_json(payload)], [tokens + reserve]])
        self.prompt_tokens += tokens
        counts = self.models.setdefault(name, [0, 0])
        counts[0] += tokens
        counts[1] += reserve
        stored = {**line.kept, "request": body_as_sent(gen, request),
                  "model": self._identifier(name)}
        return stored, _row_to_json(stored)

    def _request_of(self, index: int, line: RequestLine) -> tuple[
            GenerateParams, str | None, list[dict[str, Any]] | None, str | None]:
        """The line's params merged over the job's, its model and prompt, as they are sent."""
        spec, gen = self.spec, self.generator

        def refuse(problem: str) -> InputError:
            return InputError(f"{data.row_place(spec.input, index)}: {problem}")

        given = line.params.model_dump(exclude_unset=True, exclude_none=True)
        unsupported = sorted(set(given) - set(gen.supported_params) - {"n", "extra"})
        if unsupported:
            raise refuse(f"{gen.provider}! cannot take {unsupported[0]!r}: remove it from the "
                         "line, or choose a backend that takes it")
        messages, prompt = line.messages, line.prompt
        if messages is not None and not gen.supports_chat:
            raise refuse(f"{gen.provider}! sends no chats: give the line a 'prompt'")
        if prompt is not None and not gen.supports_text:
            raise refuse(f"{gen.provider}! sends no text completions: give the line 'messages'")
        model = None if spec.override_model or line.model == gen.model else line.model
        if model is not None and not gen.supports_request_model:
            raise refuse(f"model {model!r}, but {gen.provider}! runs one model ({gen.model}): "
                         "drop 'model' from the lines, or pass --override-model to send every "
                         f"line to {gen.model}")
        try:
            params = spec.effective_params(warn=False, line=line.params,
                                           chat=messages is not None)
        except PromptmillError as exc:
            raise refuse(str(exc)) from None
        if (params.n or 1) > 1 and not gen.supports_n:
            raise refuse(f"n={params.n}, but {gen.provider}! answers one sample per request: "
                         "set n to 1 or drop it")
        problem = gen.params_problem(params)
        if problem is not None:
            raise refuse(f"{problem}: remove that field from the line, or send to an "
                         "OpenAI-compatible server (http!, openai!), which takes any field")
        chat_format = self.chat_format
        if messages is not None and chat_format is not None:
            # A backend fed text: the chat is rendered as the job's dataset rows would be.
            if model is not None:
                raise refuse(f"model {model!r}: chats to this endpoint are rendered with "
                             f"{gen.model}'s chat format ({chat_format.name}), which may not be "
                             "that model's: send these lines to a chat endpoint")
            from promptmill.prompts.formats import ConversationError

            try:
                prompt = chat_format.render(messages, with_bos=False)
            except ConversationError as exc:
                raise refuse(f"chat format {chat_format.name}: {exc}") from None
            messages = None
        return params, model, messages, prompt

    def _identifier(self, model: str) -> str:
        """``provider!model`` with the endpoint's options (never a key) for output rows."""
        found = self._identifiers.get(model)
        if found is None:
            gen = self.generator
            found = Identifier(gen.provider, model, dict(gen.config)).format()
            self._identifiers[model] = found
        return found


def completion_reserve(params: GenerateParams) -> int:
    """Tokens a request may generate per sample, for the limiter (max_tokens, else
    max_completion_tokens passed through, else a default)."""
    given = params.max_tokens or params.extra.get("max_completion_tokens")
    return given if isinstance(given, int) and given > 0 else DEFAULT_COMPLETION_RESERVE


def body_as_sent(generator: Generator, request: GenerationRequest) -> dict[str, Any]:
    """The JSON body ``request`` is sent as (an OpenAI-shaped one for backends without HTTP)."""
    request_body = getattr(generator, "request_body", None)
    if request_body is not None:
        body: dict[str, Any] = request_body(request)[1]
        return body
    body = {"model": request.model or generator.model}
    if request.messages is not None:
        body["messages"] = request.messages
    else:
        body["prompt"] = request.prompt
    body.update(request.params.set_fields())
    return body


def request_from_payload(request_id: str, payload: dict[str, Any]) -> GenerationRequest:
    """The request a request file's stored payload describes (``RequestPlanner``)."""
    return GenerationRequest(request_id, GenerateParams(**payload["params"]),
                             messages=payload.get("messages"), prompt=payload.get("prompt"),
                             model=payload.get("model"))


_to_json = json.JSONEncoder(ensure_ascii=False).encode
_row_to_json = json.JSONEncoder(ensure_ascii=False, default=str).encode
