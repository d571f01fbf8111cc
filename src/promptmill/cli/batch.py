"""``batch`` (create, submit, status, cancel, download, list) and ``reformat``: the Batch API
by hand, for what ``run --mode batch`` does as one job.

Every command but ``create`` talks to a server: ``--api-base`` (default ``OPENAI_BASE_URL``
or OpenAI's), its key from ``--api-key-env`` (default ``OPENAI_API_KEY``; the environment or
a ``.env`` file, never a file we write), or the server of the job named by ``--job OUTPUT``.
Without an id, a command acts on the job's batches (``--job``) or on the batch ``submit``
last created in this folder.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from promptmill.cli.app import cli
from promptmill.cli.jobs import _open_store, parse_param
from promptmill.redaction import redact_secrets as redact


@cli.group("batch")
def batch_group() -> None:
    """The Batch API by hand: write, submit, watch, cancel and download batches."""


def _server_options(function: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed([
        click.option("--api-base", metavar="URL", help="The server (default: OPENAI_BASE_URL, "
                     "else https://api.openai.com/v1)."),
        click.option("--api-key-env", metavar="NAME", help="Environment (or .env) variable "
                     "holding the key (default: OPENAI_API_KEY)."),
        click.option("--job", "job_output", metavar="OUTPUT", type=click.Path(path_type=Path),
                     help="Act on the batches of the job writing OUTPUT (its server too)."),
    ]):
        function = option(function)
    return function


def _job_model(job_output: Path | None) -> tuple[str | None, list[Any]]:
    """The job's model identifier and its batches (``--job``), or (None, [])."""
    if job_output is None:
        return None, []
    from promptmill.batch_ledger import BatchLedger

    with _open_store(job_output) as store:
        return store.get_meta("model_identifier"), BatchLedger(store).batches()


def _call(server: Any, action: Callable[[Any], Any]) -> Any:
    from promptmill import eventloop
    from promptmill.batch_api import BatchAPI

    async def go() -> Any:
        async with BatchAPI(server.api_base, server.api_key) as api:
            return await action(api)

    return eventloop.run(go())


def _targets(batch_id: str | None, api_base: str | None, api_key_env: str | None,
             job_output: Path | None, *, active_only: bool = False) -> tuple[Any, list[str]]:
    """The server and the batch ids a command acts on."""
    from promptmill.batch_manual import last_batch, server_for

    model, batches = _job_model(job_output)
    if batch_id is None and job_output is None:
        last = last_batch()
        return server_for(api_base or last["api_base"], api_key_env), [last["id"]]
    server = server_for(api_base, api_key_env, model)
    if batch_id is not None:
        return server, [batch_id]
    ids = [b.batch_id for b in batches if b.batch_id and (b.active or not active_only)]
    if not ids:
        raise click.UsageError(f"the job writing {job_output} has no batch at the provider"
                               + (" still running" if active_only else ""))
    return server, ids


def _describe(batch: dict[str, Any]) -> str:
    counts = batch.get("request_counts") or {}
    created = batch.get("created_at")
    age = f", created {_ago(created)} ago" if created else ""
    lines = [f"{batch.get('id')}  {batch.get('status')}  {counts.get('completed', 0):,} done, "
             f"{counts.get('failed', 0):,} failed of {counts.get('total', 0):,}{age}"]
    for name in ("input_file_id", "output_file_id", "error_file_id"):
        if batch.get(name):
            lines.append(f"  {name:<15} {batch[name]}")
    errors = (batch.get("errors") or {}).get("data") or []
    for error in errors[:5]:
        where = f" (line {error['line']})" if error.get("line") is not None else ""
        lines.append(f"  error {error.get('code')}{where}: {error.get('message')}")
    return redact("\n".join(lines))


def _ago(timestamp: float) -> str:
    minutes = max(0, int(time.time() - timestamp)) // 60
    return f"{minutes // 60}h{minutes % 60:02d}m"


@batch_group.command("create")
@click.argument("input_path", metavar="[INPUT]", required=False,
                type=click.Path(path_type=Path))
@click.option("-o", "--output", "out", required=True, type=click.Path(path_type=Path),
              help="The batch input file to write (numbered -001, -002... when split).")
@click.option("-m", "--model", help="Model identifier (openai!gpt-4o-mini,temperature=0.7).")
@click.option("--job", "job_output", metavar="OUTPUT", type=click.Path(path_type=Path),
              help="Write the pending requests of the job writing OUTPUT instead of INPUT's.")
@click.option("-k", "k", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--template", help="Jinja2 template over the row's fields, inline or a file path.")
@click.option("--prompt-field", help="Row field holding the prompt.")
@click.option("--messages-field", help="Row field holding a list of chat messages.")
@click.option("--system", help="System prompt, inline or a file path.")
@click.option("--text", "text_mode", is_flag=True, help="Raw text completions, not chat.")
@click.option("--param", "param_items", multiple=True, metavar="KEY=VALUE")
@click.option("--id-field", metavar="NAME", help="Row field used as custom_id ('none': "
              "request-N).")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N rows.")
@click.option("--max-requests", type=click.IntRange(min=1), default=50_000, show_default=True)
@click.option("--max-bytes", type=click.IntRange(min=1), default=200 * 1024 * 1024,
              show_default=True)
def create(input_path: Path | None, out: Path, model: str | None, job_output: Path | None,
           k: int, template: str | None, prompt_field: str | None, messages_field: str | None,
           system: str | None, text_mode: bool, param_items: tuple[str, ...],
           id_field: str | None, limit: int | None, max_requests: int, max_bytes: int) -> None:
    """Write a batch input file from INPUT (rendered as `run` would) or from a job; send nothing."""
    from promptmill import batch_manual, data

    data.check_output_path(out)
    if job_output is not None:
        if input_path is not None:
            raise click.UsageError("give INPUT or --job, not both")
        from promptmill.store import existing_store_path

        files, count = batch_manual.write_from_job(existing_store_path(job_output), out,
                                                   max_requests, max_bytes)
    else:
        if input_path is None or model is None:
            raise click.UsageError("give INPUT and -m MODEL (or --job OUTPUT)")
        from promptmill.api import make_generator
        from promptmill.job import JobSpec
        from promptmill.params import make_params
        from promptmill.prompts.render import PromptSpec

        data.check_input(input_path)
        spec = JobSpec(
            input=input_path, output=out, generator=make_generator(model), mode="batch",
            prompts=PromptSpec.build(template, prompt_field, messages_field, system,
                                     not text_mode),
            k=k, params=make_params(parse_param(param_items), where="--param"), limit=limit,
            id_field=None if id_field in (None, "none") else id_field,
            unique_ids=id_field != "none")
        files, count = batch_manual.write_from_input(spec, out, max_requests, max_bytes)
    names = ", ".join(str(path) for path in files)
    click.echo(f"wrote {count:,} requests to {names}; nothing was sent "
               f"(send with `promptmill batch submit {files[0]}`)", err=True)


@batch_group.command("submit")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--metadata", "metadata_items", multiple=True, metavar="KEY=VALUE",
              help="Metadata kept with the batch (up to 16 pairs).")
@_server_options
def submit(file: Path, metadata_items: tuple[str, ...], api_base: str | None,
           api_key_env: str | None, job_output: Path | None) -> None:
    """Upload FILE and create a batch from it; print the batch id (remembered here)."""
    import json

    from promptmill.batch_manual import remember_last_batch, server_for
    from promptmill.errors import InputError

    if job_output is not None:
        raise click.UsageError("submit sends a file of your own: a job's batches are sent by "
                               "`promptmill run --mode batch`")
    with open(file, "rb") as handle:
        first = handle.readline()
    try:
        endpoint = json.loads(first)["url"]
    except (ValueError, KeyError, TypeError):
        raise InputError(f"{file}:1: not a batch input line ({{\"custom_id\", \"method\", "
                         "\"url\", \"body\"}}): write one with `promptmill batch create`") from None
    metadata = dict(item.partition("=")[::2] for item in metadata_items)
    server = server_for(api_base, api_key_env)

    async def go(api: Any) -> Any:
        uploaded = await api.upload(file, file.name)
        return await api.create_batch(uploaded["id"], endpoint, "24h", metadata or None)

    batch = _call(server, go)
    remember_last_batch(batch["id"], server.api_base)
    click.echo(batch["id"])
    click.echo(_describe(batch), err=True)


@batch_group.command("status")
@click.argument("batch_id", required=False)
@_server_options
def status(batch_id: str | None, api_base: str | None, api_key_env: str | None,
           job_output: Path | None) -> None:
    """Show a batch's state and request counts (or every batch of --job, or the last one)."""
    server, ids = _targets(batch_id, api_base, api_key_env, job_output)

    async def go(api: Any) -> list[Any]:
        return [await api.retrieve_batch(one) for one in ids]

    for batch in _call(server, go):
        click.echo(_describe(batch))


@batch_group.command("cancel")
@click.argument("batch_id", required=False)
@_server_options
def cancel(batch_id: str | None, api_base: str | None, api_key_env: str | None,
           job_output: Path | None) -> None:
    """Cancel a batch (or every running batch of --job, or the last one)."""
    server, ids = _targets(batch_id, api_base, api_key_env, job_output, active_only=True)

    async def go(api: Any) -> list[Any]:
        return [await api.cancel_batch(one) for one in ids]

    for batch in _call(server, go):
        click.echo(_describe(batch))
    if job_output is not None:
        click.echo("the job's next `run --mode batch` records what they answered and sends "
                   "the rest again", err=True)


@batch_group.command("download")
@click.argument("batch_id", required=False)
@click.option("-o", "--output", "out", required=True, type=click.Path(path_type=Path),
              help="Where the output file goes; the error file goes beside it "
              "(NAME.errors.jsonl).")
@_server_options
def download(batch_id: str | None, out: Path, api_base: str | None, api_key_env: str | None,
             job_output: Path | None) -> None:
    """Download a batch's output file to -o, and its error file beside it (streamed)."""
    from promptmill import data
    from promptmill.batch_files import errors_file_for
    from promptmill.errors import UsageError

    data.check_output_path(out)
    server, ids = _targets(batch_id, api_base, api_key_env, job_output)
    if len(ids) != 1:
        raise UsageError(f"the job has {len(ids)} batches: name one (see `promptmill batch "
                         f"status --job {job_output}`)")
    errors_path = errors_file_for(out)

    async def go(api: Any) -> tuple[Any, list[str]]:
        batch = await api.retrieve_batch(ids[0])
        written = []
        for file_id, path in ((batch.get("output_file_id"), out),
                              (batch.get("error_file_id"), errors_path)):
            if file_id:
                size = await api.download(file_id, path)
                written.append(f"{path} ({size:,} bytes)")
        return batch, written

    batch, written = _call(server, go)
    if not written:
        raise UsageError(f"batch {batch['id']} is {batch['status']} and has no output or error "
                         "file yet: see `promptmill batch status`")
    click.echo(f"wrote {' and '.join(written)}", err=True)


@batch_group.command("list")
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
@_server_options
def list_batches(limit: int, api_base: str | None, api_key_env: str | None,
                 job_output: Path | None) -> None:
    """List the account's most recent batches."""
    from promptmill.batch_manual import server_for

    model, _ = _job_model(job_output)
    server = server_for(api_base, api_key_env, model)
    page = _call(server, lambda api: api.list_batches(limit))
    for batch in page.get("data") or []:
        counts = batch.get("request_counts") or {}
        job = (batch.get("metadata") or {}).get("promptmill_job")
        click.echo(redact(f"{batch.get('id')}  {batch.get('status'):<11} "
                          f"{counts.get('completed', 0):>7,}/{counts.get('total', 0):<7,} "
                          f"{_ago(batch.get('created_at') or time.time()):>7} ago  "
                          f"{batch.get('endpoint')}" + (f"  (job {job})" if job else "")))


@cli.command("reformat")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", "out", type=click.Path(path_type=Path),
              help="Where to write (default: FILE with .flat.jsonl, or the --format's extension).")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "parquet"]),
              help="Output format (default: from -o's extension).")
def reformat(file: Path, out: Path | None, fmt: str | None) -> None:
    """Flatten a downloaded Batch API output (or error) file to id, text, usage and error rows."""
    from promptmill import data
    from promptmill.batch_files import reformat_rows

    if out is None:
        out = file.with_name(file.name.removesuffix(".jsonl") + f".flat.{fmt or 'jsonl'}")
    data.check_output_path(out)
    count = data.write_rows(reformat_rows(file), out, data.output_format(out, fmt))
    click.echo(f"wrote {count:,} rows to {out}", err=True)
