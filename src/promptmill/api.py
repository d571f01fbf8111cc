"""The library API: ``promptmill.run`` / ``arun`` (a dataset), ``run_requests`` /
``arun_requests`` (a list or file of request bodies)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import signal
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from promptmill.engine.dispatch import Dispatcher, EngineConfig, EngineStats
from promptmill.engine.retry import RetryPolicy
from promptmill.eventloop import run_async
from promptmill.export import iter_results
from promptmill.generators import get_generator
from promptmill.generators.base import Generator
from promptmill.job import Job, JobSpec
from promptmill.params import GenerateParams, make_params
from promptmill.prompts.render import PromptSpec
from promptmill.prompts.truncate import Truncation
from promptmill.store import BATCHED, FAILED, PENDING

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from promptmill.batch import BatchOptions, BatchRunner
    from promptmill.ray_ import RayOptions

log = logging.getLogger("promptmill")


@dataclass
class RunOutcome:
    """What a run did: its counters, whether every request finished, where results are."""

    stats: EngineStats
    complete: bool
    pending: int
    failed: int
    output: Path
    store: Path
    stopped: bool = False
    rows: list[dict[str, Any]] = field(default_factory=list)
    # The signal that asked for the graceful stop (SIGINT, SIGTERM), if one did.
    stop_signal: int | None = None
    # The first failed request: (input row index, its error), for the end-of-run message.
    first_failure: tuple[int, str] | None = None
    # Rows whose prompt was cut to fit (--truncate-field), over the whole job.
    truncated: int = 0
    # Batch mode: batches still at the provider (or not yet collected), and their requests.
    batches_active: int = 0
    batched: int = 0


def make_generator(model: Any, *, concurrency: int = 64) -> Generator:
    """A generator from an identifier, an alias, an instance, a model object (a vllm.LLM, see
    ``generators.from_obj``), a list of identifiers (a fleet: one model's endpoints, each
    with up to ``concurrency`` requests in flight), or None for the embedded default (the
    built-in alias ``smollm2``)."""
    if isinstance(model, Generator):
        return model
    if isinstance(model, (list, tuple)):
        if len(model) == 1:
            return make_generator(model[0])
        from promptmill.engine.fleet import fleet_from_identifiers

        return fleet_from_identifiers(model, concurrency=concurrency)
    if model is not None and not isinstance(model, str):
        from promptmill.generators import from_obj

        return from_obj(model)
    if model is None:
        from promptmill.generators.embedded import embedded_identifier

        model = embedded_identifier()
    return get_generator(model)


def bound_by_generator(config: EngineConfig, generator: Generator) -> EngineConfig:
    """``config`` under the limits the generator's identifier states (``max_concurrency=``,
    ``rpm=``, ``tpm=``, or rigging's ``max_connections=``): the strictest of both wins."""
    limits = generator.limit_options
    if not limits:
        return config
    changes: dict[str, Any] = {}
    if "max_concurrency" in limits:
        changes["max_concurrency"] = min(config.max_concurrency, int(limits["max_concurrency"]))
    for name in ("rpm", "tpm"):
        if name in limits:
            given = getattr(config, name)
            changes[name] = limits[name] if given is None else min(given, limits[name])
    return dataclasses.replace(config, **changes)


async def execute(
    spec: JobSpec,
    config: EngineConfig,
    *,
    new_job: bool = False,
    retry_failed: bool = False,
    handle_signals: bool = False,
    on_start: Callable[[EngineStats], Any] | None = None,
    batch: BatchOptions | None = None,
    on_batches: Callable[[BatchRunner], Any] | None = None,
    report: Callable[[str], None] | None = None,
) -> RunOutcome:
    """Plan, send (online, or as Batch API batches) and export one job.

    The building block of run/arun and the CLI. In batch mode (``spec.mode == "batch"``) one
    call advances the job's batches (``batch``: limits, polling, ``wait``); requests still at
    the provider are counted in the outcome's ``pending`` and ``batches_active``, and the same
    call made again later collects them. ``report`` receives one line per batch event.
    """
    from promptmill.engine.fleet import FleetGenerator

    if isinstance(spec.generator, FleetGenerator):  # a worker per request the fleet may hold
        config = dataclasses.replace(config, max_concurrency=spec.generator.concurrency())
    else:
        config = bound_by_generator(config, spec.generator)
    job = Job.open(spec, new_job=new_job)
    try:
        job.plan()
        if retry_failed:
            job.store.retry_failed()
        stats = EngineStats()
        stop_signal: int | None = None
        summary = None
        if spec.mode == "batch":
            from promptmill.batch import BatchOptions, BatchRunner

            options = batch or BatchOptions()
            runner = BatchRunner(job, options, config.retry.max_attempts, report)
            if on_batches is not None:
                on_batches(runner)
            summary = await runner.run()
            if options.finish_online:
                stop_signal = await _dispatch(job, config, stats, handle_signals, on_start)
        else:
            stop_signal = await _dispatch(job, config, stats, handle_signals, on_start)
        counts = job.store.counts()
        batched, failed = counts.get(BATCHED, 0), counts.get(FAILED, 0)
        pending = counts.get(PENDING, 0) + batched
        complete = pending == 0 and bool(job.store.get_meta("planned_complete"))
        complete = complete or (spec.limit is not None and pending == 0)
        if pending == 0:
            job.export()
        return RunOutcome(
            stats=stats, complete=complete, pending=pending, failed=failed,
            output=spec.output, store=spec.store_path, stopped=stop_signal is not None,
            stop_signal=stop_signal,
            first_failure=job.store.first_failure() if failed else None,
            truncated=int(job.store.get_meta("truncated_rows") or 0),
            batches_active=summary.active if summary else 0, batched=batched,
        )
    finally:
        job.close()


async def _dispatch(job: Job, config: EngineConfig, stats: EngineStats, handle_signals: bool,
                    on_start: Callable[[EngineStats], Any] | None) -> int | None:
    """Send the job's pending requests online; the signal that stopped it, if one did."""
    holder: list[Dispatcher] = []
    stop_signal: int | None = None

    def on_signal(signum: int) -> None:
        nonlocal stop_signal
        if stop_signal is not None or not holder:
            raise KeyboardInterrupt(signum)  # a second signal: abandon what is in flight
        stop_signal = signum
        again = "press Ctrl-C again" if signum == signal.SIGINT else "send it again"
        log.warning("stopping: finishing requests in flight (%s to abandon them)", again)
        holder[0].stop()

    loop = asyncio.get_running_loop()
    installed: dict[int, Any] = {}
    if handle_signals:
        for sig in (signal.SIGINT.value, signal.SIGTERM.value):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                previous = signal.getsignal(sig)
                loop.add_signal_handler(sig, on_signal, sig)
                installed[sig] = previous
    try:
        if on_start is not None:
            on_start(stats)
        await job.dispatch(config, stats, on_dispatcher=holder.append)
    finally:
        for sig, previous in installed.items():
            loop.remove_signal_handler(sig)
            # remove_signal_handler leaves SIGTERM at SIG_DFL: give back the caller's
            # handler, so a signal while exporting still stops cleanly.
            if previous is not None:
                signal.signal(sig, previous)
    return stop_signal


def _as_input(rows: str | Path | Iterable[Mapping[str, Any]] | Any, folder: Path) -> Path:
    """A path for the job's input: a file, ``hf:...``, or rows written (streamed) to JSONL."""
    if isinstance(rows, (str, Path)):
        return Path(rows)
    if hasattr(rows, "itertuples") and hasattr(rows, "columns"):  # a pandas DataFrame
        columns = [str(c) for c in rows.columns]
        rows = (dict(zip(columns, values, strict=True))
                for values in rows.itertuples(index=False, name=None))
    path = folder / "input.jsonl"
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(dict(row), ensure_ascii=False, default=_plain_value) + "\n")
    return path


def _plain_value(value: Any) -> Any:
    """JSON for what datasets and pandas hold: numpy scalars and arrays, dates."""
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


class RunOptions(TypedDict, total=False):
    """How a library run sends and where it stands (options of ``arun`` and ``arun_requests``).

    rpm, tpm: requests and tokens per minute; max_concurrency; max_attempts; new_job: discard
    the job stored at ``output``; retry_failed; mode: "online" or "batch"; wait and
    poll_interval (batch mode); finish_online (batch mode: leftovers sent online);
    output_format: the output's format ("openai-batch": the Batch API's output lines).
    """

    rpm: float | None
    tpm: float | None
    max_concurrency: int
    max_attempts: int
    new_job: bool
    retry_failed: bool
    mode: str
    wait: bool
    poll_interval: float
    finish_online: bool
    output_format: str | None


async def arun(
    rows: str | Path | Iterable[Mapping[str, Any]] | Any,
    model: str | Sequence[str] | Generator | None = None,
    *,
    output: str | Path | None = None,
    template: str | None = None,
    prompt: str | None = None,
    prompts_file: str | Path | Sequence[str | Path] = (),
    prompt_field: str | None = None,
    messages_field: str | None = None,
    system: str | None = None,
    chat: bool = True,
    k: int = 1,
    params: GenerateParams | Mapping[str, Any] | None = None,
    limit: int | None = None,
    max_prompt_tokens: int | None = None,
    truncate_field: str | None = None,
    truncate_keep: str = "start",
    adapter_field: str | None = None,
    schema: Any = None,
    cache: bool | str | Path | None = None,
    max_cost: float | None = None,
    max_tokens_total: int | None = None,
    prices_file: str | Path | None = None,
    ray: RayOptions | None = None,
    **engine: Unpack[RunOptions],
) -> list[dict[str, Any]]:
    """Run a job and return its result rows (input fields + responses, usage, status...).

    ``rows`` is an input file path, ``hf:NAME[:CONFIG][@SPLIT]``, a ``datasets.Dataset``, a
    pandas DataFrame or any iterable of dicts. ``prompt`` names a prompt of the library
    (``prompts_file`` adds the user's). With ``output`` the results are also written there,
    and the job store beside it makes the call resumable. ``model`` may also be a model object
    (a ``vllm.LLM``; see ``generators.from_obj``), and ``adapter_field`` names the row field
    choosing each row's LoRA adapter.
    ``schema`` (a pydantic model class, a JSON Schema dict or file) asks every backend for
    JSON matching it; each answer is validated and kept as ``responses[].json``. ``cache``:
    None uses the response cache for deterministic requests (not for a transformers model
    wrapped from memory, which training changes under its name), True for all, False for none,
    a path for all with that file. ``max_cost`` (USD) and ``max_tokens_total`` cap the
    spend: past them :class:`~promptmill.errors.SpendingCapReached` is raised, and a call
    with a higher cap and the same ``output`` goes on; ``prices_file``: a TOML of prices.
    ``mode="batch"`` sends through the provider's Batch API and, with ``wait`` (the default),
    polls every ``poll_interval`` seconds until every batch has ended; without ``wait`` it
    returns at once (rows still at the provider are ``pending``) and needs ``output``, whose
    store a later call collects from. ``engine``: the :class:`RunOptions` (rpm, tpm,
    max_concurrency, max_attempts, new_job, retry_failed, mode, wait, poll_interval,
    finish_online, output_format). ``ray`` (a :class:`~promptmill.ray_.RayOptions`) runs a
    local engine on a Ray cluster, in a pool of replicas; the job is otherwise the same.
    """
    files = [prompts_file] if isinstance(prompts_file, (str, Path)) else list(prompts_file)
    job_params = _params(params)
    if schema is not None:
        from promptmill.structured import load_schema, response_format_for

        job_params = job_params.with_(response_format=response_format_for(*load_schema(schema)))

    concurrency = engine.get("max_concurrency", 64)

    def spec(source: Path, out: Path, mode: str, output_format: str | None) -> JobSpec:
        return JobSpec(
            input=source, output=out, generator=make_generator(model, concurrency=concurrency),
            prompts=PromptSpec.build(template, prompt_field, messages_field, system, chat,
                                     prompt=prompt, prompts_files=files),
            k=k, params=job_params, limit=limit, max_prompt_tokens=max_prompt_tokens,
            truncation=Truncation(truncate_field, truncate_keep) if truncate_field else None,
            mode=mode, adapter_field=adapter_field, output_format=output_format,
            cache="auto" if cache is None else "off" if cache is False else "on",
            cache_path=None if isinstance(cache, bool) or cache is None else Path(cache),
            max_cost=max_cost, max_tokens_total=max_tokens_total,
            prices_file=Path(prices_file) if prices_file else None, ray=ray,
        )

    return await _run_job(rows, output, spec, **engine)


async def arun_requests(
    requests: str | Path | Iterable[Mapping[str, Any]],
    model: str | Generator | None = None,
    *,
    output: str | Path | None = None,
    params: GenerateParams | Mapping[str, Any] | None = None,
    override_model: bool = False,
    limit: int | None = None,
    max_prompt_tokens: int | None = None,
    **engine: Unpack[RunOptions],
) -> list[dict[str, Any]]:
    """Send a list (or JSONL file) of request bodies, one request each; results in their order.

    ``requests`` are request bodies (``{"model", "messages" | "prompt", "temperature", ...,
    "metadata"}``, the OpenAI cookbook's format) or Batch API input lines (``{"custom_id",
    "method", "url", "body"}``). Each is sent with its own model and fields; ``model`` names
    the endpoint (``openai!gpt-4o-mini``, ``http!m,api_base=...``) and the model of requests
    without one (None: the model the first request names). ``params`` are defaults for
    requests that do not set them. Each result row holds the request's ``metadata`` or
    ``custom_id``, the ``request`` as sent, and ``responses``, ``usage``, ``model``,
    ``attempts``, ``status``, ``error``. ``engine``: the :class:`RunOptions`, as for
    :func:`arun`.
    """

    def spec(source: Path, out: Path, mode: str, output_format: str | None) -> JobSpec:
        generator = model
        if generator is None:
            from promptmill.request_files import default_model

            generator = default_model(source)
        return JobSpec(input=source, output=out, generator=make_generator(generator),
                       params=_params(params), limit=limit, max_prompt_tokens=max_prompt_tokens,
                       mode=mode, output_format=output_format, requests=True,
                       override_model=override_model)

    return await _run_job(requests, output, spec, **engine)


def _params(params: GenerateParams | Mapping[str, Any] | None) -> GenerateParams:
    return params if isinstance(params, GenerateParams) else make_params(params or {})


async def _run_job(
    rows: str | Path | Iterable[Mapping[str, Any]] | Any,
    output: str | Path | None,
    make_spec: Callable[[Path, Path, str, str | None], JobSpec],
    *,
    rpm: float | None = None,
    tpm: float | None = None,
    max_concurrency: int = 64,
    max_attempts: int = 8,
    new_job: bool = False,
    retry_failed: bool = False,
    mode: str = "online",
    wait: bool = True,
    poll_interval: float = 30.0,
    finish_online: bool = False,
    output_format: str | None = None,
) -> list[dict[str, Any]]:
    """Run the job ``make_spec(input, output, mode, output_format)`` describes; its rows."""
    if mode == "batch" and not wait and output is None:
        from promptmill.errors import UsageError

        raise UsageError("mode='batch' with wait=False needs output=PATH: its job store keeps "
                         "the submitted batches for a later call to collect")
    with tempfile.TemporaryDirectory(prefix="promptmill-") as scratch:
        folder = Path(output).parent if output else Path(scratch)
        if output is None:
            output = Path(scratch) / "results.jsonl"
        source = _as_input(rows, Path(scratch) if not isinstance(rows, (str, Path)) else folder)
        spec = make_spec(source, Path(output), mode, output_format)
        config = EngineConfig(
            max_concurrency=max_concurrency, rpm=rpm, tpm=tpm,
            retry=RetryPolicy(max_attempts=max_attempts),
        )
        batch = None
        if mode == "batch":
            from promptmill.batch import BatchOptions

            batch = BatchOptions(wait=wait, poll_interval=poll_interval,
                                 finish_online=finish_online)
        await execute(spec, config, new_job=new_job, retry_failed=retry_failed, batch=batch)
        from promptmill.store import JobStore

        with JobStore(spec.store_path) as store:
            return list(iter_results(store))


def load(output: str | Path) -> Any:
    """A job's results as a ``pyarrow.Table`` with the fixed schema (see the README).

    ``output`` is a job's ``-o`` path (read from its store), or an exported ``.parquet`` /
    ``.arrow`` file. ``.to_pandas()``, ``polars.from_arrow(table)``, ``duckdb.sql("select *
    from table")`` and ``datasets.Dataset(table)`` take it as it is.
    """
    from promptmill.arrow import load as load_table

    return load_table(output)


def run(rows: str | Path | Iterable[Mapping[str, Any]] | Any,
        model: str | Generator | None = None,
        **options: Any) -> list[dict[str, Any]]:
    """Sync :func:`arun`; works inside a running event loop too (notebooks)."""
    result: list[dict[str, Any]] = run_async(arun(rows, model, **options))
    return result


def run_requests(requests: str | Path | Iterable[Mapping[str, Any]],
                 model: str | Generator | None = None,
                 **options: Any) -> list[dict[str, Any]]:
    """Sync :func:`arun_requests`; works inside a running event loop too (notebooks)."""
    result: list[dict[str, Any]] = run_async(arun_requests(requests, model, **options))
    return result
