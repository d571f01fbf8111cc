"""The event loop promptmill runs its jobs on: uvloop where it installs, and the library API
still works inside a loop that already runs (a notebook's) and on asyncio's own loop."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import uvloop  # a plain dependency wherever the suite runs (Linux, macOS)

import promptmill
from promptmill import eventloop
from promptmill.generators import register_generator
from promptmill.generators.openai_ import HTTPGenerator
from promptmill.testing import TestServer


class LoopNoting(HTTPGenerator):
    """http!, noting the class of the event loop each job's requests are sent on."""

    provider = "loop-noting"
    loops: list[type] = []

    async def start(self) -> None:
        LoopNoting.loops.append(type(asyncio.get_running_loop()))
        await super().start()


def rows(count: int) -> list[dict[str, Any]]:
    return [{"prompt": f"Tell me about {i}"} for i in range(count)]


@pytest.fixture
def model(server: TestServer) -> str:
    register_generator("loop-noting", LoopNoting)
    LoopNoting.loops.clear()
    return f"loop-noting!test-model,api_base={server.url}"


def test_run_sends_on_uvloop(model: str) -> None:
    results = promptmill.run(rows(5), model)
    assert [r["status"] for r in results] == ["done"] * 5
    assert LoopNoting.loops == [uvloop.Loop]


def test_asyncio_loop_when_asked(model: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTMILL_EVENT_LOOP", "asyncio")
    assert len(promptmill.run(rows(3), model)) == 3
    assert LoopNoting.loops[0] is not uvloop.Loop
    assert issubclass(LoopNoting.loops[0], asyncio.BaseEventLoop)


async def test_inside_a_notebooks_running_loop(model: str) -> None:
    users_loop = type(asyncio.get_running_loop())
    assert users_loop is not uvloop.Loop  # pytest-asyncio's: asyncio's own, as Jupyter's
    # Awaited, arun runs on the user's loop, whatever it is...
    assert len(await promptmill.arun(rows(4), model)) == 4
    # ...and the sync call, from a cell whose loop runs, on a uvloop of its own in a thread.
    assert len(promptmill.run(rows(3), model)) == 3
    assert LoopNoting.loops == [users_loop, uvloop.Loop]


def test_run_refuses_nothing_a_plain_asyncio_run_takes() -> None:
    async def answer() -> str:
        await asyncio.sleep(0)
        return "done"

    assert eventloop.run(answer()) == "done"
    assert eventloop.run_async(answer()) == "done"
