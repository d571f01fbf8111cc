"""Seed 002's evaluation workflow: `promptmill extract` over several results files or a folder,
the comparison across models, the seed's inference and processed formats, Parquet."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

import promptmill
from promptmill.errors import InputError
from promptmill.evaluate import GradeOptions, grade_files
from promptmill.extract import grade

QUESTIONS = [
    {"unique_id": "geo-1", "question": "Capital of France?", "choices": ["Rome", "Paris", "Oslo"],
     "choice_index_correct": 1, "answer_correct": "Paris", "category": "geography"},
    {"unique_id": "geo-2", "question": "Capital of Norway?", "choices": ["Rome", "Paris", "Oslo"],
     "choice_index_correct": 2, "answer_correct": "Oslo", "category": "geography"},
    {"unique_id": "geo-3", "question": "Capital of Italy?", "choices": ["Rome", "Paris", "Oslo"],
     "choice_index_correct": 0, "answer_correct": "Rome", "category": "geography"},
    {"unique_id": "math-1", "question": "What is 17 + 25?", "choices": None,
     "answer_correct": "42", "category": "arithmetic"},
    {"unique_id": "math-2", "question": "Half of 3?", "choices": None,
     "answer_correct": "\\frac{3}{2}", "category": "arithmetic"},
    {"unique_id": "math-3", "question": "What is 6 x 7 - 40?", "choices": None,
     "answer_correct": "2", "category": "arithmetic"},
]
WRONG_LETTER = {"geo-1": "A", "geo-2": "B", "geo-3": "C"}
RIGHT_LETTER = {"geo-1": "B", "geo-2": "C", "geo-3": "A"}
MATH = {"math-1": ("42", "41"), "math-2": ("1.5", "2"), "math-3": ("2", "3")}  # (right, wrong)


def _question_of(prompt: str) -> dict[str, Any]:
    return next(q for q in QUESTIONS if q["question"] in prompt)


def three_models(body: dict[str, Any]) -> list[str]:
    """Three "models" with answers of known correctness, told apart by the model name.

    good: every response right. mid: multiple choice right; math right in the second of
    three responses only (so majority wrong). bad: multiple choice wrong, math refused.
    """
    question = _question_of(body["messages"][-1]["content"])
    uid, n = question["unique_id"], body.get("n", 1)
    model = body["model"]
    if uid in RIGHT_LETTER:
        letter = WRONG_LETTER[uid] if model == "bad" else RIGHT_LETTER[uid]
        return [f"Let me think.\nAnswer: {letter}"] * n
    right, wrong = MATH[uid]
    if model == "good":
        return [f"So the result is \\boxed{{{right}}}."] * n
    if model == "mid":
        return [f"\\boxed{{{wrong}}}", f"The answer is {right}.", f"\\boxed{{{wrong}}}"][:n]
    return ["I cannot solve this."] * n


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def seed_inference_rows(correct_ids: set[str]) -> list[dict[str, Any]]:
    """Seed 002's inference results (its documented fields), one response per row: right
    where the question is in ``correct_ids``."""
    rows = []
    for q in QUESTIONS:
        uid = q["unique_id"]
        if q["choices"]:
            letter = RIGHT_LETTER[uid] if uid in correct_ids else WRONG_LETTER[uid]
            text = f"The answer is ({letter})."
        else:
            answer = MATH[uid][0 if uid in correct_ids else 1]
            text = f"Therefore the answer is \\boxed{{{answer}}}."
        rows.append({
            "unique_id": uid, "problem": q["question"], "is_mcq": bool(q["choices"]),
            "choices": q["choices"], "choice_index_correct": q.get("choice_index_correct"),
            "explanation_correct": "because", "answer_correct": q["answer_correct"],
            "category": q["category"], "responses": [{"full_response": text}],
        })
    return rows


@pytest.fixture
def results_folder(tmp_path: Path, make_server: Any) -> Path:
    """Three promptmill jobs on the test server (k=3) and one seed 002 file, in one folder."""
    server = make_server(responder=three_models)
    folder = tmp_path / "results"
    folder.mkdir()
    for name in ("good", "mid", "bad"):
        promptmill.run(QUESTIONS, f"http!{name},api_base={server.url}", k=3,
                       output=str(folder / f"{name}.jsonl"))
    _write_jsonl(folder / "seed_model.jsonl", seed_inference_rows({"geo-1", "math-1", "math-2"}))
    return folder


def test_a_folder_of_jobs_is_graded_and_compared(
    results_folder: Path, tmp_path: Path, promptmill_cli: Any
) -> None:
    graded = tmp_path / "graded"
    run = promptmill_cli("extract", results_folder, "-o", graded)
    assert run.returncode == 0, run.stderr

    comparison = json.loads((graded / "comparison.json").read_text(encoding="utf-8"))
    models = {m["model"].split(",")[0]: m for m in comparison["models"]}
    # the jobs' `model` fields name them; the seed file (no such field) is named by its file
    assert set(models) == {"http!good", "http!mid", "http!bad", "seed_model"}
    good, mid, bad, seed = (models[n] for n in ("http!good", "http!mid", "http!bad",
                                                "seed_model"))
    assert [m["rank"] for m in (good, mid, seed, bad)] == [1, 2, 3, 4]
    assert (good["rows"], good["k"], good["accuracy"]) == (6, 3, 1.0)
    # mid: 9 of 9 multiple-choice responses, 3 of 9 math ones (one per row)
    assert mid["accuracy"] == pytest.approx(12 / 18)
    assert mid["pass_at_k"] == pytest.approx({"1": 12 / 18, "2": (3 + 3 * 2 / 3) / 6, "3": 1.0})
    assert mid["majority_accuracy"] == pytest.approx(3 / 6)
    assert mid["per_category"]["arithmetic"]["accuracy"] == pytest.approx(1 / 3)
    assert mid["per_category"]["geography"]["accuracy"] == 1.0
    assert (bad["accuracy"], bad["extraction_failure_rate"]) == (0.0, 0.5)
    assert (seed["rows"], seed["k"], seed["format"]) == (6, 1, "seed002")
    assert seed["accuracy"] == pytest.approx(3 / 6)
    assert comparison["questions"] == {"any_file": 6, "every_file": 6, "same": True}
    assert comparison["warnings"] == []

    # the table, best first; each file got its graded rows and its own report
    where = [run.stdout.index(name) for name in ("http!good", "http!mid", "seed_model",
                                                  "http!bad")]
    assert where == sorted(where)
    assert "66.7%" in run.stdout and "accuracy by category" in run.stdout
    for name in ("good", "mid", "bad", "seed_model"):
        rows = [json.loads(x) for x in (graded / f"{name}.jsonl").read_text().splitlines()]
        assert [r["unique_id"] for r in rows] == [q["unique_id"] for q in QUESTIONS]
        assert all(len(r["extractions"]) == len(r["responses"]) for r in rows)
        report = json.loads((graded / f"{name}.report.json").read_text())
        assert report["accuracy"] == models[next(m for m in models if name in m)]["accuracy"]

    with (graded / "comparison.csv").open(encoding="utf-8", newline="") as file:
        table = list(csv.DictReader(file))
    overall = [row for row in table if row["category"] == "(all)"]
    assert [row["model"].split(",")[0] for row in overall] == [
        "http!good", "http!mid", "seed_model", "http!bad"]
    assert float(overall[1]["pass@2"]) == pytest.approx(5 / 6)
    assert overall[2]["pass@3"] == ""  # the seed file has k = 1
    assert {row["category"] for row in table} == {"(all)", "geography", "arithmetic"}


def test_files_over_different_questions_are_flagged_and_compared_on_the_shared_ones(
    tmp_path: Path, promptmill_cli: Any
) -> None:
    folder = tmp_path / "results"
    folder.mkdir()
    _write_jsonl(folder / "all_right.jsonl", seed_inference_rows(set(MATH) | set(RIGHT_LETTER)))
    # the second model answered only the first four questions, the last two of them right
    _write_jsonl(folder / "partial.jsonl", seed_inference_rows({"geo-3", "math-1"})[:4])
    report = tmp_path / "cmp.json"
    run = promptmill_cli("extract", folder, "--report", report)
    assert run.returncode == 0, run.stderr
    assert "different questions (6 in all, 4 in every file: partial.jsonl lacks 2)" in run.stderr
    comparison = json.loads(report.read_text())
    partial = next(m for m in comparison["models"] if m["model"] == "partial")
    right = next(m for m in comparison["models"] if m["model"] == "all_right")
    assert (partial["rows"], partial["accuracy"]) == (4, 0.5)
    assert partial["shared"]["rows"] == 4 and partial["shared"]["accuracy"] == 0.5
    assert right["shared"] == {"rows": 4, "accuracy": 1.0, "majority_accuracy": 1.0,
                               "pass_at_k": {"1": 1.0}}
    assert comparison["questions"] == {"any_file": 6, "every_file": 4, "same": False}
    assert (tmp_path / "cmp.csv").exists()
    assert "shared acc." in run.stdout


# -- seed 002's formats ---------------------------------------------------------------------

SEED_PROCESSED_FIELDS = {"unique_id", "problem", "is_mcq", "choices", "choice_index_correct",
                         "explanation_correct", "answer_correct", "category", "responses"}


def test_seed_inference_in_seed_processed_out(tmp_path: Path, promptmill_cli: Any) -> None:
    source = _write_jsonl(tmp_path / "inference.jsonl",
                          seed_inference_rows({"geo-1", "geo-2", "math-2"}))
    before = source.read_bytes()
    out = tmp_path / "processed.jsonl"
    run = promptmill_cli("extract", source, "--out", out, "--format", "seed002",
                         "--by-category")
    assert run.returncode == 0, run.stderr
    inputs = [json.loads(line) for line in before.decode().splitlines()]
    processed = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(processed) == len(inputs)
    for row, seed in zip(processed, inputs, strict=True):
        assert set(row) == SEED_PROCESSED_FIELDS  # the seed's documented fields, no others
        assert {k: v for k, v in row.items() if k != "responses"} == {
            k: v for k, v in seed.items() if k != "responses"}
        [response] = row["responses"]
        assert list(response) == ["full_response", "extracted_answer", "is_correct"]
        assert response["full_response"] == seed["responses"][0]["full_response"]
    answers = [(r["responses"][0]["extracted_answer"], r["responses"][0]["is_correct"])
               for r in processed]
    assert answers == [("B", True), ("C", True), ("C", False),
                       ("41", False), ("1.5", True), ("3", False)]
    assert source.read_bytes() == before


def test_promptmill_results_in_seed_processed_format(tmp_path: Path) -> None:
    rows = [{**QUESTIONS[0], "responses": [{"text": "Answer: B", "finish_reason": "stop"},
                                           {"text": "Answer: A", "finish_reason": "stop"}],
             "model": "http!m", "status": "done"}]
    out = tmp_path / "processed.jsonl"
    grade(rows, out=out, out_format="seed002")
    [row] = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["problem"] == "Capital of France?" and row["is_mcq"] is True
    assert row["responses"] == [
        {"full_response": "Answer: B", "finish_reason": "stop", "extracted_answer": "B",
         "is_correct": True},
        {"full_response": "Answer: A", "finish_reason": "stop", "extracted_answer": "A",
         "is_correct": False},
    ]


def test_is_mcq_false_grades_a_row_with_choices_as_math() -> None:
    row = {**seed_inference_rows(set())[0], "is_mcq": False, "answer_correct": "12",
           "responses": [{"full_response": "\\boxed{12}"}]}
    [graded] = grade([row]).rows
    assert (graded.type, graded.extractions[0].correct) == ("math", True)


# -- Parquet in and out ---------------------------------------------------------------------


def test_graded_parquet_has_the_fixed_schema_and_loads_without_json(tmp_path: Path) -> None:
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    from promptmill.arrow import EXTRACTIONS, RESULT_FIELDS

    ours = [{**q, "responses": [{"text": f"Answer: {RIGHT_LETTER.get(q['unique_id'], 'A')}",
                                 "finish_reason": "stop"}],
             "usage": {"prompt_tokens": 3, "completion_tokens": 4}, "model": "http!m",
             "attempts": 1, "status": "done", "error": None} for q in QUESTIONS[:3]]
    a = _write_jsonl(tmp_path / "ours.jsonl", ours)
    b = _write_jsonl(tmp_path / "seed.jsonl", seed_inference_rows({"geo-1"}))
    out = tmp_path / "graded"
    out.mkdir()
    grade_files([a, b], targets=[out / "ours.parquet", out / "seed.parquet"],
                options=GradeOptions(out_format="parquet"))
    tables = [pq.read_table(out / name) for name in ("ours.parquet", "seed.parquet")]
    for table in tables:
        for column in [*RESULT_FIELDS, EXTRACTIONS]:
            assert table.schema.field(column.name).type == column.type
    # promptmill's columns of both formats concatenate without casting
    names = [*RESULT_FIELDS.names, "extractions"]
    both = pa.concat_tables([t.select(names) for t in tables])
    assert both.num_rows == 9
    assert both.column("responses")[3].as_py()[0]["text"] == "The answer is (B)."
    frame = tables[0].to_pandas()
    assert frame.extractions[0][0]["extracted"] == "B" and frame.extractions[0][0]["correct"]
    right = duckdb.sql(
        f"select sum(case when extractions[1].correct then 1 else 0 end) "
        f"from '{out / 'seed.parquet'}'").fetchall()
    assert right == [(1,)]


def test_parquet_results_are_read_as_their_jsonl(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = seed_inference_rows({"geo-1", "math-2"})
    jsonl = _write_jsonl(tmp_path / "r.jsonl", rows)
    # in several row groups, read by several chunks
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "r.parquet", row_group_size=2)
    from_jsonl = grade_files([jsonl])[0].tally.to_dict()
    from_parquet = grade_files([tmp_path / "r.parquet"], workers=2, chunk_bytes=1)[0]
    assert from_parquet.tally.to_dict() == from_jsonl
    assert from_jsonl["accuracy"] == pytest.approx(2 / 6)


# -- many processes, same answers -----------------------------------------------------------


def _many_rows(count: int) -> list[dict[str, Any]]:
    rows = []
    for index in range(count):
        q = QUESTIONS[index % len(QUESTIONS)]
        uid = q["unique_id"]
        texts = ([f"Answer: {RIGHT_LETTER[uid] if index % 3 else WRONG_LETTER[uid]}"] if
                 q["choices"] else [f"\\boxed{{{MATH[uid][index % 2]}}}", "no idea"])
        rows.append({**q, "unique_id": f"{uid}-{index}",
                     "responses": [{"text": t, "finish_reason": "stop"} for t in texts]})
    return rows


def test_workers_grade_chunks_to_the_same_files_and_numbers(tmp_path: Path) -> None:
    paths = [_write_jsonl(tmp_path / f"in{i}.jsonl", _many_rows(60 + i)) for i in range(3)]
    results = {}
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        out.mkdir()
        for fmt in ("jsonl", "seed002", "parquet"):
            suffix = ".parquet" if fmt == "parquet" else f".{fmt}.jsonl"
            grades = grade_files(paths, targets=[out / (p.stem + suffix) for p in paths],
                                 options=GradeOptions(out_format=fmt), workers=workers,
                                 chunk_bytes=2000)
            results[workers, fmt] = [g.tally.to_dict() for g in grades]
        assert not list(out.glob(".*"))  # no part files or scratch folders left
    assert results[1, "jsonl"] == results[2, "jsonl"] == results[2, "parquet"]
    one, two = tmp_path / "out1", tmp_path / "out2"
    for name in [p.name for p in one.iterdir() if p.suffix == ".jsonl"]:
        assert (one / name).read_bytes() == (two / name).read_bytes()
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "out1" / "in2.parquet").equals(
        pq.read_table(tmp_path / "out2" / "in2.parquet"))
    # and grade() of the whole file agrees with the chunked grading
    assert grade(paths[2]).to_dict() == results[2, "jsonl"][2]


def test_a_bad_line_in_a_workers_chunk_names_its_file_and_line(tmp_path: Path) -> None:
    good = _write_jsonl(tmp_path / "a.jsonl", _many_rows(40))
    lines = [json.dumps(row) + "\n" for row in _many_rows(50)]
    lines[37] = "{not json\n"
    bad = tmp_path / "b.jsonl"
    bad.write_text("".join(lines), encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InputError, match=rf"{bad}, line 38: not valid JSON"):
        grade_files([good, bad], targets=[out / "a.jsonl", out / "b.jsonl"], workers=2,
                    chunk_bytes=1500)
    assert (out / "a.jsonl").exists()  # finished before the bad file: kept
    assert not (out / "b.jsonl").exists()
    assert not list(out.glob(".*")) and not list(out.glob("*.partial"))


# -- the command line's checks --------------------------------------------------------------


def test_two_inputs_of_one_name_are_refused_before_grading(
    tmp_path: Path, promptmill_cli: Any
) -> None:
    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        _write_jsonl(tmp_path / folder / "r.jsonl", seed_inference_rows(set()))
    run = promptmill_cli("extract", "x/r.jsonl", "y/r.jsonl", "-o", "graded")
    assert run.returncode == 2
    assert "x/r.jsonl and y/r.jsonl would both be graded into graded/r.jsonl" in run.stderr
    assert not (tmp_path / "graded").exists()


def test_grading_into_the_results_folder_is_refused(tmp_path: Path, promptmill_cli: Any) -> None:
    folder = tmp_path / "results"
    folder.mkdir()
    source = _write_jsonl(folder / "r.jsonl", seed_inference_rows(set()))
    before = source.read_bytes()
    run = promptmill_cli("extract", folder, "-o", folder)
    assert run.returncode == 2
    assert "is one of the results files; write the graded files to another folder" in run.stderr
    assert source.read_bytes() == before and sorted(p.name for p in folder.iterdir()) == [
        "r.jsonl"]


def test_a_folder_member_that_is_no_results_file_is_left_out_with_a_warning(
    tmp_path: Path, promptmill_cli: Any
) -> None:
    folder = tmp_path / "results"
    folder.mkdir()
    _write_jsonl(folder / "r.jsonl", seed_inference_rows({"geo-1"}))
    _write_jsonl(folder / "questions.jsonl", QUESTIONS)  # the job's input, beside its results
    (folder / "report.json").write_text("{}")  # not read: .json in a folder is a report
    run = promptmill_cli("extract", "results", "--report", "cmp.json")
    assert run.returncode == 0, run.stderr
    assert ("warning: left out results/questions.jsonl, line 1: no 'responses' list; extract "
            "reads the file that `promptmill run` writes\n") in run.stderr
    comparison = json.loads((tmp_path / "cmp.json").read_text())
    assert [m["model"] for m in comparison["models"]] == ["r"]
    assert any("left out results/questions.jsonl" in w for w in comparison["warnings"])


def test_a_named_file_that_is_no_results_file_fails_before_grading(
    tmp_path: Path, promptmill_cli: Any
) -> None:
    _write_jsonl(tmp_path / "r.jsonl", seed_inference_rows(set()))
    _write_jsonl(tmp_path / "questions.jsonl", QUESTIONS)
    run = promptmill_cli("extract", "r.jsonl", "questions.jsonl", "-o", "graded")
    assert run.returncode == 2
    assert run.stderr.strip() == (
        "error: questions.jsonl, line 1: no 'responses' list; extract reads the file that "
        "`promptmill run` writes")
    assert not (tmp_path / "graded").exists()


def test_format_and_out_name_must_agree(tmp_path: Path, promptmill_cli: Any) -> None:
    _write_jsonl(tmp_path / "r.jsonl", seed_inference_rows(set()))
    run = promptmill_cli("extract", "r.jsonl", "--out", "g.jsonl", "--format", "parquet")
    assert run.returncode == 2
    assert "--format parquet writes .parquet files; name it g.parquet" in run.stderr
    run = promptmill_cli("extract", "r.jsonl", "--out", "g.parquet")  # Parquet by its name
    assert run.returncode == 0, run.stderr
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "g.parquet").num_rows == 6


def test_a_folder_graded_with_a_judge_asks_per_file_and_compares_the_judged_grades(
    tmp_path: Path, make_server: Any, promptmill_cli: Any
) -> None:
    from promptmill.testing import judge_responder

    # the rules read option C (right) from "Paris is lovely"; the judge says it names none
    server = make_server(responder=judge_responder(
        lambda response: {"Paris is lovely in spring.": "NONE"}.get(response, "B")))
    folder = tmp_path / "results"
    folder.mkdir()
    row = {"unique_id": "q1", "question": "What is the capital of France?",
           "choices": ["London", "Berlin", "Paris", "Madrid"], "choice_index_correct": 2,
           "category": "geo"}
    _write_jsonl(folder / "ours.jsonl", [{**row, "status": "done", "responses": [
        {"text": "The answer is (C).", "finish_reason": "stop"},
        {"text": "Paris is lovely in spring.", "finish_reason": "stop"}]}])
    _write_jsonl(folder / "seed.jsonl", [{**row, "problem": row["question"], "is_mcq": True,
                                          "responses": [{"full_response": "The answer is (C)."}]}])
    run = promptmill_cli("extract", "results", "-o", "graded", "--format", "seed002",
                         "--judge", f"http!judge,api_base={server.url}", "--judge-dir", "judge")
    assert run.returncode == 0, run.stderr
    comparison = json.loads((tmp_path / "graded" / "comparison.json").read_text())
    accuracy = {m["model"]: m["accuracy"] for m in comparison["models"]}
    assert accuracy == {"ours": 0.5, "seed": 1.0}
    assert (tmp_path / "judge" / "ours.jsonl").is_dir()  # one judge job per file
    graded = json.loads((tmp_path / "graded" / "ours.jsonl").read_text())
    assert [(r["extracted_answer"], r["is_correct"]) for r in graded["responses"]] == [
        ("C", True), (None, False)]


_GROWTH = """
import sys
from pathlib import Path
from promptmill.evaluate import grade_files

def rss():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))

source, target = Path(sys.argv[1]), Path(sys.argv[2])
grade_files([source], targets=[target], workers=1)  # imports and first-use caches
before = rss()
grades = grade_files([source], targets=[target], workers=1)
print(rss() - before)
"""


def test_grading_keeps_nothing_per_row_in_memory(tmp_path: Path) -> None:
    """A file of 20x the rows grades in the same memory (11 bytes a row are kept, for the
    comparison: 0.2 MB here); the folder-scale figures are benchmarks/extract_many.py's."""
    import subprocess
    import sys

    growth = {}
    for rows in (1_000, 20_000):
        source = tmp_path / f"r{rows}.jsonl"
        with source.open("w", encoding="utf-8") as file:
            for index in range(rows):
                question = QUESTIONS[index % 3]
                file.write(json.dumps({**question, "unique_id": f"q{index}", "responses": [
                    {"text": f"Answer: {RIGHT_LETTER[question['unique_id']]}"}] * 2}) + "\n")
        run = subprocess.run(
            [sys.executable, "-c", _GROWTH, source, tmp_path / f"g{rows}.jsonl"],
            capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr
        growth[rows] = int(run.stdout.split()[-1]) / 1024  # MB
    # keeping each row's grades (a RowGrade and its Extractions) would add about 10 MB
    assert growth[20_000] - growth[1_000] < 3, growth


def test_a_file_without_model_fields_is_named_by_its_job(tmp_path: Path, make_server: Any) -> None:
    from promptmill.comparison import Comparison

    server = make_server(responder=three_models)
    output = tmp_path / "answers.jsonl"
    promptmill.run(QUESTIONS, f"http!good,api_base={server.url}", output=str(output))
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    _write_jsonl(output, [{k: v for k, v in row.items() if k != "model"} for row in rows])
    seed = _write_jsonl(tmp_path / "gemma-3-4b-it_MATH.jsonl", seed_inference_rows(set()))
    comparison = Comparison(grade_files([output, seed])).to_dict()
    assert [m["model"] for m in comparison["models"]] == ["http!good", "gemma-3-4b-it_MATH"]
