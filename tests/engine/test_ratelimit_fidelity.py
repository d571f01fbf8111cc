"""Rate-limit fidelity against the real test server (in its own process), through the library.

The server enforces requests or tokens per 1 s window (a continuously refilling bucket, as
OpenAI describes its limits). A job of about 12 windows runs through ``promptmill.api.execute``
(``benchmarks/ratelimit.py``'s ``measure``); throughput is measured in the steady state, after
two windows, and compared with what the server's configured limits allow.

- Not told the limits, learning from ``x-ratelimit-*`` headers and 429s: at least 90% of
  the allowed throughput, fewer than 2% of all requests refused.
- Headers hidden, learning from 429 + Retry-After alone: the same thresholds, in the steady
  state. Before it, the first refusal costs about one refused request per request then in
  flight (64 by default), a few percent of a job this short (docs/benchmarks.md).
- Told the limits (``rpm=`` / ``tpm=``): at least 97% of the allowed throughput, none refused.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


def _benchmark() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "ratelimit.py"
    spec = importlib.util.spec_from_file_location("promptmill_benchmark_ratelimit", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


ratelimit = _benchmark()
LIMITS = pytest.mark.parametrize("tokens", [False, True], ids=["requests", "tokens"])


def measured(tmp_path: Path, mode: str, tokens: bool) -> Any:
    """One job against the limited server (``benchmarks/ratelimit.py``), its line printed."""
    result = ratelimit.measure(tmp_path, mode=mode, tokens=tokens)
    print(result.line())
    return result


@LIMITS
def test_learning_from_headers_and_429s(tmp_path: Path, tokens: bool) -> None:
    result = measured(tmp_path, "headers", tokens)
    assert result.steady_share >= 0.90 and result.refused_share < 0.02


@LIMITS
def test_learning_from_429_and_retry_after_alone(tmp_path: Path, tokens: bool) -> None:
    result = measured(tmp_path, "no-headers", tokens)
    assert result.steady_share >= 0.90 and result.steady_refused_share < 0.02


@LIMITS
@pytest.mark.parametrize("mode", ["stated", "stated-headers"])
def test_told_the_limits_nothing_is_refused(tmp_path: Path, tokens: bool, mode: str) -> None:
    result = measured(tmp_path, mode, tokens)
    assert result.steady_share >= 0.97 and result.refused == 0
