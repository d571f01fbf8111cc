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
def extract(results: Path, answer_type: str, gold_field: str | None, out: Path | None,
            report_path: Path | None) -> None:
    """Extract each response's final answer from RESULTS and grade it against the gold."""
    import json

    from rich.console import Console

    from promptmill.errors import InputError
    from promptmill.extract import grade
    from promptmill.grading import same_file

    if report_path is not None and same_file(report_path, results):
        raise InputError(f"--report {report_path} is the results file itself; pick another path")
    report = grade(results, type=answer_type, gold_field=gold_field, out=out)
    if report_path is not None:
        try:
            report_path.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            message = f"--report {report_path}: cannot write there ({exc.strerror})"
            raise InputError(message) from None
    # Piped output gets the whole table, not one cut to a default 80 columns.
    Console(width=None if sys.stdout.isatty() else 160).print(report.to_table())

