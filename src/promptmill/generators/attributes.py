"""Generator attributes written the way rigging's users write them, in promptmill's terms.

``max_connections=N`` is the job's concurrency (at most N requests in flight; 0: no cap of
its own), ``min_delay_between_requests=MS`` is pacing (one request every MS milliseconds:
``rpm=60000/MS``, spread evenly by the rate limiter), ``torch_dtype=`` is ``dtype=`` where the
backend has it; engine options a backend has (``gpu_memory_utilization=``,
``trust_remote_code=`` for ``vllm!``) are its own already. An attribute of rigging's that
means nothing for the backend it is given to is dropped with a warning naming it.

Limits (``max_concurrency=``, ``rpm=``, ``tpm=``) may be given on any identifier; they bound
the job (the strictest of them and the command line's wins) and, like prices, are not part
of the job's fingerprint: a job may resume under other limits.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from promptmill.errors import ParamError

log = logging.getLogger("promptmill")

LIMIT_OPTIONS = ("max_concurrency", "rpm", "tpm")
# rigging's attributes of its local backends; kept where the backend has the same option.
_ENGINE_ATTRIBUTES = frozenset({"gpu_memory_utilization", "trust_remote_code", "enforce_eager",
                                "torch_dtype", "device_map", "load_in_8bit", "load_in_4bit",
                                "max_seq_len"})
# rigging's name -> promptmill's, where a backend calls it otherwise.
_RENAMED = {"torch_dtype": "dtype", "max_seq_len": "max_model_len"}


def _number(provider: str, name: str, value: Any, *, integer: bool = False) -> float:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < 0 or (
            not integer and not math.isfinite(value)):
        kind = "an integer" if integer else "a number"
        raise ParamError(f"{provider}! option {name}={value!r} must be {kind} >= 0")
    return value


def map_attributes(provider: str, config_fields: frozenset[str],
                   config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with rigging's attributes turned into promptmill's options (see module)."""
    if not (config.keys() & (_ENGINE_ATTRIBUTES | {"max_connections",
                                                   "min_delay_between_requests"})):
        return config
    mapped = dict(config)
    if "max_connections" in mapped:
        connections = int(_number(provider, "max_connections", mapped.pop("max_connections"),
                                  integer=True))
        if connections and "max_concurrency" not in mapped:
            mapped["max_concurrency"] = connections
    if "min_delay_between_requests" in mapped:
        delay_ms = _number(provider, "min_delay_between_requests",
                           mapped.pop("min_delay_between_requests"))
        if delay_ms:
            rpm = 60_000 / delay_ms
            given = mapped.get("rpm")
            mapped["rpm"] = min(rpm, given) if isinstance(given, (int, float)) else rpm
    for name in sorted(_ENGINE_ATTRIBUTES & mapped.keys()):
        if name in config_fields:
            continue
        renamed = _RENAMED.get(name)
        if renamed in config_fields and renamed not in mapped:
            mapped[renamed] = mapped.pop(name)
            continue
        value = mapped.pop(name)
        log.warning("%s! has no option %s (rigging's): %s=%r ignored", provider, name, name,
                    value)
    return mapped


def check_limits(provider: str, config: dict[str, Any]) -> dict[str, float]:
    """Take the limit options out of ``config`` (validated): the job's bounds, by name."""
    limits: dict[str, float] = {}
    for name in LIMIT_OPTIONS:
        if name in config:
            value = config.pop(name)
            integer = name == "max_concurrency"
            if _number(provider, name, value, integer=integer) == 0:
                raise ParamError(f"{provider}! option {name}={value!r} must be > 0")
            limits[name] = value
    return limits
