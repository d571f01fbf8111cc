"""Parquet and Arrow read by pyarrow's JSON reader give the files the Python path gives.

The reference is the export through Python objects (``iter_results``, the row fields' types
by ``arrow.RowTypes`` over the rows as ``json`` reads them, ``arrow.record_batches``), which
every job went through before; the export under test reads the store's text in C++
(``promptmill.arrow_json``) wherever it can, and must write the very same schema and values.
"""

from __future__ import annotations

import json
import random
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from promptmill import arrow, arrow_json, data, fastjson
from promptmill.errors import InputError
from promptmill.export import export_results, iter_results
from promptmill.generators import get_generator
from promptmill.job import Job, JobSpec
from promptmill.prompts.render import PromptSpec
from promptmill.store import FinishedRequest

MODEL = "http!test-model,api_base=http://127.0.0.1:9/v1"
STRINGS = ["plain", "", "2024-01-02", "2024-01-02T03:04:05", "2024-01-02 03:04:05.25",
           "1999-12-31T23:59:59Z", "12:30", "123", "null", "true", 'say "hi" \\ back',
           "line\nbreak\ttab \x01", "é 中文 \u2028 \U0001f600"]
ANSWER = {"text": "Amber basil", "finish_reason": "stop"}
LOGPROB = {"token": "A", "logprob": -0.25, "bytes": [65],
           "top_logprobs": [{"token": "A", "logprob": -0.25, "bytes": [65]}]}
ANSWERS = [
    [ANSWER], [ANSWER, {"text": "Cedar", "finish_reason": "length"}], [],
    [{**ANSWER, "cached": True}], [{**ANSWER, "unknown": 5, "also": {"x": [1]}}],
    [{"text": None, "finish_reason": None}], [{**ANSWER, "prompt_logprobs": [None, LOGPROB]}],
]


def plan(tmp_path: Path, rows: list[str]) -> Job:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(row + "\n" for row in rows), encoding="utf-8")
    spec = JobSpec(input=source, output=tmp_path / "out.jsonl", generator=get_generator(MODEL),
                   prompts=PromptSpec(template="Say hi"))
    job = Job.open(spec)
    job.plan()
    return job


def finish(job: Job, rng: random.Random, answers: list[Any]) -> None:
    """Record an outcome for most requests: answers, failures, a batched one, some pending."""
    results = []
    for (request_id,) in job.store.db.execute("SELECT id FROM requests ORDER BY id"):
        roll = rng.random()
        if roll < 0.08:
            continue  # pending
        if roll < 0.16:
            results.append(FinishedRequest(id=request_id, attempts=rng.randint(1, 4),
                                           error=rng.choice(STRINGS[:2] + STRINGS[-4:-1]),
                                           error_kind="fatal"))
            continue
        answer = rng.choice(answers)
        text = json.dumps(answer) if rng.random() < 0.5 else json.dumps(
            answer, separators=(",", ":"), ensure_ascii=False)
        results.append(FinishedRequest(
            id=request_id, attempts=rng.randint(1, 3), responses=text,
            prompt_tokens=rng.choice([None, 0, rng.randint(1, 10**6)]),
            completion_tokens=rng.randint(0, 500),
            endpoint=rng.choice([None, None, "", "http!a,api_key=***", 'http!"b"'])))
    job.store.record(results)
    job.store.db.execute("UPDATE requests SET status = 'batched' WHERE id % 11 = 5 "
                         "AND status = 'pending'")


def reference(job: Job, tmp_path: Path, fmt: str, model: str) -> pa.Table:
    """The file the Python path writes, read back."""
    types = arrow.infer_row_types(
        (index, fastjson.loads_exact(text)) for index, text in job.store.iter_row_data())
    schema = arrow.result_schema(types)
    path = tmp_path / f"reference.{fmt}"
    data.write_batches(arrow.record_batches(iter_results(job.store, model), schema), path, fmt,
                       schema)
    return arrow.load(path)


def assert_same_files(job: Job, tmp_path: Path, model: str = "http!m,x=1") -> pa.Table:
    """Export to Parquet and Arrow; each file holds what the Python path's holds."""
    for fmt in ("parquet", "arrow"):
        export_results(job.store, tmp_path / f"export.{fmt}", fmt, model=model,
                       source=job.spec.input)
        table = arrow.load(tmp_path / f"export.{fmt}")
        expected = reference(job, tmp_path, fmt, model)
        assert table.schema.equals(expected.schema, check_metadata=True), (
            fmt, table.schema, expected.schema)
        for name in expected.schema.names:
            got, want = table.column(name), expected.column(name)
            # repr: NaN equals NaN there (and -0.0 differs from 0.0)
            assert got.equals(want) or repr(got.to_pylist()) == repr(want.to_pylist()), (
                fmt, name, got.to_pylist()[:8], want.to_pylist()[:8])
    return expected


def random_value(rng: random.Random, kind: str, depth: int = 0) -> Any:
    if kind == "int":
        return rng.choice([rng.randint(-9, 9), rng.randint(-(10**17), 10**17), 0])
    if kind == "float":  # a few integers among them: the column is promoted to float
        return rng.choice([rng.randint(-5, 5), rng.uniform(-1, 1) * 10.0 ** rng.randint(-300, 300),
                           float(rng.getrandbits(53)) / 2**rng.randint(0, 60), -0.0, 0.1 + 0.2])
    if kind == "str":
        return rng.choice(STRINGS)
    if kind == "date":  # every value reads as a timestamp to the JSON reader's inference
        return rng.choice(STRINGS[2:6])
    if kind == "bool":
        return rng.random() < 0.5
    if kind.startswith("list:"):  # one item kind a field, so that its rows agree
        return [random_value(rng, kind[5:]) for _ in range(rng.randint(0, 3))]
    if kind == "object":  # keys vary between rows: the struct holds all of them
        keys = rng.sample(["a", "b", "c", "when"], rng.randint(0, 3)) if depth < 2 else ["a"]
        value: dict[str, Any] = {key: random_value(rng, {"a": "int", "b": "str", "c": "list:str",
                                                         "when": "date"}[key], depth + 1)
                                 for key in keys}
        if depth < 2 and rng.random() < 0.3:
            value["inner"] = random_value(rng, "object", depth + 1)
        return value
    if kind == "objects":
        return [random_value(rng, "object", 1) for _ in range(rng.randint(0, 2))]
    raise AssertionError(kind)


KINDS = ["int", "float", "str", "date", "bool", "list:int", "list:float", "list:str",
         "list:date", "list:bool", "object", "objects"]


def random_rows(rng: random.Random, count: int) -> list[str]:
    """``count`` JSONL rows whose fields keep one kind each (some missing, some null)."""
    fields = {f"f{i}": rng.choice(KINDS) for i in range(rng.randint(1, 7))}
    rows = []
    for index in range(count):
        row: dict[str, Any] = {"id": index}
        for name, kind in rng.sample(sorted(fields.items()), len(fields)):  # any key order
            roll = rng.random()
            if roll >= 0.15:  # else missing from this row
                row[name] = None if roll < 0.25 else random_value(rng, kind)
        rows.append(json.dumps(row, ensure_ascii=rng.random() < 0.5,
                               separators=rng.choice([(",", ":"), (", ", ": ")])))
    return rows


@pytest.mark.parametrize("seed", range(24))
def test_varied_rows_and_answers_export_as_the_python_path_exports_them(
        tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    job = plan(tmp_path, random_rows(rng, rng.randint(1, 40)))
    try:
        finish(job, rng, ANSWERS)
        assert_same_files(job, tmp_path)
    finally:
        job.close()


def test_timestamps_the_reader_infers_stay_strings_and_the_reader_did_the_export(
        tmp_path: Path) -> None:
    rows = [json.dumps({"when": "2024-01-02", "at": {"t": "2024-01-02T03:04:05"},
                        "n": i, "x": 1.5, "tags": ["2024-01-02"]}) for i in range(30)]
    job = plan(tmp_path, rows)
    try:
        finish(job, random.Random(1), ANSWERS)
        expected = assert_same_files(job, tmp_path)
        # The C++ path served this job (else the comparison above proves nothing of it).
        assert arrow_json.infer_row_types(job.store, frozenset()) is not None
        first, last, count, document = next(arrow_json.row_documents(job.store))
        schema = arrow.result_schema(arrow.store_row_types(job.store))
        own = pa.struct([f for f in schema if f.name not in arrow.RESULT_FIELDS.names])
        assert arrow_json.chunk_columns(job.store, first, last, count, document,
                                        own) is not None
    finally:
        job.close()
    assert expected.schema.field("when").type == pa.string()
    assert expected.column("when")[0].as_py() == "2024-01-02"
    assert expected.column("at")[0].as_py() == {"t": "2024-01-02T03:04:05"}


def test_chunks_read_by_the_reader_and_by_python_join_in_one_file(tmp_path: Path) -> None:
    # Chunks of 5,000 rows, each read its own way: 1. answers of text alone, no error nor
    # endpoint (the reader); 2. an answer with more fields (the reader, every field); 3. answers
    # with logprobs (Python reshapes them); 4. two requests whose ids are each other's rows'
    # and 5. a row whose request is gone (not one request a row by id: Python). A field is
    # promoted from integers to floats in the last, and one is first seen there.
    rows = [json.dumps({"n": i if i < 20_000 else i + 0.5, "s": f"r{i}",
                        **({"late": [i]} if i > 20_000 else {})}) for i in range(21_000)]
    job = plan(tmp_path, rows)
    try:
        finish(job, random.Random(7), [[ANSWER], [ANSWER, ANSWER], []])
        db = job.store.db
        db.execute("UPDATE requests SET endpoint = NULL, error = "
                   "CASE WHEN error IS NULL THEN NULL ELSE '' END WHERE id < 5000")
        for row, answer in ((7000, {**ANSWER, "cached": True}), (11000, {
                **ANSWER, "logprobs": [{**LOGPROB, "top_logprobs": {"A": -0.25}}]})):
            db.execute("UPDATE requests SET status = 'done', responses = ? WHERE row_index = ?",
                       (json.dumps([answer]), row))
        db.execute("UPDATE requests SET responses = '[{\"text\": \"17000\"}]', status = 'done' "
                   "WHERE id = 17000")
        for old, new in ((17000, -1), (17001, 17000), (-1, 17001)):
            db.execute("UPDATE requests SET id = ? WHERE id = ?", (new, old))
        db.execute("DELETE FROM requests WHERE row_index = 20500")
        expected = assert_same_files(job, tmp_path)
    finally:
        job.close()
    assert expected.schema.field("n").type == pa.float64()
    assert expected.column("status")[20500].as_py() == "done"
    assert expected.column("responses")[7000].as_py()[0]["cached"] is True
    assert expected.column("responses")[11000].as_py()[0]["logprobs"][0]["top_logprobs"] == [
        {"token": "A", "logprob": -0.25, "bytes": None}]
    assert expected.column("responses")[17000].as_py()[0]["text"] == "17000"


@pytest.mark.parametrize(("rows", "message"), [
    (['{"v": 1}', '{"v": "x"}'], "input row 2: field 'v' is text"),
    (['{"v": [1]}', '{"v": [true]}'], "input row 2: field 'v'"),
    (['{"v": 1}', '{"v": 12345678901234567890123}'], "input row 2: field 'v'"),
    (['{"v": 1, "v": 2}', '{"v": {}}'], "input row 2: field 'v'"),
])
def test_rows_the_reader_declines_get_pythons_answer(
        tmp_path: Path, rows: list[str], message: str) -> None:
    job = plan(tmp_path, rows)
    try:
        with pytest.raises(InputError) as caught:
            export_results(job.store, tmp_path / "export.parquet", "parquet", model="m")
    finally:
        job.close()
    assert str(caught.value).startswith(message), caught.value


@pytest.mark.parametrize("rows", [
    ['{"s": "9999999999999999999999 in a string", "n": 1}', '{"s": "b", "n": 2}'],
    ['{"x": NaN, "y": -Infinity}', '{"x": 1.5, "y": 2}'],
    ['{"x": 1e400, "y": 1e-400}', '{"x": 2.5, "y": 0.5}'],
    ['{"x": 9223372036854775807, "y": -9223372036854775808}', '{"x": 1, "y": 2}'],
    ['{"e": {}, "n": 1}', '{"e": {}, "n": 2}'],
    ['{\t"tab": "ok",\r"n": 1 }', '{"tab": "x", "n": 2}'],
])
def test_rows_the_reader_declines_or_may_misread_export_as_python_exports_them(
        tmp_path: Path, rows: list[str]) -> None:
    job = plan(tmp_path, rows)
    try:
        finish(job, random.Random(3), ANSWERS)
        assert_same_files(job, tmp_path)
    finally:
        job.close()


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Connection.setlimit is Python 3.11's")
def test_chunks_past_sqlites_longest_string_are_read_in_halves(tmp_path: Path) -> None:
    # SQLite refuses to build a string past its length limit (1e9 bytes by default: 5,000
    # rows of 200 KB): the chunk is halved until its text fits, a row alone too long is read
    # by Python. A limit of 10,000 bytes here, rows of ~3,000, one of 9,995 (10,006 as a document).
    rows = [json.dumps({"n": i, "text": ("x" * 9_975 if i == 7 else "y" * 3_000)})
            for i in range(20)]
    job = plan(tmp_path, rows)
    try:
        finish(job, random.Random(5), [[{"text": "z" * 2_000, "finish_reason": "stop"}],
                                       [ANSWER]])
        job.store.db.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 10_000)
        documents = list(arrow_json.row_documents(job.store))
        expected = assert_same_files(job, tmp_path)
    finally:
        job.close()
    assert len(documents) > 4 and any(document == b"" for *_, document in documents)
    assert sum(count for _, _, count, _ in documents) == 20
    assert expected.column("text")[7].as_py() == "x" * 9_975
