"""Servers that do not follow the book: n ignored, logprobs dropped, model names checked.

promptmill's test server plays each quirk (``ignores=``, ``strict_models=``); the interop
tier (tests/interop) meets the real servers that have them.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

import promptmill
from promptmill.errors import PromptmillError
from promptmill.testing import FakeLocalEngine, TestServer

ROWS = [{"question": f"What is {i} + {i}?"} for i in range(4)]


def ident(server: TestServer, model: str = "test-model", **options: object) -> str:
    extra = "".join(f",{key}={value}" for key, value in options.items())
    return f"http!{model},api_base={server.url}{extra}"


def completions(server: TestServer) -> int:
    return server.stats.completed["/v1/chat/completions"]


def test_k_means_k_against_a_server_that_ignores_n(
    make_server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_server(ignores=("n",))
    with caplog.at_level(logging.WARNING):
        rows = promptmill.run(ROWS, ident(server), k=3, output=tmp_path / "out.jsonl",
                              params={"seed": 7, "max_tokens": 8})
    assert all(row["status"] == "done" and len(row["responses"]) == 3 for row in rows)
    # Distinct seeds per sample: the deterministic server answers each seed differently.
    assert all(len({r["text"] for r in row["responses"]}) == 3 for row in rows)
    said = [r for r in caplog.records if "ignores n" in r.getMessage()]
    assert len(said) == 1 and server.url in said[0].getMessage()
    # The first row's request of n=3 answered one: two more; every later row three singles.
    assert completions(server) == 3 * len(ROWS)
    # The store is that of a server that honours n: one request row per input row.
    db = sqlite3.connect(tmp_path / "out.jsonl.promptmill.db")
    try:
        planned = db.execute("SELECT n, status, COUNT(*) FROM requests GROUP BY n, status")
        assert planned.fetchall() == [(3, "done", len(ROWS))]
    finally:
        db.close()


def test_a_server_that_honours_n_gets_one_request_per_row(make_server, tmp_path: Path) -> None:
    server = make_server()
    rows = promptmill.run(ROWS, ident(server), k=3, params={"seed": 7})
    assert all(len(row["responses"]) == 3 for row in rows)
    assert completions(server) == len(ROWS)


def test_a_resumed_job_continues_the_same_way(make_server, tmp_path: Path) -> None:
    server = make_server(ignores=("n",))
    out = tmp_path / "out.jsonl"
    first = promptmill.run(ROWS, ident(server), k=2, output=out, limit=2, params={"seed": 1})
    # A new run (a new process would be the same: nothing about the server is stored)
    # extends the same job: same fingerprint, the two answered rows untouched.
    rows = promptmill.run(ROWS, ident(server), k=2, output=out, params={"seed": 1})
    assert rows[:2] == first
    assert all(row["status"] == "done" and len(row["responses"]) == 2 for row in rows)
    assert completions(server) == 2 * len(ROWS)


def test_an_engine_answering_fewer_samples_is_never_recorded_done(tmp_path: Path) -> None:
    engine = FakeLocalEngine(short=2)
    rows = promptmill.run(ROWS, engine, k=2, output=tmp_path / "out.jsonl")
    assert all(row["status"] == "done" and len(row["responses"]) == 2 for row in rows)
    # The two short answers were taken as failed attempts and asked again.
    assert sum(row["attempts"] for row in rows) == len(ROWS) + 2


def test_logprobs_a_server_drops_warn_once_and_keep_the_rows(
    make_server, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_server(ignores=("logprobs",))
    with caplog.at_level(logging.WARNING):
        rows = promptmill.run(ROWS, ident(server), params={"logprobs": True, "top_logprobs": 2})
    assert all(row["status"] == "done" and row["responses"][0].get("logprobs") is None
               for row in rows)
    said = [r.getMessage() for r in caplog.records if "without the logprobs" in r.getMessage()]
    assert len(said) == 1


def test_preflight_stops_a_job_whose_model_a_strict_server_does_not_serve(
    make_server, tmp_path: Path
) -> None:
    server = make_server(strict_models=True, models=("served-a", "served-b"))
    with pytest.raises(PromptmillError) as caught:
        promptmill.run(ROWS, ident(server, "typo-model"), output=tmp_path / "out.jsonl")
    message = str(caught.value)
    assert "typo-model" in message and "served-a, served-b" in message
    assert "\n" not in message
    # One request, the model list, and no completion was sent.
    assert server.stats.received["/v1/models"] == 1 and completions(server) == 0
    assert server.stats.received["/v1/chat/completions"] == 0


def test_preflight_warns_where_the_server_answers_any_name(
    make_server, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_server(models=("served",))
    with caplog.at_level(logging.WARNING):
        rows = promptmill.run(ROWS, ident(server, "other-name"))
    assert all(row["status"] == "done" for row in rows)
    said = [r.getMessage() for r in caplog.records if "does not list model" in r.getMessage()]
    assert len(said) == 1 and "'other-name'" in said[0] and "served" in said[0]
    assert server.stats.received["/v1/models"] == 1


def test_preflight_is_silent_for_a_listed_model(
    make_server, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_server(strict_models=True, models=("served",))
    with caplog.at_level(logging.WARNING):
        rows = promptmill.run(ROWS, ident(server, "served"))
    assert all(row["status"] == "done" for row in rows)
    assert not [r for r in caplog.records if "model" in r.getMessage()]


def test_a_prompt_over_the_context_fails_its_row_alone(make_server) -> None:
    server = make_server(context_tokens=64)
    rows = promptmill.run([{"question": "word " * 200}, *ROWS[:2]], ident(server),
                          params={"max_tokens": 8})
    assert rows[0]["status"] == "failed" and "maximum context length is 64" in rows[0]["error"]
    assert rows[0]["attempts"] == 1
    assert [row["status"] for row in rows[1:]] == ["done", "done"]


def test_the_testing_server_command_plays_the_quirks(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    server = subprocess.Popen(
        [sys.executable, "-m", "promptmill", "testing-server", "--port", "0", "--model", "m",
         "--ignore", "n", "--strict-models", "--context-tokens", "50"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()  # type: ignore[union-attr]

        def post(body: dict[str, object]) -> tuple[int, dict[str, object]]:
            request = urllib.request.Request(url + "/chat/completions",
                                             json.dumps(body).encode(),
                                             {"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    return answer.status, json.loads(answer.read())
            except urllib.error.HTTPError as error:
                return error.code, json.loads(error.read())

        chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "n": 3}
        status, answer = post(chat)
        assert status == 200 and len(answer["choices"]) == 1  # type: ignore[arg-type]
        assert post({**chat, "model": "other"})[0] == 404
        long = {**chat, "messages": [{"role": "user", "content": "word " * 100}]}
        status, answer = post(long)
        assert status == 400 and "maximum context length is 50" in json.dumps(answer)
    finally:
        server.terminate()
        server.wait(timeout=30)
