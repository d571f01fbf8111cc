"""An API key never lands in anything promptmill writes or prints.

A recognisable fake key is given every way a user can give one: in the environment, in the
model identifier (``api_key=...``) and in a ``.env`` file in the working directory. Jobs then
run online against the test server, through injected faults and a server that answers 401
quoting the key back, with debug logging (``-vv``), through ``status``, ``export`` (every
format) and ``--dry-run``, killed with SIGKILL and resumed, stopped with SIGINT (whose message
repeats the command), and with a malformed identifier holding the key. Afterwards every file
the jobs left in the working directory (results, job stores with their WAL and SHM, lock and
temporary files) and everything printed (stdout and stderr) is searched for the key.

There is no batch mode yet, so no Batch API files are checked.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web
from robustness_helpers import (
    CANARY_KEY,
    clean_env,
    done_count,
    serve_app,
    wait_for,
    write_jsonl,
)

from promptmill.testing import Faults, serve_in_thread

Run = Callable[..., subprocess.CompletedProcess[str]]
# What must never appear: the key, and its distinctive middle (a half-redacted key leaks too).
NEEDLES = (CANARY_KEY.encode(), b"SECRET-canary")

KEYS_SEEN: list[str] = []


async def key_checking_backend(request: web.Request) -> web.StreamResponse:
    """Answers only the canary key, and quotes a wrong key back in its 401, as OpenAI does."""
    key = request.headers.get("Authorization", "").removeprefix("Bearer ")
    KEYS_SEEN.append(key)
    body = await request.json()
    if body["messages"][-1]["content"].endswith("7"):
        return web.json_response({"error": {
            "message": f"Incorrect API key provided: {key}. You can find your API key at "
                       "https://platform.openai.com/account/api-keys.",
            "type": "invalid_request_error", "code": "invalid_api_key"}}, status=401)
    return web.json_response({
        "id": "x", "object": "chat.completion", "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})


def leaks(folder: Path, printed: list[str]) -> list[str]:
    """Where the key shows up: files under ``folder`` (but .env) and printed output."""
    found = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != ".env":
            data = path.read_bytes()
            found += [f"{path.name}: {needle!r}" for needle in NEEDLES if needle in data]
    for index, text in enumerate(printed):
        found += [f"output #{index}: {needle!r}" for needle in NEEDLES
                  if needle.decode() in text]
    return found


@pytest.mark.slow
def test_the_key_appears_in_no_file_and_no_output(
    tmp_path: Path, promptmill: Run, start_promptmill: Callable[..., subprocess.Popen[str]],
) -> None:
    write_jsonl(tmp_path / "q.jsonl", [{"id": i, "prompt": f"question {i}"} for i in range(200)])
    printed: list[str] = []
    env_key = clean_env(OPENAI_API_KEY=CANARY_KEY)

    def run(*args: str, env: dict[str, str] | None = None, ok: bool = True) -> None:
        result = promptmill(*args, env=env)
        printed.extend([result.stdout, result.stderr])
        if ok:
            assert result.returncode == 0, result.stderr
        else:
            assert result.returncode != 0, result.stderr

    with serve_in_thread() as plain, serve_in_thread(
        latency=0.05, faults=Faults(rate_limit=0.05, server_error=0.05, drop=0.03,
                                    malformed=0.03, seed=5, retry_after=0.05)) as faulty:
        in_id = f"http!test-model,api_base={plain.url},api_key={CANARY_KEY}"
        # The key in the environment, the openai! backend pointed at the test server.
        run("run", "q.jsonl", "-m", f"openai!gpt-4o-mini,api_base={plain.url}", "-o", "env.jsonl",
            "-vv", env=env_key)
        # The key in the identifier, through faults, with debug logging.
        run("run", "q.jsonl", "-m", in_id.replace(plain.url, faulty.url), "-o", "faults.jsonl",
            "-vv")
        # The key in .env.
        (tmp_path / ".env").write_text(f"OPENAI_API_KEY={CANARY_KEY}\n")
        run("run", "q.jsonl", "-m", f"openai!gpt-4o-mini,api_base={plain.url}",
            "-o", "dotenv.jsonl", "-vv")
        (tmp_path / ".env").unlink()
        # Reading the jobs back.
        for output in ("env.jsonl", "faults.jsonl", "dotenv.jsonl"):
            run("status", output)
            run("export", output, "--format", "csv")
            run("export", output, "--format", "parquet")
        run("run", "q.jsonl", "-m", in_id, "-o", "dry.jsonl", "--dry-run", "-vv")
        # Killed mid-run, then resumed; stopped with SIGINT, whose message repeats the command.
        args = ["run", "q.jsonl", "-m", in_id.replace(plain.url, faulty.url), "-o", "crash.jsonl",
                "--max-concurrency", "16", "-vv"]
        store = tmp_path / "crash.jsonl.promptmill.db"
        process = start_promptmill(*args)
        wait_for(lambda: done_count(store) >= 20, process=process)
        process.send_signal(signal.SIGKILL)
        printed.extend(process.communicate())
        process = start_promptmill(*args)
        wait_for(lambda: done_count(store) >= 60, process=process)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate()
        printed.extend([stdout, stderr])
        assert process.returncode == 130 and "api_key=***" in stderr, stderr
        run(*args)
        # A malformed identifier holding the key is reported without it.
        run("run", "q.jsonl", "-m", f'http!test-model,api_key={CANARY_KEY},stop="a', ok=False)
        run("run", "q.jsonl", "-m", f"http!test-model,api_key={CANARY_KEY},temprature=1",
            ok=False)

    # A server that quotes the key back in its 401 (the job stops: every request would fail).
    KEYS_SEEN.clear()
    with serve_app(key_checking_backend) as url:
        run("run", "q.jsonl", "-m", f"http!test-model,api_base={url},api_key={CANARY_KEY}",
            "-o", "unauthorized.jsonl", "--max-concurrency", "1", "-vv", ok=False)
    assert KEYS_SEEN and set(KEYS_SEEN) == {CANARY_KEY}  # the key did travel, to the server
    assert "401" in printed[-1] and "check the key" in printed[-1]

    written = sorted(path.name for path in tmp_path.iterdir())
    assert {"env.jsonl", "faults.jsonl", "dotenv.jsonl", "crash.jsonl", "env.csv",
            "faults.parquet", "crash.jsonl.promptmill.db"} <= set(written), written
    assert not leaks(tmp_path, printed), leaks(tmp_path, printed)
