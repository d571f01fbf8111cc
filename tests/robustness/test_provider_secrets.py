"""The keys of anthropic!, ollama!, litellm! and of a fleet's endpoints never leave the process.

Each provider runs a real job through the CLI against the test server playing its API, with
debug logging (``-vv``), injected 429s and 500s (so the retry and pause paths log), then
``status`` and ``export``; the key comes from the environment, a ``.env`` file, a variable
named by ``api_key_env=`` or the identifier itself. A fleet of ``anthropic!`` endpoints holds
one key each way, one endpoint being down (benched, probed: its identifier is logged), and a
backend that quotes the key back in Anthropic's error body fails some rows, so the quoted text
is what the store's error column, the export and ``status`` would carry. Then every file
under the job's folder (but ``.env``) and everything printed is searched for each key.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web
from robustness_helpers import clean_env, read_jsonl, serve_app, write_jsonl

from promptmill.testing import Faults, TestServer

Run = Callable[..., subprocess.CompletedProcess[str]]
KEYS = {
    "ANTHROPIC_API_KEY": "sk-ant-api03-pmProvCanary7Qx2Lw9Zr4Tv",
    "FLEET_SECOND_KEY": "sk-ant-api03-pmFleetSecond5Hd8Kq1Mz",
    "OPENAI_API_KEY": "sk-pmProvOpenAICanary3Wb6Yc0Nf",
    "OLLAMA_PROXY_KEY": "Zq7-opaque-pm-ollama-proxy-81kd",
}
INLINE = "sk-ant-api03-pmInlineCanary2Vb7Ne4Sj"
DOTENV = "sk-ant-api03-pmDotenvCanary6Rt3Gh8Pu"


def leaks(folder: Path, printed: list[str]) -> list[str]:
    """Where a key (whole, or its distinctive middle) shows up: files but the user's own
    (``.env``, the fleet file), printed output."""
    needles = [k for key in [*KEYS.values(), INLINE, DOTENV] for k in (key, key[14:-4])]
    found = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name not in (".env", "fleet.txt"):
            data = path.read_bytes()
            found += [f"{path.name}: {n!r}" for n in needles if n.encode() in data]
    for index, text in enumerate(printed):
        found += [f"output #{index}: {n!r}" for n in needles if n in text]
    return found


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


PROVIDERS = [
    pytest.param(lambda s: f"anthropic!claude-test,api_base={s.url},max_tokens=16", {},
                 id="anthropic-env"),
    pytest.param(lambda s: f"anthropic!claude-test,api_base={s.url},max_tokens=16,"
                           f"api_key={INLINE}", {}, id="anthropic-identifier"),
    pytest.param(lambda s: f"ollama!test-model,api_base={s.root},max_tokens=16", {},
                 id="ollama"),
    pytest.param(lambda s: f"litellm!openai/test-model,api_base={s.url},max_tokens=16",
                 {}, id="litellm-openai", marks=pytest.mark.litellm),
    pytest.param(lambda s: f"litellm!anthropic/claude-test,api_base={s.root},max_tokens=16,"
                           "api_key_env=FLEET_SECOND_KEY", {},
                 id="litellm-anthropic", marks=pytest.mark.litellm),
]


@pytest.mark.parametrize(("identifier", "extra"), PROVIDERS)
def test_no_provider_key_lands_in_any_file_or_log(
        identifier: Callable[[TestServer], str], extra: dict[str, str], tmp_path: Path,
        promptmill: Run, make_server: Callable[..., TestServer],
        request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("litellm"):
        pytest.importorskip("litellm")
    server = make_server(faults=Faults(rate_limit=0.1, server_error=0.1, retry_after=0.05,
                                       seed=3))
    write_jsonl(tmp_path / "q.jsonl", [{"id": i, "prompt": f"question {i}"} for i in range(30)])
    env = clean_env(**KEYS, **extra)
    printed: list[str] = []
    for args in (("run", "q.jsonl", "-m", identifier(server), "-o", "a.jsonl", "-vv"),
                 ("status", "a.jsonl"),
                 ("export", "a.jsonl", "--format", "csv"),
                 ("export", "a.jsonl", "--format", "parquet")):
        result = promptmill(*args, env=env)
        printed += [result.stdout, result.stderr]
        assert result.returncode == 0, result.stderr
    assert [row["status"] for row in read_jsonl(tmp_path / "a.jsonl")] == ["done"] * 30
    assert leaks(tmp_path, printed) == []


def test_a_fleet_keeps_every_endpoints_key_out_of_files_and_logs(
        tmp_path: Path, promptmill: Run, make_server: Callable[..., TestServer]) -> None:
    keys_seen: list[str] = []

    async def quoting(request: web.Request) -> web.StreamResponse:
        """Anthropic's Messages API that quotes the key back for prompts ending in 3."""
        key = request.headers.get("x-api-key", "")
        keys_seen.append(key)
        body = await request.json()
        prompt = body["messages"][-1]["content"]
        if isinstance(prompt, list):
            prompt = prompt[-1]["text"]
        if prompt.endswith("3"):
            return web.json_response({"type": "error", "error": {
                "type": "invalid_request_error",
                "message": f"prompt refused for key {key}"}}, status=400)
        return web.json_response({
            "id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
            "content": [{"type": "text", "text": "fine"}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 3, "output_tokens": 1}})

    limited = make_server(faults=Faults(rate_limit=0.15, retry_after=0.05, seed=5))
    (tmp_path / ".env").write_text(f"ANTHROPIC_API_KEY={DOTENV}\n")
    env = {k: v for k, v in clean_env(**KEYS).items() if k != "ANTHROPIC_API_KEY"}
    write_jsonl(tmp_path / "q.jsonl", [{"id": i, "prompt": f"question {i}"} for i in range(60)])
    printed: list[str] = []
    with serve_app(quoting) as url:
        fleet = [f"anthropic!claude-test,api_base={url}",  # the key from .env
                 f"anthropic!claude-test,api_base={url},api_key={INLINE},max_concurrency=4",
                 f"anthropic!claude-test,api_base={limited.url},api_key_env=FLEET_SECOND_KEY",
                 f"anthropic!claude-test,api_base=http://127.0.0.1:{closed_port()}/v1"]
        (tmp_path / "fleet.txt").write_text("# endpoints\n" + "\n".join(fleet) + "\n")
        for args in (("run", "q.jsonl", "--fleet", "fleet.txt", "--param", "max_tokens=8",
                      "-o", "a.jsonl", "-vv"),
                     ("run", "q.jsonl", "--fleet", "fleet.txt", "--param", "max_tokens=8",
                      "-o", "a.jsonl", "--retry-failed", "-vv"),
                     ("status", "a.jsonl"),
                     ("export", "a.jsonl", "--format", "arrow")):
            result = promptmill(*args, env=env)
            printed += [result.stdout, result.stderr]
    assert set(keys_seen) == {DOTENV, INLINE}  # each endpoint sent its own key, and only there
    out = read_jsonl(tmp_path / "a.jsonl")
    assert sorted(row["id"] for row in out) == list(range(60))
    failed = [row for row in out if row["status"] == "failed"]
    # Rows ending in 3 fail where the quoting backend answers them (not the other server).
    assert failed and {row["id"] for row in failed} <= {i for i in range(60) if i % 10 == 3}
    assert all("prompt refused for key" in row["error"] for row in failed)
    assert {row["endpoint"] for row in out if row["endpoint"]} >= {fleet[0], fleet[2]}
    assert leaks(tmp_path, printed) == []
