"""A job's first requests go out one a turn of the event loop, not as one burst.

Started all in one turn, a job's whole concurrency went out as one burst, the server took it
as one and answered it as one: a wave the job then kept for its whole run (at 200 ms and 500
in flight the first answers took 0.48 s, and 5,000 requests 2.9 s against 2.5 s;
``docs/benchmarks.md``, the first wave).
"""

from __future__ import annotations

import asyncio
import json
import typing as t
from pathlib import Path

import promptmill as pm
from promptmill import GeneratedMessage, GenerateParams, Generator, Message

CONCURRENCY = 100


class Recorder(Generator):
    """One call at a time, ``CONCURRENCY`` at once, no slow start (a local engine's way):
    records how many calls had begun when the first call's next turn of the loop came."""

    is_local = True
    max_batch = 1
    concurrent_batches = CONCURRENCY

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.begun = 0
        self.begun_by_next_turn: list[int] = []

    async def generate_messages(self, messages: t.Sequence[t.Sequence[Message]],
                                params: t.Sequence[GenerateParams]
                                ) -> t.Sequence[GeneratedMessage]:
        self.begun += 1
        if self.begun == 1:
            asyncio.get_running_loop().call_soon(
                lambda: self.begun_by_next_turn.append(self.begun))
        await asyncio.sleep(0.01)
        return [GeneratedMessage({"role": "assistant", "content": f"ok {chat[-1]['content']}"},
                                 stop_reason="stop") for chat in messages]


def test_the_first_wave_is_sent_a_request_a_turn_and_every_row_lands_once(
        tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": i, "prompt": f"row {i}"}) + "\n"
                              for i in range(3 * CONCURRENCY)))
    generator = Recorder(model="recorder")
    rows = pm.run(source, generator, output=tmp_path / "out.jsonl")
    # The first call's next turn came before the third call began (one worker a turn); all
    # started in one turn, every worker's call had begun by then.
    assert generator.begun_by_next_turn and generator.begun_by_next_turn[0] <= 2
    assert generator.begun == 3 * CONCURRENCY
    assert [row["id"] for row in rows] == list(range(3 * CONCURRENCY))
    assert all(row["status"] == "done" and row["responses"][0]["text"] == f"ok row {row['id']}"
               for row in rows)
