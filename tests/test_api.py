"""The library API: promptmill.run / arun, k emulation, faults, notebooks."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import pytest

import promptmill
from promptmill.api import execute
from promptmill.engine.dispatch import EngineConfig
from promptmill.engine.retry import RetryPolicy
from promptmill.generators import get_generator, register_generator
from promptmill.generators.openai_ import HTTPGenerator
from promptmill.job import JobSpec
from promptmill.prompts.render import PromptSpec
from promptmill.testing import Faults, TestServer


def rows(count: int) -> list[dict[str, object]]:
    return [{"qid": f"q{i}", "prompt": f"Tell me about {i}"} for i in range(count)]


def test_run_returns_one_result_per_row_in_order(server: TestServer) -> None:
    results = promptmill.run(rows(20), f"http!test-model,api_base={server.url}", k=2)
    assert [r["qid"] for r in results] == [f"q{i}" for i in range(20)]
    assert all(r["status"] == "done" and len(r["responses"]) == 2 for r in results)


async def test_arun_and_sync_run_inside_a_running_loop(server: TestServer) -> None:
    model = f"http!test-model,api_base={server.url}"
    results = await promptmill.arun(rows(5), model)
    assert len(results) == 5
    # A notebook calls the sync API with a loop already running.
    assert len(promptmill.run(rows(3), model)) == 3


class NoNGenerator(HTTPGenerator):
    """An OpenAI-compatible backend that cannot take n: k must be emulated, not dropped."""

    provider = "no-n"
    supports_n = False


def test_k_is_emulated_by_k_requests_with_distinct_seeds(server: TestServer) -> None:
    register_generator("no-n", NoNGenerator)
    server.stats.reset()
    results = promptmill.run(
        rows(4), f"no-n!test-model,api_base={server.url}", k=3, params={"seed": 11}
    )
    assert server.stats.total_completed == 12
    for result in results:
        texts = [response["text"] for response in result["responses"]]
        assert len(texts) == 3 and len(set(texts)) == 3
    # The same seeds give the same samples again (asked again: the response cache off)...
    again = promptmill.run(rows(4), f"no-n!test-model,api_base={server.url}", k=3,
                           params={"seed": 11}, cache=False)
    assert again == results
    assert server.stats.total_completed == 24
    # ...and with the cache (a fixed seed: on by default), sample by sample from it.
    cached = promptmill.run(rows(4), f"no-n!test-model,api_base={server.url}", k=3,
                            params={"seed": 11})
    assert server.stats.total_completed == 24
    assert [[dict(r, cached=True) for r in row["responses"]] for row in results] == [
        row["responses"] for row in cached]


def test_output_makes_the_call_resumable(tmp_path: Path, server: TestServer) -> None:
    out = tmp_path / "out.jsonl"
    model = f"http!test-model,api_base={server.url}"
    server.stats.reset()
    first = promptmill.run(rows(10), model, output=out)
    second = promptmill.run(rows(10), model, output=out)
    assert first == second
    assert server.stats.total_completed == 10
    assert len(out.read_text().splitlines()) == 10


def test_faulty_server_every_row_done_or_failed_never_missing_or_doubled(
    tmp_path: Path, make_server
) -> None:
    server = make_server(faults=Faults(rate_limit=0.2, server_error=0.05, drop=0.03, seed=7,
                                       retry_after=0.01))
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows(600)))
    spec = JobSpec(input=source, output=tmp_path / "out.jsonl",
                   generator=get_generator(f"http!test-model,api_base={server.url}"), k=3)
    config = EngineConfig(max_concurrency=32,
                          retry=RetryPolicy(max_attempts=8, backoff_base=0.01, backoff_max=0.05))
    outcome = asyncio.run(execute(spec, config))
    results = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["qid"] for r in results] == [f"q{i}" for i in range(600)]
    statuses = Counter(r["status"] for r in results)
    assert set(statuses) <= {"done", "failed"}
    for result in results:
        if result["status"] == "done":
            assert len(result["responses"]) == 3 and result["error"] is None
        else:
            assert result["error"]
    # The server answered each distinct request at most once.
    assert max(server.stats.completed_by_prompt.values()) == 1
    assert server.stats.total_completed == statuses["done"]
    assert server.stats.faults["rate_limit"] > 0 and server.stats.faults["drop"] > 0
    assert outcome.stats.retries["rate_limited"] > 0


def test_a_changed_model_parameter_is_refused_naming_it(tmp_path: Path, server: TestServer) -> None:
    out = tmp_path / "out.jsonl"
    model = f"http!test-model,api_base={server.url}"
    promptmill.run(rows(3), model, output=out, params={"temperature": 0.2})
    with pytest.raises(promptmill.PromptmillError, match=r"temperature 0\.2 -> 0\.9"):
        promptmill.run(rows(3), model, output=out, params={"temperature": 0.9})
    # --new-job discards the old job on purpose.
    fresh = promptmill.run(rows(3), model, output=out, params={"temperature": 0.9}, new_job=True)
    assert len(fresh) == 3


def test_messages_field_and_system_prompt(server: TestServer) -> None:
    data = [{"messages": [{"role": "user", "content": "hello there"}]}]
    results = promptmill.run(data, f"http!test-model,api_base={server.url}",
                             messages_field="messages", system="Be brief.")
    assert "hello there" in results[0]["responses"][0]["text"]


def test_prompt_spec_rejects_ambiguous_sources() -> None:
    with pytest.raises(promptmill.PromptmillError):
        PromptSpec.build(template="{{ q }}", prompt_field="q")
