"""``extract``: answer extraction and grading over a job's results, one file or many."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from promptmill.cli.app import cli

if TYPE_CHECKING:
    from rich.console import Console

    from promptmill.evaluate import FileGrades, GradeOptions
    from promptmill.extraction.judge import JudgeOptions

# The --format choices (promptmill.resultfiles.GRADED_FORMATS; not imported at start).
_FORMATS = ("jsonl", "parquet", "seed002")


@cli.command("extract")
@click.argument("results", nargs=-1, required=True,
                type=click.Path(exists=True, path_type=Path))
@click.option("--out", "-o", type=click.Path(path_type=Path),
              help="One results file: write its rows with their extractions here. Several, "
              "or a folder: a folder, which gets each file's graded rows under its name, its "
              "report as NAME.report.json, and comparison.json and comparison.csv.")
@click.option("--format", "out_format", type=click.Choice(_FORMATS),
              help="Graded rows as promptmill's JSONL (default; each row plus 'extractions'), "
              "Parquet (promptmill's fixed Arrow schema plus 'extractions'; the default for an "
              "--out ending .parquet) or seed002 (seed 002's processed format: "
              "'extracted_answer' and 'is_correct' inside each response).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the report here as JSON; for several files the comparison, as "
              "JSON and as CSV beside it (same name, .csv).")
@click.option("--by-category", is_flag=True,
              help="Accepted for seed 002's command lines: the per-category breakdown is "
              "always printed and in the report.")
@click.option("--workers", "-j", type=click.IntRange(min=1),
              help="Processes that grade (default: one per core); small inputs are graded "
              "in one.")
@click.option("--type", "answer_type", type=click.Choice(["auto", "mcq", "math"]),
              default="auto", show_default=True,
              help="Question type; auto: a row's is_mcq, else multiple choice where the row "
              "has choices.")
@click.option("--gold-field", metavar="FIELD",
              help="Row field with the gold answer (default: choice_index_correct for "
              "multiple choice, answer_correct otherwise).")
@click.option("--judge", "judge_model", metavar="MODEL",
              help="Also ask this model (any identifier, e.g. openai!gpt-4o-mini, a llamacpp! "
              "model, or 'embedded' for the embedded default) for the final answer of the "
              "responses the rules are unsure of; its job is kept in RESULTS.judge/ and resumes.")
@click.option("--judge-all", is_flag=True, help="With --judge: ask about every response.")
@click.option("--judge-dir", type=click.Path(file_okay=False, path_type=Path),
              help="With --judge: keep the judge job here instead of RESULTS.judge/ (for "
              "several files, a folder per file inside it).")
@click.option("--judge-rpm", type=click.FloatRange(min=0, min_open=True),
              help="With --judge: requests per minute for the judge.")
@click.option("--judge-tpm", type=click.FloatRange(min=0, min_open=True),
              help="With --judge: tokens per minute for the judge.")
def extract(results: tuple[Path, ...], out: Path | None, out_format: str | None,
            report_path: Path | None, by_category: bool, workers: int | None,
            answer_type: str, gold_field: str | None, judge_model: str | None, judge_all: bool,
            judge_dir: Path | None, judge_rpm: float | None, judge_tpm: float | None) -> None:
    """Extract each response's final answer from RESULTS and grade it against the gold.

    RESULTS: results files (promptmill's JSONL or Parquet, or seed 002's inference JSONL)
    or folders of them. Several are compared: a table of their models by accuracy.
    """
    from rich.console import Console

    from promptmill.errors import UsageError
    from promptmill.evaluate import GradeOptions
    from promptmill.resultfiles import graded_format

    judged = judge_all or judge_dir or judge_rpm or judge_tpm
    if judged and not judge_model:
        raise UsageError("--judge-all, --judge-dir, --judge-rpm and --judge-tpm need --judge MODEL")
    many = len(results) > 1 or results[0].is_dir() or (
        out is not None and (out.is_dir() or str(out).endswith(("/", os.sep))))
    options = GradeOptions(type=answer_type, gold_field=gold_field,
                           out_format=graded_format(None if many else out, out_format))
    judge = None
    if judge_model:
        from promptmill.extraction.judge import JudgeOptions

        judge = JudgeOptions(model=judge_model, judge_all=judge_all, folder=judge_dir,
                             rpm=judge_rpm, tpm=judge_tpm)
    # Piped output gets the whole table, not one cut to a default 80 columns.
    console = Console(width=None if sys.stdout.isatty() else 160)
    if many:
        _extract_many(console, results, out, report_path, options, workers, judge)
    else:
        _extract_one(console, results[0], out, report_path, options, workers, judge)


def _extract_one(console: Console, path: Path, out: Path | None, report_path: Path | None,
                 options: GradeOptions, workers: int | None, judge: JudgeOptions | None) -> None:
    """One results file: its graded rows to ``out``, its report, its tables."""
    from promptmill.errors import InputError
    from promptmill.evaluate import grade_files, results_in
    from promptmill.grading import method_table, report_table, same_file

    if report_path is not None and same_file(report_path, path):
        raise InputError(f"--report {report_path} is the results file itself; pick another path")
    if out is not None and same_file(out, path):
        raise InputError(f"--out {out} is the results file itself; write to another path")
    results_in([path])
    if judge is not None:
        from promptmill.extract import grade

        report = grade(path, type=options.type, gold_field=options.gold_field, out=out,
                       out_format=options.out_format, judge=judge).to_dict()
    else:
        grades = grade_files([path], targets=[out], options=options, workers=workers)[0]
        report = grades.tally.to_dict()
    if report_path is not None:
        _write_json(report_path, report)
    console.print(report_table(report))
    console.print(method_table(report))


def _extract_many(console: Console, inputs: tuple[Path, ...], out: Path | None,
                  report_path: Path | None, options: GradeOptions, workers: int | None,
                  judge: JudgeOptions | None) -> None:
    """Several results files (or folders of them): each graded, then compared."""
    from promptmill.comparison import Comparison
    from promptmill.evaluate import iter_grade_files, results_in

    paths, notes = results_in(list(inputs))
    for note in notes:
        click.echo(f"warning: {note}", err=True)
    targets = _targets(paths, out, options.out_format)
    json_path, csv_path = _comparison_paths(report_path, out)
    _check_not_inputs(paths, [json_path, csv_path, *targets])
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    graded: list[FileGrades] = []
    source = (_judged_files(paths, targets, options, judge) if judge is not None
              else iter_grade_files(paths, targets=targets, options=options, workers=workers))
    for grades in source:
        graded.append(grades)
        if out is not None:
            _write_json(_report_of(grades, out), grades.report())
        numbers = grades.tally.to_dict()
        click.echo(f"graded {grades.path} ({len(graded)}/{len(paths)}): {numbers['rows']:,} "
                   f"rows, accuracy {numbers['accuracy']:.1%}", err=True)
    comparison = Comparison(graded, notes=notes)
    if json_path is not None and csv_path is not None:
        _write_json(json_path, comparison.to_dict())
        _write_csv(csv_path, comparison)
    console.print(comparison.table())
    if comparison.categories() not in ([], ["(none)"]):
        console.print(comparison.category_table())
    for warning in comparison.warnings()[len(notes):]:
        click.echo(f"warning: {warning}", err=True)
    if json_path is not None:
        click.echo(f"comparison: {json_path}, {csv_path}", err=True)


def _judged_files(paths: list[Path], targets: list[Path | None], options: GradeOptions,
                  judge: JudgeOptions) -> Any:
    """Each file graded with the judge (one judge job per file), as grade_files gives it."""
    from dataclasses import replace

    from promptmill.evaluate import file_grades_of
    from promptmill.extract import grade

    for path, target in zip(paths, targets, strict=True):
        folder = judge.folder / path.name if judge.folder is not None else None
        report = grade(path, type=options.type, gold_field=options.gold_field, out=target,
                       out_format=options.out_format, judge=replace(judge, folder=folder))
        yield file_grades_of(path, report, target)


def _targets(paths: list[Path], out: Path | None, fmt: str) -> list[Path | None]:
    """Each file's graded file in ``out`` (None without one), named after the file;
    UsageError where two files would get one name."""
    from promptmill.errors import UsageError

    if out is None:
        return [None] * len(paths)
    suffix = ".parquet" if fmt == "parquet" else ".jsonl"
    targets: list[Path | None] = []
    seen: dict[Path, Path] = {}
    for path in paths:
        target = out / (path.stem + suffix)
        if target in seen:
            raise UsageError(f"{seen[target]} and {path} would both be graded into {target}: "
                             "rename one, or grade them in separate runs")
        seen[target] = path
        targets.append(target)
    return targets


def _report_of(grades: FileGrades, out: Path) -> Path:
    return out / f"{grades.path.stem}.report.json"


def _comparison_paths(report_path: Path | None,
                      out: Path | None) -> tuple[Path | None, Path | None]:
    """Where the comparison's JSON and CSV go: ``--report`` (and the other beside it), else
    the output folder, else nowhere."""
    if report_path is None:
        return (None, None) if out is None else (out / "comparison.json",
                                                 out / "comparison.csv")
    if report_path.suffix.lower() == ".csv":
        return report_path.with_suffix(".json"), report_path
    return report_path, report_path.with_suffix(".csv")


def _check_not_inputs(paths: list[Path], written: list[Path | None]) -> None:
    """UsageError if anything extract writes would replace one of the results files."""
    from promptmill.errors import UsageError
    from promptmill.grading import same_file

    for target in written:
        for path in paths:
            if target is not None and same_file(target, path):
                raise UsageError(f"{target} is one of the results files; write the graded "
                                 "files to another folder (-o)")


def _write_json(path: Path, value: Any) -> None:
    import json

    from promptmill.errors import InputError

    try:
        path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"--report {path}: cannot write there ({exc.strerror})") from None


def _write_csv(path: Path, comparison: Any) -> None:
    from promptmill.errors import InputError

    try:
        comparison.write_csv(path)
    except OSError as exc:
        raise InputError(f"--report {path}: cannot write there ({exc.strerror})") from None
