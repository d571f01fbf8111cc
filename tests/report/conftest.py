"""Fixtures of the report and browser tests: a finished, graded job (``report_helpers``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# --import-mode=importlib puts no test folder on sys.path: this one is, for the helpers.
sys.path.insert(0, str(Path(__file__).parent))

from report_helpers import GradedJob, make_graded_job  # noqa: E402


@pytest.fixture(scope="session")
def graded_job(tmp_path_factory: pytest.TempPathFactory) -> GradedJob:
    """The job of ``report_helpers``, run and graded once per session."""
    return make_graded_job(tmp_path_factory.mktemp("graded-job"))
