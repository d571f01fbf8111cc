"""Readers and writers: streamed input, clear errors, atomic output."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
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
        assert responses == [{"text": "t2", "finish_reason": None, "logprobs": None,
                              "prompt_logprobs": None, "json": None, "cached": None}]
    else:
        assert (responses if isinstance(responses, list) else json.loads(responses)) == [
            {"text": "t2"}]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# -- memory while streaming ------------------------------------------------------------------

READ_AND_MEASURE = """
import resource, sys
from pathlib import Path
from promptmill.data import read_rows

def rss_mb():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20

rows, at_tenth = 0, None
total = int(sys.argv[2])
for index, row in read_rows(Path(sys.argv[1])):
    rows += 1
    if index == total // 10:
        at_tenth = rss_mb()
print(rows, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, rss_mb() - at_tenth)
"""


def write_input(path: Path, rows: int) -> None:
    """``rows`` rows of about 200 bytes, in chunks (Parquet: row groups of 10,000)."""
    def chunk(start: int) -> list[dict[str, object]]:
        return [{"id": i, "question": f"Question {i}: " + "lorem ipsum dolor sit amet " * 6,
                 "category": f"c{i % 7}"} for i in range(start, min(rows, start + 10_000))]

    if path.suffix == ".csv":
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=["id", "question", "category"])
            writer.writeheader()
            for start in range(0, rows, 10_000):
                writer.writerows(chunk(start))
        return
    table = pa.Table.from_pylist(chunk(0))
    with pq.ParquetWriter(path, table.schema) as writer:
        for start in range(0, rows, 10_000):
            writer.write_table(pa.Table.from_pylist(chunk(start)))


def streamed_peak(path: Path, rows: int) -> tuple[float, float]:
    """Read every row in a fresh interpreter: (peak RSS, RSS growth after a tenth), in MB."""
    result = subprocess.run([sys.executable, "-c", READ_AND_MEASURE, str(path), str(rows)],
                            capture_output=True, text=True, check=True)
    read, peak, growth = result.stdout.split()
    assert int(read) == rows
    return float(peak), float(growth)


# Peak RSS may grow from 10,000 rows to 300,000 by this much (MB): CSV keeps one row at a
# time; Parquet one batch of one row group, and Arrow's allocator keeps some freed memory.
# Loading the file whole would take some 200 MB more.
FLAT_MB = {".csv": 4.0, ".parquet": 24.0}


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_csv_and_parquet_input_is_streamed_in_flat_memory(tmp_path: Path, suffix: str) -> None:
    small, large = tmp_path / f"small{suffix}", tmp_path / f"large{suffix}"
    write_input(small, 10_000)
    write_input(large, 300_000)
    small_peak, _ = streamed_peak(small, 10_000)
    large_peak, growth = streamed_peak(large, 300_000)
    print(f"\n{suffix}: peak RSS {small_peak:.1f} MB for 10,000 rows, {large_peak:.1f} MB for "
          f"300,000 ({growth:+.1f} MB after the first tenth)")
    assert large_peak - small_peak < FLAT_MB[suffix]
    assert growth < FLAT_MB[suffix]


@pytest.mark.parametrize("fmt", ["parquet", "arrow"])
def test_a_batch_the_writer_thread_refuses_fails_the_write(tmp_path: Path, fmt: str) -> None:
    """Parquet and Arrow batches are encoded on a thread of their own: a batch pyarrow refuses
    there (here one whose schema is not the file's) is raised to the caller, not lost with
    the thread, and the batches after it are not written."""
    from promptmill.data import _write_arrow

    schema = pa.schema([("id", pa.int64())])
    batches = [pa.record_batch([pa.array([1, 2])], schema=schema),
               pa.record_batch([pa.array(["x"])], names=["id"]),
               pa.record_batch([pa.array([3])], schema=schema)]
    with open(tmp_path / f"out.{fmt}", "wb") as handle, \
            pytest.raises((ValueError, pa.ArrowException)):
        _write_arrow(iter(batches), handle, fmt, schema)
