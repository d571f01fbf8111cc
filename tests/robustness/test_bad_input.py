"""A catalogue of bad input, each through the real CLI.

Each case: one line on stderr naming the place (file, line, field, option) and the fix, a
non-zero exit code, no request sent when the problem is knowable up front, and nothing
already stored lost (the mid-run cases rerun after the fix and check that earlier results
are still there and were not asked for again).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import resource
import signal
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from robustness_helpers import (
    clean_env,
    read_jsonl,
    serve_app,
    store_state,
    write_jsonl,
)

from promptmill.testing import TestServer

Run = Callable[..., subprocess.CompletedProcess[str]]


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str,
                          code: int | None = 2) -> str:
    """The run failed with ``code`` (any non-zero if None) and one line naming ``fragments``."""
    assert result.returncode != 0, result.stderr
    if code is not None:
        assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def nothing_sent(server: TestServer) -> bool:
    return sum(server.stats.received.values()) == 0


def model(server: TestServer | str) -> str:
    url = server if isinstance(server, str) else server.url
    return f"http!test-model,api_base={url}"


def questions(count: int) -> list[dict[str, Any]]:
    return [{"id": i, "question": f"What is {i} + {i}?"} for i in range(count)]


@pytest.fixture
def quiet_server(server: TestServer) -> TestServer:
    """The session's plain test server, its counters zeroed for this test."""
    server.stats.reset()
    return server


# -- the input file --------------------------------------------------------------------


def test_malformed_jsonl_line_named_by_line_before_anything_is_sent(
    tmp_path: Path, promptmill: Run, quiet_server: TestServer,
) -> None:
    source = tmp_path / "q.jsonl"
    lines = [json.dumps(row) for row in questions(6000)]
    lines.insert(2, "")  # a blank line: line numbers and row numbers part ways
    lines[5002] = '{"id": 5001, "question": "cut off'  # past the first planning chunk
    source.write_text("\n".join(lines) + "\n")
    args = ["run", "q.jsonl", "-m", model(quiet_server), "-o", "a.jsonl"]
    result = promptmill(*args)
    assert_one_line_error(result, "q.jsonl:5003: malformed JSON", "fix or remove that line")
    assert nothing_sent(quiet_server) and not (tmp_path / "a.jsonl").exists()

    lines[5002] = json.dumps({"id": 5001, "question": "What is 5001 + 5001?"})
    source.write_text("\n".join(lines) + "\n")
    fixed = promptmill(*args)
    assert fixed.returncode == 0, fixed.stderr
    assert [row["id"] for row in read_jsonl(tmp_path / "a.jsonl")] == list(range(6000))


def test_template_field_missing_from_a_row(tmp_path: Path, promptmill: Run,
                                           quiet_server: TestServer) -> None:
    write_jsonl(tmp_path / "q.jsonl", [{"id": 0, "question": "a"}, {"id": 1, "query": "b"}])
    result = promptmill("run", "q.jsonl", "-m", model(quiet_server),
                        "--template", "Q: {{ question }}")
    assert_one_line_error(result, "q.jsonl:2", "'question' is undefined",
                          "add it to every row or change the template")
    assert nothing_sent(quiet_server)


def test_empty_prompt(tmp_path: Path, promptmill: Run, quiet_server: TestServer) -> None:
    write_jsonl(tmp_path / "q.jsonl", [{"prompt": "fine"}, {"prompt": "fine too"},
                                       {"prompt": "  \n "}])
    result = promptmill("run", "q.jsonl", "-m", model(quiet_server))
    assert_one_line_error(result, "q.jsonl:3", "the prompt is empty", "fill it or drop the row")
    assert nothing_sent(quiet_server)


def test_non_utf8_bytes(tmp_path: Path, promptmill: Run, quiet_server: TestServer) -> None:
    (tmp_path / "q.jsonl").write_bytes(b'{"prompt": "ok"}\n{"prompt": "caf\xe9"}\n')
    result = promptmill("run", "q.jsonl", "-m", model(quiet_server))
    assert_one_line_error(result, "q.jsonl:2: not UTF-8", "re-encode the file as UTF-8")
    assert nothing_sent(quiet_server)


def test_a_line_that_is_not_an_object(tmp_path: Path, promptmill: Run,
                                      quiet_server: TestServer) -> None:
    (tmp_path / "q.jsonl").write_text('{"prompt": "ok"}\n["a", "list"]\n')
    result = promptmill("run", "q.jsonl", "-m", model(quiet_server))
    assert_one_line_error(result, "q.jsonl:2", "must be a JSON object", "wrap it")
    assert nothing_sent(quiet_server)


def test_csv_row_with_more_values_than_columns(tmp_path: Path, promptmill: Run,
                                               quiet_server: TestServer) -> None:
    (tmp_path / "q.csv").write_text("id,prompt\n1,hello\n2,hello, world\n")
    result = promptmill("run", "q.csv", "-m", model(quiet_server))
    assert_one_line_error(result, "q.csv:3", "more values than header columns",
                          "quote values")
    assert nothing_sent(quiet_server)


@pytest.mark.parametrize(("text", "where", "what"), [
    # A quote never closed: read leniently, it took every line after it into one value
    # (three questions asked as one, two silently gone).
    ('id,prompt\n1,hello\n2,"what is\n3,two plus two\n4,ok\n', "q.csv:3",
     "unexpected end of data"),
    ('id,prompt\n1,"closed" then more\n', "q.csv:2", "expected after"),
], ids=["quote-left-open", "text-after-closing-quote"])
def test_csv_quotes_that_do_not_close_a_value(tmp_path: Path, promptmill: Run,
                                               quiet_server: TestServer, text: str,
                                               where: str, what: str) -> None:
    (tmp_path / "q.csv").write_text(text)
    result = promptmill("run", "q.csv", "-m", model(quiet_server))
    assert_one_line_error(result, where, "malformed CSV", what, "quote")
    assert nothing_sent(quiet_server)


@pytest.mark.parametrize(("name", "text", "extra"), [
    ("q.jsonl", '{"id": 1, "prompt": "one"}\n{"id": 2, "prompt": "two"}\n', []),
    ("q.jsonl", '{"id": 1, "q": "one"}\n{"id": 2, "q": "two"}\n', ["--template", "t.jinja"]),
    ("q.csv", "id,prompt\n1,one\n2,two\n", []),
], ids=["jsonl", "jsonl-template", "csv"])
def test_a_byte_order_mark_is_read_past(tmp_path: Path, promptmill: Run,
                                         quiet_server: TestServer, name: str, text: str,
                                         extra: list[str]) -> None:
    """Excel's "CSV UTF-8" and Notepad start a file with a UTF-8 byte order mark: JSON
    refused the first line, and CSV read the mark into the first column's name (``\ufeffid``:
    the ids and their duplicate check silently gone)."""
    (tmp_path / name).write_bytes(b"\xef\xbb\xbf" + text.encode())
    (tmp_path / "t.jinja").write_text("{{ q }}")
    result = promptmill("run", name, "-m", model(quiet_server), "-o", "out.jsonl", *extra)
    assert result.returncode == 0, result.stderr
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert [str(row["id"]) for row in rows] == ["1", "2"]
    assert all(not key.startswith("\ufeff") for row in rows for key in row)
    assert [row["responses"][0]["text"].endswith(("one", "two")) for row in rows] == [True] * 2


@pytest.mark.parametrize("text", ['[{"id": 1, "prompt": "a"}, {"id": 2, "prompt": "b"}]',
                                  '\n  [\n  {"id": 1,\n   "prompt": "a"}\n]\n'],
                         ids=["one-line", "pretty-printed"])
def test_a_json_array_is_named_as_one(tmp_path: Path, promptmill: Run,
                                      quiet_server: TestServer, text: str) -> None:
    """A ``.json`` file holding an array (as many datasets ship) is not JSON Lines: said so,
    with the conversion, rather than "line 1: malformed JSON" or "not a JSON object"."""
    (tmp_path / "data.json").write_text(text)
    result = promptmill("run", "data.json", "-m", model(quiet_server))
    assert_one_line_error(result, "data.json: a JSON array, not JSON Lines",
                          "jq -c '.[]' data.json > data.jsonl")
    assert nothing_sent(quiet_server)


@pytest.mark.parametrize("name", ["answers.xlsx", "answers.tsv", "answers.gz"])
def test_an_output_extension_promptmill_does_not_write(tmp_path: Path, promptmill: Run,
                                                       quiet_server: TestServer,
                                                       name: str) -> None:
    """A spreadsheet's or TSV's name would get JSON Lines inside, silently: refused before
    anything is made or sent; ``--format`` says what to write under any name."""
    write_jsonl(tmp_path / "q.jsonl", questions(3))
    result = promptmill("run", "q.jsonl", "-m", model(quiet_server), "-o", name)
    assert_one_line_error(result, f"output {name}: promptmill does not write",
                          ".jsonl, .parquet, .csv or .arrow")
    assert nothing_sent(quiet_server)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["q.jsonl"]
    result = promptmill("run", "q.jsonl", "-m", model(quiet_server), "-o", name,
                        "--format", "jsonl")
    assert result.returncode == 0, result.stderr
    assert len(read_jsonl(tmp_path / name)) == 3


def test_field_clashing_with_output_fields(tmp_path: Path, promptmill: Run,
                                           quiet_server: TestServer) -> None:
    write_jsonl(tmp_path / "q.jsonl", [{"prompt": "a"}, {"prompt": "b", "responses": []}])
    result = promptmill("run", "q.jsonl", "-m", model(quiet_server))
    assert_one_line_error(result, "q.jsonl:2", "field 'responses' clashes", "rename it")
    assert nothing_sent(quiet_server)


def test_missing_input_file(tmp_path: Path, promptmill: Run) -> None:
    result = promptmill("run", "nowhere.jsonl", "-m", "http!m,api_base=http://127.0.0.1:9/v1")
    assert_one_line_error(result, "nowhere.jsonl: no such input file")


def test_duplicate_ids_name_both_lines(tmp_path: Path, promptmill: Run,
                                       quiet_server: TestServer) -> None:
    rows = questions(5200)
    rows[5100]["id"] = 7  # in the second planning chunk, repeating a row of the first
    write_jsonl(tmp_path / "q.jsonl", rows)
    args = ["run", "q.jsonl", "-m", model(quiet_server), "-o", "a.jsonl"]
    result = promptmill(*args, "--dry-run")
    assert_one_line_error(result, "q.jsonl:5101: duplicate id 7 (first on line 8)",
                          "--id-field")
    result = promptmill(*args)
    assert_one_line_error(result, "q.jsonl:5101: duplicate id 7 (first on line 8)",
                          "--id-field NAME", "--id-field none")
    assert nothing_sent(quiet_server)

    # unique_id is checked the same way, within one planning chunk too.
    write_jsonl(tmp_path / "u.jsonl", [{"unique_id": "a", "prompt": "x"},
                                       {"unique_id": "b", "prompt": "y"},
                                       {"unique_id": "a", "prompt": "z"}])
    result = promptmill("run", "u.jsonl", "-m", model(quiet_server))
    assert_one_line_error(result, 'u.jsonl:3: duplicate unique_id "a" (first on line 1)')
    # Another field can be named; every row must then have it.
    result = promptmill(*args, "--id-field", "question")
    assert result.returncode == 0, result.stderr
    assert len(read_jsonl(tmp_path / "a.jsonl")) == 5200
    result = promptmill("run", "u.jsonl", "-m", model(quiet_server), "--id-field", "name")
    assert_one_line_error(result, "u.jsonl:1: no field 'name' (--id-field name)")
    # Empty ids are no ids.
    write_jsonl(tmp_path / "n.jsonl", [{"id": None, "prompt": "x"}, {"id": "", "prompt": "y"},
                                       {"id": None, "prompt": "z"}])
    assert promptmill("run", "n.jsonl", "-m", model(quiet_server)).returncode == 0
    # Or the check turned off, when repeated ids are meant.
    result = promptmill("run", "u.jsonl", "-m", model(quiet_server), "-o", "u.out.jsonl",
                        "--id-field", "none")
    assert result.returncode == 0, result.stderr
    assert [row["unique_id"] for row in read_jsonl(tmp_path / "u.out.jsonl")] == ["a", "b", "a"]


# -- the model and its parameters ---------------------------------------------------------


def test_unknown_provider(tmp_path: Path, promptmill: Run) -> None:
    write_jsonl(tmp_path / "q.jsonl", questions(2))
    result = promptmill("run", "q.jsonl", "-m", "nosuch!model")
    assert_one_line_error(result, "unknown provider 'nosuch'", "known are", "http", "openai")


def test_malformed_identifier(tmp_path: Path, promptmill: Run, quiet_server: TestServer) -> None:
    write_jsonl(tmp_path / "q.jsonl", questions(2))
    result = promptmill("run", "q.jsonl", "-m", f"{model(quiet_server)},temperature")
    assert_one_line_error(result, "malformed option 'temperature'", "write key=value")
    result = promptmill("run", "q.jsonl", "-m", f'{model(quiet_server)},stop="a,b')
    assert_one_line_error(result, "unbalanced quote")
    assert nothing_sent(quiet_server)


def test_unknown_parameter(tmp_path: Path, promptmill: Run, quiet_server: TestServer) -> None:
    write_jsonl(tmp_path / "q.jsonl", questions(2))
    result = promptmill("run", "q.jsonl", "-m", model(quiet_server), "--param", "foo=1")
    assert_one_line_error(result, "unknown --param 'foo'", "known are", "temperature",
                          "extra.foo=VALUE")
    result = promptmill("run", "q.jsonl", "-m", model(quiet_server), "--param", "temperature=hot")
    assert_one_line_error(result, "invalid --param temperature", "valid number")
    assert nothing_sent(quiet_server)


def test_missing_api_key(tmp_path: Path, promptmill: Run) -> None:
    write_jsonl(tmp_path / "q.jsonl", questions(2))
    env = clean_env()
    assert "OPENAI_API_KEY" not in env and not (tmp_path / ".env").exists()
    result = promptmill("run", "q.jsonl", "-m", "openai!gpt-4o-mini", env=env)
    assert_one_line_error(result, "openai! needs an API key", "set OPENAI_API_KEY",
                          ".env file")
    assert not list(tmp_path.glob("*.promptmill.db"))


# -- prompts a backend refuses --------------------------------------------------------------

CONTEXT = {"limit": 12}  # words of context the stub below accepts; raised to "fix" the model


async def small_context_backend(request: web.Request) -> web.StreamResponse:
    """An OpenAI-compatible chat endpoint with vLLM's 400 for a prompt over its context."""
    body = await request.json()
    words = len(body["messages"][-1]["content"].split())
    CONTEXT["seen"] = CONTEXT.get("seen", 0) + 1
    if words > CONTEXT["limit"]:
        return web.json_response({
            "object": "error", "type": "BadRequestError", "param": None, "code": 400,
            "message": f"This model's maximum context length is {CONTEXT['limit']} tokens. "
                       f"However, you requested {words} tokens in the messages. Please "
                       "reduce the length of the messages."}, status=400)
    text = f"echo {words} words"
    return web.json_response({
        "id": "x", "object": "chat.completion", "model": body["model"],
        "choices": [{"index": i, "message": {"role": "assistant", "content": text},
                     "finish_reason": "stop"} for i in range(body.get("n", 1))],
        "usage": {"prompt_tokens": words, "completion_tokens": 3, "total_tokens": words + 3}})


def test_prompt_longer_than_the_context(tmp_path: Path, promptmill: Run) -> None:
    rows = [{"id": i, "prompt": f"short question {i}"} for i in range(6)]
    rows[3]["prompt"] = "a very long question " * 10
    write_jsonl(tmp_path / "q.jsonl", rows)
    CONTEXT.update(limit=12, seen=0)
    with serve_app(small_context_backend) as url:
        args = ["run", "q.jsonl", "-m", model(url), "-o", "a.jsonl", "-k", "2"]
        result = promptmill(*args)
        assert result.returncode == 1, result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, result.stderr
        for fragment in ("1 request failed", "q.jsonl:4", "HTTP 400",
                         "maximum context length is 12 tokens", "--retry-failed"):
            assert fragment in errors[0], (fragment, errors[0])
        results = read_jsonl(tmp_path / "a.jsonl")
        assert [row["status"] for row in results] == ["done"] * 3 + ["failed"] + ["done"] * 2
        assert "maximum context length" in results[3]["error"] and not results[3]["responses"]
        assert CONTEXT["seen"] == 6  # a 400 is not retried
        # The fix: a model with a longer context. Only the failed row is sent again.
        CONTEXT["limit"] = 100
        fixed = promptmill(*args, "--retry-failed")
        assert fixed.returncode == 0, fixed.stderr
        assert CONTEXT["seen"] == 7
    again = read_jsonl(tmp_path / "a.jsonl")
    assert [row["status"] for row in again] == ["done"] * 6
    assert [row for i, row in enumerate(again) if i != 3] == [
        row for i, row in enumerate(results) if i != 3]


async def web_page(request: web.Request) -> web.StreamResponse:
    """A web server where an API should be: every path answers 200 with HTML."""
    SEEN["count"] += 1
    return web.Response(text="<html><body><h1>Welcome to nginx!</h1></body></html>",
                        content_type="text/html")


SEEN = {"count": 0}


def test_server_that_is_not_openai_shaped(tmp_path: Path, promptmill: Run) -> None:
    write_jsonl(tmp_path / "q.jsonl", questions(200))
    SEEN["count"] = 0
    with serve_app(web_page) as url:
        result = promptmill("run", "q.jsonl", "-m", model(url), "-o", "a.jsonl",
                            "--max-concurrency", "4")
    line = assert_one_line_error(result, "malformed response", "text/html",
                                 "check that api_base ends with /v1", code=1)
    assert url in line
    # It stops after a handful of such answers instead of trying all 200 rows 8 times.
    assert SEEN["count"] <= 4 + 5
    state = store_state(tmp_path / "a.jsonl.promptmill.db")
    assert state.counts == {"pending": 200}  # nothing marked failed: all sent again later


# -- the output location ----------------------------------------------------------------


def test_output_path_is_a_folder(tmp_path: Path, promptmill: Run,
                                 quiet_server: TestServer) -> None:
    write_jsonl(tmp_path / "q.jsonl", questions(2))
    (tmp_path / "results").mkdir()
    result = promptmill("run", "q.jsonl", "-m", model(quiet_server), "-o", "results")
    assert_one_line_error(result, "output results is a folder", "results/answers.jsonl")
    assert nothing_sent(quiet_server) and not list((tmp_path / "results").iterdir())


@contextlib.contextmanager
def mounted_tmpfs(folder: Path, options: str) -> Iterator[None]:
    """A tmpfs at ``folder`` (root only; skips the test where mounting is not allowed)."""
    folder.mkdir(exist_ok=True)
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                           capture_output=True, text=True)
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder nobody can create files in: not even root, for whom chmod changes nothing."""
    folder = tmp_path / "readonly"
    if os.geteuid() != 0:
        folder.mkdir()
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    folder.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                           capture_output=True)
    if mount.returncode == 0:
        yield folder
        subprocess.run(["umount", "-l", str(folder)], check=False)
        return
    immutable = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
    if immutable.returncode != 0:
        pytest.skip("root here can neither mount a read-only tmpfs nor chattr +i a folder")
    yield folder
    subprocess.run(["chattr", "-i", str(folder)], check=False)


def test_read_only_output_location(tmp_path: Path, promptmill: Run, quiet_server: TestServer,
                                   read_only_folder: Path) -> None:
    write_jsonl(tmp_path / "q.jsonl", questions(2))
    with pytest.raises(OSError):  # the folder really refuses files, to us as to the child
        (read_only_folder / "probe").write_text("x")
    result = promptmill("run", "q.jsonl", "-m", model(quiet_server),
                        "-o", f"{read_only_folder.name}/a.jsonl")
    assert_one_line_error(result, f"output folder {read_only_folder.name} is not writable",
                          "choose another -o location")
    assert nothing_sent(quiet_server)


# -- the job store --------------------------------------------------------------------


def test_job_store_from_a_newer_promptmill(tmp_path: Path, promptmill: Run,
                                           quiet_server: TestServer) -> None:
    write_jsonl(tmp_path / "q.jsonl", questions(3))
    args = ["run", "q.jsonl", "-m", model(quiet_server), "-o", "a.jsonl"]
    assert promptmill(*args).returncode == 0
    store = tmp_path / "a.jsonl.promptmill.db"
    with contextlib.closing(sqlite3.connect(store)) as db:
        db.execute("PRAGMA user_version = 99")
    before = hashlib.sha256(store.read_bytes()).hexdigest()
    quiet_server.stats.reset()
    for command in (args, ["status", "a.jsonl"], ["export", "a.jsonl", "--to", "b.jsonl"]):
        result = promptmill(*command)
        assert_one_line_error(result, "a.jsonl.promptmill.db was written by a newer promptmill",
                              "schema 99", "upgrade promptmill", code=1)
    assert nothing_sent(quiet_server)
    assert hashlib.sha256(store.read_bytes()).hexdigest() == before  # left as it was
    with contextlib.closing(sqlite3.connect(store)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 99


def _limit_file_size(size: int) -> Callable[[], None]:
    def limit() -> None:
        # Writes past the limit fail with EFBIG instead of killing the process with SIGXFSZ.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return limit


@pytest.mark.parametrize("fmt", ["jsonl", "arrow"])  # arrow: written on a thread of its own
def test_export_to_a_full_disk(tmp_path: Path, promptmill: Run, quiet_server: TestServer,
                               fmt: str) -> None:
    write_jsonl(tmp_path / "q.jsonl", questions(200))
    assert promptmill("run", "q.jsonl", "-m", model(quiet_server), "-o", "a.jsonl").returncode == 0
    # Room for the job store's 32 KiB shared-memory file, not for the 60 KB of results.
    result = promptmill("export", "a.jsonl", "--to", f"b.{fmt}", "--format", fmt,
                        preexec_fn=_limit_file_size(40_000))
    assert_one_line_error(result, f"cannot write b.{fmt}", "free space or choose another "
                          "location", "every result is kept in the job store", code=1)
    assert not (tmp_path / f"b.{fmt}").exists() and not list(tmp_path.glob(f".b.{fmt}.*"))
    assert len(read_jsonl(tmp_path / "a.jsonl")) == 200  # the job's own results untouched


@pytest.mark.parametrize("disk", ["tmpfs", "file-size-limit"])
def test_disk_fills_up_while_planning(disk: str, tmp_path: Path, promptmill: Run,
                                      quiet_server: TestServer) -> None:
    # Long prompts: one planning chunk outgrows SQLite's page cache and spills mid-statement.
    write_jsonl(tmp_path / "q.jsonl", [{"id": i, "prompt": f"question {i}: " + "word " * 300}
                                       for i in range(3000)])
    folder = tmp_path / "disk"
    folder.mkdir()
    args = ["run", "q.jsonl", "-m", model(quiet_server), "-o", "disk/a.jsonl"]
    with contextlib.ExitStack() as stack:
        if disk == "tmpfs":
            stack.enter_context(mounted_tmpfs(folder, "size=1m"))
            full = promptmill(*args)
        else:
            full = promptmill(*args, preexec_fn=_limit_file_size(1_000_000))
        assert_one_line_error(full, "disk/a.jsonl.promptmill.db", "full",
                              "free space and rerun the same command", code=1)
        assert nothing_sent(quiet_server)
        if disk == "tmpfs":
            subprocess.run(["mount", "-o", "remount,size=64m", str(folder)], check=True)
        fixed = promptmill(*args)
        assert fixed.returncode == 0, fixed.stderr
        assert [row["id"] for row in read_jsonl(folder / "a.jsonl")] == list(range(3000))


@pytest.mark.parametrize("disk", ["tmpfs", "file-size-limit"])
def test_disk_fills_up_mid_run(disk: str, tmp_path: Path, promptmill: Run,
                               quiet_server: TestServer) -> None:
    # The prompts are planned, then the results fill the disk while answers come in.
    write_jsonl(tmp_path / "q.jsonl", [
        {"id": i, "question": f"Question {i}, asked with enough words to take some room"}
        for i in range(400)])
    folder = tmp_path / "disk"
    folder.mkdir()
    args = ["run", "q.jsonl", "-m", model(quiet_server), "-o", "disk/a.jsonl", "-k", "8",
            "--max-concurrency", "16"]
    store = folder / "a.jsonl.promptmill.db"
    with contextlib.ExitStack() as stack:
        if disk == "tmpfs":
            stack.enter_context(mounted_tmpfs(folder, "size=600k"))
            full = promptmill(*args)
        else:
            full = promptmill(*args, preexec_fn=_limit_file_size(600_000))
        line = assert_one_line_error(full, "disk/a.jsonl.promptmill.db", "full",
                                     "free space and rerun the same command",
                                     "everything recorded so far is kept", code=1)
        assert "Traceback" not in full.stderr, line
        before = store_state(store)
        assert before.integrity == "ok" and before.rows == 400
        assert 0 < before.done < 400  # it failed midway, some results stored
        answered_before = {rid for rid in before.finished}
        if disk == "tmpfs":  # the fix: more room
            subprocess.run(["mount", "-o", "remount,size=64m", str(folder)], check=True)
        fixed = promptmill(*args)
        assert fixed.returncode == 0, fixed.stderr
        after = store_state(store)
        results = read_jsonl(folder / "a.jsonl")
    assert after.done == 400
    assert [row["id"] for row in results] == list(range(400))
    assert all(len(row["responses"]) == 8 for row in results)
    # Everything stored before the disk filled up is still there, unchanged ...
    assert all(after.finished[rid] == before.finished[rid] for rid in answered_before)
    # ... and was not asked for again: the server answered each of those requests once.
    by_prompt = quiet_server.stats.completed_by_prompt
    assert max(by_prompt.values()) <= 2  # asked twice at most: those lost in flight
    for rid in answered_before:
        body = {"model": "test-model", "n": 8, "messages": [
            {"role": "user", "content": f"Question {rid}, asked with enough words to take "
                                        "some room"}]}
        assert quiet_server.stats.times_answered(body) == 1, rid
