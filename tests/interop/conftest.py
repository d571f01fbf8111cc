"""The interop tier's shared fixtures: the compatibility table, free ports, server logs.

Each module of the tier starts one real third-party server (its module fixture) and runs
``interop_checks.CHECKS`` against it; ``compat`` checks each observed cell against
``docs/interop.md`` (or, with ``PROMPTMILL_UPDATE_INTEROP=1``, writes the table at the end).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# --import-mode=importlib puts no test folder on sys.path: this one is, so that the tier's
# modules can import the checks beside them.
sys.path.insert(0, str(Path(__file__).parent))
from interop_checks import Compat  # noqa: E402


@pytest.fixture(scope="session")
def compat() -> Iterator[Compat]:
    table = Compat()
    yield table
    table.write()

