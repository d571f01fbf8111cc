"""Planning a JSONL input a chunk at a time gives what planning row by row gives.

Each stored request is compared with what ``RowPlanner.render`` (the per-row planner, which
every other input and every row at fault goes through) makes of the same row; the inputs
span several chunks, so rows planned in bulk and rows planned one by one meet in one job.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from promptmill.errors import InputError
from promptmill.generators import get_generator
from promptmill.job import Job, JobSpec, RowPlanner
from promptmill.params import GenerateParams
from promptmill.planning import PLAN_CHUNK
from promptmill.prompts.render import PromptSpec

MODEL = "http!test-model,api_base=http://127.0.0.1:9/v1"
AWKWARD = 'say "hi" \\ back\n\ttab \x01\x1f \x7f é 中文 \u2028 \U0001f600 "," \\","'
ROWS = PLAN_CHUNK * 2 + 123


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def rows(count: int = ROWS) -> list[dict[str, Any]]:
    return [{"id": i, "q": f"Question {i}: {AWKWARD if i % 7 == 0 else 'plain'}  "}
            for i in range(count)]


def open_job(tmp_path: Path, lines: list[str], model: str = MODEL, **options: Any) -> Job:
    source = write_lines(tmp_path / "in.jsonl", lines)
    options.setdefault("prompts", PromptSpec(prompt_field="q"))
    return Job.open(JobSpec(input=source, output=tmp_path / "out.jsonl",
                            generator=get_generator(model), **options))


def stored(job: Job) -> tuple[list[tuple[Any, ...]], list[str]]:
    requests = job.store.db.execute(
        "SELECT id, row_index, sample_group, n, payload, est_tokens FROM requests ORDER BY id"
    ).fetchall()
    texts = [text for (text,) in job.store.db.execute("SELECT data FROM rows ORDER BY row_index")]
    return requests, texts


def row_by_row(job: Job, lines: list[str]) -> tuple[list[tuple[Any, ...]], list[str]]:
    """What the per-row planner makes of ``lines``."""
    planner = RowPlanner(job.spec, job.params)
    requests: list[list[list[Any]]] = []
    texts = []
    index = 0
    for line in lines:
        if not line.strip():
            continue
        _, text = planner.plan(index, json.loads(line), requests, [], text=line.strip())
        texts.append(text)
        index += 1
    return [request for block in requests for request in zip(*block, strict=True)], texts


@pytest.mark.parametrize("options", [
    {},
    {"prompts": PromptSpec(prompt_field="q", system="Be brief, \"exact\" é.")},
    {"prompts": PromptSpec(prompt_field="q", system="Be brief.", chat=False)},
    {"prompts": PromptSpec(template="Answer {{ q }} (row {{ id }})", system="S")},
    {"prompts": PromptSpec.build(prompt="mrpc_21", prompt_field="q")},
    {"k": 3},
    {"k": 2, "model": MODEL + ",supports_n=false", "params": GenerateParams(max_tokens=7)},
    {"model": "openai!gpt-4o-mini,api_key=sk-test"},  # tiktoken's counts
], ids=["field", "system", "text", "template", "library", "k3", "groups", "tiktoken"])
def test_bulk_planning_stores_what_the_row_planner_makes(tmp_path: Path,
                                                          options: dict[str, Any]) -> None:
    options = dict(options)
    model = options.pop("model", MODEL)
    lines = [json.dumps(row, ensure_ascii=row["id"] % 2 == 0) for row in rows()]
    lines[5:5] = ["", "   "]  # blank lines: rows are counted, not lines
    job = open_job(tmp_path, lines, model, **options)
    try:
        job.plan()
        got, expected = stored(job), row_by_row(job, lines)
    finally:
        job.close()
    assert got[0] == expected[0]
    assert got[1] == expected[1]
    assert len(got[0]) == ROWS * len(job.spec.groups())


def test_a_chunk_with_rows_the_bulk_planner_cannot_take_is_planned_row_by_row(
        tmp_path: Path) -> None:
    lines = [json.dumps(row) for row in rows()]
    big = 123456789012345678901234567890
    lines[PLAN_CHUNK + 3] = json.dumps({"id": big, "q": "a big id"})  # orjson would read a float
    lines[PLAN_CHUNK + 4] = '{"id": "s", "q": 17}'  # a prompt that is not a string
    lines[7] = '{"id": 1e400, "q": "an infinite id", "x": NaN}'
    job = open_job(tmp_path, lines)
    try:
        job.plan()
        got = stored(job)
    finally:
        job.close()
    assert got[1][PLAN_CHUNK + 3] == lines[PLAN_CHUNK + 3]
    assert json.loads(got[0][PLAN_CHUNK + 3][4])["messages"][0]["content"] == "a big id"
    assert json.loads(got[0][PLAN_CHUNK + 4][4])["messages"][0]["content"] == "17"
    assert json.loads(got[1][7])["id"] == float("inf")
    assert len(got[0]) == ROWS


@pytest.mark.parametrize("limit, complete", [(PLAN_CHUNK - 1, False), (PLAN_CHUNK, False),
                                             (PLAN_CHUNK + 10, False), (ROWS, True),
                                             (ROWS + 1, True)])
def test_the_limit_cuts_planning_and_says_whether_the_input_is_all_planned(
        tmp_path: Path, limit: int, complete: bool) -> None:
    lines = [json.dumps(row) for row in rows()]
    lines.append("not json, past every limit below ROWS")
    if complete:
        lines.pop()
    job = open_job(tmp_path, lines, limit=limit)
    try:
        job.plan()
        requests = job.store.db.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
        assert requests == min(limit, ROWS)
        assert job.store.get_meta("planned_rows") == min(limit, ROWS)
        assert job.store.get_meta("planned_complete") is complete
    finally:
        job.close()


def test_a_malformed_line_in_a_later_chunk_is_named_and_nothing_is_planned_after_it(
        tmp_path: Path) -> None:
    lines = [json.dumps(row) for row in rows()]
    lines[PLAN_CHUNK + 10] = '{"id": 1, "q": "unterminated}'
    job = open_job(tmp_path, lines)
    try:
        with pytest.raises(InputError, match=rf"in\.jsonl:{PLAN_CHUNK + 11}: malformed JSON"):
            job.plan()
        assert job.store.get_meta("planned_complete") is False
        assert job.store.get_meta("planned_rows") == PLAN_CHUNK
    finally:
        job.close()


@pytest.mark.parametrize("ids, first_line, repeat_line", [
    # Rising integers, then one from long ago: the ids before it are read again.
    (list(range(ROWS - 1)) + [17], 18, ROWS),
    (list(range(PLAN_CHUNK)) + [PLAN_CHUNK - 1] + list(range(PLAN_CHUNK + 1, ROWS)),
     PLAN_CHUNK, PLAN_CHUNK + 1),
    # Strings, the repeat within one chunk and across chunks.
    ([f"r{i}" for i in range(ROWS - 1)] + ["r3"], 4, ROWS),
    ([f"r{i}" for i in range(10)] + ["r2"] + [f"s{i}" for i in range(ROWS - 11)], 3, 11),
    # Integers falling: no run to keep, the table from the start.
    (list(range(ROWS, 1, -1)) + [ROWS], 1, ROWS),
])
def test_a_repeated_id_is_refused_naming_both_lines(tmp_path: Path, ids: list[Any],
                                                    first_line: int, repeat_line: int) -> None:
    assert len(ids) == ROWS
    lines = [json.dumps({"id": value, "q": "x"}) for value in ids]
    job = open_job(tmp_path, lines)
    try:
        with pytest.raises(InputError) as error:
            job.plan()
    finally:
        job.close()
    assert f"in.jsonl:{repeat_line}: duplicate id" in str(error.value)
    assert f"(first on line {first_line})" in str(error.value)


def test_rising_ids_then_others_are_all_checked(tmp_path: Path) -> None:
    # The run of rising integers ends at a string id; every id after is checked, the earlier
    # integers too (5 appears again as an integer, "5" is another id).
    ids: list[Any] = [*range(PLAN_CHUNK + 5), "5", *range(-1, -(ROWS - PLAN_CHUNK - 5), -1)]
    lines = [json.dumps({"id": value, "q": "x"}) for value in ids]
    job = open_job(tmp_path, lines)
    try:
        job.plan()
        assert job.store.get_meta("planned_complete") is True
    finally:
        job.close()
    lines.append(json.dumps({"id": 5, "q": "again"}))
    (tmp_path / "b").mkdir()
    job = open_job(tmp_path / "b", lines)
    try:
        with pytest.raises(InputError, match=r"duplicate id 5 \(first on line 6\)"):
            job.plan()
    finally:
        job.close()
