"""Generation parameters: one immutable record, merged with overrides, translated per backend."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, ClassVar

from promptmill.errors import ParamError, did_you_mean
from promptmill.paramfields import (
    InvalidParam,
    as_bool,
    as_dict,
    as_float,
    as_int,
    as_strings,
    bounded,
)

log = logging.getLogger("promptmill")

# Dropping one of these would change results without a sign: a backend that cannot honour
# them is refused before the job starts instead.
MUST_HONOUR = frozenset({"stop", "logprobs", "top_logprobs", "max_tokens", "prompt_logprobs",
                         "response_format"})


def _stops(name: str, value: Any) -> list[str]:
    # rigging's form: "output:;---" is two stops. A string with no stop between its
    # semicolons (";") is one stop as written; the JSON list form holds any string.
    if isinstance(value, str):
        pieces = [piece for piece in value.split(";") if piece]
        return pieces or [value]
    return as_strings(name, value)


# Each field's check (None is every field's default and passes unchecked, but ``extra``'s).
_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "temperature": bounded(as_float, ge=0),
    "top_p": bounded(as_float, gt=0, le=1),
    "max_tokens": bounded(as_int, gt=0),
    "n": bounded(as_int, gt=0),
    "stop": _stops,
    "seed": as_int,
    "logprobs": as_bool,
    "top_logprobs": bounded(as_int, ge=0, le=20),
    # Logprobs of each prompt token with this many alternatives (local engines only).
    "prompt_logprobs": bounded(as_int, ge=0, le=20),
    "presence_penalty": bounded(as_float, ge=-2, le=2),
    "frequency_penalty": bounded(as_float, ge=-2, le=2),
    # Structured output, in OpenAI's shape: {"type": "json_schema", "json_schema": {"name",
    # "schema", "strict"}} or {"type": "json_object"} (see promptmill.structured).
    "response_format": as_dict,
    "extra": as_dict,
}
_NAMES = tuple(_CHECKS)


class GenerateParams:
    """Sampling parameters shared by every backend; ``extra`` passes backend-specific ones.

    Immutable; built from keywords, each checked and converted as the pydantic model it
    was (``model_dump``, ``model_copy`` and ``model_fields`` as there), so a bad value is
    an ``InvalidParam`` (a ``ParamError`` and a ``ValueError``) naming the field.
    """

    __slots__ = (*_NAMES, "_given")
    model_fields: ClassVar[dict[str, Any]] = {name: None for name in _NAMES}

    temperature: float | None
    top_p: float | None
    max_tokens: int | None
    n: int | None
    stop: list[str] | None
    seed: int | None
    logprobs: bool | None
    top_logprobs: int | None
    prompt_logprobs: int | None
    presence_penalty: float | None
    frequency_penalty: float | None
    response_format: dict[str, Any] | None
    extra: dict[str, Any]
    _given: frozenset[str]  # the fields given (pydantic's fields set)

    def __init__(self, **values: Any) -> None:
        unknown = [name for name in values if name not in _CHECKS]
        if unknown:
            raise InvalidParam(unknown[0], "Extra inputs are not permitted")
        checked: dict[str, Any] = {}
        for name, check in _CHECKS.items():
            value = values.get(name)
            if value is not None or name == "extra":
                value = check(name, {} if value is None and name not in values else value)
            checked[name] = value
        self._fill(checked, frozenset(values))

    @classmethod
    def _made(cls, fields: Mapping[str, Any], given: frozenset[str]) -> GenerateParams:
        """An instance of ``fields`` as they are (already checked), without checking."""
        made = cls.__new__(cls)
        made._fill(fields, given)
        return made

    def _fill(self, fields: Mapping[str, Any], given: frozenset[str]) -> None:
        put = object.__setattr__
        for name in _NAMES:
            put(self, name, fields[name])
        put(self, "_given", given)

    def _fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _NAMES}

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"GenerateParams is immutable: use .with_({name}=...) for a copy")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("GenerateParams is immutable")

    def __reduce__(self) -> tuple[Any, ...]:
        return (GenerateParams._made, (self._fields(), self._given))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GenerateParams):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in _NAMES)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, name) for name in _NAMES))

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return ((name, getattr(self, name)) for name in _NAMES)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in _NAMES)
        return f"GenerateParams({fields})"

    @property
    def model_fields_set(self) -> set[str]:
        """The fields given when it was made (or updated by ``model_copy``)."""
        return set(self._given)

    def model_dump(self, *, exclude_unset: bool = False, exclude_none: bool = False,
                   exclude: Iterable[str] | None = None) -> dict[str, Any]:
        """The fields as a dict, in their order (containers copied), as pydantic's."""
        skip = set(exclude or ())
        dumped: dict[str, Any] = {}
        for name in _NAMES:
            value = getattr(self, name)
            if (name in skip or (exclude_unset and name not in self._given)
                    or (exclude_none and value is None)):
                continue
            if isinstance(value, list):
                value = list(value)
            elif isinstance(value, dict):
                value = dict(value)
            dumped[name] = value
        return dumped

    def model_copy(self, *, update: Mapping[str, Any] | None = None,
                   deep: bool = False) -> GenerateParams:
        """A copy with ``update``'s fields set as given (unchecked, as pydantic's)."""
        fields = self._fields()
        if deep:
            import copy

            fields = copy.deepcopy(fields)
        given = self._given
        if update:
            fields.update(update)
            given = given | frozenset(update)
        return GenerateParams._made(fields, given)

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
                f"unknown {where} {key!r}{did_you_mean(key, FIELDS)}: known are "
                f"{', '.join(sorted(FIELDS))}; "
                f"pass a backend-specific one as extra.{key}=VALUE"
            )
    if extra:
        fields["extra"] = extra
    try:
        return GenerateParams(**fields)
    except InvalidParam as exc:
        raise ParamError(f"invalid {where} {exc.field}: {exc.reason}") from None


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
