"""Fixtures shared by every test: the promptmill test server, real HTTP on loopback.

- ``server``: one plain server for the whole session (no limits, faults or latency). Its
  ``stats`` add up across tests, so a test that counts calls ``server.stats.reset()`` first;
  a test that changes a server (outage, limits) uses ``make_server`` instead.
- ``make_server(**options)``: a server of the test's own (``TestServer``'s keyword options:
  ``limits=``, ``faults=``, ``latency=``, ``responder=``, ...), stopped after the test.

Both run in a background thread with their own event loop, so sync and async tests alike
can point a client at ``server.url`` (it ends in ``/v1``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from promptmill.testing import TestServer, serve_in_thread


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
