"""Faults the test server injects on purpose, drawn from a seeded random stream."""

from __future__ import annotations

import random
from dataclasses import dataclass, fields

__all__ = ["FAULT_KINDS", "Faults"]

# The order in which probabilities are laid end to end on [0, 1): part of the seeded contract,
# so that a given seed picks the same faults in every release.
# New kinds go at the end.
FAULT_KINDS = ("rate_limit", "server_error", "drop", "hang", "malformed", "slow",
               "bad_gateway", "service_unavailable", "gateway_timeout", "reset")


@dataclass(frozen=True)
class Faults:
    """Probabilities (0..1, summing to at most 1) of each injected fault, and their knobs.

    Every request that passes validation and the rate limiter draws one number from
    ``random.Random(seed)`` and gets at most one fault:

    - ``rate_limit``: 429 with ``Retry-After`` (``retry_after`` seconds) and OpenAI's body.
    - ``server_error``: 500 with OpenAI's ``server_error`` body.
    - ``drop``: the connection is closed without a response.
    - ``hang``: no response until the client gives up (or ``hang_seconds``, or shutdown),
      then the connection is closed.
    - ``malformed``: 200 whose body is cut-off JSON.
    - ``slow``: the right answer, ``slow_seconds`` late.
    - ``bad_gateway``: 502 with a proxy's HTML page, as a load balancer in front sends it.
    - ``service_unavailable``: 503 with OpenAI's "overloaded" body.
    - ``gateway_timeout``: 504 with a proxy's HTML page.
    - ``reset``: the connection is reset (TCP RST) without a response.
    """

    rate_limit: float = 0.0
    server_error: float = 0.0
    drop: float = 0.0
    hang: float = 0.0
    malformed: float = 0.0
    slow: float = 0.0
    bad_gateway: float = 0.0
    service_unavailable: float = 0.0
    gateway_timeout: float = 0.0
    reset: float = 0.0
    seed: int = 0
    retry_after: float = 1.0
    slow_seconds: float = 1.0
    hang_seconds: float | None = None

    def __post_init__(self) -> None:
        probabilities = [getattr(self, kind) for kind in FAULT_KINDS]
        if any(not 0.0 <= p <= 1.0 for p in probabilities):
            raise ValueError(f"fault probabilities must be within 0..1: {self}")
        if sum(probabilities) > 1.0 + 1e-9:
            given = " + ".join(f"{kind} {getattr(self, kind):g}" for kind in FAULT_KINDS
                               if getattr(self, kind))
            raise ValueError(f"fault probabilities must sum to at most 1, not {given} = "
                             f"{sum(probabilities):g}")
        for field in fields(self):
            if field.name.endswith(("_after", "_seconds")):
                value = getattr(self, field.name)
                if value is not None and value < 0:
                    raise ValueError(f"{field.name} must be >= 0, got {value}")

    @property
    def enabled(self) -> bool:
        """Whether any fault can be injected at all."""
        return any(getattr(self, kind) > 0 for kind in FAULT_KINDS)


class FaultPicker:
    """Draws the fault (or none) for each request from ``random.Random(faults.seed)``."""

    __slots__ = ("_random", "_thresholds")

    def __init__(self, faults: Faults) -> None:
        self._random = random.Random(faults.seed)  # one draw per request, in arrival order
        self._thresholds: list[tuple[float, str]] = []  # cumulative upper bounds, by kind
        total = 0.0
        for kind in FAULT_KINDS:
            probability = getattr(faults, kind)
            if probability > 0:
                total += probability
                self._thresholds.append((total, kind))

    def pick(self) -> str | None:
        """The fault kind for the next request, or ``None`` for a normal answer."""
        draw = self._random.random()
        for threshold, kind in self._thresholds:
            if draw < threshold:
                return kind
        return None
