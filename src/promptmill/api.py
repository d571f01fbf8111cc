"""The library API: ``promptmill.run`` (sync) and ``promptmill.arun`` (async)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptmill.engine.dispatch import Dispatcher, EngineConfig, EngineStats
from promptmill.engine.retry import RetryPolicy
from promptmill.generators import get_generator
from promptmill.generators.base import Generator
from promptmill.job import Job, JobSpec, iter_results, run_async
from promptmill.params import GenerateParams, make_params
from promptmill.prompts.render import PromptSpec

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


def make_generator(model: Any) -> Generator:
    """A generator from an identifier, an instance, a model object (a vllm.LLM, see
    ``generators.from_obj``), or None for the embedded default."""
    if isinstance(model, Generator):
        return model
    if model is not None and not isinstance(model, str):
        from promptmill.generators import from_obj

        return from_obj(model)
    if model is None:
        from promptmill.generators.embedded import embedded_identifier

        model = embedded_identifier()
    return get_generator(model)


async def execute(
    spec: JobSpec,
    config: EngineConfig,
    *,
    new_job: bool = False,
    retry_failed: bool = False,
    handle_signals: bool = False,
    on_start: Callable[[EngineStats], Any] | None = None,
) -> RunOutcome:
    """Plan, dispatch and export one job; the building block of run/arun and the CLI."""
    job = Job.open(spec, new_job=new_job)
    try:
        job.plan()
        if retry_failed:
            job.store.retry_failed()
        stats = EngineStats()
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
        status = job.store.status()
        complete = status.pending == 0 and bool(job.store.get_meta("planned_complete"))
        complete = complete or (spec.limit is not None and status.pending == 0)
        if status.pending == 0:
            job.export()
        return RunOutcome(
            stats=stats, complete=complete, pending=status.pending, failed=status.failed,
            output=spec.output, store=spec.store_path, stopped=stop_signal is not None,
            stop_signal=stop_signal, first_failure=status.first_failure,
        )
    finally:
        job.close()


def _as_input(rows: str | Path | Iterable[Mapping[str, Any]], folder: Path) -> Path:
    if isinstance(rows, (str, Path)):
        return Path(rows)
    path = folder / "input.jsonl"
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(dict(row), ensure_ascii=False, default=str) + "\n")
    return path


async def arun(
    rows: str | Path | Iterable[Mapping[str, Any]],
    model: str | Generator | None = None,
    *,
    output: str | Path | None = None,
    template: str | None = None,
    prompt_field: str | None = None,
    messages_field: str | None = None,
    system: str | None = None,
    chat: bool = True,
    k: int = 1,
    params: GenerateParams | Mapping[str, Any] | None = None,
    limit: int | None = None,
    adapter_field: str | None = None,
    rpm: float | None = None,
    tpm: float | None = None,
    max_concurrency: int = 64,
    max_attempts: int = 8,
    new_job: bool = False,
    retry_failed: bool = False,
) -> list[dict[str, Any]]:
    """Run a job and return its result rows (input fields + responses, usage, status...).

    ``rows`` is an input file path or an iterable of dicts. With ``output`` the results are
    also written there, and the job store beside it makes the call resumable.
    ``adapter_field`` names the row field choosing each row's LoRA adapter.
    """
    with tempfile.TemporaryDirectory(prefix="promptmill-") as scratch:
        folder = Path(output).parent if output else Path(scratch)
        if output is None:
            output = Path(scratch) / "results.jsonl"
        source = _as_input(rows, Path(scratch) if not isinstance(rows, (str, Path)) else folder)
        if not isinstance(params, GenerateParams):
            params = make_params(params or {})
        spec = JobSpec(
            input=source, output=Path(output), generator=make_generator(model),
            prompts=PromptSpec.build(template, prompt_field, messages_field, system, chat),
            k=k, params=params, limit=limit, adapter_field=adapter_field,
        )
        config = EngineConfig(
            max_concurrency=max_concurrency, rpm=rpm, tpm=tpm,
            retry=RetryPolicy(max_attempts=max_attempts),
        )
        await execute(spec, config, new_job=new_job, retry_failed=retry_failed)
        from promptmill.store import JobStore

        with JobStore(spec.store_path) as store:
            return list(iter_results(store))


def run(rows: str | Path | Iterable[Mapping[str, Any]], model: str | Generator | None = None,
        **options: Any) -> list[dict[str, Any]]:
    """Sync :func:`arun`; works inside a running event loop too (notebooks)."""
    result: list[dict[str, Any]] = run_async(arun(rows, model, **options))
    return result
