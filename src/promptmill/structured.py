"""Structured output: a JSON Schema (a file or a pydantic model) asked of every backend, and
every answer validated against it.

The schema travels as the ``response_format`` parameter in OpenAI's shape, so it is part of
the job's fingerprint and of the response cache's key; each backend turns it into its own
constraint (OpenAI's ``json_schema``, a llama.cpp grammar, vLLM's structured outputs,
xgrammar for transformers). Whatever the backend, the engine validates each answer
(:class:`OutputValidator`): an answer that is not JSON or breaks the schema is an
:class:`~promptmill.errors.InvalidOutput`, retried as a failed attempt with the validation
error kept, and a valid one is stored with its parsed object as ``responses[].json``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from promptmill.errors import InvalidOutput, UsageError
from promptmill.generators.base import GenerationRequest

# A fenced answer (```json ... ```): models asked for JSON without a constraint often wrap it.
_FENCE = re.compile(r"^\s*```(?:json|JSON)?\s*\n(.*?)\n?```\s*$", re.S)
_NAME = re.compile(r"[^A-Za-z0-9_-]")
_G = TypeVar("_G")


def load_schema(source: Any) -> tuple[dict[str, Any], str]:
    """A JSON Schema and its name from a file path, a dict or a pydantic model class."""
    if isinstance(source, type) and hasattr(source, "model_json_schema"):
        schema = source.model_json_schema()
        name = source.__name__
        where = f"schema {name}"
    elif isinstance(source, Mapping):
        schema = dict(source)
        name = str(schema.get("title") or "response")
        where = "schema"
    elif isinstance(source, (str, Path)):
        from promptmill.userconfig import read_text

        path = Path(source)
        where = f"--schema {path}"
        try:
            schema = json.loads(read_text(path, "--schema"))
        except ValueError as exc:
            raise UsageError(f"{where}: not valid JSON ({exc}): fix that line") from None
        if not isinstance(schema, dict):
            raise UsageError(f"{where}: a JSON Schema is a JSON object, not "
                             f"{type(schema).__name__}")
        name = str(schema.get("title") or path.stem)
    else:
        raise UsageError(f"schema must be a JSON Schema file, a dict or a pydantic model class, "
                         f"not {type(source).__name__}")
    check_schema(schema, where)
    return schema, _NAME.sub("_", name)[:64] or "response"


def check_schema(schema: dict[str, Any], where: str = "schema") -> None:
    """UsageError naming the place if ``schema`` is not a valid JSON Schema."""
    import jsonschema

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        at = "/".join(str(part) for part in exc.absolute_path)
        raise UsageError(f"{where}: not a valid JSON Schema{f' at {at}' if at else ''}: "
                         f"{exc.message}") from None


def response_format_for(schema: dict[str, Any], name: str = "response") -> dict[str, Any]:
    """OpenAI's ``response_format`` asking for JSON that matches ``schema``.

    ``strict`` (OpenAI's fully constrained mode) only where the schema meets its rules (every
    object closed, every property required); otherwise OpenAI refuses the request, so the
    looser mode is asked for and validation catches what it lets through.
    """
    return {"type": "json_schema",
            "json_schema": {"name": name, "schema": schema, "strict": _strict_ok(schema)}}


def _strict_ok(node: Any) -> bool:
    if isinstance(node, list):
        return all(_strict_ok(item) for item in node)
    if not isinstance(node, dict):
        return True
    if node.get("type") == "object" or "properties" in node:
        properties = node.get("properties") or {}
        if node.get("additionalProperties") is not False:
            return False
        if set(node.get("required") or []) != set(properties):
            return False
    return all(_strict_ok(value) for value in node.values())


def schema_of(response_format: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The JSON Schema a ``response_format`` asks for ({} for plain JSON; None: no JSON)."""
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        return dict(schema) if isinstance(schema, Mapping) else {}
    if kind == "json_object":
        return {}
    return None


def check_response_format(response_format: Mapping[str, Any] | None) -> None:
    """UsageError before anything is sent if ``response_format`` is not one we can honour."""
    if response_format is None:
        return
    kind = response_format.get("type")
    if kind not in ("json_schema", "json_object", "text"):
        raise UsageError(f"response_format type {kind!r}: use json_schema (--schema FILE) or "
                         "json_object")
    schema = schema_of(response_format)
    if schema:
        check_schema(schema, "response_format.json_schema.schema")


class OutputValidator:
    """Parses and validates answers against one schema; built once per job."""

    __slots__ = ("schema", "_validator")

    def __init__(self, schema: dict[str, Any]) -> None:
        import jsonschema

        self.schema = schema  # {} : any JSON value
        cls = jsonschema.validators.validator_for(schema)
        self._validator = cls(schema, format_checker=cls.FORMAT_CHECKER) if schema else None

    def parse(self, text: str, index: int = 0) -> Any:
        """The JSON value of one answer; InvalidOutput saying why it is not acceptable."""
        fenced = _FENCE.match(text)
        try:
            value = json.loads(fenced.group(1) if fenced else text)
        except ValueError as exc:
            shown = text if len(text) <= 60 else text[:57] + "..."
            raise InvalidOutput(f"response {index + 1} is not valid JSON ({exc}): "
                                f"{shown!r}") from None
        if self._validator is not None:
            error = next(iter(self._validator.iter_errors(value)), None)
            if error is not None:
                at = "".join(f"[{part!r}]" if isinstance(part, int) else f".{part}"
                             for part in error.absolute_path)
                raise InvalidOutput(f"response {index + 1} does not match the schema at "
                                    f"${at}: {error.message[:200]}")
        return value

    def parse_all(self, texts: Sequence[str]) -> list[Any]:
        """Every answer's JSON value; InvalidOutput on the first one that is not acceptable."""
        return [self.parse(text, index) for index, text in enumerate(texts)]


# Seed step between attempts of a request whose answer was invalid (a prime, so that the
# attempts of one sample group do not land on another group's seeds, 128 apart).
_RESEED_STEP = 7919


def resampled(request: GenerationRequest) -> GenerationRequest:
    """The request to send again after an invalid answer: with a seed, another seed (the
    same seed would give the same invalid answer again on a local engine)."""
    params = request.params
    if params.seed is None:
        return request
    return GenerationRequest(request.request_id,
                             params.model_copy(update={"seed": params.seed + _RESEED_STEP}),
                             request.messages, request.prompt, request.adapter)


def validated_line(line: Any, validator: OutputValidator) -> Any:
    """A Batch API output line (``batch_files.LineOutcome``) with each answer's ``json``;
    an invalid answer makes it a failed line, sent again in another batch."""
    if line.responses is None:
        return line
    try:
        values = validator.parse_all([r["text"] for r in line.responses])
    except InvalidOutput as invalid:
        return type(line)(line.custom_id, error=str(invalid), error_kind=invalid.kind,
                          retryable=True)
    for response, value in zip(line.responses, values, strict=True):
        response["json"] = value
    return line


class GrammarCache(Generic[_G]):
    """A backend's constraint per schema (a grammar, a compiled matcher), built once each."""

    __slots__ = ("_build", "_built")

    def __init__(self, build: Callable[[dict[str, Any], str], _G]) -> None:
        self._build = build  # (schema, its canonical JSON text) -> the backend's constraint
        self._built: dict[str, _G] = {}  # by the schema's canonical JSON text

    def get(self, response_format: Mapping[str, Any] | None) -> _G | None:
        """The constraint a response_format asks for; None: free text."""
        schema = schema_of(response_format)
        if schema is None:
            return None
        text = json.dumps(schema, sort_keys=True)
        built = self._built.get(text)
        if built is None:
            built = self._built[text] = self._build(schema, text)
        return built


def validator_for(response_format: Mapping[str, Any] | None) -> OutputValidator | None:
    """The validator a job's ``response_format`` calls for (None: free text)."""
    schema = schema_of(response_format)
    return None if schema is None else OutputValidator(schema)


__all__ = [
    "GrammarCache",
    "OutputValidator",
    "check_response_format",
    "check_schema",
    "load_schema",
    "resampled",
    "response_format_for",
    "schema_of",
    "validated_line",
    "validator_for",
]
