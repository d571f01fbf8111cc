"""``extract``: answer extraction and grading over a job's results."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from promptmill.cli.app import cli


@cli.command("extract")
@click.argument("results", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--type", "answer_type", type=click.Choice(["auto", "mcq", "math"]),
              default="auto", show_default=True,
              help="Question type; auto: multiple choice where the row has choices.")
@click.option("--gold-field", metavar="FIELD",
              help="Row field with the gold answer (default: choice_index_correct for "
              "multiple choice, answer_correct otherwise).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write every row with its per-response extractions here (JSONL).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the report here as JSON.")
@click.option("--judge", "judge_model", metavar="MODEL",
              help="Also ask this model (any identifier, e.g. openai!gpt-4o-mini, a llamacpp! "
              "model, or 'embedded' for the embedded default) for the final answer of the "
              "responses the rules are unsure of; its job is kept in RESULTS.judge/ and resumes.")
@click.option("--judge-all", is_flag=True, help="With --judge: ask about every response.")
@click.option("--judge-dir", type=click.Path(file_okay=False, path_type=Path),
              help="With --judge: keep the judge job here instead of RESULTS.judge/.")
@click.option("--judge-rpm", type=click.FloatRange(min=0, min_open=True),
              help="With --judge: requests per minute for the judge.")
@click.option("--judge-tpm", type=click.FloatRange(min=0, min_open=True),
              help="With --judge: tokens per minute for the judge.")
def extract(results: Path, answer_type: str, gold_field: str | None, out: Path | None,
            report_path: Path | None, judge_model: str | None, judge_all: bool,
            judge_dir: Path | None, judge_rpm: float | None, judge_tpm: float | None) -> None:
    """Extract each response's final answer from RESULTS and grade it against the gold."""
    import json

    from rich.console import Console

    from promptmill.errors import InputError, UsageError
    from promptmill.extract import grade
    from promptmill.grading import same_file

    if report_path is not None and same_file(report_path, results):
        raise InputError(f"--report {report_path} is the results file itself; pick another path")
    judged = judge_all or judge_dir or judge_rpm or judge_tpm
    if judged and not judge_model:
        raise UsageError("--judge-all, --judge-dir, --judge-rpm and --judge-tpm need --judge MODEL")
    judge = None
    if judge_model:
        from promptmill.extraction.judge import JudgeOptions

        judge = JudgeOptions(model=judge_model, judge_all=judge_all, folder=judge_dir,
                             rpm=judge_rpm, tpm=judge_tpm)
    report = grade(results, type=answer_type, gold_field=gold_field, out=out, judge=judge)
    if report_path is not None:
        try:
            report_path.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            message = f"--report {report_path}: cannot write there ({exc.strerror})"
            raise InputError(message) from None
    # Piped output gets the whole table, not one cut to a default 80 columns.
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(report.to_table())
    console.print(report.method_table())

