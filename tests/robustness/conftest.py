"""Fixtures of the robustness suite: the real CLI in a child process.

- ``promptmill``: run ``python -m promptmill ...`` to completion, in a clean environment
  (no OPENAI_* variables; no .env unless the test writes one into its cwd).
- ``start_promptmill``: the same, started in the background (to kill it, or signal it).
- ``failpoints``: a folder holding the failpoint ``sitecustomize.py`` (robustness_helpers).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

# The suite's helpers sit beside this file, and --import-mode=importlib puts no test folder
# on sys.path: this one is, so that its test modules can import them.
sys.path.insert(0, str(Path(__file__).parent))

from robustness_helpers import FAILPOINTS, clean_env, cli_command  # noqa: E402


@pytest.fixture
def promptmill(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real CLI to completion; cwd is the test's tmp_path unless given."""

    def run(*args: str | Path, cwd: Path | None = None, env: Mapping[str, str] | None = None,
            timeout: float = 120, **popen: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(cli_command(*args), capture_output=True, text=True,
                              cwd=cwd or tmp_path, env=dict(env) if env else clean_env(),
                              timeout=timeout, **popen)

    return run


@pytest.fixture
def start_promptmill(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start the real CLI in the background; whatever is still running at the end is killed."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str | Path, cwd: Path | None = None,
              env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
        process = subprocess.Popen(cli_command(*args), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, cwd=cwd or tmp_path,
                                   env=dict(env) if env else clean_env())
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


@pytest.fixture
def failpoints(tmp_path: Path) -> Path:
    """A folder holding the failpoint ``sitecustomize.py``."""
    folder = tmp_path / "failpoints"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(FAILPOINTS)
    return folder
