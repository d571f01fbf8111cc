"""Planning and the JSONL export at speed: the fast paths give what the plain ones gave."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from promptmill import arrow
from promptmill.export import export_results, iter_results
from promptmill.generators import get_generator
from promptmill.job import Job, JobSpec
from promptmill.planning import payload_json
from promptmill.prompts.render import PromptSpec
from promptmill.store import FinishedRequest

MODEL = "http!test-model,api_base=http://127.0.0.1:9/v1"
_json_text = json.JSONEncoder(ensure_ascii=False).encode
# Text that json escapes (quotes, backslashes, control characters) and text it keeps as is.
AWKWARD = 'say "hi" \\ back\n\ttab \x01\x1f \x7f é 中文 \u2028 \U0001f600'


@pytest.mark.parametrize("payload", [
    {"messages": [{"role": "user", "content": AWKWARD}]},
    {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": AWKWARD}]},
    {"prompt": AWKWARD},
    {"messages": [{"role": "user", "content": "x"}], "adapter": "ad"},
    {"messages": [{"content": "x", "role": "user"}]},  # another key order
    {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]},
    {"messages": [{"role": "user", "content": "x", "name": "n"}]},
    {"messages": []},
])
def test_a_planned_payload_is_the_text_json_writes(payload: dict[str, object]) -> None:
    # The response cache keys on this text: answers cached by earlier versions must be found.
    assert payload_json(payload, _json_text) == json.dumps(payload, ensure_ascii=False)


def plan_job(tmp_path: Path, lines: list[str], k: int = 1,
             prompts: PromptSpec | None = None) -> Job:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    spec = JobSpec(input=source, output=tmp_path / "out.jsonl", generator=get_generator(
        MODEL + ",supports_n=false"), k=k, prompts=prompts or PromptSpec(prompt_field="q"))
    job = Job.open(spec)
    job.plan()
    return job


def test_rows_keep_integers_past_64_bits_and_non_finite_numbers(tmp_path: Path) -> None:
    big = 123456789012345678901234567890
    job = plan_job(tmp_path, [f'{{"id": {big}, "q": "a {big}"}}',
                              '{"id": 2, "q": "b", "x": NaN, "y": [1e400]}',
                              f'{{"id": 3, "q": "c", "deep": [{{"n": -{big}}}]}}'],
                   prompts=PromptSpec(template="{{ id }}: {{ q }}"))
    try:
        rows = list(iter_results(job.store))
        payloads = [json.loads(p) for (p,) in job.store.db.execute(
            "SELECT payload FROM requests ORDER BY id")]
    finally:
        job.close()
    assert rows[0]["id"] == big and type(rows[0]["id"]) is int
    assert rows[2]["deep"] == [{"n": -big}]
    assert payloads[0]["messages"][-1]["content"] == f"{big}: a {big}"  # not 1.2345678...e+29
    assert rows[1]["x"] != rows[1]["x"] and rows[1]["y"] == [float("inf")]  # NaN, inf kept


def test_the_jsonl_export_is_the_rows_with_their_results(tmp_path: Path) -> None:
    lines = ['  {"id": 0, "q": "zero"}  ', '{}', '{"id":2,"q":"two","nested":{"a":[1,2.5]}}',
             '{"id": 3, "q": "\\u00e9t\\u00e9 \\"quoted\\""}', '{"id": 4, "q": "four"}']
    lines[1] = '{"q": "one"}'
    job = plan_job(tmp_path, lines, k=2)  # two sample groups a row (supports_n=false)
    try:
        answer = json.dumps([{"text": "Amber \"basil\"\n", "finish_reason": "stop"}])
        job.store.record([
            FinishedRequest(id=0, attempts=1, responses=answer, prompt_tokens=3,
                            completion_tokens=4, endpoint="http!a"),
            FinishedRequest(id=1, attempts=2, responses="[]", prompt_tokens=3,
                            completion_tokens=0, endpoint="http!b"),
            FinishedRequest(id=2, attempts=3, error="bad \"gateway\" é", error_kind="fatal"),
            FinishedRequest(id=3, attempts=1, responses=answer, prompt_tokens=1,
                            completion_tokens=1),
            FinishedRequest(id=6, attempts=1, responses=answer),
            FinishedRequest(id=7, attempts=1, error="later", error_kind="fatal"),
            FinishedRequest(id=8, attempts=1, responses=answer),
            FinishedRequest(id=9, attempts=1, responses=answer.replace("Amber", "Cedar")),
        ])  # row 2 (ids 4, 5) stays pending
        expected = list(iter_results(job.store, "http!m,x=1"))
        count = export_results(job.store, tmp_path / "export.jsonl", "jsonl", model="http!m,x=1")
    finally:
        job.close()
    text = (tmp_path / "export.jsonl").read_text(encoding="utf-8")
    assert count == 5 and text.endswith("}\n") and text.count("\n") == 5
    assert [json.loads(line) for line in text.splitlines()] == expected
    assert [row["status"] for row in expected] == ["done", "failed", "pending", "failed",
                                                   "done"]
    assert [r["text"][:5] for r in expected[4]["responses"]] == ["Amber", "Cedar"]
    assert expected[0]["endpoint"] == "http!a; http!b" and expected[0]["attempts"] == 3
    assert len(expected[0]["responses"]) == 1 and expected[1]["error"] == 'bad "gateway" é'


def test_an_empty_row_exports_as_its_results_alone(tmp_path: Path) -> None:
    job = plan_job(tmp_path, ["{}", "{ }"], prompts=PromptSpec(template="Say hi"))
    try:
        export_results(job.store, tmp_path / "export.jsonl", "jsonl", model="http!m")
        expected = list(iter_results(job.store, "http!m"))
    finally:
        job.close()
    lines = (tmp_path / "export.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == expected
    assert list(expected[1]) == ["responses", "usage", "model", "attempts", "status", "error",
                                 "endpoint"]


def test_one_sample_group_a_row_exports_what_iter_results_gives(tmp_path: Path) -> None:
    # k=1: JSONL lines and Parquet/Arrow columns built from each row with its one request.
    lines = ['{"id": 0, "q": "zero", "empty": {}}', '{ "q": "one", "empty": {} }',
             '{"id": 2, "q": "big", "empty": {}, "x": 1e300}', '{"id": 3, "q": "three"}',
             '{"id": 4, "q": "four", "empty": {}}', '{"id": 5, "q": "five", "empty": {}}']
    job = plan_job(tmp_path, lines)
    logprobs = [{"token": "A", "logprob": -0.5, "bytes": [65],
                 "top_logprobs": {"A": -0.5, "B": -1.5}}]
    answer = json.dumps([{"text": "A", "finish_reason": "stop", "logprobs": logprobs,
                          "json": {"answer": "A"}}])
    try:
        job.store.record([
            FinishedRequest(id=0, attempts=1, responses=answer, prompt_tokens=3,
                            completion_tokens=4, endpoint="http!a"),
            FinishedRequest(id=1, attempts=2, error="bad \"gateway\" é\n", error_kind="fatal"),
            FinishedRequest(id=2, attempts=1, responses='[{"text": "x"}]'),
            FinishedRequest(id=5, attempts=1, responses="[]", error=""),
        ])
        job.store.db.execute("UPDATE requests SET status = 'batched' WHERE id = 4")
        expected = list(iter_results(job.store, "http!m"))
        export_results(job.store, tmp_path / "export.jsonl", "jsonl", model="http!m")
        for fmt in ("parquet", "arrow"):
            export_results(job.store, tmp_path / f"export.{fmt}", fmt, model="http!m",
                           source=job.spec.input)
        schema = arrow.result_schema(arrow.store_row_types(job.store))
        table = pa.Table.from_batches(list(arrow.record_batches(iter(expected), schema)))
    finally:
        job.close()
    text = (tmp_path / "export.jsonl").read_text(encoding="utf-8")
    assert [json.loads(line) for line in text.splitlines()] == expected
    assert [row["status"] for row in expected] == ["done", "failed", "done", "pending",
                                                   "pending", "failed"]
    assert expected[2]["x"] == 1e300
    for fmt in ("parquet", "arrow"):
        assert arrow.load(tmp_path / f"export.{fmt}").equals(table), fmt
    assert table.column("responses")[0].as_py()[0]["json"] == '{"answer": "A"}'
    assert table.column("empty").to_pylist() == ["{}", "{}", "{}", None, "{}", "{}"]


@pytest.mark.parametrize(("lines", "error"), [
    (['{"q": "a"}', '{"q": "b"}'], None),
    (['{"q": "a"}', '{"q": ""}'], "in.jsonl:2: the prompt is empty"),  # stops at a bad row
])
def test_the_garbage_collector_is_back_on_after_planning(
        tmp_path: Path, lines: list[str], error: str | None) -> None:
    # Planning turns the collector off while it runs; a notebook that plans a job, or fails
    # to, must find it on again.
    import gc

    from promptmill.errors import InputError

    assert gc.isenabled()
    if error is None:
        plan_job(tmp_path, lines).close()
    else:
        with pytest.raises(InputError, match=error):
            plan_job(tmp_path, lines)
    assert gc.isenabled()
