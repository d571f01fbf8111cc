"""One-off calls (``chat``, ``complete`` and their sync twins) against the real test server:
no job store, the job's retries and error kinds, the seed's two ``with_()`` forms."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

import promptmill as pm
from promptmill.errors import MissingKeyError, Unavailable, UsageError
from promptmill.testing import Faults, TestServer, expected_answers


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # to see that nothing is written
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def haiku() -> list[dict[str, str]]:
    return [{"role": "user", "content": "Say a haiku about boats"}]


async def test_chat_returns_the_answer_and_keeps_nothing(
        make_server: Callable[..., TestServer], tmp_path: Path) -> None:
    server = make_server(record_requests=True)
    generator = pm.get_generator(f"http!test-model,api_base={server.url},max_tokens=50")
    reply = await generator.chat(haiku())
    body = server.requests[0].body
    assert reply.text == expected_answers(body)[0] and reply.finish_reason
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    assert body["max_tokens"] == 50
    text = await generator.complete("Once upon a time", max_tokens=5)
    assert text.text == expected_answers(server.requests[1].body)[0]
    assert server.requests[1].path == "/v1/completions"
    assert list(tmp_path.iterdir()) == []  # no job store, no output


@pytest.mark.parametrize("form", ["keywords", "GenerateParams", "with_ keywords",
                                  "with_ GenerateParams"])
def test_overrides_in_the_seeds_two_forms(form: str,
                                          make_server: Callable[..., TestServer]) -> None:
    server = make_server(record_requests=True)
    generator = pm.get_generator(f"http!test-model,api_base={server.url},max_tokens=50")
    for temp in [0.1, 0.5, 1.0]:
        if form == "keywords":
            generator.chat_sync(haiku(), temperature=temp)
        elif form == "GenerateParams":
            generator.chat_sync(haiku(), pm.GenerateParams(temperature=temp))
        elif form == "with_ keywords":
            generator.with_(temperature=temp).chat_sync(haiku())
        else:
            generator.with_(pm.GenerateParams(temperature=temp)).chat_sync(haiku())
    sent = [r.body for r in server.requests]
    assert [b["temperature"] for b in sent] == [0.1, 0.5, 1.0]
    assert all(b["max_tokens"] == 50 for b in sent)  # the generator's own params stay
    assert generator.params.temperature is None  # with_ made new generators


def test_keywords_win_over_params_given_beside_them(
        make_server: Callable[..., TestServer]) -> None:
    server = make_server(record_requests=True)
    generator = pm.get_generator(f"http!test-model,api_base={server.url}")
    generator.chat_sync(haiku(), pm.GenerateParams(temperature=0.1, seed=3), temperature=0.9)
    assert server.requests[0].body["temperature"] == 0.9
    assert server.requests[0].body["seed"] == 3


async def test_the_sync_twins_work_inside_a_running_event_loop(
        make_server: Callable[..., TestServer]) -> None:
    asyncio.get_running_loop()  # as in a notebook's cell
    server = make_server()
    generator = pm.get_generator(f"http!test-model,api_base={server.url}")
    assert generator.chat_sync("hello").text
    assert generator.complete_sync("hello").text


async def test_concurrent_calls_share_one_generator(
        make_server: Callable[..., TestServer]) -> None:
    server = make_server(latency=0.05)
    generator = pm.get_generator(f"http!test-model,api_base={server.url}")
    async def ask(i: int) -> pm.Reply:  # staggered: some start as others end
        await asyncio.sleep(i * 0.02)
        return await generator.chat(f"question {i}")

    replies = await asyncio.gather(*(ask(i) for i in range(12)))
    assert all(f"question {i}" in reply.text for i, reply in enumerate(replies))
    # One pool for all: none lost its connection when another call ended (none sent twice).
    assert server.stats.received["/v1/chat/completions"] == 12


def test_n_samples_where_the_backend_takes_one_at_a_time(
        make_server: Callable[..., TestServer]) -> None:
    server = make_server()
    generator = pm.get_generator(f"http!test-model,api_base={server.url},supports_n=false")
    reply = generator.chat_sync("hello", n=3, temperature=1.0)
    assert len(reply.texts) == 3 and reply.text == reply.texts[0]
    assert server.stats.received["/v1/chat/completions"] == 3


def test_failures_are_retried_as_a_job_retries(make_server: Callable[..., TestServer]) -> None:
    server = make_server(faults=Faults(server_error=0.3, rate_limit=0.3, retry_after=0.05,
                                       seed=5))
    generator = pm.get_generator(f"http!test-model,api_base={server.url}")
    for i in range(8):
        assert f"question {i}" in generator.chat_sync(f"question {i}").text
    assert server.stats.faults["server_error"] > 0 and server.stats.faults["rate_limit"] > 0
    assert server.stats.total_completed == 8


def test_errors_keep_their_kinds_and_name_the_fix(
        make_server: Callable[..., TestServer]) -> None:
    server = make_server(models=("llama3.1",))
    with pytest.raises(MissingKeyError, match="set OPENAI_API_KEY"):
        pm.get_generator("openai!gpt-4o-mini").chat_sync("hello")
    assert not server.stats.received  # refused before sending
    with pytest.raises(UsageError, match="run `ollama pull nosuch`"):
        pm.get_generator(f"ollama!nosuch,api_base={server.root}").chat_sync("hi")
    assert server.stats.received == {"/api/tags": 1}
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = pm.get_generator(f"http!m,api_base=http://127.0.0.1:{port}/v1")
    with pytest.raises(Unavailable):
        down.chat_sync("hello")
    with pytest.raises(UsageError, match="lacks role or content"):
        down.chat_sync([{"text": "hello"}])


def test_load_and_unload_exist_on_every_generator_and_are_no_ops_for_remote_ones(
        server: TestServer) -> None:
    before = server.stats.total_completed
    for ident in (f"http!test-model,api_base={server.url}", "openai!gpt-4o-mini",
                  "anthropic!claude-test,max_tokens=5", "ollama!llama3.1"):
        generator = pm.get_generator(ident)
        generator.load()
        generator.unload()
    assert server.stats.total_completed == before


@pytest.mark.local
def test_a_local_engine_loads_once_for_one_off_calls_until_unloaded() -> None:
    generator = pm.get_generator("smollm2,max_tokens=8,temperature=0")
    first = generator.complete_sync("The capital of France is")
    assert first.text and generator.loaded  # kept loaded between calls
    assert generator.complete_sync("The capital of France is").text == first.text
    generator.unload()
    assert not generator.loaded


def test_a_key_set_as_an_attribute_is_sent_and_never_shown(
        make_server: Callable[..., TestServer]) -> None:
    server = make_server(record_requests=True)
    generator = pm.get_generator(f"openai!gpt-4o-mini,api_base={server.url}")
    generator.api_key = "sk-attributeKey0123456789"  # the seed's way
    assert generator.chat_sync("hello").text
    assert server.requests[0].headers["Authorization"] == "Bearer sk-attributeKey0123456789"
    shown = repr(generator) + generator.to_identifier()
    assert "sk-attributeKey" not in shown and generator.to_identifier().endswith("api_key=***")
    generator.api_key = None  # back to the environment's
    with pytest.raises(MissingKeyError):
        generator.chat_sync("hello")
