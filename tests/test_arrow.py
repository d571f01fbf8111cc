"""Exported results have one fixed Arrow schema that pandas, polars, DuckDB and datasets read."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import promptmill
from promptmill import arrow
from promptmill.cli import main
from promptmill.errors import InputError
from promptmill.job import OUTPUT_FIELDS
from promptmill.testing import Faults, TestServer

README = Path(__file__).parents[1] / "README.md"


def questions(count: int) -> list[dict[str, Any]]:
    return [{"id": i, "question": f"What is {i} + {i}?", "choices": [str(2 * i), str(i), "7"],
             "meta": {"source": "unit", "level": i % 3}, "note": None} for i in range(count)]


def run_job(url: str, output: Path, *, text: bool = False, max_attempts: int = 8,
            rows: list[dict[str, Any]] | None = None) -> None:
    promptmill.run(rows or questions(12), f"http!test-model,api_base={url}", output=output, k=2,
                   chat=not text, params={"logprobs": True, "top_logprobs": 2, "max_tokens": 8},
                   max_attempts=max_attempts)


def export(output: Path, fmt: str, to: Path) -> Path:
    main(["export", str(output), "--format", fmt, "--to", str(to)])
    return to


def test_every_reader_gets_text_logprobs_and_usage_through_its_own_nested_syntax(
    tmp_path: Path, server: TestServer,
) -> None:
    run_job(server.url, tmp_path / "out.jsonl")
    jsonl = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    parquet = export(tmp_path / "out.jsonl", "parquet", tmp_path / "out.parquet")
    text = jsonl[3]["responses"][1]["text"]
    logprob = jsonl[3]["responses"][1]["logprobs"][0]["top_logprobs"][1]["logprob"]
    completion = jsonl[3]["usage"]["completion_tokens"]
    assert text and completion > 0

    table = pq.read_table(parquet)
    assert table.column("responses")[3][1]["text"].as_py() == text
    assert table.column("responses")[3][1]["logprobs"][0]["top_logprobs"][1]["logprob"].as_py() \
        == logprob
    assert table.column("choices").type == pa.list_(pa.string())
    assert table.column("meta").type == pa.struct([("source", pa.string()),
                                                   ("level", pa.int64())])

    frame = pd.read_parquet(parquet)
    assert frame.loc[3, "responses"][1]["text"] == text
    assert frame.loc[3, "usage"]["completion_tokens"] == completion

    polars = pl.read_parquet(parquet)
    picked = polars.select(
        pl.col("responses").list.get(1).struct.field("text").alias("text"),
        pl.col("responses").list.get(1).struct.field("logprobs").list.get(0)
        .struct.field("top_logprobs").list.get(1).struct.field("logprob").alias("logprob"),
        pl.col("usage").struct.field("completion_tokens").alias("completion"),
    ).row(3)
    assert picked == (text, logprob, completion)

    row = duckdb.sql(
        f"select responses[2].text, responses[2].logprobs[1].top_logprobs[2].logprob, "
        f"usage.completion_tokens from read_parquet('{parquet}') where id = 3").fetchall()
    assert row == [(text, logprob, completion)]


def test_jobs_with_and_without_failures_and_in_both_modes_concatenate(
    tmp_path: Path, server: TestServer, make_server: Any,
) -> None:
    run_job(server.url, tmp_path / "clean.jsonl")
    failing = make_server(faults=Faults(server_error=0.4, seed=3))
    run_job(failing.url, tmp_path / "failing.jsonl", max_attempts=1)
    run_job(server.url, tmp_path / "text.jsonl", text=True)
    files = [export(tmp_path / f"{name}.jsonl", "parquet", tmp_path / f"{name}.parquet")
             for name in ("clean", "failing", "text")]
    tables = [pq.read_table(path) for path in files]
    assert tables[0].schema == tables[1].schema == tables[2].schema
    statuses = set(tables[1].column("status").to_pylist())
    assert statuses == {"done", "failed"}, statuses  # the failing job really has failures
    assert tables[0].column("error").null_count == len(tables[0])
    assert tables[0].schema.field("error").type == pa.string()
    combined = pa.concat_tables(tables)  # no promote, no cast: the same schema
    assert len(combined) == 36
    # Text-mode alternatives have the chat shape: a list of {token, logprob}.
    top = tables[2].column("responses")[0][0]["logprobs"][0]["top_logprobs"].as_py()
    assert top and {"token", "logprob"} <= set(top[0])
    count = duckdb.sql(
        f"select count(*) from read_parquet(['{files[0]}', '{files[1]}', '{files[2]}'])"
    ).fetchall()
    assert count == [(36,)]


def test_a_field_missing_from_the_first_rows_is_kept(tmp_path: Path, server: TestServer) -> None:
    rows = [{"id": i, "question": f"Q{i}"} for i in range(5)]
    rows[3]["note"] = "only here"
    run_job(server.url, tmp_path / "out.parquet", rows=rows)
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.column("note").to_pylist() == [None, None, None, "only here", None]


def test_a_field_null_everywhere_or_holding_empty_objects_still_concatenates(
    tmp_path: Path, server: TestServer,
) -> None:
    rows = [{"prompt": f"q{i}", "note": None, "extra": {}, "tags": []} for i in range(3)]
    run_job(server.url, tmp_path / "a.jsonl", rows=rows)
    schema = pq.read_schema(export(tmp_path / "a.jsonl", "parquet", tmp_path / "a.parquet"))
    assert schema.field("note").type == pa.string()
    assert schema.field("tags").type == pa.list_(pa.string())
    assert schema.field("extra").type == pa.string()
    assert schema.field("extra").metadata == arrow.JSON_TEXT
    assert pq.read_table(tmp_path / "a.parquet").column("extra").to_pylist() == ["{}"] * 3


def test_numbers_promote_nulls_take_the_fields_type_and_objects_merge() -> None:
    rows = [{"x": 1, "y": None, "o": {"a": 1}}, {"x": 2.5, "y": "s", "o": {"b": [True]}}]
    schema = arrow.infer_row_types(enumerate(rows))
    assert schema.field("x").type == pa.float64()
    assert schema.field("y").type == pa.string()
    assert schema.field("o").type == pa.struct([("a", pa.int64()), ("b", pa.list_(pa.bool_()))])


@pytest.mark.parametrize(("rows", "message"), [
    ([{"x": 1}] * 6000 + [{"x": "one"}],
     "input row 6001: field 'x' is text (\"one\") where earlier rows have a number "
     "(first on input row 1)"),
    ([{"x": None}, {"x": True}, {"x": 3}],
     "input row 3: field 'x' is a number (3) where earlier rows have true/false "
     "(first on input row 2)"),
    ([{"x": [1, "a"]}], "input row 1: field 'x' mixes types inside one value ([1, \"a\"])"),
])
def test_a_field_that_changes_type_is_named_with_both_rows(
    rows: list[dict[str, Any]], message: str,
) -> None:
    with pytest.raises(InputError) as caught:
        arrow.infer_row_types(enumerate(rows))
    assert str(caught.value).startswith(message), caught.value


def test_a_type_change_with_parquet_output_fails_before_anything_is_sent(
    tmp_path: Path, server: TestServer, capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"prompt": "a", "score": 1}\n\n{"prompt": "b", "score": "high"}\n')
    server.stats.reset()
    with pytest.raises(SystemExit) as exit_code:
        main(["run", str(source), "-m", f"http!test-model,api_base={server.url}",
              "-o", str(tmp_path / "out.parquet")])
    assert exit_code.value.code == 2
    error = capsys.readouterr().err
    assert f"{source}:3: field 'score' is text" in error and f"first on {source}:1" in error
    assert sum(server.stats.received.values()) == 0
    # The same input to JSONL runs; exporting that job to Parquet names the row instead.
    main(["run", str(source), "-m", f"http!test-model,api_base={server.url}",
          "-o", str(tmp_path / "out.jsonl")])
    with pytest.raises(SystemExit):
        export(tmp_path / "out.jsonl", "parquet", tmp_path / "late.parquet")
    assert "input row 2: field 'score' is text" in capsys.readouterr().err
    assert not (tmp_path / "late.parquet").exists()


def test_load_reads_the_store_or_an_export_and_arrow_files_match(
    tmp_path: Path, server: TestServer,
) -> None:
    run_job(server.url, tmp_path / "out.jsonl")
    from_store = promptmill.load(tmp_path / "out.jsonl")
    parquet = pq.read_table(export(tmp_path / "out.jsonl", "parquet", tmp_path / "out.parquet"))
    feather = export(tmp_path / "out.jsonl", "arrow", tmp_path / "out.arrow")
    assert from_store.equals(parquet)
    assert promptmill.load(feather).equals(parquet)
    assert promptmill.load(tmp_path / "out.parquet").equals(parquet)
    assert from_store.schema.names[-len(OUTPUT_FIELDS):] == list(OUTPUT_FIELDS)
    assert pl.from_arrow(from_store).height == 12
    done = duckdb.sql("select count(*) from from_store where status = 'done'").fetchall()
    assert done == [(12,)]


@pytest.mark.datasets
def test_export_as_a_hugging_face_dataset_folder(tmp_path: Path, server: TestServer) -> None:
    datasets = pytest.importorskip("datasets")
    run_job(server.url, tmp_path / "out.jsonl")
    folder = export(tmp_path / "out.jsonl", "hf", tmp_path / "out.hf")
    dataset = datasets.load_from_disk(str(folder))
    jsonl = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(dataset) == 12 and dataset[5]["responses"][0]["text"] == \
        jsonl[5]["responses"][0]["text"]
    export(tmp_path / "out.jsonl", "hf", folder)  # replaced whole, not merged
    assert len(datasets.load_from_disk(str(folder))) == 12
    parquet = export(tmp_path / "out.jsonl", "parquet", tmp_path / "out.parquet")
    assert len(datasets.Dataset.from_parquet(str(parquet), cache_dir=str(tmp_path / "c"))) == 12


def test_the_readme_shows_the_schema_promptmill_writes() -> None:
    block = re.search(r"<!-- arrow-schema -->\n```\n(.*?)```", README.read_text(), re.S)
    assert block, "README has no arrow-schema block"
    assert block.group(1).strip() == arrow.describe_result_fields().strip()
    assert tuple(arrow.RESULT_FIELDS.names) == OUTPUT_FIELDS
