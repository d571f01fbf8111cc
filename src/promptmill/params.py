"""Generation parameters: one pydantic model, merged with overrides, translated per backend."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from promptmill.errors import ParamError

log = logging.getLogger("promptmill")

# Dropping one of these would change results without a sign: a backend that cannot honour
# them is refused before the job starts instead.
MUST_HONOUR = frozenset({"stop", "logprobs", "top_logprobs", "max_tokens", "prompt_logprobs",
                         "response_format"})


class GenerateParams(BaseModel):
    """Sampling parameters shared by every backend; ``extra`` passes backend-specific ones."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, gt=0)
    n: int | None = Field(default=None, gt=0)
    stop: list[str] | None = None
    seed: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    # Logprobs of each prompt token with this many alternatives (local engines only).
    prompt_logprobs: int | None = Field(default=None, ge=0, le=20)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    # Structured output, in OpenAI's shape: {"type": "json_schema", "json_schema": {"name",
    # "schema", "strict"}} or {"type": "json_object"} (see promptmill.structured).
    response_format: dict[str, Any] | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_as_list(cls, value: Any) -> Any:
        # rigging's form: "output:;---" is two stops. A string with no stop between its
        # semicolons (";") is one stop as written; the JSON list form holds any string.
        if isinstance(value, str):
            pieces = [piece for piece in value.split(";") if piece]
            return pieces or [value]
        return value

    def merge(self, other: GenerateParams | None) -> GenerateParams:
        """These params with every field set in ``other`` taking precedence."""
        if other is None:
            return self
        data = self.model_dump(exclude_unset=True)
        overrides = other.model_dump(exclude_unset=True)
        extra = {**data.pop("extra", {}), **overrides.pop("extra", {})}
        return GenerateParams(**{**data, **overrides, "extra": extra})

    def merge_with(self, *others: GenerateParams | None) -> GenerateParams:
        """These params with each of ``others`` merged over them in turn (rigging's name)."""
        merged = self
        for other in others:
            merged = merged.merge(other)
        return merged

    def to_dict(self) -> dict[str, Any]:
        """The parameters that were given, as keyword arguments (``extra`` flattened in)."""
        return self.set_fields()

    def with_(self, **overrides: Any) -> GenerateParams:
        """A copy with the given fields overridden (validated)."""
        return self.merge(make_params(overrides))

    def set_fields(self) -> dict[str, Any]:
        """Only the parameters that were given, ``extra`` flattened in."""
        data = self.model_dump(exclude_unset=True, exclude_none=True)
        data.update(data.pop("extra", {}))
        return data


FIELDS = frozenset(name for name in GenerateParams.model_fields if name != "extra")


def make_params(values: Mapping[str, Any], *, where: str = "parameter") -> GenerateParams:
    """Build params from ``key=value`` pairs; ``extra.NAME`` keys go to ``extra``."""
    fields: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in values.items():
        if key.startswith("extra."):
            extra[key[len("extra."):]] = value
        elif key == "extra" and isinstance(value, Mapping):
            extra.update(value)
        elif key in FIELDS:
            fields[key] = value
        else:
            raise ParamError(
                f"unknown {where} {key!r}: known are {', '.join(sorted(FIELDS))}; "
                f"pass a backend-specific one as extra.{key}=VALUE"
            )
    if extra:
        fields["extra"] = extra
    try:
        return GenerateParams(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(part) for part in first["loc"]) or "params"
        raise ParamError(f"invalid {where} {name}: {first['msg']}") from None


def translate(
    params: GenerateParams, backend: str, supported: Iterable[str], *, warn: bool = True
) -> GenerateParams:
    """Drop what ``backend`` cannot take, with one warning; refuse what it must honour.

    ``n`` is never dropped here: the engine emulates it with k requests where needed.
    """
    allowed = set(supported) | {"n", "extra"}
    given = params.model_dump(exclude_unset=True, exclude_none=True)
    unsupported = sorted(name for name in given if name not in allowed)
    refused = [name for name in unsupported if name in MUST_HONOUR]
    if refused:
        raise ParamError(
            f"backend {backend}! cannot honour {', '.join(refused)}: dropping it would change "
            "results; remove it or choose a backend that supports it"
        )
    if not unsupported:
        return params
    if warn:
        log.warning("backend %s! does not take %s: dropped", backend, ", ".join(unsupported))
    kept = {name: value for name, value in given.items() if name not in unsupported}
    return GenerateParams(**kept)
