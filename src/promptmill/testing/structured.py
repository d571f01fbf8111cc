"""Structured answers for the test server: JSON built from a request's schema, and spoiled on
purpose (not JSON, or JSON that breaks the schema) by seeded probability.

A request with ``response_format`` ``json_schema`` (or ``json_object``) gets, instead of
words, a JSON value that matches its schema, the same for the same request (built from the
request's digest). ``JsonFaults`` makes some answers bad, drawn from ``random.Random(seed)``
per answer in arrival order, so a client's validation and retries can be tested.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

__all__ = ["JsonFaults", "JsonSpoiler", "instance_for"]

_WORDS = ("amber", "cedar", "delta", "ember", "fjord", "maple", "quartz", "willow")


def instance_for(schema: Any, seed: bytes, depth: int = 0) -> Any:
    """A JSON value that matches ``schema`` (the common keywords), chosen by ``seed``."""
    rng = random.Random(seed + bytes([depth]))
    if not isinstance(schema, dict) or depth > 8:
        return None if depth else {}
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return rng.choice(schema["enum"])
    for combinator in ("anyOf", "oneOf"):
        if schema.get(combinator):
            return instance_for(schema[combinator][0], seed, depth + 1)
    if schema.get("allOf"):
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            merged.update(part)
        return instance_for(merged, seed, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    if kind == "object":
        properties = schema.get("properties") or {}
        required = set(schema.get("required") or [])
        value = {}
        for index, (name, sub) in enumerate(properties.items()):
            if name in required or rng.random() < 0.5:
                value[name] = instance_for(sub, seed + bytes([index]), depth + 1)
        return value
    if kind == "array":
        low = int(schema.get("minItems", 1))
        high = max(low, min(int(schema.get("maxItems", low + 2)), low + 3))
        return [instance_for(schema.get("items", {}), seed + bytes([i]), depth + 1)
                for i in range(rng.randint(low, high))]
    if kind == "integer":
        least = int(schema.get("minimum", 0))
        return rng.randint(least, int(schema.get("maximum", least + 100)))
    if kind == "number":
        floor = float(schema.get("minimum", 0))
        return round(rng.uniform(floor, float(schema.get("maximum", floor + 100))), 3)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    text = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 3)))
    text = text.ljust(int(schema.get("minLength", 0)), "x")
    longest = schema.get("maxLength")
    return text[:int(longest)] if longest is not None else text


def _wrong_type(schema: Any) -> Any:
    """A JSON value of a type ``schema`` does not allow (an object where one is required...)."""
    kind = schema.get("type") if isinstance(schema, dict) else None
    if kind == "object" or (isinstance(schema, dict) and "properties" in schema):
        return ["not", "an", "object"]
    if kind == "array":
        return {"not": "an array"}
    if kind in ("integer", "number", "boolean"):
        return "not a number"
    return {"not": "a string"}


@dataclass(frozen=True)
class JsonFaults:
    """Probabilities that a structured answer is not JSON (``invalid``) or is JSON breaking
    the schema (``mismatch``), drawn per answer from ``random.Random(seed)``."""

    invalid: float = 0.0
    mismatch: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not (0 <= self.invalid <= 1 and 0 <= self.mismatch <= 1
                and self.invalid + self.mismatch <= 1 + 1e-9):
            raise ValueError(f"JSON fault probabilities must be within 0..1 and sum to at most "
                             f"1: {self}")


class JsonSpoiler:
    """Answers a structured request, spoiling some answers as ``JsonFaults`` say."""

    __slots__ = ("faults", "_random", "spoiled")

    def __init__(self, faults: JsonFaults) -> None:
        self.faults = faults
        self._random = random.Random(faults.seed)  # one draw per answer, in arrival order
        self.spoiled = {"invalid": 0, "mismatch": 0}  # answers spoiled so far, by kind

    def answer(self, schema: dict[str, Any], seed: bytes) -> str:
        """The text of one answer to a request for JSON matching ``schema``."""
        valid = json.dumps(instance_for(schema, seed), ensure_ascii=False)
        faults = self.faults
        if not (faults.invalid or faults.mismatch):
            return valid
        draw = self._random.random()
        if draw < faults.invalid:
            self.spoiled["invalid"] += 1
            return valid[: max(1, len(valid) // 2)]  # cut off: not JSON
        if draw < faults.invalid + faults.mismatch:
            self.spoiled["mismatch"] += 1
            return json.dumps(_wrong_type(schema))
        return valid
