"""anthropic!, ollama! and litellm! (as an OpenAI-compatible and as an Anthropic endpoint),
each through the real CLI against the test server playing that API, over real HTTP.

For each: a job under the server's rate limit and injected 500s and 429s completes with every
row done once; a job killed (SIGKILL) midway and run again finishes with every row exactly
once and sends again nothing that was recorded. litellm! cases need the ``litellm`` tier.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from promptmill.testing import Faults, RateLimits, TestServer, done_requests, kill_when_done

ROWS = 60
KEYS = {"ANTHROPIC_API_KEY": "sk-ant-api03-promptmillTestKey0123456789"}

# name -> (identifier given the server, what the server must have received the job on)
PROVIDERS: dict[str, tuple[Callable[[TestServer], str], str]] = {
    "anthropic": (lambda s: f"anthropic!claude-test,api_base={s.url},max_tokens=24",
                  "/v1/messages"),
    "ollama": (lambda s: f"ollama!llama3.1,api_base={s.root},max_tokens=24,num_ctx=2048",
               "/api/chat"),
    "litellm-openai": (lambda s: f"litellm!openai/test-model,api_base={s.url},max_tokens=24",
                       "/v1/chat/completions"),
    "litellm-anthropic": (lambda s: f"litellm!anthropic/claude-test,api_base={s.root},"
                                    "max_tokens=24", "/v1/messages"),
}
CASES = [pytest.param(name, marks=[pytest.mark.litellm] if name.startswith("litellm") else [],
                      id=name) for name in PROVIDERS]


@pytest.fixture(autouse=True)
def _litellm_installed(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("litellm"):
        pytest.importorskip("litellm")


def write_input(folder: Path, rows: int = ROWS) -> Path:
    path = folder / "in.jsonl"
    path.write_text("".join(json.dumps({"id": i, "prompt": f"question number {i}"}) + "\n"
                            for i in range(rows)))
    return path


def cli(*args: Any, cwd: Path, env: dict[str, str] | None = None,
        background: bool = False) -> Any:
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("OPENAI", "ANTHROPIC", "OLLAMA"))}
    environ.update(KEYS)
    environ.update(env or {})
    argv = [sys.executable, "-m", "promptmill", *map(str, args)]
    if background:
        return subprocess.Popen(argv, cwd=cwd, env=environ, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    return subprocess.run(argv, cwd=cwd, env=environ, capture_output=True, text=True,
                          timeout=300)


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_every_row_once(output: Path, rows: int = ROWS) -> list[dict[str, Any]]:
    out = read_rows(output)
    assert [row["id"] for row in out] == list(range(rows))
    assert all(row["status"] == "done" and len(row["responses"]) == 1 for row in out)
    assert all(f"question number {row['id']}" in row["responses"][0]["text"] for row in out)
    return out


@pytest.mark.parametrize("name", CASES)
def test_a_job_under_limits_and_faults_finishes_every_row_once(
        name: str, make_server: Callable[..., TestServer], tmp_path: Path) -> None:
    server = make_server(models=("llama3.1",), limits=RateLimits(requests=20, window=1.0),
                         faults=Faults(server_error=0.05, rate_limit=0.05, retry_after=0.2,
                                       seed=3))
    identifier, path = PROVIDERS[name]
    result = cli("run", write_input(tmp_path), "-m", identifier(server), "-o",
                 tmp_path / "out.jsonl", "--max-concurrency", "8", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert_every_row_once(tmp_path / "out.jsonl")
    stats = server.stats
    assert stats.received[path] > ROWS  # retried what was refused and what failed
    assert stats.rate_limited["requests"] + stats.faults["rate_limit"] > 0
    assert stats.faults["server_error"] > 0
    assert sum(stats.completed.values()) == ROWS  # each answered once: nothing sent twice
    assert KEYS["ANTHROPIC_API_KEY"] not in result.stderr + (tmp_path / "out.jsonl").read_text()


@pytest.mark.parametrize("name", CASES)
def test_a_killed_job_resumes_and_keeps_every_row_once(
        name: str, make_server: Callable[..., TestServer], tmp_path: Path) -> None:
    server = make_server(models=("llama3.1",), latency=0.05)
    identifier, path = PROVIDERS[name]
    source, output = write_input(tmp_path, 200), tmp_path / "out.jsonl"
    args = ("run", source, "-m", identifier(server), "-o", output, "--max-concurrency", "4")
    process = cli(*args, cwd=tmp_path, background=True)
    recorded = len(kill_when_done(process, tmp_path / "out.jsonl.promptmill.db", 40))
    assert 40 <= recorded < 200 and not output.exists()
    before = server.stats.total_completed
    result = cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert_every_row_once(output, 200)
    # The rerun sent only what was not recorded (and what was in flight at the kill).
    assert server.stats.total_completed - before <= 200 - recorded + 4
    answered = server.stats.completed_by_prompt
    assert all(count >= 1 for count in answered.values()) and len(answered) == 200
    assert server.stats.received[path] >= 200


def test_anthropic_request_shape_headers_and_errors(make_server: Callable[..., TestServer],
                                                     recorder: Any, tmp_path: Path) -> None:
    bodies = recorder()
    server = make_server(responder=bodies, limits=RateLimits(requests=5, window=60))
    source = write_input(tmp_path, 3)
    ident = f"anthropic!claude-test,api_base={server.url},max_tokens=32,stop=[\"###\"]"
    result = cli("run", source, "-m", ident, "--system", "Be terse.", "-o",
                 tmp_path / "out.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # The server saw Anthropic's shape (its answers are keyed on the same conversation as the
    # OpenAI chat it amounts to, which is what the responder is given).
    assert bodies.bodies[0]["messages"][0] == {"role": "system", "content": "Be terse."}
    assert bodies.bodies[0]["stop"] == ["###"] and bodies.bodies[0]["max_tokens"] == 32
    out = read_rows(tmp_path / "out.jsonl")
    assert out[0]["usage"]["prompt_tokens"] > 0 and out[0]["responses"][0]["text"] == "ok"
    # Over the limit of 5 a minute: 429 with Anthropic's error body and headers.
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"{server.url}/messages", method="POST", headers={"content-type": "application/json"},
        data=json.dumps({"model": "m", "max_tokens": 5,
                         "messages": [{"role": "user", "content": "hi"}]}).encode())
    refused: urllib.error.HTTPError | None = None
    for _ in range(5):
        try:
            urllib.request.urlopen(request).close()
        except urllib.error.HTTPError as exc:
            refused = exc
            break
    assert refused is not None and refused.code == 429
    body = json.loads(refused.read())
    assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    headers = refused.headers
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert headers["anthropic-ratelimit-requests-reset"].endswith("Z")
    assert int(headers["retry-after"]) >= 1


def test_anthropic_without_max_tokens_is_refused_before_sending(
        server: TestServer, tmp_path: Path) -> None:
    server.stats.reset()
    result = cli("run", write_input(tmp_path, 2), "-m",
                 f"anthropic!claude-test,api_base={server.url}", "-o", tmp_path / "o.jsonl",
                 cwd=tmp_path)
    assert result.returncode == 2
    assert "needs max_tokens" in result.stderr and "max_tokens=N" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not server.stats.received


def test_ollama_options_and_text_mode(make_server: Callable[..., TestServer], recorder: Any,
                                      tmp_path: Path) -> None:
    bodies = recorder()
    server = make_server(models=("llama3.1",), responder=bodies)
    ident = (f"ollama!llama3.1,api_base={server.root},max_tokens=20,seed=7,temperature=0.5,"
             "num_ctx=4096,extra.top_k=5")
    result = cli("run", write_input(tmp_path, 2), "-m", ident, "--text", "-o",
                 tmp_path / "out.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert server.stats.received["/api/generate"] == 2  # --text: raw generate, no template
    assert server.stats.received["/api/tags"] == 1  # asked once, before the job
    assert bodies.bodies[0]["max_tokens"] == 20 and bodies.bodies[0]["seed"] == 7
    out = read_rows(tmp_path / "out.jsonl")
    assert out[0]["usage"]["completion_tokens"] > 0
    assert out[0]["model"].startswith("ollama!llama3.1,")


def test_ollama_not_running_or_model_not_pulled_is_one_line_before_anything(
        make_server: Callable[..., TestServer], tmp_path: Path) -> None:
    import socket

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    source = write_input(tmp_path, 2)
    down = cli("run", source, "-m", "ollama!llama3.1", "-o", tmp_path / "a.jsonl",
               cwd=tmp_path, env={"OLLAMA_HOST": f"127.0.0.1:{port}"})
    assert down.returncode == 2
    assert f"no Ollama server answers at http://127.0.0.1:{port}" in down.stderr
    assert "ollama serve" in down.stderr and len(down.stderr.strip().splitlines()) == 1
    server = make_server(models=("qwen2.5:0.5b",))
    missing = cli("run", source, "-m", "ollama!llama3.1", "-o", tmp_path / "b.jsonl",
                  cwd=tmp_path, env={"OLLAMA_HOST": server.root})
    assert missing.returncode == 2
    assert "`ollama pull llama3.1`" in missing.stderr and "qwen2.5:0.5b" in missing.stderr
    assert server.stats.received["/api/chat"] == 0
    assert not (tmp_path / "b.jsonl.promptmill.db").exists() or done_requests(
        tmp_path / "b.jsonl.promptmill.db") == 0


@pytest.mark.parametrize(("host", "url"), [
    ("", "http://localhost:11434"), ("0.0.0.0", "http://127.0.0.1:11434"),
    ("myhost:1234", "http://myhost:1234"),
    ("https://gpu.example/ollama", "https://gpu.example:11434/ollama"),
])
def test_ollama_host_forms(host: str, url: str) -> None:
    from promptmill.generators.ollama_ import ollama_host

    assert ollama_host(host) == url


def test_answers_are_the_same_whichever_api_asks(server: TestServer) -> None:
    """The dialects share one deterministic answer per conversation (so tests can compare)."""
    import urllib.request

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(server.root + path, data=json.dumps(body).encode(),
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request) as answer:
            return json.loads(answer.read())  # type: ignore[no-any-return]

    messages = [{"role": "user", "content": "same question"}]
    openai = post("/v1/chat/completions", {"model": "test-model", "messages": messages,
                                           "max_tokens": 9})
    anthropic = post("/v1/messages", {"model": "test-model", "messages": messages,
                                      "max_tokens": 9})
    ollama = post("/api/chat", {"model": "test-model", "messages": messages, "stream": False,
                                "options": {"num_predict": 9}})
    text = openai["choices"][0]["message"]["content"]
    assert anthropic["content"][0]["text"] == text == ollama["message"]["content"]
    assert anthropic["usage"]["output_tokens"] == openai["usage"]["completion_tokens"]
    assert ollama["eval_count"] == openai["usage"]["completion_tokens"]


def test_litellm_is_imported_only_when_a_litellm_job_starts(tmp_path: Path) -> None:
    code = ("import sys\nfrom promptmill.generators import get_generator\n"
            "g = get_generator('litellm!anthropic/claude-x,api_base=http://127.0.0.1:9')\n"
            "g.check_ready()\nprint('litellm' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, **KEYS}, timeout=120)
    assert result.stdout.strip() == "False", result.stderr


@pytest.mark.litellm
def test_litellm_errors_become_promptmill_kinds() -> None:
    import httpx

    from promptmill.errors import (
        FatalRequestError,
        JobFatalError,
        RateLimited,
        RequestTimeout,
        ServerError,
        Unavailable,
    )
    from promptmill.generators.litellm_ import LiteLLMGenerator, load_litellm

    litellm = load_litellm()
    assert litellm.telemetry is False and litellm.cache is None
    gen = LiteLLMGenerator("anthropic/claude-x")
    headers = httpx.Headers({"retry-after": "7", "anthropic-ratelimit-requests-limit": "50",
                             "anthropic-ratelimit-requests-remaining": "0",
                             "anthropic-ratelimit-requests-reset": "2099-01-01T00:00:00Z"})
    limited = gen._classify(litellm.RateLimitError(
        "slow down", "anthropic", "claude-x", response=httpx.Response(429, headers=headers)))
    assert isinstance(limited, RateLimited) and limited.retry_after == 7.0
    assert limited.rate_limit is not None and limited.rate_limit.limit_requests == 50
    quota = gen._classify(litellm.RateLimitError("You exceeded your current quota",
                                                 "openai", "m"))
    assert isinstance(quota, JobFatalError) and "add credit" in str(quota)
    cases = [
        (litellm.AuthenticationError("bad key sk-ant-api03-promptmillTestKey0123456789",
                                     "anthropic", "m"), JobFatalError),
        (litellm.NotFoundError("no such model", "anthropic", "m"), JobFatalError),
        (litellm.BadRequestError("prompt is too long", "m", "anthropic"), FatalRequestError),
        (litellm.ServiceUnavailableError("overloaded", "anthropic", "m"), Unavailable),
        (litellm.APIConnectionError("refused", "anthropic", "m"), Unavailable),
        (litellm.InternalServerError("boom", "anthropic", "m"), ServerError),
        (litellm.Timeout("slow", "m", "anthropic"), RequestTimeout),
    ]
    os.environ.setdefault("ANTHROPIC_API_KEY", KEYS["ANTHROPIC_API_KEY"])
    gen.api_key()  # remembered for redaction, as a job does
    for exc, kind in cases:
        error = gen._classify(exc)
        assert type(error) is kind, (exc, error)
        assert "promptmillTestKey" not in str(error)
