"""The value checks behind ``GenerateParams``: pydantic's lax conversions, without pydantic.

``GenerateParams`` was a pydantic model; importing pydantic and building the model was more
than half of what ``promptmill run`` spends starting up beyond the aiohttp script a user would
write (callgrind: 0.38 of 0.59 G instructions). These checks accept, convert and refuse what
that model did, with its messages (``tests/test_params.py`` compares them with a pydantic
model on a grid of inputs): numbers from numeric strings and bytes, integers from integral
floats, booleans from the usual words, a list from any sequence or set.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from promptmill.errors import ParamError


class InvalidParam(ParamError):
    """A parameter's value refused: ``field`` (``stop.1`` for a list's item) and why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"invalid parameter {field}: {reason}")
        self.field = field
        self.reason = reason


_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})
_LISTS = (list, tuple, set, frozenset)


def _text(value: Any, mutable: bool = False) -> str | None:
    """A string, or UTF-8 bytes (a bytearray too where ``mutable``), as text (None: neither;
    pydantic took a bytearray for a string, not for a number)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes) or (mutable and isinstance(value, bytearray)):
        try:
            return bytes(value).decode()
        except UnicodeDecodeError:
            return None
    return None


def as_float(name: str, value: Any) -> float:
    """A number: a float, an int or bool, a Decimal, or a string of one."""
    if isinstance(value, float):
        return value
    if isinstance(value, (int, Decimal)):  # bool is an int
        return float(value)
    text = _text(value)
    if text is not None:
        try:
            return float(text)
        except ValueError:
            raise InvalidParam(name, "Input should be a valid number, unable to parse string "
                                     "as a number") from None
    raise InvalidParam(name, "Input should be a valid number")


def as_int(name: str, value: Any) -> int:
    """A whole number: an int or bool, a float without a fraction, or a string of one."""
    if isinstance(value, int):
        return int(value)
    if isinstance(value, (float, Decimal)):
        if not math.isfinite(value):
            raise InvalidParam(name, "Input should be a finite number")
        if value != int(value):
            raise InvalidParam(name, "Input should be a valid integer, got a number with a "
                                     "fractional part")
        return int(value)
    text = _text(value)
    if text is not None:
        stripped = text.strip()
        try:
            return int(stripped)
        except ValueError:
            pass
        try:
            number = float(stripped)
        except ValueError:
            number = math.nan
        if math.isfinite(number) and number == int(number) and "." in stripped \
                and "e" not in stripped.lower():
            return int(number)
        raise InvalidParam(name, "Input should be a valid integer, unable to parse string as "
                                 "an integer")
    raise InvalidParam(name, "Input should be a valid integer")


def as_bool(name: str, value: Any) -> bool:
    """A boolean: a bool, 0 or 1, or one of the usual words (true/false, yes/no, on/off)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, float) and value in (0.0, 1.0):
        return bool(value)
    text = _text(value)
    if text is not None:
        word = text.lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise InvalidParam(name, "Input should be a valid boolean, unable to interpret input")
    raise InvalidParam(name, "Input should be a valid boolean")


def as_strings(name: str, value: Any) -> list[str]:
    """A list of strings: from a list, tuple or set of them (``stop``'s string form is
    split before this, by ``GenerateParams``)."""
    if not isinstance(value, _LISTS):
        raise InvalidParam(name, "Input should be a valid list")
    items: list[str] = []
    for index, item in enumerate(value):
        text = _text(item, mutable=True)
        if text is None:
            raise InvalidParam(f"{name}.{index}", "Input should be a valid string")
        items.append(text)
    return items


def as_dict(name: str, value: Any) -> dict[str, Any]:
    """A mapping with string keys, copied."""
    if not isinstance(value, Mapping):
        raise InvalidParam(name, "Input should be a valid dictionary")
    copied: dict[str, Any] = {}
    for key, item in value.items():
        text = _text(key)
        if text is None:
            raise InvalidParam(f"{name}.{key}", "Input should be a valid string")
        copied[text] = item
    return copied


def bounded(convert: Callable[[str, Any], Any], *, ge: float | None = None,
            gt: float | None = None, le: float | None = None) -> Callable[[str, Any], Any]:
    """``convert``, then the bounds checked as pydantic's ``Field(ge=, gt=, le=)`` does
    (NaN meets no bound)."""

    def check(name: str, value: Any) -> Any:
        number = convert(name, value)
        if ge is not None and not number >= ge:
            raise InvalidParam(name, f"Input should be greater than or equal to {_num(ge)}")
        if gt is not None and not number > gt:
            raise InvalidParam(name, f"Input should be greater than {_num(gt)}")
        if le is not None and not number <= le:
            raise InvalidParam(name, f"Input should be less than or equal to {_num(le)}")
        return number

    return check


def _num(bound: float) -> str:
    return str(int(bound)) if bound == int(bound) else str(bound)
