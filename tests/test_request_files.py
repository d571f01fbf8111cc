"""Request files (``run --requests``, ``promptmill.run_requests``) over real HTTP against the
test server: the cookbook's request bodies, seed 000's Python call, Batch API input lines.

What a user relies on is checked where the user meets it: the body the server received for
each line (every per-line field, counted by the server as answered once), the output file's
rows in the input's order, the answer on each row being its own request's, the messages of
refusals, and the ``--format openai-batch`` output read back with the ``openai`` package's
own types and with ``promptmill reformat``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import promptmill
from promptmill.errors import InputError, JobMismatchError, UsageError
from promptmill.testing import Faults, TestServer, expected_answers

MODELS = ("gpt-3.5-turbo", "gpt-4o-mini", "gpt-4o")


def cookbook_requests(count: int) -> list[dict[str, Any]]:
    """Request bodies as the cookbook's processor reads them, with per-line models and fields."""
    lines = []
    for i in range(count):
        line: dict[str, Any] = {
            "model": MODELS[i % 3],
            "messages": [{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": f"Question {i}: what is {i} squared?"}],
            "metadata": {"row_id": i},
        }
        if i % 2:
            line["temperature"] = round(0.1 * (i % 10), 1)
        if i % 3 == 1:
            line["max_tokens"] = 4 + i % 5
        if i % 5 == 2:
            line["seed"] = 1000 + i
            line["stop"] = ["squared"]
        if i % 7 == 3:
            line["response_format"] = {"type": "json_object"}
            line["logit_bias"] = {"50256": -100}
        if i % 4 == 0:
            line["logprobs"] = True
            line["top_logprobs"] = 2
        if i % 6 == 5:
            line["n"] = 2
        if i % 8 == 6:
            line["presence_penalty"] = 0.5
            line["frequency_penalty"] = -0.5
        lines.append(line)
    return lines


def sent(line: dict[str, Any]) -> dict[str, Any]:
    """The body a cookbook line is sent as: the line without its metadata."""
    return {key: value for key, value in line.items() if key != "metadata"}


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def texts(row: dict[str, Any]) -> list[str]:
    return [response["text"] for response in row["responses"]]


def test_a_cookbook_request_file_sends_each_line_as_it_is_and_keeps_input_order(
        tmp_path: Path, make_server: Callable[..., TestServer],
        promptmill_cli: Callable[..., Any]) -> None:
    # Slow answers at random: requests finish out of order, the output must not.
    server = make_server(faults=Faults(slow=0.3, slow_seconds=0.05, seed=3))
    lines = cookbook_requests(120)
    write_jsonl(tmp_path / "requests.jsonl", lines)
    result = promptmill_cli("run", "requests.jsonl", "--requests", "-m",
                            f"http!default-model,api_base={server.url}", "-o", "out.jsonl")
    assert result.returncode == 0, result.stderr
    assert server.stats.faults["slow"] > 0
    # Every line reached the server as written (its model, temperature, max_tokens, stop,
    # seed, logprobs, n, penalties, response_format, logit_bias), without its metadata, once.
    assert server.stats.total_completed == len(lines)
    assert all(server.stats.times_answered(sent(line)) == 1 for line in lines)
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert [row["metadata"] for row in rows] == [line["metadata"] for line in lines]
    for line, row in zip(lines, rows, strict=True):
        assert row["request"] == sent(line)
        assert texts(row) == expected_answers(sent(line))  # its own request's answer
        assert row["model"] == f"http!{line['model']},api_base={server.url}"
        assert row["status"] == "done" and row["attempts"] == 1 and row["error"] is None
        assert row["usage"]["completion_tokens"] > 0
        assert ("logprobs" in row["responses"][0]) == bool(line.get("logprobs"))
    assert list(rows[0]) == ["metadata", "request", "responses", "usage", "model", "attempts",
                             "status", "error", "endpoint"]

    # The same command again: nothing is sent, the output is the same.
    before = (tmp_path / "out.jsonl").read_bytes()
    again = promptmill_cli("run", "requests.jsonl", "--requests", "-m",
                           f"http!default-model,api_base={server.url}", "-o", "out.jsonl")
    assert again.returncode == 0, again.stderr
    assert server.stats.total_completed == len(lines)
    assert (tmp_path / "out.jsonl").read_bytes() == before


def test_seed_000_call_shape_in_one_line_results_in_input_order(
        make_server: Callable[..., TestServer]) -> None:
    server = make_server(faults=Faults(slow=0.4, slow_seconds=0.05, seed=7))
    # Seed 000: openai_parallel_generate(requests=requests, max_requests_per_minute=...,
    # max_tokens_per_minute=..., request_url=...)
    requests = [
        {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "Tell me a story"}]},
        {"model": "gpt-3.5-turbo",
         "messages": [{"role": "user", "content": "Explain quantum physics"}]},
    ] * 10
    requests = [{**body, "metadata": {"n": i}} for i, body in enumerate(requests)]
    results = promptmill.run_requests(requests, f"http!gpt-3.5-turbo,api_base={server.url}",
                                      rpm=3500, tpm=90000)
    assert [row["metadata"] for row in results] == [{"n": i} for i in range(20)]
    assert [texts(row) for row in results] == [expected_answers(sent(body))
                                               for body in requests]
    assert all(row["status"] == "done" for row in results)


async def test_arun_requests_inside_a_running_loop_and_job_params_as_defaults(
        server: TestServer, tmp_path: Path) -> None:
    bodies = [{"model": "m-1", "prompt": "Once upon a time", "max_tokens": 3},
              {"model": "m-2", "prompt": "The future of AI"}]
    server.stats.reset()
    results = await promptmill.arun_requests(
        bodies, f"http!m-1,api_base={server.url},temperature=0.5",
        params={"max_tokens": 7}, output=tmp_path / "out.jsonl")
    # The job's params fill in what a line does not set; a line's own field wins.
    assert [row["request"] for row in results] == [
        {"model": "m-1", "prompt": "Once upon a time", "temperature": 0.5, "max_tokens": 3},
        {"model": "m-2", "prompt": "The future of AI", "temperature": 0.5, "max_tokens": 7}]
    assert all(server.stats.times_answered(row["request"]) == 1 for row in results)
    assert [row["model"] for row in results] == [f"http!m-1,api_base={server.url}",
                                                 f"http!m-2,api_base={server.url}"]
    # Inside a running loop (a notebook), the sync call works too, and resumes the job.
    again = await asyncio.to_thread(
        promptmill.run_requests, bodies, f"http!m-1,api_base={server.url},temperature=0.5",
        params={"max_tokens": 7}, output=tmp_path / "out.jsonl")
    assert again == results
    assert server.stats.total_completed == 2


def batch_input_lines(count: int) -> list[dict[str, Any]]:
    """Seed 004's batchinput.jsonl, chat and text lines, two models."""
    lines = []
    for i in range(count):
        if i % 4 == 3:
            lines.append({"custom_id": f"request-{i + 1}", "method": "POST",
                          "url": "/v1/completions",
                          "body": {"model": "gpt-3.5-turbo-instruct",
                                   "prompt": f"Say {i} twice.", "max_tokens": 8,
                                   "logprobs": 2}})
        else:
            lines.append({"custom_id": f"request-{i + 1}", "method": "POST",
                          "url": "/v1/chat/completions",
                          "body": {"model": "gpt-4-turbo", "messages": [
                              {"role": "system", "content": "You are a helpful assistant."},
                              {"role": "user", "content": f"Hello world {i}!"}]}})
    return lines


def test_a_batch_api_input_file_runs_online_and_writes_batch_output_lines(
        tmp_path: Path, server: TestServer, promptmill_cli: Callable[..., Any]) -> None:
    openai = pytest.importorskip("openai")  # the dev extra installs it
    from openai.types import BatchError, Completion
    from openai.types.chat import ChatCompletion

    lines = batch_input_lines(12)
    lines[5]["body"]["temperature"] = 5  # the server refuses it: a failed request
    write_jsonl(tmp_path / "batchinput.jsonl", lines)
    server.stats.reset()
    result = promptmill_cli("run", "batchinput.jsonl", "--requests", "-m",
                            f"http!gpt-4-turbo,api_base={server.url}", "-o", "out.jsonl",
                            "--format", "openai-batch")
    assert result.returncode == 1, result.stderr  # one request failed
    assert "1 request failed" in result.stderr
    for line in lines[:5] + lines[6:]:
        assert server.stats.times_answered(line["body"]) == 1
    output = read_jsonl(tmp_path / "out.jsonl")
    errors = read_jsonl(tmp_path / "out.errors.jsonl")
    assert [o["custom_id"] for o in output] == [line["custom_id"] for line in
                                                lines[:5] + lines[6:]]
    for out, line in zip(output, lines[:5] + lines[6:], strict=True):
        assert set(out) == {"id", "custom_id", "response", "error"} and out["error"] is None
        assert out["response"]["status_code"] == 200 and out["response"]["request_id"]
        chat = line["url"] == "/v1/chat/completions"
        body = (ChatCompletion if chat else Completion).model_validate(out["response"]["body"])
        answers = [c.message.content if chat else c.text for c in body.choices]  # type: ignore
        assert answers == expected_answers(line["body"])
        assert body.model == line["body"]["model"]
        assert body.usage is not None and body.usage.completion_tokens > 0
        if not chat:  # logprobs in the text completion shape, one per token
            logprobs = body.choices[0].logprobs  # type: ignore[union-attr]
            assert logprobs is not None and "".join(logprobs.tokens or []) == answers[0]
            assert all(len(top) == 2 for top in logprobs.top_logprobs or [])
    assert len({o["id"] for o in output}) == len(output)
    [error] = errors
    assert error["custom_id"] == "request-6" and error["response"] is None
    assert "temperature" in (BatchError.model_validate(error["error"]).message or "")
    assert openai.__version__

    # Scripts written for batch output read it: promptmill's own reformat, for one.
    flat = promptmill_cli("reformat", "out.jsonl", "-o", "flat.jsonl")
    assert flat.returncode == 0, flat.stderr
    assert [row["id"] for row in read_jsonl(tmp_path / "flat.jsonl")] == [
        o["custom_id"] for o in output]
    # The job store keeps the usual rows: export them as JSONL, the custom_ids first.
    exported = promptmill_cli("export", "out.jsonl", "--format", "jsonl", "--to", "rows.jsonl")
    assert exported.returncode == 0, exported.stderr
    rows = read_jsonl(tmp_path / "rows.jsonl")
    assert [row["custom_id"] for row in rows] == [line["custom_id"] for line in lines]
    assert rows[5]["status"] == "failed" and "temperature" in rows[5]["error"]


def test_duplicate_custom_ids_and_bad_lines_are_refused_before_anything_is_sent(
        tmp_path: Path, server: TestServer) -> None:
    model = f"http!gpt-4-turbo,api_base={server.url}"
    good = batch_input_lines(3)

    def refused(lines: list[dict[str, Any]], **options: Any) -> str:
        path = write_jsonl(tmp_path / "in.jsonl", lines)
        server.stats.reset()
        with pytest.raises((InputError, UsageError)) as caught:
            promptmill.run_requests(path, model, output=tmp_path / "out.jsonl", **options)
        assert server.stats.received == {}
        return str(caught.value)

    duplicate = [*good, {**good[1]}]
    assert refused(duplicate) == (
        f"{tmp_path / 'in.jsonl'}:4: duplicate custom_id \"request-2\" (first on line 2): give "
        "every line its own custom_id (the Batch API refuses a file with duplicates too)")
    cases = {
        "url '/v1/embeddings': promptmill sends chat and text completions": {
            **good[0], "url": "/v1/embeddings"},
        "method 'GET': the Batch API takes POST only": {**good[0], "method": "GET"},
        "unknown field 'headers' in a Batch API line": {**good[0], "headers": {}},
        "url /v1/completions needs 'prompt' in the body": {**good[0], "url": "/v1/completions"},
        "field 'api_key': keys never go in request files": {
            **good[0], "body": {**good[0]["body"], "api_key": "sk-abc123456789"}},
        "'stream': true is not supported": {**good[0], "body": {**good[0]["body"],
                                                                "stream": True}},
        "field 'temperature': Input should be greater than or equal to 0": {
            **good[0], "body": {**good[0]["body"], "temperature": -1}},
        "a request body among Batch API lines": good[0]["body"],
    }
    for message, line in cases.items():
        if "custom_id" in line:
            line = {**line, "custom_id": "another"}
        text = refused([good[0], line])
        assert text.startswith(f"{tmp_path / 'in.jsonl'}:2: "), text
        assert message in text, text
        assert "sk-abc" not in text
    bodies = [{"model": "m", "messages": [{"role": "user", "content": "hi"}]}]
    assert "both 'messages' and 'prompt'" in refused([{**bodies[0], "prompt": "x"}])
    assert "one string: put one prompt per line" in refused([{"model": "m", "prompt": ["a"]}])
    assert "a Batch API line among request bodies" in refused([*bodies, good[0]])


def test_without_requests_a_request_file_is_recognised_and_the_flag_suggested(
        tmp_path: Path, server: TestServer, promptmill_cli: Callable[..., Any]) -> None:
    write_jsonl(tmp_path / "requests.jsonl", cookbook_requests(3))
    model = f"http!m,api_base={server.url}"
    plain = promptmill_cli("run", "requests.jsonl", "-m", model)
    assert plain.returncode == 2
    assert plain.stderr.strip() == (
        "error: requests.jsonl: every line is a request body (model + messages or prompt): run "
        "it with --requests (from Python: promptmill.run_requests) to send each line as it is, "
        "with its own model and parameters")
    # The report: --messages-field messages met a clash on 'model'.
    clash = promptmill_cli("run", "requests.jsonl", "-m", model, "--messages-field", "messages")
    assert clash.returncode == 2
    assert "run the file with --requests" in clash.stderr
    batch = write_jsonl(tmp_path / "batchinput.jsonl", batch_input_lines(2))
    with pytest.raises(InputError, match="every line is a Batch API input line: run it with "
                       "--requests"):
        promptmill.run(batch, model)
    # A dataset with a prompt field is no request file.
    rows = promptmill.run([{"prompt": "hi", "temperature": 3}], model)
    assert rows[0]["status"] == "done"
    conflicting = promptmill_cli("run", "requests.jsonl", "--requests", "-m", model,
                                 "--template", "{{ x }}")
    assert conflicting.returncode == 2
    assert "--template does not apply to --requests" in conflicting.stderr


def test_without_m_the_first_lines_model_names_the_endpoint(
        tmp_path: Path, server: TestServer, promptmill_cli: Callable[..., Any]) -> None:
    write_jsonl(tmp_path / "requests.jsonl", cookbook_requests(3))
    server.stats.reset()
    result = promptmill_cli("run", "requests.jsonl", "--requests")
    assert result.returncode != 0
    assert "no -m given: sending to gpt-3.5-turbo, the model line 1 names" in result.stderr
    assert "openai! needs an API key: set OPENAI_API_KEY" in result.stderr
    dry = promptmill_cli("run", "requests.jsonl", "--requests", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "models     gpt-3.5-turbo, gpt-4o, gpt-4o-mini" in dry.stdout
    assert "requests   3 (one per line of the request file)" in dry.stdout
    assert dry.stdout.splitlines()[-2].startswith("cost       $")
    assert server.stats.received == {}


def test_a_changed_request_file_or_override_is_refused_naming_the_change(
        tmp_path: Path, server: TestServer) -> None:
    path = write_jsonl(tmp_path / "requests.jsonl", cookbook_requests(4))
    model = f"http!default,api_base={server.url}"
    out = tmp_path / "out.jsonl"
    first = promptmill.run_requests(path, model, output=out)
    assert [row["request"]["model"] for row in first] == list(MODELS) + [MODELS[0]]
    with pytest.raises(JobMismatchError, match="requests changed"):
        promptmill.run_requests(path, model, output=out, override_model=True)
    write_jsonl(path, cookbook_requests(5))
    with pytest.raises(JobMismatchError, match="the input file's content changed"):
        promptmill.run_requests(path, model, output=out)
    server.stats.reset()
    # --override-model: every line to -m's model, whatever it names.
    rows = promptmill.run_requests(path, model, output=out, override_model=True, new_job=True)
    assert {row["request"]["model"] for row in rows} == {"default"}
    assert server.stats.total_completed == 5


def test_a_request_file_in_batch_mode_makes_one_batch_per_model_and_url(
        tmp_path: Path, server: TestServer) -> None:
    lines = batch_input_lines(8)
    lines[0]["body"]["model"] = "gpt-4o-mini"
    path = write_jsonl(tmp_path / "batchinput.jsonl", lines)
    model = f"http!gpt-4-turbo,api_base={server.url}"
    assert server.batch_service is not None
    before = set(server.batch_service.batches)
    online = promptmill.run_requests(path, model, output=tmp_path / "online.jsonl")
    batched = promptmill.run_requests(path, model, output=tmp_path / "batch.jsonl",
                                      mode="batch", poll_interval=0.05)
    made = [b for key, b in server.batch_service.batches.items() if key not in before]
    # The test server refuses a batch mixing models (as OpenAI does): one batch per
    # (url, model), each completed.
    assert sorted((b["endpoint"], b["model"]) for b in made) == [
        ("/v1/chat/completions", "gpt-4-turbo"), ("/v1/chat/completions", "gpt-4o-mini"),
        ("/v1/completions", "gpt-3.5-turbo-instruct")]
    assert {b["status"] for b in made} == {"completed"}

    def comparable(row: dict[str, Any]) -> dict[str, Any]:
        return {**row, "responses": [r["text"] for r in row["responses"]]}

    assert [comparable(row) for row in batched] == [comparable(row) for row in online]


def test_a_request_file_exports_to_parquet_with_the_request_as_a_struct(
        tmp_path: Path, server: TestServer) -> None:
    import pyarrow.parquet as pq

    path = write_jsonl(tmp_path / "requests.jsonl", cookbook_requests(12))
    promptmill.run_requests(path, f"http!default,api_base={server.url}",
                            output=tmp_path / "out.parquet")
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.column_names[:2] == ["metadata", "request"]
    assert table.column("request").to_pylist()[4]["temperature"] is None
    assert table.column("request").to_pylist()[1]["max_tokens"] == 5


def test_lines_to_two_models_keep_each_models_own_limits(
        make_server: Callable[..., TestServer]) -> None:
    from promptmill.testing import RateLimits

    # As OpenAI: each model has its own limits, and its answers' headers speak of those.
    server = make_server(model_limits={"small": RateLimits(requests=10, window=2.0),
                                       "large": RateLimits(requests=1000, window=2.0)})
    # The first lines spend the small model's allowance; the large model's answers that
    # follow say nothing about it: the last small lines wait for their own model's refill.
    models = ["small"] * 10 + ["large"] * 200 + ["small"] * 10
    bodies = [{"model": model, "messages": [{"role": "user", "content": f"Line {i}"}]}
              for i, model in enumerate(models)]
    results = promptmill.run_requests(bodies, f"http!large,api_base={server.url}",
                                      max_concurrency=16)
    assert all(row["status"] == "done" for row in results)
    assert server.stats.statuses[429] == 0
    assert server.stats.total_completed == 220


def test_a_line_over_the_context_fails_unsent_and_the_others_go_on(
        tmp_path: Path, server: TestServer) -> None:
    long = "word " * 400
    bodies = [{"model": "m", "messages": [{"role": "user", "content": content}],
               "metadata": {"i": i}} for i, content in enumerate(["short", long, "short too"])]
    server.stats.reset()
    rows = promptmill.run_requests(bodies, f"http!m,api_base={server.url}",
                                   output=tmp_path / "out.jsonl", max_prompt_tokens=100)
    assert [row["status"] for row in rows] == ["done", "failed", "done"]
    assert rows[1]["responses"] == []
    assert "over the 100 of --max-prompt-tokens: shorten it or lower max_tokens" in (
        rows[1]["error"]), rows[1]["error"]
    assert server.stats.completed["/v1/chat/completions"] == 2  # the long line never sent


def test_the_run_report_prices_each_line_at_its_own_models_price(
        tmp_path: Path, server: TestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from promptmill.pricing import listed_price
    from promptmill.report.summary import summary_facts
    from promptmill.report.timeline import read_run
    from promptmill.store import JobStore

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-requests-report-0123456789")
    bodies = [{"model": model, "messages": [{"role": "user", "content": f"Line {i}"}]}
              for i, model in enumerate(["gpt-4o", "gpt-4o-mini", "gpt-4o", None])]
    for body in bodies:
        if body["model"] is None:
            del body["model"]  # the job's own model
    rows = promptmill.run_requests(bodies, f"openai!gpt-4o-mini,api_base={server.url}",
                                   output=tmp_path / "out.jsonl")
    expected = 0.0
    for body, row in zip(bodies, rows, strict=True):
        price = listed_price("openai", body.get("model", "gpt-4o-mini"))
        assert price is not None
        expected += (row["usage"]["prompt_tokens"] * price.prompt
                     + row["usage"]["completion_tokens"] * price.completion) / 1e6
    with JobStore(tmp_path / "out.jsonl.promptmill.db", lock=False) as store:
        run = read_run(store, "out.jsonl")
    assert run.cost is not None and abs(run.cost.standard - expected) < 1e-12
    cost = dict(summary_facts(run))["cost"]
    assert cost.startswith(f"${expected:,.4f} (2 models (gpt-4o, gpt-4o-mini), on average"), cost
