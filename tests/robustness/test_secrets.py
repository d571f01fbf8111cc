"""An API key never lands in anything promptmill writes or prints, whatever its shape.

Canary keys of several shapes are given every way a user can give one: an OpenAI-style key
in the environment, a Groq-style key in the model identifier, a Hugging Face-style key in a
``.env`` file under a variable whose name says nothing (``api_key_env=``), a Google-style key
in such a variable of the environment, and a key that matches no known pattern at all (a
self-hosted server's arbitrary string), which only redaction by value can catch. Jobs run
against the test server through injected faults, with debug logging (``-vv``), through
``status``, ``export`` (every format) and ``--dry-run``, killed with SIGKILL and resumed,
stopped with SIGINT (whose message repeats the command), and with malformed identifiers
holding the key.

Then against a backend that quotes the key back, whole or masked the way providers do
(``gsk_ab****...wxyz``): in a 400 that fails one row while the job goes on (so the quoted
text is what the store's error column, the export and ``status`` would carry), and in a 401
that stops the job. The files are also searched while a job runs: paused inside a commit of
results (the WAL and ``-shm`` hold the uncommitted pages) and halfway through an export
(the temporary file), not only after a clean finish.

Request files (``run --requests``) too: a key given each way, lines failing with a backend
quoting it, the ``--format openai-batch`` error file, and a line holding a key refused without
echoing it.

Batch mode has its own part: jobs sent through the Batch API with the key in the environment,
the identifier and ``.env``; paused right after an upload (the batch input file, the store
and its WAL on disk) and killed; resumed with ``--wait``; every ``promptmill batch`` command
and ``reformat``; and a Batch API that quotes the key back in a 401 on upload and in every
line of a batch's error file (what the store's error column would carry).
"""

from __future__ import annotations

import json
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
    failpoint_env,
    serve_app,
    wait_for,
    write_jsonl,
)

from promptmill.testing import BatchFaults, Faults, serve_in_thread

Run = Callable[..., subprocess.CompletedProcess[str]]

# One canary per shape; the last one matches none of the patterns redaction knows.
CANARIES = {
    "openai": CANARY_KEY,
    "groq": "gsk_pmCanary2Groq7fQ93LmZx0aWvB4",
    "huggingface": "hf_pmCanaryHuggingFaceT0ken7Xq3",
    "google": "AIzaSyPmCanaryGoogleKey-9QwErTy",
    "opaque": "Zt8q-opaque-pm-canary-44xk",
}


def masked(key: str) -> str:
    """The key as providers quote it back: a few leading characters, a mask, the last four."""
    return f"{key[:7]}{'*' * 24}{key[-4:]}"


def needles() -> list[str]:
    """What must never appear: each key, its distinctive middle, its masked form."""
    found = []
    for key in CANARIES.values():
        found += [key, key[5:-4], masked(key)]
    return found


KEYS_SEEN: list[str] = []


async def key_quoting_backend(request: web.Request) -> web.StreamResponse:
    """Answers every key, but quotes it back in errors (model ``quote-400|401-full|masked``).

    ``quote-400-*``: rows whose prompt ends in 3 fail with a 400 quoting the key; the job goes
    on. ``quote-401-*``: rows ending in 7 get a 401 quoting it, which stops the job.
    """
    if request.path.endswith("/models"):
        return web.json_response({"object": "list", "data": [{"id": "quote", "object": "model"}]})
    key = request.headers.get("Authorization", "").removeprefix("Bearer ")
    KEYS_SEEN.append(key)
    body = await request.json()
    _, status, style = body["model"].split("-")
    shown = key if style == "full" else masked(key)
    prompt = body["messages"][-1]["content"]
    if (status == "400" and prompt.endswith("3")) or (status == "401" and prompt.endswith("7")):
        return web.json_response({"error": {
            "message": f"Incorrect API key provided: {shown}. You can find your API key at "
                       "https://platform.example/account/api-keys.",
            "type": "invalid_request_error", "code": "invalid_api_key"}}, status=int(status))
    return web.json_response({
        "id": "x", "object": "chat.completion", "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})


def leaks(folder: Path, printed: list[str]) -> list[str]:
    """Where a key shows up: files under ``folder`` (but .env) and printed output."""
    found = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != ".env":
            data = path.read_bytes()
            found += [f"{path.name}: {needle!r}" for needle in needles()
                      if needle.encode() in data]
    for index, text in enumerate(printed):
        found += [f"output #{index}: {needle!r}" for needle in needles() if needle in text]
    return found


@pytest.mark.slow
def test_no_key_of_any_shape_appears_in_any_file_or_output(
    tmp_path: Path, promptmill: Run, start_promptmill: Callable[..., subprocess.Popen[str]],
    failpoints: Path,
) -> None:
    write_jsonl(tmp_path / "q.jsonl", [{"id": i, "prompt": f"question {i}"} for i in range(200)])
    printed: list[str] = []
    env_key = clean_env(OPENAI_API_KEY=CANARIES["openai"])

    def run(*args: str, env: dict[str, str] | None = None, ok: bool = True) -> str:
        result = promptmill(*args, env=env)
        printed.extend([result.stdout, result.stderr])
        if ok:
            assert result.returncode == 0, result.stderr
        else:
            assert result.returncode != 0, result.stderr
        return result.stderr

    with serve_in_thread() as plain, serve_in_thread(
        latency=0.05, faults=Faults(rate_limit=0.05, server_error=0.05, drop=0.03,
                                    malformed=0.03, seed=5, retry_after=0.05)) as faulty:
        in_id = f"http!test-model,api_base={plain.url},api_key={CANARIES['groq']}"
        # The key in the environment, the openai! backend pointed at the test server.
        run("run", "q.jsonl", "-m", f"openai!gpt-4o-mini,api_base={plain.url}", "-o", "env.jsonl",
            "-vv", env=env_key)
        # The key in the identifier, through faults, with debug logging.
        run("run", "q.jsonl", "-m", in_id.replace(plain.url, faulty.url), "-o", "faults.jsonl",
            "-vv")
        # The key in .env, under a variable whose name says nothing.
        (tmp_path / ".env").write_text(f"PM_CREDENTIAL={CANARIES['huggingface']}\n")
        run("run", "q.jsonl", "-m", f"http!test-model,api_base={plain.url},"
            "api_key_env=PM_CREDENTIAL", "-o", "dotenv.jsonl", "-vv")
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
        assert not leaks(tmp_path, []), leaks(tmp_path, [])  # mid-dispatch: store, WAL, SHM
        process.send_signal(signal.SIGKILL)
        printed.extend(process.communicate())
        process = start_promptmill(*args)
        wait_for(lambda: done_count(store) >= 60, process=process)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate()
        printed.extend([stdout, stderr])
        assert process.returncode == 130 and "api_key=***" in stderr, stderr
        run(*args)
        # Malformed identifiers holding a key are reported without it.
        opaque = CANARIES["opaque"]
        run("run", "q.jsonl", "-m", f'http!test-model,api_key={opaque},stop="a', ok=False)
        run("run", "q.jsonl", "-m", f"http!test-model,api_key={opaque},temprature=1", ok=False)
        run("run", "q.jsonl", "-m", f"http!test-model,api_key='{opaque}", ok=False)

    # Backends quoting the key back, each key shape through its own way of being given.
    KEYS_SEEN.clear()
    with serve_app(key_quoting_backend) as url:
        given = [
            ("openai", "", env_key),
            ("groq", f",api_key={CANARIES['groq']}", None),
            ("google", ",api_key_env=PM_GOOGLE", clean_env(PM_GOOGLE=CANARIES["google"])),
            ("opaque", f",api_key={opaque}", None),
        ]
        for name, option, env in given:
            for style in ("full", "masked"):
                model = f"http!quote-400-{style},api_base={url}{option}"
                if name == "openai":
                    model = f"openai!quote-400-{style},api_base={url}"
                output = f"q400-{name}-{style}.jsonl"
                # 20 of 200 rows fail with the key quoted in their error; the rest are done.
                stderr = run("run", "q.jsonl", "-m", model, "-o", output, "-vv", env=env,
                             ok=False)
                assert "20 requests failed" in stderr and "Incorrect API key" in stderr, stderr
                run("status", output)
                run("export", output, "--format", "csv")
                run("export", output, "--format", "parquet")
                stderr = run("run", "q.jsonl", "-m", model.replace("400", "401"), "-o",
                             f"q401-{name}-{style}.jsonl", "--max-concurrency", "1", "-vv",
                             env=env, ok=False)
                assert "401" in stderr and "check the key" in stderr, stderr
        # The .env key (no pattern would catch its masked form), paused inside a commit of
        # results, then halfway through the export: the files are searched there.
        (tmp_path / ".env").write_text(f"PM_CREDENTIAL={CANARIES['huggingface']}\n")
        write_jsonl(tmp_path / "q2k.jsonl",
                    [{"id": i, "prompt": f"question {i}"} for i in range(2000)])
        model = f"http!quote-400-masked,api_base={url},api_key_env=PM_CREDENTIAL"
        args = ["run", "q2k.jsonl", "-m", model, "-o", "paused.jsonl"]
        for where, nth in (("commit", 8), ("export", 1)):
            mark = tmp_path / "failpoint.mark"
            mark.unlink(missing_ok=True)
            env = failpoint_env(failpoints, where, nth, mark)
            env["PROMPTMILL_FAILPOINT_EXPORT_ROW"] = "1500"  # the first blocks are on disk by then
            process = start_promptmill(*args, env=env)
            assert wait_for(mark.exists, process=process), process.communicate()
            partial = list(tmp_path.glob(".paused.jsonl.*.tmp"))
            if where == "export":
                assert partial and b"Incorrect API key" in partial[0].read_bytes()
            else:
                assert list(tmp_path.glob("paused.jsonl.promptmill.db-wal"))
            assert not leaks(tmp_path, []), (where, leaks(tmp_path, []))
            process.send_signal(signal.SIGKILL)
            printed.extend(process.communicate())
        run(*args, ok=False)
        (tmp_path / ".env").unlink()
    assert set(KEYS_SEEN) >= {CANARIES[name] for name, _, _ in given} | {
        CANARIES["huggingface"]}  # the keys did travel, to the server

    written = sorted(path.name for path in tmp_path.iterdir())
    assert {"env.jsonl", "faults.jsonl", "dotenv.jsonl", "crash.jsonl", "env.csv",
            "faults.parquet", "crash.jsonl.promptmill.db", "q400-opaque-masked.csv",
            "paused.jsonl"} <= set(written), written
    assert not leaks(tmp_path, printed), leaks(tmp_path, printed)


UPLOADED: dict[str, list[str]] = {}  # the custom_ids of each upload to the quoting backend


async def key_quoting_batch_api(request: web.Request) -> web.StreamResponse:
    """A Batch API that quotes the key back: ``/v1/401/...`` refuses uploads with a 401,
    ``/v1/400/...`` answers every line of a batch with a 400 in its error file."""
    key = request.headers.get("Authorization", "").removeprefix("Bearer ")
    KEYS_SEEN.append(key)
    mode, _, rest = request.path.removeprefix("/v1/").partition("/")
    quoted = f"Incorrect API key provided: {key} ({masked(key)})"
    if mode == "401":
        return web.json_response({"error": {"message": quoted, "type": "invalid_request_error",
                                             "code": "invalid_api_key"}}, status=401)
    batch = {"id": "batch_q", "object": "batch", "status": "completed",
             "input_file_id": "file-in", "output_file_id": None, "error_file_id": "file-err",
             "endpoint": "/v1/chat/completions", "completion_window": "24h",
             "created_at": 1, "request_counts": {"total": 0, "completed": 0, "failed": 0},
             "errors": None}
    if rest == "files" and request.method == "POST":
        async for part in await request.multipart():
            if getattr(part, "name", None) == "file":
                raw = await part.read()  # type: ignore[union-attr]
                UPLOADED["file-in"] = [json.loads(line)["custom_id"]
                                       for line in raw.splitlines() if line.strip()]
        return web.json_response({"id": "file-in", "object": "file", "bytes": 1,
                                  "filename": "x.jsonl", "purpose": "batch"})
    if rest in ("files", "batches"):
        return web.json_response({"object": "list", "data": [], "has_more": False})
    if rest.startswith("batches"):
        return web.json_response(batch)
    if rest == "files/file-err/content":
        lines = [json.dumps({"id": "r", "custom_id": custom, "error": None, "response": {
            "status_code": 400, "request_id": "q", "body": {"error": {"message": quoted}}}})
            for custom in UPLOADED.get("file-in", [])]
        return web.Response(body="\n".join(lines).encode())
    return web.json_response({"error": {"message": f"no {request.path}"}}, status=404)


@pytest.mark.slow
def test_batch_mode_keeps_every_key_out_of_files_and_output(
    tmp_path: Path, promptmill: Run, start_promptmill: Callable[..., subprocess.Popen[str]],
    failpoints: Path,
) -> None:
    write_jsonl(tmp_path / "q.jsonl", [{"id": i, "prompt": f"question {i}"} for i in range(60)])
    printed: list[str] = []
    env_key = clean_env(OPENAI_API_KEY=CANARIES["openai"])

    def run(*args: str, env: dict[str, str] | None = None, code: int = 0) -> str:
        result = promptmill(*args, env=env)
        printed.extend([result.stdout, result.stderr])
        assert result.returncode == code, result.stderr
        return result.stdout + result.stderr

    with serve_in_thread(batch_faults=BatchFaults(line_error=0.1, seed=2)) as server:
        batch = ["--mode", "batch", "--poll-interval", "0.05", "-vv"]
        # The key in the environment (openai!), paused after the upload, killed, resumed.
        args = ["run", "q.jsonl", "-m", f"openai!gpt-4o-mini,api_base={server.url}", "-o",
                "env.jsonl", *batch]
        mark = tmp_path / "failpoint.mark"
        process = start_promptmill(*args, env={**failpoint_env(failpoints, "upload", 1, mark),
                                               "OPENAI_API_KEY": CANARIES["openai"]})
        assert wait_for(mark.exists, process=process), process.communicate()
        assert list(tmp_path.glob("env.jsonl.promptmill.batches/*.input.jsonl"))
        assert not leaks(tmp_path, []), leaks(tmp_path, [])  # input file, store, WAL
        process.send_signal(signal.SIGKILL)
        printed.extend(process.communicate())
        run(*args, "--wait", env=env_key)
        # The key in the identifier; then in .env under a name that says nothing.
        in_id = f"http!test-model,api_base={server.url},api_key={CANARIES['groq']}"
        assert "api_key=***" in run("run", "q.jsonl", "-m", in_id, "-o", "id.jsonl", *batch,
                                    code=75)
        run("run", "q.jsonl", "-m", in_id, "-o", "id.jsonl", *batch, "--wait",
            "--finish-online")
        (tmp_path / ".env").write_text(f"PM_CREDENTIAL={CANARIES['huggingface']}\n")
        dotenv = f"http!test-model,api_base={server.url},api_key_env=PM_CREDENTIAL"
        run("run", "q.jsonl", "-m", dotenv, "-o", "dotenv.jsonl", *batch, "--wait")
        # Reading the jobs back, and every batch command.
        for output in ("env.jsonl", "id.jsonl", "dotenv.jsonl"):
            run("status", output)
            run("export", output, "--format", "csv")
            run("export", output, "--format", "parquet")
        run("run", "q.jsonl", "-m", in_id, "-o", "dry.jsonl", "--dry-run", "--mode", "batch")
        run("batch", "status", "--job", "dotenv.jsonl")
        run("batch", "list", "--job", "dotenv.jsonl")
        run("batch", "create", "q.jsonl", "-m", in_id, "-o", "by-hand.jsonl")
        by_hand = clean_env(PM_OTHER=CANARIES["google"])
        run("batch", "submit", "by-hand.jsonl", "--api-base", server.url, "--api-key-env",
            "PM_OTHER", env=by_hand)
        wait_for(lambda: all(b["status"] == "completed" for b in
                             (server.batch_service.batches.values()  # type: ignore[union-attr]
                              )), timeout=60)
        run("batch", "download", "-o", "by-hand.out.jsonl", "--api-key-env", "PM_OTHER",
            env=by_hand)
        run("reformat", "by-hand.out.jsonl", "--format", "csv")
        (tmp_path / ".env").unlink()

    # A Batch API quoting the key back: in a 401 on upload, in every line of an error file.
    with serve_app(key_quoting_batch_api) as url:
        for name, option, env in (("groq", f",api_key={CANARIES['groq']}", None),
                                  ("opaque", f",api_key={CANARIES['opaque']}", None),
                                  ("google", ",api_key_env=PM_G",
                                   clean_env(PM_G=CANARIES["google"]))):
            said = run("run", "q.jsonl", "-m", f"http!quote,api_base={url}/401{option}", "-o",
                       f"q401-{name}.jsonl", *batch, env=env, code=1)
            assert "HTTP 401 on POST" in said and "check the API key" in said, said
            said = run("run", "q.jsonl", "-m", f"http!quote,api_base={url}/400{option}", "-o",
                       f"q400-{name}.jsonl", *batch, "--wait", env=env, code=1)
            assert "60 requests failed" in said and "Incorrect API key" in said, said
            run("status", f"q400-{name}.jsonl")
            run("export", f"q400-{name}.jsonl", "--format", "csv")
    assert {CANARIES["groq"], CANARIES["opaque"], CANARIES["google"]} <= set(KEYS_SEEN)

    written = {path.name for path in tmp_path.iterdir()}
    assert {"env.jsonl", "id.jsonl", "dotenv.jsonl", "q400-opaque.csv", "by-hand.out.jsonl",
            "by-hand.out.flat.csv", ".promptmill-last-batch"} <= written, written
    assert "Incorrect API key" in (tmp_path / "q400-opaque.csv").read_text()
    assert not leaks(tmp_path, printed), leaks(tmp_path, printed)


@pytest.mark.slow
def test_request_files_keep_every_key_out_of_files_and_output(
        tmp_path: Path, promptmill: Run) -> None:
    # Cookbook lines to the key-quoting backend: lines ending in 3 fail with a 400 quoting
    # the key, so the failed rows' errors (and the openai-batch error file) would carry it.
    lines = [{"model": "quote-400-full", "messages": [{"role": "user", "content": f"line {i}"}],
              "metadata": {"i": i}} for i in range(30)]
    write_jsonl(tmp_path / "requests.jsonl", lines)
    # A line holding a key is refused without quoting it.
    write_jsonl(tmp_path / "keyed.jsonl", [{**lines[0], "api_key": CANARIES["opaque"]}])
    printed: list[str] = []

    def run(*args: str, env: dict[str, str] | None = None, code: int = 0) -> str:
        result = promptmill(*args, env=env)
        printed.extend([result.stdout, result.stderr])
        assert result.returncode == code, result.stderr
        return result.stdout + result.stderr

    with serve_app(key_quoting_backend) as url:
        for name, model, env in (
                ("groq", f"http!quote-400-full,api_base={url},api_key={CANARIES['groq']}", None),
                ("env", f"openai!quote-400-full,api_base={url}",
                 clean_env(OPENAI_API_KEY=CANARIES["openai"])),
                ("opaque", f"http!quote-400-masked,api_base={url},api_key_env=PM_K",
                 clean_env(PM_K=CANARIES["opaque"]))):
            said = run("run", "requests.jsonl", "--requests", "-m", model, "-o",
                       f"{name}.jsonl", "--format", "openai-batch", "-vv", env=env, code=1)
            assert "3 requests failed" in said and "Incorrect API key" in said, said
            run("status", f"{name}.jsonl")
            run("export", f"{name}.jsonl", "--format", "jsonl", "--to", f"{name}.rows.jsonl")
            run("export", f"{name}.jsonl", "--format", "parquet")
            run("run", "requests.jsonl", "--requests", "-m", model, "-o", f"dry-{name}.jsonl",
                "--dry-run", env=env)
        said = run("run", "keyed.jsonl", "--requests", "-m", f"http!m,api_base={url}", code=2)
        assert "field 'api_key': keys never go in request files" in said, said
    (tmp_path / "keyed.jsonl").unlink()  # the test's own input: the one file holding a key
    errors = (tmp_path / "groq.errors.jsonl").read_text()
    assert errors.count("Incorrect API key") == 3
    assert {json.loads(line)["metadata"]["i"] for line in
            (tmp_path / "env.rows.jsonl").read_text().splitlines()} == set(range(30))
    assert not leaks(tmp_path, printed), leaks(tmp_path, printed)
