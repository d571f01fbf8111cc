"""Readers and writers: streamed input, clear errors, atomic output."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from promptmill.data import read_rows, write_rows
from promptmill.errors import InputError


def test_jsonl_reports_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2\n')
    with pytest.raises(InputError, match=r"in\.jsonl:3: malformed JSON"):
        list(read_rows(path))


def test_jsonl_non_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"a": "\xff"}\n')
    with pytest.raises(InputError, match="not UTF-8"):
        list(read_rows(path))


def test_parquet_is_streamed_from_an_offset(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"q": [f"q{i}" for i in range(10_000)]}), path, row_group_size=1000)
    rows = list(read_rows(path, start=9_998))
    assert rows == [(9_998, {"q": "q9998"}), (9_999, {"q": "q9999"})]


def test_csv_and_start(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("q,a\nx,1\ny,2\n")
    assert list(read_rows(path, start=1)) == [(1, {"q": "y", "a": "2"})]


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_writers_round_trip_nested_values(tmp_path: Path, fmt: str) -> None:
    rows = [{"id": i, "responses": [{"text": f"t{i}"}], "error": None} for i in range(3)]
    path = tmp_path / f"out.{fmt}"
    assert write_rows(iter(rows), path, fmt) == 3
    back = [row for _, row in read_rows(path)]
    assert [str(row["id"]) for row in back] == ["0", "1", "2"]
    responses = back[2]["responses"]
    if fmt == "parquet":  # the fixed schema: every response has every field
        assert responses == [{"text": "t2", "finish_reason": None, "logprobs": None}]
    else:
        assert (responses if isinstance(responses, list) else json.loads(responses)) == [
            {"text": "t2"}]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
