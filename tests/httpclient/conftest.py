"""The HTTP client's tests run on both loops a job runs on: uvloop where it installs (the
default), asyncio's otherwise. They differ where it matters here: uvloop refuses a write to a
connection closed under a request, where asyncio's drops it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item
                                  ) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop}
    try:
        import uvloop
    except ImportError:  # not on Windows
        return factories
    factories["uvloop"] = uvloop.new_event_loop
    return factories
