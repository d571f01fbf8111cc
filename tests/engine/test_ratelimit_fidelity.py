"""Rate-limit fidelity against the real test server (in its own process), through the library.

The server enforces requests or tokens per 1 s window (a continuously refilling bucket, as
OpenAI describes its limits). A job of about 12 windows runs through ``promptmill.api.execute``
(``benchmarks/ratelimit.py``'s ``measure``). Every mode is judged on the whole run (its
requests over its dispatch time against the allowed rate; every refusal the server counted),
and on the steady state after two windows.

- Not told the limits, learning from ``x-ratelimit-*`` headers and 429s: at least 90% of
  the allowed throughput, fewer than 2% of all requests refused (the issue's target).
- Headers hidden, learning from 429 + Retry-After alone: at least 90%, and fewer than 2%
  refused in the steady state. Over the whole run the target is NOT met by a job this short:
  nothing tells the client the bucket is empty before the first 429 comes back, and by then
  every request in flight (64) is refused too, 5% of a 1,300-request job (docs/benchmarks.md).
  The whole run is held to that honest bound: the requests in flight plus 2%.
- Told the limits (``rpm=`` / ``tpm=``): at least 97% of the allowed throughput over the whole
  run and in the steady state, none refused.

Then every other way a provider counts (``fixed`` windows on the clock, a ``sliding`` window,
``quantized`` slices of a quarter window; ``promptmill.testing.limits``), each told and not
told, with and without headers, on requests:

- not told, headers sent: at least 90% and under 2% refused, as for the bucket (the limiter
  learns from a refusal it did not foresee that the window does not refill continuously);
- told: at least 95%, and at most a refusal or two (a client stalled by the load catches its
  slots up at twice the pace, never over what the rate allows a quarter second or a second,
  ``engine/pace.py``; a catch-up send on a slice's very edge can still be refused);
- not told, headers hidden: the same honest bound as the bucket's (the requests in flight at
  the first refusal plus 2%; under 2% in the steady state); the rate learned from Retry-After
  alone reaches 75-95% of a window's (docs/benchmarks.md): the 90% target is NOT met there,
  and this asserts what is: at least 70%.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from promptmill.engine.dispatch import EngineConfig


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


def measured(tmp_path: Path, mode: str, tokens: bool, kind: str = "bucket") -> Any:
    """One job against the limited server (``benchmarks/ratelimit.py``), its line printed."""
    result = ratelimit.measure(tmp_path, mode=mode, tokens=tokens, kind=kind)
    print(kind, mode, result.line())
    return result


@LIMITS
def test_learning_from_headers_and_429s(tmp_path: Path, tokens: bool) -> None:
    result = measured(tmp_path, "headers", tokens)
    assert result.whole_share >= 0.90 and result.steady_share >= 0.90
    assert result.refused_share < 0.02 and result.meets_target


@LIMITS
def test_learning_from_429_and_retry_after_alone(tmp_path: Path, tokens: bool) -> None:
    result = measured(tmp_path, "no-headers", tokens)
    assert result.whole_share >= 0.90 and result.steady_share >= 0.90
    assert result.steady_refused_share < 0.02
    # The first refusal costs the requests then in flight; after it, under 2%.
    assert result.refused <= EngineConfig().max_concurrency + 0.02 * result.received


@LIMITS
@pytest.mark.parametrize("mode", ["stated", "stated-headers"])
def test_told_the_limits_nothing_is_refused(tmp_path: Path, tokens: bool, mode: str) -> None:
    result = measured(tmp_path, mode, tokens)
    assert result.whole_share >= 0.97 and result.steady_share >= 0.97
    assert result.refused == 0 and result.meets_target


WINDOWED = pytest.mark.parametrize("kind", ["fixed", "sliding", "quantized"])


@WINDOWED
def test_windows_learned_from_headers_and_a_refusal(tmp_path: Path, kind: str) -> None:
    result = measured(tmp_path, "headers", False, kind)
    assert result.whole_share >= 0.90 and result.steady_share >= 0.90
    assert result.refused_share < 0.02 and result.meets_target


@WINDOWED
@pytest.mark.parametrize("mode", ["stated", "stated-headers"])
def test_windows_told_the_limits_nothing_is_refused(tmp_path: Path, kind: str,
                                                    mode: str) -> None:
    result = measured(tmp_path, mode, False, kind)
    # A catch-up after a stall can land on a slice's edge (tests/engine/test_limiter.py).
    assert result.refused <= 1 + result.received / 1_000
    assert result.whole_share >= 0.95 and result.steady_share >= 0.95


@WINDOWED
def test_windows_learned_from_429_and_retry_after_alone(tmp_path: Path, kind: str) -> None:
    result = measured(tmp_path, "no-headers", False, kind)
    assert result.refused <= EngineConfig().max_concurrency + 0.02 * result.received
    assert result.steady_refused_share < 0.02
    assert result.whole_share >= 0.70  # the 90% target is not met here (module docstring)
