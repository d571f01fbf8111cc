"""The OpenAI-compatible backend over real HTTP: shapes, n, logprobs, usage, error classes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from promptmill import get_generator
from promptmill.errors import FatalRequestError, JobFatalError, MissingKeyError, RateLimited
from promptmill.generators.base import GenerationRequest, GenerationResult, Generator
from promptmill.generators.openai_ import parse_duration
from promptmill.params import make_params
from promptmill.testing import RateLimits, TestServer


def chat(text: str, **params: object) -> GenerationRequest:
    return GenerationRequest("1", make_params(params), messages=[{"role": "user", "content": text}])


@contextlib.asynccontextmanager
async def started(url: str) -> AsyncIterator[Generator]:
    """An HTTP generator for ``url``, started and closed around the block."""
    generator = get_generator(f"http!test-model,api_base={url}")
    await generator.start()
    try:
        yield generator
    finally:
        await generator.close()


async def generate_one(url: str, request: GenerationRequest) -> GenerationResult:
    async with started(url) as generator:
        return (await generator.generate([request]))[0]


async def test_chat_with_n_and_logprobs(server: TestServer) -> None:
    result = await generate_one(server.url, chat("hi", n=2, logprobs=True, top_logprobs=2))
    assert len(result.responses) == 2
    assert result.responses[0].text != result.responses[1].text
    assert result.responses[0].logprobs and "top_logprobs" in result.responses[0].logprobs[0]
    assert result.usage and result.usage.completion_tokens > 0
    assert result.rate_limit is None or result.rate_limit.remaining_requests is None


async def test_text_completion(server: TestServer) -> None:
    request = GenerationRequest("1", make_params({"max_tokens": 3}), prompt="Once upon")
    result = await generate_one(server.url, request)
    assert result.responses[0].finish_reason == "length"


async def test_rate_limit_headers_are_read_and_429_classified(make_server) -> None:
    server = make_server(limits=RateLimits(requests=2, window=30.0))
    async with started(server.url) as generator:
        first = (await generator.generate([chat("a")]))[0]
        assert first.rate_limit and first.rate_limit.remaining_requests == 1
        await generator.generate([chat("b")])
        with pytest.raises(RateLimited) as refused:
            await generator.generate([chat("c")])
        assert refused.value.retry_after and refused.value.retry_after > 0


async def test_unknown_endpoint_is_fatal_for_the_job(server: TestServer) -> None:
    async with started(f"{server.url}/nothing-here") as generator:
        with pytest.raises(JobFatalError, match="404"):
            await generator.generate([chat("x")])


async def test_bad_request_is_fatal_for_that_request(server: TestServer) -> None:
    async with started(server.url) as generator:
        with pytest.raises(FatalRequestError):
            await generator.generate([GenerationRequest("1", make_params({}), messages=[])])


def test_missing_key_says_where_to_put_it(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MissingKeyError, match="OPENAI_API_KEY"):
        get_generator("openai!gpt-4o-mini").check_ready()
    (tmp_path / ".env").write_text("OPENAI_API_KEY='sk-from-dotenv'\n")
    assert get_generator("openai!gpt-4o-mini").api_key() == "sk-from-dotenv"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1.5s", 1.5), ("2", 2.0), ("1h2m", 3720.0)],
)
def test_openai_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_a_key_with_a_line_break_stops_the_job_before_sending_and_is_never_shown(
        server: TestServer, tmp_path, promptmill_cli) -> None:
    """A key pasted with its newline (or a header smuggled in after one) would split the
    request's head: the job stops before its first request and says which variable holds it."""
    server.stats.reset()
    source = tmp_path / "in.jsonl"
    source.write_text('{"prompt": "hi"}\n')
    done = promptmill_cli("run", source, "-m", f"http!test-model,api_base={server.url},"
                          "api_key_env=MY_SERVER_KEY", "-o", tmp_path / "out.jsonl",
                          env={"MY_SERVER_KEY": "sk-secret-42\r\nX-Injected: 1"})
    assert done.returncode != 0
    assert "MY_SERVER_KEY" in done.stderr and "line break" in done.stderr
    assert "sk-secret-42" not in done.stderr + done.stdout
    assert sum(server.stats.received.values()) == 0
