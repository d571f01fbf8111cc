"""Structured output against the test server: asked for, validated, retried, kept, exported."""

from __future__ import annotations

import json
import sqlite3

import jsonschema
import pyarrow.parquet as pq
import pytest
from pydantic import BaseModel

import promptmill
from promptmill.errors import JobMismatchError, UsageError
from promptmill.store import store_path_for
from promptmill.testing import JsonFaults

SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}, "confidence": {"type": "integer",
                                                                "minimum": 0, "maximum": 10},
                   "tags": {"type": "array", "items": {"type": "string"}}},
    "required": ["answer", "confidence"],
    "additionalProperties": False,
}


class Verdict(BaseModel):
    """A pydantic model as a schema."""

    label: str
    score: float


def _rows(count: int) -> list[dict[str, object]]:
    return [{"id": i, "question": f"What is {i} plus {i}?"} for i in range(count)]


def test_every_done_row_validates_and_invalid_answers_are_retried(make_server, tmp_path):
    # Draws go to requests in arrival order, so which row meets which is not fixed: a request
    # (two samples) is spoiled with p = 0.51, and with 8 attempts some row of 60 gave up in
    # 3 runs of 10 (every attempt spoiled, rightly failed). 30 attempts: ~1e-7 a run.
    server = make_server(json_faults=JsonFaults(invalid=0.15, mismatch=0.15, seed=7))
    rows = promptmill.run(_rows(60), f"http!test-model,api_base={server.url}", schema=SCHEMA,
                          k=2, output=tmp_path / "out.jsonl", max_attempts=30)
    spoiled = server.json.spoiled["invalid"] + server.json.spoiled["mismatch"]
    assert server.json.spoiled["invalid"] > 0 and server.json.spoiled["mismatch"] > 0
    assert all(row["status"] == "done" for row in rows)
    for row in rows:
        assert len(row["responses"]) == 2
        for response in row["responses"]:
            jsonschema.validate(response["json"], SCHEMA)
            assert json.loads(response["text"]) == response["json"]
    # A request with a spoiled answer among its samples was asked again: every spoiled
    # answer cost one counted attempt (k=2 in one request: both samples asked again).
    attempts = sum(row["attempts"] for row in rows)
    served = server.stats.completed["/v1/chat/completions"]
    assert attempts == served
    assert len(rows) < served <= len(rows) + spoiled
    # The run's attempt log (promptmill report) names each retried answer for what it was.
    with sqlite3.connect(store_path_for(tmp_path / "out.jsonl")) as db:
        outcomes = dict(db.execute("SELECT outcome, COUNT(*) FROM attempt_log GROUP BY 1"))
    assert outcomes == {"done": len(rows), "invalid_output": served - len(rows)}


def test_answers_still_invalid_after_the_last_attempt_fail_with_the_validation_error(
        make_server, tmp_path):
    server = make_server(json_faults=JsonFaults(mismatch=1.0))
    out = tmp_path / "out.jsonl"
    rows = promptmill.run(_rows(3), f"http!test-model,api_base={server.url}", schema=SCHEMA,
                          output=out, max_attempts=2)
    assert [row["status"] for row in rows] == ["failed"] * 3
    assert all("does not match the schema" in row["error"] for row in rows)
    assert all(row["attempts"] == 2 for row in rows)
    assert server.stats.completed["/v1/chat/completions"] == 6


def test_a_pydantic_model_is_the_schema_and_is_sent_as_response_format(make_server, recorder,
                                                                       tmp_path):
    seen = recorder(lambda body: json.dumps({"label": "yes", "score": 0.5}))
    server = make_server(responder=seen)
    rows = promptmill.run(_rows(2), f"http!test-model,api_base={server.url}", schema=Verdict)
    assert [row["responses"][0]["json"] for row in rows] == [{"label": "yes", "score": 0.5}] * 2
    sent = seen.bodies[0]["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["name"] == "Verdict"
    assert sent["json_schema"]["schema"] == Verdict.model_json_schema()
    # Pydantic's schema leaves objects open: OpenAI's strict mode would refuse it.
    assert sent["json_schema"]["strict"] is False


def test_a_fenced_json_answer_is_accepted(make_server, recorder):
    server = make_server(responder=recorder(
        lambda body: '```json\n{"label": "no", "score": 1}\n```'))
    rows = promptmill.run(_rows(1), f"http!test-model,api_base={server.url}", schema=Verdict)
    assert rows[0]["responses"][0]["json"] == {"label": "no", "score": 1}


def test_the_schema_is_part_of_the_job(server, tmp_path):
    out = tmp_path / "out.jsonl"
    model = f"http!test-model,api_base={server.url}"
    promptmill.run(_rows(2), model, schema=SCHEMA, output=out)
    with pytest.raises(JobMismatchError, match="params response_format"):
        promptmill.run(_rows(2), model, schema=Verdict, output=out)


def test_cli_schema_file_writes_json_and_flattens_to_parquet(server, promptmill_cli, tmp_path):
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows(4)))
    (tmp_path / "answer.schema.json").write_text(json.dumps(SCHEMA))
    run = promptmill_cli("run", "in.jsonl", "-o", "out.jsonl", "--schema", "answer.schema.json",
                         "-m", f"http!test-model,api_base={server.url}")
    assert run.returncode == 0, run.stderr
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert all(jsonschema.validate(r["responses"][0]["json"], SCHEMA) is None for r in rows)
    export = promptmill_cli("export", "out.jsonl", "--format", "parquet", "--flatten-json")
    assert export.returncode == 0, export.stderr
    table = pq.read_table(tmp_path / "out.parquet")
    assert str(table.schema.field("json_answer").type) == "string"
    assert str(table.schema.field("json_confidence").type) == "int64"
    assert str(table.schema.field("json_tags").type) == "string"  # an array: JSON text
    flat = table.to_pylist()
    for row, original in zip(flat, rows, strict=True):
        parsed = original["responses"][0]["json"]
        assert row["json_answer"] == parsed["answer"]
        assert row["json_confidence"] == parsed["confidence"]
        assert row["responses"][0]["json"] == json.dumps(parsed, ensure_ascii=False)


def test_flatten_with_k_gives_a_list_per_field(server, tmp_path):
    out = tmp_path / "out.jsonl"
    promptmill.run(_rows(2), f"http!test-model,api_base={server.url}", schema=SCHEMA, k=3,
                   output=out)
    from promptmill.export import export_results
    from promptmill.store import JobStore, store_path_for

    with JobStore(store_path_for(out)) as store:
        export_results(store, tmp_path / "out.parquet", "parquet", flatten_json=True)
    table = pq.read_table(tmp_path / "out.parquet")
    assert str(table.schema.field("json_confidence").type) == "list<element: int64>"
    assert all(len(v) == 3 for v in table.column("json_confidence").to_pylist())


def test_flatten_without_a_schema_is_refused(server, promptmill_cli, tmp_path):
    (tmp_path / "in.jsonl").write_text(json.dumps({"prompt": "hi"}) + "\n")
    assert promptmill_cli("run", "in.jsonl", "-o", "out.jsonl",
                          "-m", f"http!test-model,api_base={server.url}").returncode == 0
    export = promptmill_cli("export", "out.jsonl", "--format", "parquet", "--flatten-json")
    assert export.returncode == 2
    assert "--flatten-json needs a job run with --schema" in export.stderr


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"type": "objekt"}', "not a valid JSON Schema"),
    ("[1, 2]", "a JSON Schema is a JSON object"),
])
def test_a_bad_schema_file_fails_before_anything_is_sent(server, promptmill_cli, tmp_path,
                                                         content, message):
    (tmp_path / "in.jsonl").write_text(json.dumps({"prompt": "hi"}) + "\n")
    (tmp_path / "bad.json").write_text(content)
    server.stats.reset()
    run = promptmill_cli("run", "in.jsonl", "--schema", "bad.json",
                         "-m", f"http!test-model,api_base={server.url}")
    assert run.returncode == 2
    assert "--schema bad.json" in run.stderr and message in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert sum(server.stats.received.values()) == 0
    assert not (tmp_path / "in.results.jsonl").exists()


def test_a_backend_that_cannot_constrain_output_is_refused_before_the_job(tmp_path):
    from promptmill.testing import FakeLocalEngine

    with pytest.raises(UsageError, match="cannot honour response_format"):
        promptmill.run(_rows(1), FakeLocalEngine("fake"), schema=SCHEMA,
                       output=tmp_path / "o.jsonl")


def test_strict_mode_only_for_schemas_openai_accepts_strictly():
    from promptmill.structured import response_format_for

    closed = {**SCHEMA, "required": ["answer", "confidence", "tags"]}
    assert response_format_for(closed)["json_schema"]["strict"] is True
    assert response_format_for(SCHEMA)["json_schema"]["strict"] is False  # tags optional
    nested_open = {**closed, "properties": {**SCHEMA["properties"], "tags": {
        "type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}}}
    assert response_format_for(nested_open)["json_schema"]["strict"] is False


def test_schema_errors_name_the_file(tmp_path):
    from promptmill.structured import load_schema

    with pytest.raises(UsageError, match=r"--schema .*missing.json: no such file"):
        load_schema(tmp_path / "missing.json")
    (tmp_path / "named.json").write_text(json.dumps(SCHEMA))
    assert load_schema(tmp_path / "named.json") == (SCHEMA, "named")


async def test_batch_mode_validates_each_line_and_sends_invalid_ones_again(make_server,
                                                                          tmp_path):
    from promptmill.api import execute
    from promptmill.batch import BatchOptions
    from promptmill.engine.dispatch import EngineConfig
    from promptmill.generators import get_generator
    from promptmill.job import JobSpec
    from promptmill.params import make_params
    from promptmill.structured import response_format_for

    server = make_server(json_faults=JsonFaults(invalid=0.1, mismatch=0.1, seed=2))
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in _rows(40)))
    spec = JobSpec(input=source, output=tmp_path / "out.jsonl", mode="batch",
                   generator=get_generator(f"http!test-model,api_base={server.url}"),
                   params=make_params({"response_format": response_format_for(SCHEMA)}))
    outcome = await execute(spec, EngineConfig(), batch=BatchOptions(wait=True,
                                                                     poll_interval=0.02))
    assert outcome.complete and outcome.failed == 0
    rows = [json.loads(line) for line in spec.output.read_text().splitlines()]
    for row in rows:
        jsonschema.validate(row["responses"][0]["json"], SCHEMA)
    spoiled = sum(server.json.spoiled.values())
    assert spoiled > 0
    assert sum(row["attempts"] for row in rows) == len(rows) + spoiled
    assert len(server.batch_service.batches) > 1  # the invalid lines went in another batch
