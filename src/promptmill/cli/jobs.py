"""The job commands: ``run``, ``status``, ``export``."""

from __future__ import annotations

import contextlib
import functools
import gc
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from promptmill.cli.app import ARGV, cli
from promptmill.cli.jobfile import apply_job_file
from promptmill.redaction import redact_secrets as redact

# Exit status of a batch-mode run that left batches at the provider: EX_TEMPFAIL, "try again
# later" (not 0, so that `run --mode batch && next-step` does not go on without the results).
EXIT_BATCHES_RUNNING = 75
# The collector's thresholds while `run` runs a job (Python's are 700, 10, 10): a young
# collection every 20,000 objects made and not yet freed, an older one every 20 of those.
_JOB_GC_THRESHOLDS = (20_000, 20, 100)


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


def parse_param(values: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` items as typed parameters."""
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
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path), required=False)
@click.option("--config", type=click.Path(dir_okay=False, path_type=Path), is_eager=True,
              expose_value=False, callback=apply_job_file,
              help="Read run options from a TOML job file; options given here win.")
@click.option("--save-config", type=click.Path(dir_okay=False, path_type=Path),
              help="Write this run's effective options to a TOML job file (never a key).")
@click.option("-m", "--model", multiple=True, help="Model identifier or alias, e.g. "
              "openai!gpt-4o-mini,temperature=0.7 (default: smollm2, the embedded SmolLM2 "
              "model via llama.cpp). Several: one job over a fleet of endpoints of one model "
              "(each may add rpm=, tpm=, max_concurrency=).")
@click.option("--fleet", "fleet_file", type=click.Path(dir_okay=False, path_type=Path),
              help="A file of model identifiers, one a line: endpoints of one model to spread "
                   "the job over (with any -m).")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Results file "
              "(.jsonl, .parquet, .csv); its job store sits beside it. Default: "
              "INPUT.results.jsonl; for hf: inputs results/DATASET__MODEL.jsonl")
@click.option("-k", "k", type=click.IntRange(min=1), default=1, show_default=True,
              help="Responses per input row.")
@click.option("--template", help="Jinja2 template over the row's fields, inline or a file path.")
@click.option("--prompt", "prompt_name", metavar="NAME",
              help="A prompt of the library (`promptmill prompts list`), e.g. stories_21.")
@click.option("--prompts-file", "prompts_files", multiple=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="A TOML file of your own prompts for --prompt.")
@click.option("--prompt-field", help="Row field holding the prompt (default: prompt/question/...).")
@click.option("--messages-field", help="Row field holding a list of chat messages.")
@click.option("--system", help="System prompt, inline or a file path.")
@click.option("--text", "text_mode", is_flag=True, help="Send raw text completions, not chat.")
@click.option("--requests", "request_file", is_flag=True, help="INPUT is a file of whole "
              "requests: request bodies (model, messages or prompt, params, metadata) or Batch "
              "API lines (custom_id, method, url, body), each sent with its own model and "
              "params; -m names the endpoint (default: line 1's model).")
@click.option("--override-model", is_flag=True, help="--requests: send every line to -m's "
              "model, whatever model the line names.")
@click.option("--format", "output_format", type=click.Choice(
              ["jsonl", "parquet", "csv", "arrow", "openai-batch"]), help="Output format "
              "(default: from -o's extension). openai-batch: the Batch API's output lines, "
              "failed requests in NAME.errors.jsonl.")
@click.option("--param", "param_items", multiple=True, metavar="KEY=VALUE",
              help="Generation parameter (temperature, max_tokens, seed, ..., extra.NAME).")
@click.option("--schema", type=click.Path(dir_okay=False, path_type=Path),
              help="A JSON Schema file: every backend is asked for JSON matching it; each "
              "answer is validated (invalid ones retried) and kept as responses[].json.")
@click.option("--cache", "cache", is_flag=False, flag_value="", default=None, metavar="[PATH]",
              help="Use the response cache for every request, sampled ones too (default: only "
              "temperature 0 or a fixed seed); PATH: another cache file than the user "
              "cache directory's.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the response cache.")
@click.option("--max-cost", type=click.FloatRange(min=0), metavar="USD",
              help="Stop sending before the job's spend could pass USD (rerun with a higher "
              "cap to continue); needs max_tokens and a known price.")
@click.option("--max-tokens-total", type=click.IntRange(min=1), metavar="N",
              help="Stop sending before the job's prompt + completion tokens could pass N.")
@click.option("--prices", "prices_file", type=click.Path(dir_okay=False, path_type=Path),
              help="A TOML file of model prices (default: prices.toml in the user config "
              "directory).")
@click.option("--id-field", metavar="NAME", help="Row field whose values must be unique "
              "(default: id or unique_id, when rows have one); 'none' allows duplicates.")
@click.option("--adapter-field", metavar="NAME", help="Row field naming the LoRA adapter "
              "(of the identifier's lora=/adapter={...}) to answer that row; empty: the base "
              "model.")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N rows.")
@click.option("--max-prompt-tokens", type=click.IntRange(min=1), help="Prompt tokens allowed "
              "per row (default: the model's context less max_tokens, where known).")
@click.option("--truncate-field", metavar="FIELD", help="Cut prompts that do not fit, in this "
              "row field (without it, such rows fail before anything is sent).")
@click.option("--truncate-keep", type=click.Choice(["start", "end"]), default="start",
              show_default=True, help="Which end of --truncate-field to keep.")
@click.option("--rpm", type=click.FloatRange(min=0, min_open=True), help="Requests per minute.")
@click.option("--tpm", type=click.FloatRange(min=0, min_open=True), help="Tokens per minute.")
@click.option("--max-concurrency", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--max-attempts", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True),
              help="Seconds before one request is abandoned and retried.")
@click.option("--retry-failed", is_flag=True, help="Send again the requests that failed.")
@click.option("--new-job", is_flag=True, help="Discard the stored job at -o and start over.")
@click.option("--dry-run", is_flag=True, help="Count requests, tokens and cost; send nothing.")
@click.option("--mode", type=click.Choice(["online", "batch"]), default="online",
              show_default=True, help="batch: send through the provider's Batch API (half "
              "price, results within 24h); rerun the same command to collect them.")
@click.option("--wait", is_flag=True, help="Batch mode: keep polling until every batch ends.")
@click.option("--finish-online", is_flag=True, help="Batch mode: send the requests left over "
              "(failed lines, expired batches) online, under the rate limits.")
@click.option("--poll-interval", type=click.FloatRange(min=0), default=30.0,
              show_default=True, help="Batch mode: seconds between polls with --wait.")
@click.option("--batch-max-requests", type=click.IntRange(min=1), default=50_000,
              show_default=True, help="Batch mode: requests per batch input file.")
@click.option("--batch-max-bytes", type=click.IntRange(min=1), default=200 * 1024 * 1024,
              show_default=True, help="Batch mode: bytes per batch input file.")
@click.option("--ray", "ray_address", is_flag=False, flag_value="auto", default=None,
              metavar="[ADDRESS]", help="Run the local engine on a Ray cluster: ADDRESS "
              "(host:6379, ray://host:10001); alone: RAY_ADDRESS, else a cluster on this "
              "machine, else a new local one ('local': always a new one).")
@click.option("--replicas", type=click.IntRange(min=1), default=1, show_default=True,
              help="--ray: copies of the engine, one Ray actor each.")
@click.option("--gpus-per-replica", type=click.FloatRange(min=0), default=0.0,
              show_default=True, help="--ray: GPUs each replica holds (times "
              "--tensor-parallel).")
@click.option("--cpus-per-replica", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True, help="--ray: CPUs each replica holds.")
@click.option("--tensor-parallel", type=click.IntRange(min=1), default=1, show_default=True,
              help="--ray with vllm!: GPUs one replica shards its model over.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="--ray: requests sent to a replica per call (a block, committed together).")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.option("-q", "--quiet", count=True, help="Less output.")
@click.pass_context
def run(ctx: click.Context, input_path: Path | None, save_config: Path | None,
        model: tuple[str, ...], fleet_file: Path | None, output: Path | None, k: int,
        template: str | None,
        prompt_name: str | None, prompts_files: tuple[Path, ...], prompt_field: str | None,
        messages_field: str | None, system: str | None, text_mode: bool, request_file: bool,
        override_model: bool, output_format: str | None, param_items: tuple[str, ...],
        schema: Path | None, cache: str | None, no_cache: bool, max_cost: float | None,
        max_tokens_total: int | None, prices_file: Path | None,
        id_field: str | None, adapter_field: str | None, limit: int | None,
        max_prompt_tokens: int | None, truncate_field: str | None, truncate_keep: str,
        rpm: float | None, tpm: float | None, max_concurrency: int, max_attempts: int,
        timeout: float | None, retry_failed: bool, new_job: bool, dry_run: bool,
        mode: str, wait: bool, finish_online: bool, poll_interval: float,
        batch_max_requests: int, batch_max_bytes: int, ray_address: str | None,
        replicas: int, gpus_per_replica: float, cpus_per_replica: float,
        tensor_parallel: int, batch_size: int, verbose: int, quiet: int) -> None:
    """Generate responses for every row of INPUT (JSONL, CSV, Parquet, or a Hugging Face
    dataset as hf:NAME[:CONFIG][@SPLIT])."""
    # The imports below and the job's spec make objects that live to the end of the process:
    # collecting while they are made finds nothing to free. Frozen, and back on, once the
    # spec is built.
    gc.disable()
    ctx.call_on_close(gc.enable)  # also when the command fails before that
    from promptmill import eventloop
    from promptmill.api import make_generator
    from promptmill.engine.dispatch import EngineConfig
    from promptmill.engine.retry import RetryPolicy
    from promptmill.errors import UsageError
    from promptmill.job import JobSpec
    from promptmill.params import make_params
    from promptmill.prompts.render import PromptSpec
    from promptmill.prompts.truncate import Truncation

    _setup_logging(verbose, quiet)
    if input_path is None:
        raise UsageError("no INPUT: give a file or hf:DATASET, or `input` in a --config file")
    identifiers = list(model)
    if fleet_file is not None:
        from promptmill.engine.fleet import read_fleet_file

        identifiers += read_fleet_file(fleet_file)
    if not identifiers and request_file:
        from promptmill import data
        from promptmill.request_files import default_model

        data.check_input(input_path)
        named = default_model(input_path)
        if named is not None:
            identifiers = [named]
            click.echo(f"no -m given: sending to {named}, the model line 1 names", err=True)
    if not identifiers:
        click.echo("no -m given: using the embedded default smollm2 (SmolLM2-135M-Instruct on "
                   "llama.cpp, CPU, no key)", err=True)
    generator = make_generator(identifiers or None, concurrency=max_concurrency)
    if timeout is not None and "timeout" in generator.config_fields:
        generator = generator.with_config(timeout=timeout)
    params = {**ctx.meta.get("job_file_params", {}), **parse_param(param_items)}
    job_params = dict(params)  # --save-config writes params, and --schema as a path
    if schema is not None:
        from promptmill.structured import load_schema, response_format_for

        job_params["response_format"] = response_format_for(*load_schema(schema))
    if no_cache and cache is not None:
        raise UsageError("--cache and --no-cache contradict each other: give one")
    output = output or default_output(input_path, generator, create=not dry_run)
    spec = JobSpec(
        input=input_path, output=output, generator=generator,
        prompts=PromptSpec.build(template, prompt_field, messages_field, system, not text_mode,
                                 prompt=prompt_name, prompts_files=prompts_files),
        k=k, params=make_params(job_params, where="--param"), limit=limit,
        id_field=None if id_field in (None, "none") else id_field,
        unique_ids=id_field != "none", max_prompt_tokens=max_prompt_tokens, mode=mode,
        truncation=Truncation(truncate_field, truncate_keep) if truncate_field else None,
        adapter_field=adapter_field, requests=request_file, override_model=override_model,
        output_format=output_format,
        cache="off" if no_cache else "auto" if cache is None else "on",
        cache_path=Path(cache) if cache else None, max_cost=max_cost,
        max_tokens_total=max_tokens_total, prices_file=prices_file,
        ray=_ray_options(ctx, ray_address, replicas=replicas,
                         gpus_per_replica=gpus_per_replica, cpus_per_replica=cpus_per_replica,
                         tensor_parallel=tensor_parallel, batch_size=batch_size),
    )
    # What exists now (the modules, the CLI, the spec) lives until the process exits: out of
    # the collector's sight, no full collection during the job walks it again, nor the one
    # at exit (most of a run's collection time, docs/benchmarks.md). Back on before anything
    # reads the input (a dry run too): a model's loading makes garbage of its own.
    gc.freeze()
    gc.enable()
    # While the job runs, hundreds of requests in flight keep their objects alive past a
    # young collection, so each one walks them again: at 200 ms and 500 in flight the default
    # thresholds spent 7-10% of the process's CPU collecting, for next to no garbage (a job
    # makes almost no reference cycles: docs/benchmarks.md, speed15f). Collections are rarer
    # for this command only (its process is ours); main() called in-process gets them back.
    ctx.call_on_close(functools.partial(gc.set_threshold, *gc.get_threshold()))
    gc.set_threshold(*_JOB_GC_THRESHOLDS)
    if save_config is not None:
        from promptmill.cli.jobfile import save_job_file

        save_job_file(save_config, ctx.command, {**ctx.params, "output": output}, params)
    if mode == "online" and (wait or finish_online):
        raise UsageError("--wait and --finish-online apply to --mode batch: add it, or drop them")
    if dry_run:
        from promptmill.dryrun import dry_run as do_dry_run

        click.echo(do_dry_run(spec, prices_file))
        return
    config = EngineConfig(max_concurrency=max_concurrency, rpm=rpm, tpm=tpm,
                          retry=RetryPolicy(max_attempts=max_attempts))
    batch = None
    if mode == "batch":
        from promptmill.batch import BatchOptions

        batch = BatchOptions(max_requests=batch_max_requests, max_bytes=batch_max_bytes,
                             poll_interval=poll_interval, wait=wait,
                             finish_online=finish_online)
    resume = _resume_command()
    with _signals_interrupt() as received:
        try:
            outcome = eventloop.run(_run_with_progress(spec, config, new_job, retry_failed,
                                                     quiet, batch))
        except KeyboardInterrupt as exc:
            # A signal while planning or exporting, or a second one while sending: what was
            # recorded is kept (each result commits on its own), the rest is sent on rerun.
            signum = exc.args[0] if exc.args and isinstance(exc.args[0], int) else (
                received[-1] if received else signal.SIGINT)
            click.echo(f"interrupted: every answer recorded so far is kept; run {resume} "
                       "to continue", err=True)
            sys.exit(128 + signum)
    from promptmill.progress import summary_line

    if mode == "online" or outcome.stats.finished:
        click.echo(summary_line(outcome.stats), err=True)
    if outcome.truncated:
        click.echo(f"truncated {outcome.truncated:,} rows to fit (--truncate-field "
                   f"{truncate_field}, kept the {truncate_keep})", err=True)
    if outcome.batches_active:
        batches = "batch is" if outcome.batches_active == 1 else "batches are"
        click.echo(f"{outcome.batches_active:,} {batches} at the provider with "
                   f"{outcome.batched:,} requests: run {resume} again later to collect the "
                   "results (or add --wait)", err=True)
        sys.exit(EXIT_BATCHES_RUNNING)
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


def _ray_options(ctx: click.Context, address: str | None, **options: Any) -> Any:
    """The job's ``RayOptions`` (None without --ray; its sizing options then refused)."""
    if address is None:
        # Only those typed here: a job file saved from any run holds their defaults.
        given = [name for name in options
                 if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE]
        if given:
            from promptmill.errors import UsageError

            raise UsageError(f"--{given[0].replace('_', '-')} applies to --ray: add --ray "
                             "[ADDRESS], or drop it")
        return None
    from promptmill.ray_ import RayOptions

    return RayOptions(address=address, **options)


def default_output(input_path: Path, generator: Any, *, create: bool = True) -> Path:
    """INPUT.results.jsonl beside a file; results/DATASET__MODEL.jsonl for a dataset, so that
    the same command run again continues the same job."""
    from promptmill.datasets_ import is_hf_source, parse_hf_source, safe_name

    if not is_hf_source(input_path):
        return input_path.with_name(input_path.stem + ".results.jsonl")
    model = str(generator.model)
    if model.lower().endswith(".gguf"):
        model = Path(model).stem
    folder = Path("results")
    if create:
        folder.mkdir(exist_ok=True)
    return folder / f"{parse_hf_source(input_path).label}__{safe_name(model)}.jsonl"


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
                             quiet: int, batch: Any) -> Any:
    from promptmill.api import execute

    # Batch events are one line each (submitted, collected): shown unless -q.
    report = None if quiet else (lambda line: click.echo(redact(line), err=True))
    if quiet or not sys.stderr.isatty():
        return await execute(spec, config, new_job=new_job, retry_failed=retry_failed,
                             handle_signals=True, batch=batch, report=report)
    from rich.console import Console
    from rich.live import Live

    from promptmill.progress import BatchProgressView, ProgressView

    live: list[Any] = []

    def show(view: Any) -> None:
        if live:
            live[0].stop()
        live[:] = [Live(view, console=Console(stderr=True), refresh_per_second=4,
                        transient=False)]
        live[0].start()

    def on_start(stats: Any) -> None:
        show(ProgressView(stats, spec.model_identifier(), spec.generator))

    def on_batches(runner: Any) -> None:
        if batch is not None and batch.wait:
            runner.progress_lines = False  # the live view shows them
            show(BatchProgressView(runner))

    def report_above(line: str) -> None:
        # Printed through the live display's console, so that it goes above the display.
        if live:
            live[0].console.print(redact(line), highlight=False, soft_wrap=True)
        else:
            click.echo(redact(line), err=True)

    try:
        return await execute(spec, config, new_job=new_job, retry_failed=retry_failed,
                             handle_signals=True, on_start=on_start, batch=batch,
                             on_batches=on_batches, report=report_above)
    finally:
        if live:
            live[0].stop()


def _open_store(path: Path) -> Any:
    from promptmill.store import JobStore, existing_store_path

    return JobStore(existing_store_path(path), lock=False)


@cli.command()
@click.argument("output", type=click.Path(path_type=Path))
def status(output: Path) -> None:
    """Show how far the job writing OUTPUT has got."""
    from promptmill.batch_ledger import BatchLedger
    from promptmill.spending import spend_lines

    with _open_store(output) as store:
        st = store.status()
        model = store.get_meta("model_identifier")
        truncated = int(store.get_meta("truncated_rows") or 0)
        batches = BatchLedger(store).batches()
        spent = spend_lines(store)
    click.echo(f"job      {output}  ({model})")
    click.echo(f"rows     {st.rows:,}" + ("" if st.planned_complete else " (planning incomplete)"))
    in_batches = f" ({st.batched:,} in batches at the provider)" if st.batched else ""
    click.echo(f"requests {st.requests:,}: {st.done:,} done, {st.failed:,} failed, "
               f"{st.pending:,} pending{in_batches}")
    click.echo(f"attempts {st.attempts:,}; tokens {st.prompt_tokens:,} prompt + "
               f"{st.completion_tokens:,} completion")
    for line in spent:
        click.echo(line)
    for error, count in st.errors:
        click.echo(redact(f"  {count:,} x {error}"))
    if truncated:
        click.echo(f"truncated {truncated:,} rows cut to fit the prompt budget")
    if batches:
        from collections import Counter

        states = Counter(b.shown_status for b in batches)
        click.echo(f"batches  {len(batches):,}: " + ", ".join(
            f"{count:,} {state}" for state, count in sorted(states.items())))
        for b in batches:
            if b.active or len(batches) <= 20:
                click.echo(_batch_line(b))


def _batch_line(b: Any) -> str:
    """One batch of ``promptmill status``: number, remote id, state, counts, age."""
    import time

    total = b.total or b.requests
    since = ""
    if b.submitted_at:
        minutes = int(time.time() - b.submitted_at) // 60
        since = f", submitted {minutes // 60}h{minutes % 60:02d}m ago"
    error = f" ({b.error})" if b.error else ""
    return redact(f"  #{b.id:<4} {b.batch_id or '-':<32} {b.shown_status:<11} "
                  f"{b.completed or 0:,} done, {b.failed or 0:,} failed of {total:,}"
                  f"{since}{error}")


@cli.command()
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "parquet", "csv", "arrow", "hf",
                                                   "openai-batch"]),
              help="Output format (default: from the --to extension). parquet and arrow have "
              "the fixed schema of the README; hf writes a Hugging Face dataset folder "
              "(save_to_disk layout; needs the datasets extra); openai-batch the Batch API's "
              "output lines (failed requests in NAME.errors.jsonl).")
@click.option("--to", "destination", type=click.Path(path_type=Path),
              help="Where to write (default: OUTPUT, or OUTPUT with the format's extension).")
@click.option("--flatten-json", is_flag=True, help="parquet/arrow/hf: a column json_NAME per "
              "top-level field of the --schema answers (a list of the k values when k > 1).")
def export(output: Path, fmt: str | None, destination: Path | None,
           flatten_json: bool) -> None:
    """Write the job's results (every row, in input order) as JSONL, Parquet, CSV, Arrow or HF."""
    from promptmill import data
    from promptmill.export import export_results

    if destination is None:
        suffix = {"hf": ".hf", "openai-batch": ".batch.jsonl"}.get(fmt or "", f".{fmt}")
        destination = output if fmt in (None, "jsonl") else output.with_suffix(suffix)
    if fmt == "hf":
        data.check_output_path(destination.with_name(destination.name + ".probe"))
    else:
        data.check_output_path(destination)
    with _open_store(output) as store:
        count = export_results(store, destination, fmt or data.output_format(destination),
                               flatten_json=flatten_json)
    click.echo(f"wrote {count:,} rows to {destination}", err=True)
