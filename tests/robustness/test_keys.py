"""Keys for every provider: where each is read from, what a missing or refused one says.

Each provider's usual variable, a ``.env`` file, ``api_key_env=NAME`` on any identifier; a
missing key is one line naming the variable, before any request; a server that refuses a
job which sent no key (an ``http!`` job, with the user's key only in ``OPENAI_API_KEY``,
which ``http!`` rightly never sends elsewhere) says how to give one. No key is ever printed.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web
from robustness_helpers import clean_env, serve_app, write_jsonl

from promptmill.testing import TestServer

Run = Callable[..., subprocess.CompletedProcess[str]]
SECRET = "sk-pmKeysCanary4Xq9Lm2Zr7Tw"


def one_line(result: subprocess.CompletedProcess[str], *parts: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    for part in parts:
        assert part in lines[0], lines[0]


@pytest.mark.parametrize(("model", "variable"), [
    ("anthropic!claude-sonnet-4-5,max_tokens=10", "ANTHROPIC_API_KEY"),
    ("litellm!gemini/gemini-2.0-flash", "GEMINI_API_KEY"),
    ("litellm!groq/llama-3.1-8b-instant", "GROQ_API_KEY"),
    ("litellm!bedrock/anthropic.claude-3-haiku", "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
    ("http!m,api_base=http://127.0.0.1:9/v1,api_key_env=MY_GATEWAY_KEY", "MY_GATEWAY_KEY"),
    ("openai!gpt-4o-mini,api_key_env=TEAM_KEY", "TEAM_KEY"),
])
def test_a_missing_key_is_one_line_naming_the_variable(model: str, variable: str,
                                                       tmp_path: Path, promptmill: Run) -> None:
    write_jsonl(tmp_path / "q.jsonl", [{"prompt": "hi"}])
    env = {k: v for k, v in clean_env().items()
           if not k.startswith(("ANTHROPIC", "GEMINI", "GOOGLE", "GROQ", "AWS", "MY_", "TEAM"))}
    result = promptmill("run", "q.jsonl", "-m", model, env=env)
    one_line(result, variable, ".env")
    assert not list(tmp_path.glob("*.promptmill.db"))  # refused before planning anything


def test_keys_from_dotenv_and_api_key_env_reach_the_server_and_nowhere_else(
        tmp_path: Path, promptmill: Run, make_server: Callable[..., TestServer]) -> None:
    seen: list[str] = []

    async def backend(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get("x-api-key") or request.headers.get("Authorization", ""))
        body = await request.json()
        return web.json_response({
            "id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
            "content": [{"type": "text", "text": "fine"}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 3, "output_tokens": 1}})

    write_jsonl(tmp_path / "q.jsonl", [{"prompt": "hi"}, {"prompt": "ho"}])
    (tmp_path / ".env").write_text(f"export ANTHROPIC_API_KEY='{SECRET}'\nOTHER={SECRET}2\n")
    env = {k: v for k, v in clean_env().items() if not k.startswith("ANTHROPIC")}
    with serve_app(backend) as url:
        for option, key in (("", SECRET), (",api_key_env=OTHER", SECRET + "2")):
            seen.clear()
            output = tmp_path / f"out{len(option)}.jsonl"
            result = promptmill("run", "q.jsonl", "-m",
                                f"anthropic!claude-x,api_base={url},max_tokens=5{option}",
                                "-o", output, "-vv", env=env)
            assert result.returncode == 0, result.stderr
            assert seen == [key, key]
            for path in tmp_path.glob("out*"):
                if path.is_file():
                    assert SECRET.encode() not in path.read_bytes(), path
            assert SECRET not in result.stderr + result.stdout


def test_a_server_refusing_a_job_that_sent_no_key_says_how_to_give_one(
        tmp_path: Path, promptmill: Run) -> None:
    async def wants_a_key(request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": {"message": "Missing bearer token"}}, status=401)

    write_jsonl(tmp_path / "q.jsonl", [{"prompt": "hi"}])
    # A new user's setup: the key is in OPENAI_API_KEY, which http! does not send elsewhere.
    env = clean_env(OPENAI_API_KEY=SECRET)
    with serve_app(wants_a_key) as url:
        result = promptmill("run", "q.jsonl", "-m", f"http!my-model,api_base={url}", env=env)
        assert result.returncode != 0
        assert "HTTP 401" in result.stderr and "api_key_env=NAME" in result.stderr, result.stderr
        assert "this job sent no key" in result.stderr
        # Given a key that the server refuses, the message names where that key came from.
        named = promptmill("run", "q.jsonl", "-m",
                           f"http!my-model,api_base={url},api_key_env=OPENAI_API_KEY",
                           "-o", "named.jsonl", env=env)
        assert "check the key in OPENAI_API_KEY" in named.stderr, named.stderr
    assert SECRET not in result.stderr + named.stderr
