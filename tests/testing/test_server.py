"""The test server, spoken to over real HTTP with aiohttp, as a client would."""

from __future__ import annotations

import asyncio
import errno
import json
import math
import time
from collections import Counter
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDictProxy

import promptmill.testing
from promptmill.testing import (
    Faults,
    RateLimits,
    TestServer,
    expected_answers,
    format_duration,
    request_key,
    serve_in_process,
)

CHAT = "/chat/completions"
COMPLETIONS = "/completions"


def chat(content: str = "What is the capital of France?", **params: Any) -> dict[str, Any]:
    """A chat request body with one user message."""
    return {"model": "test-model", "messages": [{"role": "user", "content": content}], **params}


async def post(url: str, body: Any, *, timeout: float = 10.0,
               session: aiohttp.ClientSession | None = None
               ) -> tuple[int, Any, CIMultiDictProxy[str]]:
    """POST ``body`` (JSON, or raw bytes) and return (status, parsed JSON, headers)."""
    kwargs: dict[str, Any] = {"data": body} if isinstance(body, bytes) else {"json": body}
    if session is None:
        async with aiohttp.ClientSession() as own:
            return await post(url, body, timeout=timeout, session=own)
    async with session.post(url, timeout=aiohttp.ClientTimeout(total=timeout),
                            **kwargs) as response:
        return response.status, await response.json(), response.headers


async def answer(server: TestServer, body: dict[str, Any], path: str = CHAT) -> dict[str, Any]:
    """The 200 response body for ``body``."""
    status, data, _ = await post(server.url + path, body)
    assert status == 200, data
    assert isinstance(data, dict)
    return data


def texts(response: dict[str, Any]) -> list[str]:
    """The text of every choice of a chat or text completion."""
    return [c["message"]["content"] if "message" in c else c["text"]
            for c in response["choices"]]


def test_public_names_are_sorted_and_importable() -> None:
    assert promptmill.testing.__all__ == sorted(promptmill.testing.__all__)
    for name in promptmill.testing.__all__:
        assert getattr(promptmill.testing, name) is not None


# -- answers ------------------------------------------------------------------------------


async def test_chat_response_has_openai_shape(server: TestServer) -> None:
    data = await answer(server, chat())
    assert data["object"] == "chat.completion"
    assert data["id"].startswith("chatcmpl-")
    assert data["model"] == "test-model"
    assert isinstance(data["created"], int)
    [choice] = data["choices"]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] == "stop"
    assert choice["logprobs"] is None
    assert set(data["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}


async def test_completion_response_has_openai_shape(server: TestServer) -> None:
    data = await answer(server, {"model": "m", "prompt": "Once upon a time"}, COMPLETIONS)
    assert data["object"] == "text_completion"
    assert data["id"].startswith("cmpl-")
    [choice] = data["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert "Once upon a time" in choice["text"]


async def test_answer_is_deterministic_and_echoes_the_last_user_message(
        server: TestServer, make_server: Any) -> None:
    body = {"model": "m", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "Row 17: what is the boiling point of water?"},
    ]}
    first = texts(await answer(server, body))
    assert texts(await answer(server, body)) == first
    # A fresh server (new process state) gives the same text: nothing depends on hash().
    assert texts(await answer(make_server(), body)) == first
    assert "Row 17: what is the boiling point of water?" in first[0]


@pytest.mark.parametrize("change", [
    {"model": "other-model"}, {"seed": 7}, {"temperature": 0.0},
    {"messages": [{"role": "user", "content": "What is the capital of Spain?"}]},
    {"messages": [{"role": "system", "content": "Be terse."},
                  {"role": "user", "content": "What is the capital of France?"}]},
])
async def test_answer_depends_on_model_seed_temperature_and_messages(
        server: TestServer, change: dict[str, Any]) -> None:
    base = texts(await answer(server, chat()))
    assert texts(await answer(server, {**chat(), **change})) != base


async def test_unset_temperature_answers_like_openai_default(server: TestServer) -> None:
    assert texts(await answer(server, chat())) == texts(await answer(server, chat(temperature=1)))


async def test_n_gives_n_different_choices(server: TestServer) -> None:
    data = await answer(server, chat(n=4, max_tokens=3))
    assert [c["index"] for c in data["choices"]] == [0, 1, 2, 3]
    assert len(set(texts(data))) == 4
    # Choice i of n=4 is the same text as choice i of n=2.
    assert texts(await answer(server, chat(n=2, max_tokens=3))) == texts(data)[:2]


async def test_completions_with_several_prompts_answer_each_in_order(server: TestServer) -> None:
    data = await answer(server, {"model": "m", "prompt": ["alpha one", "beta two"], "n": 2},
                        COMPLETIONS)
    out = texts(data)
    assert [c["index"] for c in data["choices"]] == [0, 1, 2, 3]
    assert all("alpha one" in t for t in out[:2]) and all("beta two" in t for t in out[2:])
    assert data["usage"]["prompt_tokens"] == 4


# Answers written out in full: the answer function is a seeded contract (users' own tests
# compare against these texts), so a change to any of them must show up here.
GOLDEN = [
    (CHAT, chat(), ["Flint kelp dune. You said: What is the capital of France?"], (6, 11)),
    (CHAT, chat(seed=7, temperature=0.0),
     ["Indigo fjord quill. You said: What is the capital of France?"], (6, 11)),
    (CHAT, chat("row 3", n=3, max_tokens=4),
     ["Fern walnut xenon. You", "Zinc echo canyon. You", "Kestrel orchid zinc. You"], (2, 12)),
    (CHAT, chat("row 4", stop="You", seed=9), ["Lark reef cobalt. "], (2, 4)),
    # echo: the prompt, then the completion right after it (as OpenAI joins them).
    (COMPLETIONS, {"model": "m", "prompt": ["a b", "c"], "n": 2, "echo": True},
     ["a bElm cobalt kestrel. You said: a b", "a bHazel lumen yonder. You said: a b",
      "cSierra garnet yonder. You said: c", "cOnyx quill thistle. You said: c"], (3, 26)),
]


@pytest.mark.parametrize(("path", "body", "expected", "usage"), GOLDEN)
async def test_answers_are_the_documented_texts(
        server: TestServer, path: str, body: dict[str, Any], expected: list[str],
        usage: tuple[int, int]) -> None:
    data = await answer(server, body, path)
    assert texts(data) == expected
    assert (data["usage"]["prompt_tokens"], data["usage"]["completion_tokens"]) == usage
    # expected_answers, for users' own tests, predicts the same texts without a server.
    assert expected_answers(body) == expected


def test_expected_answers_rejects_what_the_server_rejects() -> None:
    with pytest.raises(ValueError, match="messages"):
        expected_answers({"model": "m", "messages": []})


async def test_stop_cuts_the_answer_before_the_stop_sequence(server: TestServer) -> None:
    [full] = texts(await answer(server, chat()))
    data = await answer(server, chat(stop=["You said", "never-there"]))
    [choice] = data["choices"]
    assert choice["message"]["content"] == full[: full.index("You said")]
    assert choice["finish_reason"] == "stop"


async def test_max_tokens_truncates_and_reports_length(server: TestServer) -> None:
    data = await answer(server, chat(max_tokens=2, n=2))
    for choice in data["choices"]:
        assert len(choice["message"]["content"].split()) == 2
        assert choice["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 4
    # max_completion_tokens, OpenAI's newer name, does the same.
    data = await answer(server, chat(max_completion_tokens=1))
    assert len(texts(data)[0].split()) == 1


async def test_usage_counts_words_of_all_messages_and_of_the_answers(server: TestServer) -> None:
    body = {"model": "m", "n": 3, "messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": [{"type": "text", "text": "Name three rivers"},
                                     {"type": "image_url", "image_url": {"url": "x"}}]},
    ]}
    data = await answer(server, body)
    usage = data["usage"]
    assert usage["prompt_tokens"] == 3 + 3
    assert usage["completion_tokens"] == sum(len(t.split()) for t in texts(data))
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_chat_logprobs_shape(server: TestServer) -> None:
    data = await answer(server, chat(logprobs=True, top_logprobs=3, max_tokens=5))
    [choice] = data["choices"]
    content = choice["logprobs"]["content"]
    assert "".join(entry["token"] for entry in content) == choice["message"]["content"]
    assert len(content) == 5
    for entry in content:
        assert entry["logprob"] <= 0
        assert entry["bytes"] == list(entry["token"].encode())
        top = entry["top_logprobs"]
        assert len(top) == 3 and len({t["token"] for t in top}) == 3
        assert top[0]["token"] == entry["token"] and top[0]["logprob"] == entry["logprob"]
        assert [t["logprob"] for t in top] == sorted((t["logprob"] for t in top), reverse=True)
        assert sum(math.exp(t["logprob"]) for t in top) <= 1
        assert all(t["bytes"] == list(t["token"].encode()) for t in top)
    again = await answer(server, chat(logprobs=True, top_logprobs=3, max_tokens=5))
    assert again["choices"][0]["logprobs"] == choice["logprobs"]
    # Asking for more alternatives does not change the tokens' own logprobs.
    more = await answer(server, chat(logprobs=True, top_logprobs=6, max_tokens=5))
    assert [e["logprob"] for e in more["choices"][0]["logprobs"]["content"]] == [
        e["logprob"] for e in content]
    plain = await answer(server, chat(logprobs=True))
    assert all(e["top_logprobs"] == [] for e in plain["choices"][0]["logprobs"]["content"])


async def test_completion_logprobs_shape(server: TestServer) -> None:
    data = await answer(server, {"model": "m", "prompt": "Say hi", "logprobs": 2,
                                 "max_tokens": 4}, COMPLETIONS)
    [choice] = data["choices"]
    logprobs = choice["logprobs"]
    tokens = logprobs["tokens"]
    assert "".join(tokens) == choice["text"] and len(tokens) == 4
    assert len(logprobs["token_logprobs"]) == len(logprobs["top_logprobs"]) == 4
    for token, logprob, top in zip(tokens, logprobs["token_logprobs"], logprobs["top_logprobs"],
                                   strict=True):
        assert len(top) == 2 and top[token] == logprob <= 0
    assert logprobs["text_offset"] == [sum(len(t) for t in tokens[:i]) for i in range(4)]


async def test_completion_echo_prepends_the_prompt(server: TestServer) -> None:
    body = {"model": "m", "prompt": "Say hi", "logprobs": 1, "echo": True, "max_tokens": 2}
    [choice] = (await answer(server, body, COMPLETIONS))["choices"]
    assert choice["text"].startswith("Say hi")
    logprobs = choice["logprobs"]
    assert logprobs["tokens"][:2] == ["Say", " hi"]
    assert logprobs["token_logprobs"][0] is None and logprobs["top_logprobs"][0] is None
    assert "".join(logprobs["tokens"]) == choice["text"]


async def test_responder_scripts_answers_then_stop_and_max_tokens_apply(
        make_server: Any) -> None:
    seen: list[dict[str, Any]] = []

    def responder(body: dict[str, Any]) -> list[str]:
        seen.append(body)
        return [f"The answer is ({chr(65 + i)}). Done" for i in range(body.get("n", 1))]

    server = make_server(responder=responder)
    data = await answer(server, chat("Pick one", n=2, stop=". Done"))
    assert texts(data) == ["The answer is (A)", "The answer is (B)"]
    assert seen[0]["messages"][0]["content"] == "Pick one"
    data = await answer(server, chat(max_tokens=2))
    assert texts(data) == ["The answer"]
    assert data["choices"][0]["finish_reason"] == "length"


async def test_a_failing_responder_gives_a_500_that_names_the_error(make_server: Any) -> None:
    server = make_server(responder=lambda body: ["only one"])
    status, data, _ = await post(server.url + CHAT, chat(n=2))
    assert status == 500
    assert data["error"]["type"] == "server_error"
    assert "TypeError" in data["error"]["message"]


@pytest.mark.parametrize(("path", "body", "param"), [
    (CHAT, b"{not json", None),
    (CHAT, b"[1, 2]", None),
    (CHAT, {"model": "m"}, "messages"),
    (CHAT, {"model": "m", "messages": []}, "messages"),
    (CHAT, {"messages": [{"role": "user", "content": "x"}]}, "model"),
    (CHAT, chat(n=0), "n"),
    (CHAT, chat(n="2"), "n"),
    (CHAT, chat(max_tokens=0), "max_tokens"),
    (CHAT, chat(temperature=3), "temperature"),
    (CHAT, chat(top_logprobs=2), "top_logprobs"),
    (CHAT, chat(stream=True), "stream"),
    (CHAT, {"model": "m", "messages": [{"content": "no role"}]}, "messages[0]"),
    (COMPLETIONS, {"model": "m"}, "prompt"),
    (COMPLETIONS, {"model": "m", "prompt": [1, 2, 3]}, "prompt"),
    (COMPLETIONS, {"model": "m", "prompt": "x", "logprobs": True}, "logprobs"),
])
async def test_bad_request_bodies_get_400_with_openai_error(
        server: TestServer, path: str, body: Any, param: str | None) -> None:
    status, data, _ = await post(server.url + path, body)
    assert status == 400
    assert set(data["error"]) == {"message", "type", "param", "code"}
    assert data["error"]["type"] == "invalid_request_error"
    assert data["error"]["param"] == param
    assert data["error"]["message"]


async def test_models_health_and_unknown_paths(make_server: Any) -> None:
    server = make_server(models=["a-model", "b-model"])
    async with aiohttp.ClientSession() as session:
        async with session.get(server.url + "/models") as response:
            models = await response.json()
        assert [m["id"] for m in models["data"]] == ["a-model", "b-model"]
        assert models["object"] == "list"
        async with session.get(server.url.removesuffix("/v1") + "/health") as response:
            assert response.status == 200
        async with session.post(server.url + "/nope") as response:
            assert response.status == 404
            assert (await response.json())["error"]["message"] == "Invalid URL (POST /v1/nope)"
    # Any model name is answered, listed or not.
    assert (await answer(server, {**chat(), "model": "unlisted"}))["model"] == "unlisted"


# -- rate limits --------------------------------------------------------------------------


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (0.02, "20ms"), (0.0004, "1ms"), (1, "1s"), (1.5, "1.5s"), (59.466, "59.466s"),
    (360, "6m0s"), (61.25, "1m1.25s"), (3600, "1h0m0s"),
])
def test_durations_are_formatted_like_openai(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


async def test_a_burst_over_the_request_limit_gets_429_with_retry_after(
        make_server: Any) -> None:
    server = make_server(limits=RateLimits(requests=5, tokens=10_000, window=60))
    async with aiohttp.ClientSession() as session:
        results = [await post(server.url + CHAT, chat(), session=session) for _ in range(7)]
    statuses = [status for status, _, _ in results]
    assert statuses == [200] * 5 + [429] * 2
    remaining = [int(headers["x-ratelimit-remaining-requests"]) for _, _, headers in results]
    assert remaining[:5] == [4, 3, 2, 1, 0]
    _, error, headers = results[5]
    assert error["error"]["type"] == "requests"
    assert error["error"]["code"] == "rate_limit_exceeded"
    # One request comes back every 60/5 = 12 seconds.
    assert 11 <= int(headers["Retry-After"]) <= 12
    assert 11_000 <= int(headers["retry-after-ms"]) <= 12_000
    assert headers["x-ratelimit-limit-requests"] == "5"
    assert headers["x-ratelimit-limit-tokens"] == "10000"
    assert headers["x-ratelimit-reset-requests"].endswith("s")
    assert server.stats.rate_limited == Counter(requests=2)
    assert server.stats.total_completed == 5


async def test_token_limit_counts_prompt_plus_max_tokens_times_n(make_server: Any) -> None:
    server = make_server(limits=RateLimits(tokens=100, window=3600))
    body = chat("one two three", max_tokens=20, n=2)  # 3 + 20 * 2 = 43 tokens
    async with aiohttp.ClientSession() as session:
        first = await post(server.url + CHAT, body, session=session)
        second = await post(server.url + CHAT, body, session=session)
        third = await post(server.url + CHAT, body, session=session)
    assert first[2]["x-ratelimit-remaining-tokens"] == "57"
    assert second[2]["x-ratelimit-remaining-tokens"] == "14"
    assert third[0] == 429
    assert third[1]["error"]["type"] == "tokens"
    assert "x-ratelimit-limit-requests" not in third[2]  # no request limit was set


async def test_a_request_larger_than_the_token_limit_is_refused(make_server: Any) -> None:
    server = make_server(limits=RateLimits(tokens=10, window=1))
    status, data, _ = await post(server.url + CHAT, chat(max_tokens=50))
    assert status == 429
    assert "Request too large" in data["error"]["message"]


async def test_a_refused_client_that_waits_retry_after_ms_gets_through(make_server: Any) -> None:
    server = make_server(limits=RateLimits(requests=2, window=1.0))
    async with aiohttp.ClientSession() as session:
        for _ in range(2):
            assert (await post(server.url + CHAT, chat(), session=session))[0] == 200
        status, _, headers = await post(server.url + CHAT, chat(), session=session)
        assert status == 429
        await asyncio.sleep(int(headers["retry-after-ms"]) / 1000)
        assert (await post(server.url + CHAT, chat(), session=session))[0] == 200


async def test_requests_paced_at_exactly_the_limit_are_never_refused(make_server: Any) -> None:
    limit, window = 20, 1.0
    server = make_server(limits=RateLimits(requests=limit, window=window))
    interval = window / limit
    async with aiohttp.ClientSession() as session:
        start = time.monotonic()
        for i in range(2 * limit):
            await asyncio.sleep(max(0.0, start + i * interval - time.monotonic()))
            status, _, _ = await post(server.url + CHAT, chat(), session=session)
            assert status == 200, f"request {i} refused"
        # Twice the rate, and the limit does refuse.
        results = await asyncio.gather(*(post(server.url + CHAT, chat(), session=session)
                                         for _ in range(limit + 5)))
    assert 429 in [status for status, _, _ in results]


async def test_limit_headers_can_be_hidden(make_server: Any) -> None:
    server = make_server(limits=RateLimits(requests=1, window=60), send_limit_headers=False)
    async with aiohttp.ClientSession() as session:
        ok = await post(server.url + CHAT, chat(), session=session)
        refused = await post(server.url + CHAT, chat(), session=session)
    assert ok[0] == 200 and refused[0] == 429
    for _, _, headers in (ok, refused):
        assert not [name for name in headers if name.lower().startswith("x-ratelimit")]
    assert "Retry-After" in refused[2]


async def test_models_with_limits_of_their_own_are_limited_apart(make_server: Any) -> None:
    server = make_server(limits=RateLimits(requests=100, window=60),
                         model_limits={"small": RateLimits(requests=2, window=60)})
    async with aiohttp.ClientSession() as session:
        small = [await post(server.url + CHAT, chat(model="small"), session=session)
                 for _ in range(3)]
        other = [await post(server.url + CHAT, chat(), session=session) for _ in range(3)]
    assert [status for status, _, _ in small] == [200, 200, 429]
    assert "Rate limit reached for small on requests per 1m0s: Limit 2" in (
        small[2][1]["error"]["message"])
    assert [headers["x-ratelimit-limit-requests"] for _, _, headers in small[:2]] == ["2", "2"]
    # Other models share the server's limits, untouched by the small model's requests.
    assert [status for status, _, _ in other] == [200] * 3
    assert [headers["x-ratelimit-remaining-requests"] for _, _, headers in other] == [
        "99", "98", "97"]


# -- faults -------------------------------------------------------------------------------


async def outcome(session: aiohttp.ClientSession, url: str, body: dict[str, Any],
                  timeout: float) -> str:
    """What a client sees: ``ok``, an error status, ``drop``, ``reset``, ``hang``, ``malformed``."""
    try:
        async with session.post(url + CHAT, json=body,
                                timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            raw = await response.read()
            if response.status != 200:
                assert response.status in (429, 500, 502, 503, 504)
                if response.status == 429:
                    assert "Retry-After" in response.headers
                if response.status in (502, 504):  # a proxy's page, not OpenAI's JSON
                    assert response.content_type == "text/html"
                    assert f"<h1>{response.status} " in raw.decode()
                else:
                    assert json.loads(raw)["error"]["message"]
                return str(response.status)
            try:
                json.loads(raw)
            except ValueError:
                return "malformed"
            return "ok"
    except aiohttp.ServerDisconnectedError:
        return "drop"
    except aiohttp.ClientOSError as exc:
        assert exc.errno == errno.ECONNRESET, exc
        return "reset"
    except TimeoutError:
        return "hang"


FAULT_OUTCOMES = {"rate_limit": "429", "server_error": "500", "drop": "drop", "hang": "hang",
                  "malformed": "malformed", "bad_gateway": "502", "service_unavailable": "503",
                  "gateway_timeout": "504", "reset": "reset"}


@pytest.mark.parametrize("kind", [*FAULT_OUTCOMES, "slow"])
async def test_each_fault_reaches_the_client_at_about_its_probability(
        make_server: Any, kind: str) -> None:
    total, probability = 120, 0.25
    server = make_server(faults=Faults(**{kind: probability}, seed=3, slow_seconds=0.3))
    async with aiohttp.ClientSession() as session:
        started = time.monotonic()

        async def timed(i: int) -> tuple[str, float]:
            # 3 s: far above a slow answer's 0.3 s, so that 120 answers at once on a loaded
            # 2-core machine are not taken for hangs (1 s was, now and then).
            result = await outcome(session, server.url, chat(f"row {i}"), timeout=3.0)
            return result, time.monotonic() - started

        results = await asyncio.gather(*(timed(i) for i in range(total)))
    seen = Counter(result for result, _ in results)
    injected = server.stats.faults[kind]
    assert 0.15 * total <= injected <= 0.35 * total
    if kind == "slow":
        assert seen == {"ok": total}
        assert sum(elapsed >= 0.3 for _, elapsed in results) >= injected
        assert server.stats.total_completed == total
    else:
        assert seen == {"ok": total - injected, FAULT_OUTCOMES[kind]: injected}
        assert server.stats.total_completed == total - injected


async def test_the_same_seed_injects_the_same_faults(make_server: Any) -> None:
    faults = Faults(rate_limit=0.2, server_error=0.2, drop=0.2, malformed=0.2, seed=11)
    runs = []
    for _ in range(2):
        server = make_server(faults=faults)
        async with aiohttp.ClientSession() as session:
            runs.append([await outcome(session, server.url, chat(), 5.0) for _ in range(40)])
    assert runs[0] == runs[1]
    assert set(runs[0]) == {"ok", "429", "500", "drop", "malformed"}


async def test_latency_delays_every_response(make_server: Any) -> None:
    server = make_server(latency=0.2)
    started = time.monotonic()
    await answer(server, chat())
    assert time.monotonic() - started >= 0.2


async def test_closing_frees_hanging_requests_and_leaves_no_tasks() -> None:
    async with TestServer(faults=Faults(hang=1.0)) as server, aiohttp.ClientSession() as session:
        pending = asyncio.ensure_future(outcome(session, server.url, chat(), timeout=30))
        while not server.stats.faults["hang"]:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        await server.close()
        assert time.monotonic() - started < 1.0
        assert await pending == "drop"
    assert asyncio.all_tasks() == {asyncio.current_task()}


# -- outages ------------------------------------------------------------------------------


async def test_an_outage_refuses_connections_until_it_ends(make_server: Any) -> None:
    server = make_server()
    url = server.url
    async with aiohttp.ClientSession() as session:
        assert (await post(url + CHAT, chat(), session=session))[0] == 200
        server.set_outage(True)
        assert server.outage
        # The pooled keep-alive connection was closed, and no new one is accepted.
        for _ in range(2):
            with pytest.raises(aiohttp.ClientConnectionError):
                await post(url + CHAT, chat(), session=session)
        with pytest.raises(aiohttp.ClientConnectorError):
            await post(url + CHAT, chat())
        server.set_outage(False)
        assert server.url == url
        assert (await post(url + CHAT, chat(), session=session))[0] == 200


async def test_an_outage_toggled_quickly_ends_serving(make_server: Any) -> None:
    server = make_server()
    for _ in range(3):
        server.set_outage(True)
        server.set_outage(False)
    assert (await post(server.url + CHAT, chat()))[0] == 200


async def test_a_scheduled_outage_starts_and_ends_by_itself(make_server: Any) -> None:
    server = make_server()
    server.schedule_outage(after=0.3, duration=0.6)
    assert (await post(server.url + CHAT, chat()))[0] == 200
    await asyncio.sleep(0.45)
    with pytest.raises(aiohttp.ClientConnectorError):
        await post(server.url + CHAT, chat())
    await asyncio.sleep(0.6)
    assert (await post(server.url + CHAT, chat()))[0] == 200


# -- counters -----------------------------------------------------------------------------


async def test_stats_count_answered_and_faulted_requests_apart(make_server: Any) -> None:
    server = make_server(faults=Faults(server_error=0.5, seed=5))
    bodies = [chat(f"row {i}") for i in range(20)]
    async with aiohttp.ClientSession() as session:
        # Retry each body until it is answered, as a client would.
        refused = Counter[str]()
        for body in bodies:
            while (await post(server.url + CHAT, body, session=session))[0] != 200:
                refused[request_key(body)] += 1
        await post(server.url + CHAT, {"model": "m"}, session=session)
    stats = server.stats
    assert all(stats.times_answered(body) == 1 for body in bodies)
    assert stats.completed_by_prompt[request_key(bodies[0])] == 1
    assert stats.times_answered(chat("never sent")) == 0
    failures = stats.faults["server_error"]
    assert failures > 0
    # Which request each fault went to, as the client saw it.
    assert {key: dict(faults) for key, faults in stats.faults_by_prompt.items()} == {
        key: {"server_error": count} for key, count in refused.items()}
    assert stats.received["/v1/chat/completions"] == 20 + failures + 1
    assert stats.statuses == {200: 20, 500: failures, 400: 1}
    assert stats.completed == {"/v1/chat/completions": 20}
    assert stats.prompt_tokens == 2 * 20
    assert stats.total_tokens == stats.prompt_tokens + stats.completion_tokens > 40
    stats.reset()
    assert stats.total_completed == 0 and not stats.received and not stats.faults_by_prompt


def test_request_key_ignores_key_order_and_volatile_fields() -> None:
    body = chat(seed=1)
    assert request_key(body) == request_key(dict(reversed(list(body.items()))))
    assert request_key(body) == request_key({**body, "user": "someone"})
    assert request_key(body) != request_key({**body, "seed": 2})


# -- other ways to run it -----------------------------------------------------------------


async def test_a_server_in_another_process_answers_the_same(server: TestServer) -> None:
    body = chat("cross process", n=2)
    with serve_in_process(latency=0.0, limits=RateLimits(requests=100, window=60)) as other:
        status, data, headers = await post(other.url + CHAT, body)
        assert status == 200
        assert headers["x-ratelimit-limit-requests"] == "100"
        assert texts(data) == texts(await answer(server, body))
        stats = other.fetch_stats()
        assert stats["completed"] == {"/v1/chat/completions": 1}
        assert stats["completed_by_prompt"] == {request_key(body): 1}
        process = other.process
    # SIGTERM ends it cleanly.
    assert process.returncode == 0


def test_a_responder_cannot_go_to_another_process() -> None:
    with pytest.raises(ValueError, match="serve_in_thread"), serve_in_process(
            responder=lambda body: "x"):
        pass


def test_bad_options_fail_at_construction() -> None:
    with pytest.raises(ValueError):
        Faults(drop=0.7, hang=0.7)
    with pytest.raises(ValueError):
        RateLimits(requests=0)
    with pytest.raises(ValueError):
        TestServer(latency=-1)
