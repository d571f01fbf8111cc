"""The job commands: ``run``, ``status``, ``export``."""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from promptmill.cli.app import ARGV, cli
from promptmill.redaction import redact_secrets as redact


def _setup_logging(verbose: int, quiet: int) -> None:
    import logging

    from promptmill.redaction import RedactingFilter

    level = logging.WARNING + 10 * (quiet - verbose)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    # On the handler, not a logger: records of every library (aiohttp, asyncio) pass here.
    handler.addFilter(RedactingFilter())
    logging.basicConfig(level=max(logging.DEBUG, min(level, logging.CRITICAL)),
                        handlers=[handler])


def _parse_param(values: tuple[str, ...]) -> dict[str, Any]:
    from promptmill.errors import ParamError
    from promptmill.identifiers import parse_value

    parsed: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ParamError(f"--param {item!r} must be KEY=VALUE (e.g. --param temperature=0.7)")
        parsed[key.strip()] = parse_value(raw.strip())
    return parsed


@cli.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option("-m", "--model", help="Model identifier, e.g. openai!gpt-4o-mini,temperature=0.7 "
              "(default: the embedded SmolLM2 model via llama.cpp).")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Results file "
              "(.jsonl, .parquet, .csv); its job store sits beside it. "
              "Default: INPUT.results.jsonl")
@click.option("-k", "k", type=click.IntRange(min=1), default=1, show_default=True,
              help="Responses per input row.")
@click.option("--template", help="Jinja2 template over the row's fields, inline or a file path.")
@click.option("--prompt-field", help="Row field holding the prompt (default: prompt/question/...).")
@click.option("--messages-field", help="Row field holding a list of chat messages.")
@click.option("--system", help="System prompt, inline or a file path.")
@click.option("--text", "text_mode", is_flag=True, help="Send raw text completions, not chat.")
@click.option("--param", "param_items", multiple=True, metavar="KEY=VALUE",
              help="Generation parameter (temperature, max_tokens, seed, ..., extra.NAME).")
@click.option("--id-field", metavar="NAME", help="Row field whose values must be unique "
              "(default: id or unique_id, when rows have one); 'none' allows duplicates.")
@click.option("--adapter-field", metavar="NAME", help="Row field naming the LoRA adapter "
              "(of the identifier's lora=/adapter={...}) to answer that row; empty: the base "
              "model.")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N rows.")
@click.option("--rpm", type=click.FloatRange(min=0, min_open=True), help="Requests per minute.")
@click.option("--tpm", type=click.FloatRange(min=0, min_open=True), help="Tokens per minute.")
@click.option("--max-concurrency", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--max-attempts", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True),
              help="Seconds before one request is abandoned and retried.")
@click.option("--retry-failed", is_flag=True, help="Send again the requests that failed.")
@click.option("--new-job", is_flag=True, help="Discard the stored job at -o and start over.")
@click.option("--dry-run", is_flag=True, help="Count requests, tokens and cost; send nothing.")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.option("-q", "--quiet", count=True, help="Less output.")
def run(input_path: Path, model: str | None, output: Path | None, k: int, template: str | None,
        prompt_field: str | None, messages_field: str | None, system: str | None,
        text_mode: bool, param_items: tuple[str, ...], id_field: str | None,
        adapter_field: str | None, limit: int | None, rpm: float | None,
        tpm: float | None, max_concurrency: int, max_attempts: int, timeout: float | None,
        retry_failed: bool, new_job: bool, dry_run: bool, verbose: int, quiet: int) -> None:
    """Generate responses for every row of INPUT (JSONL, CSV or Parquet)."""
    import asyncio

    from promptmill.api import make_generator
    from promptmill.engine.dispatch import EngineConfig
    from promptmill.engine.retry import RetryPolicy
    from promptmill.job import JobSpec
    from promptmill.params import make_params
    from promptmill.prompts.render import PromptSpec

    _setup_logging(verbose, quiet)
    if model is None:
        click.echo("no -m given: using the embedded default, SmolLM2-135M-Instruct on llama.cpp "
                   "(CPU, no key)", err=True)
    generator = make_generator(model)
    if timeout is not None and "timeout" in generator.config_fields:
        generator = generator.with_config(timeout=timeout)
    spec = JobSpec(
        input=input_path,
        output=output or input_path.with_name(input_path.stem + ".results.jsonl"),
        generator=generator,
        prompts=PromptSpec.build(template, prompt_field, messages_field, system, not text_mode),
        k=k, params=make_params(_parse_param(param_items), where="--param"), limit=limit,
        id_field=None if id_field in (None, "none") else id_field,
        unique_ids=id_field != "none", adapter_field=adapter_field,
    )
    if dry_run:
        from promptmill.dryrun import dry_run as do_dry_run

        click.echo(do_dry_run(spec))
        return
    config = EngineConfig(max_concurrency=max_concurrency, rpm=rpm, tpm=tpm,
                          retry=RetryPolicy(max_attempts=max_attempts))
    resume = _resume_command()
    with _signals_interrupt() as received:
        try:
            outcome = asyncio.run(_run_with_progress(spec, config, new_job, retry_failed,
                                                     quiet > 0))
        except KeyboardInterrupt as exc:
            # A signal while planning or exporting, or a second one while sending: what was
            # recorded is kept (each result commits on its own), the rest is sent on rerun.
            signum = exc.args[0] if exc.args and isinstance(exc.args[0], int) else (
                received[-1] if received else signal.SIGINT)
            click.echo(f"interrupted: every answer recorded so far is kept; run {resume} "
                       "to continue", err=True)
            sys.exit(128 + signum)
    from promptmill.progress import summary_line

    click.echo(summary_line(outcome.stats), err=True)
    if outcome.pending:
        click.echo(f"stopped with {outcome.pending:,} requests pending: run {resume} "
                   "to continue", err=True)
        sys.exit(128 + outcome.stop_signal if outcome.stop_signal else 1)
    if outcome.failed:
        from promptmill.data import row_place

        first = ""
        if outcome.first_failure is not None:
            row, error = outcome.first_failure
            first = f" (first: {row_place(spec.input, row)}: {error})"
        requests = "request" if outcome.failed == 1 else "requests"
        click.echo(f"error: wrote {spec.output}, but {outcome.failed:,} {requests} failed"
                   f"{first}: see `promptmill status {spec.output}`, fix the cause and rerun "
                   "with --retry-failed", err=True)
        sys.exit(1)
    click.echo(f"wrote {spec.output}", err=True)


def _resume_command() -> str:
    """The command that continues this run, shell-quoted, keys left out.

    Without --new-job: run again, it would throw away what this run has stored.
    """
    import shlex

    kept = [arg for arg in ARGV if arg != "--new-job"]
    args = [redact(arg) for arg in kept]
    command = "promptmill " + shlex.join(args) if args else "the same command"
    if args != kept:
        command += " (with your key in place of ***)"
    return command


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[list[int]]:
    """SIGINT and SIGTERM raise KeyboardInterrupt (recording which) outside the send loop.

    By default SIGTERM kills the process on the spot, with no word on how to resume; the
    send loop installs its own graceful handlers over these for as long as it runs.
    """
    received: list[int] = []

    def interrupt(signum: int, frame: object) -> None:
        received.append(signum)
        raise KeyboardInterrupt(signum)

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


async def _run_with_progress(spec: Any, config: Any, new_job: bool, retry_failed: bool,
                             quiet: bool) -> Any:
    from promptmill.api import execute

    if quiet or not sys.stderr.isatty():
        return await execute(spec, config, new_job=new_job, retry_failed=retry_failed,
                             handle_signals=True)
    from rich.console import Console
    from rich.live import Live

    from promptmill.progress import ProgressView

    live: list[Any] = []

    def on_start(stats: Any) -> None:
        view = ProgressView(stats, spec.model_identifier())
        live.append(Live(view, console=Console(stderr=True), refresh_per_second=4,
                         transient=False))
        live[0].start()

    try:
        return await execute(spec, config, new_job=new_job, retry_failed=retry_failed,
                             handle_signals=True, on_start=on_start)
    finally:
        if live:
            live[0].stop()


def _open_store(path: Path) -> Any:
    from promptmill.errors import UsageError
    from promptmill.store import JobStore, store_path_for

    store_path = path if path.name.endswith(".promptmill.db") else store_path_for(path)
    if not store_path.exists():
        raise UsageError(f"no job store for {path} (looked for {store_path}): "
                         "pass the -o path of a promptmill run")
    return JobStore(store_path, lock=False)


@cli.command()
@click.argument("output", type=click.Path(path_type=Path))
def status(output: Path) -> None:
    """Show how far the job writing OUTPUT has got."""
    with _open_store(output) as store:
        st = store.status()
        model = store.get_meta("model_identifier")
    click.echo(f"job      {output}  ({model})")
    click.echo(f"rows     {st.rows:,}" + ("" if st.planned_complete else " (planning incomplete)"))
    click.echo(f"requests {st.requests:,}: {st.done:,} done, {st.failed:,} failed, "
               f"{st.pending:,} pending")
    click.echo(f"attempts {st.attempts:,}; tokens {st.prompt_tokens:,} prompt + "
               f"{st.completion_tokens:,} completion")
    for error, count in st.errors:
        click.echo(f"  {count:,} x {error}")


@cli.command()
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "parquet", "csv"]),
              help="Output format (default: from the --to extension).")
@click.option("--to", "destination", type=click.Path(path_type=Path),
              help="Where to write (default: OUTPUT, or OUTPUT with the format's extension).")
def export(output: Path, fmt: str | None, destination: Path | None) -> None:
    """Write the job's results (every row, in input order) as JSONL, Parquet or CSV."""
    from promptmill import data
    from promptmill.job import iter_results

    if destination is None:
        destination = output if fmt in (None, "jsonl") else output.with_suffix(f".{fmt}")
    data.check_output_path(destination)
    with _open_store(output) as store:
        count = data.write_rows(iter_results(store), destination,
                                data.output_format(destination, fmt))
    click.echo(f"wrote {count:,} rows to {destination}", err=True)
