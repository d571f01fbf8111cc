"""The dispatch loop: pull pending requests from the store, send them under the limits, record.

A fixed set of worker coroutines takes requests from one queue. The feeder holds at most
``2 * max_concurrency`` requests outside the store at a time, so memory stays flat whatever
the job's size. Finished requests are recorded in small group commits (each request's result
in one transaction); a kill loses at most what is in flight or not yet committed, and those
requests are still pending in the store, so they are simply sent again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from promptmill.engine.limiter import RateLimiter
from promptmill.engine.retry import RetryPolicy
from promptmill.errors import (
    GenerationError,
    JobFatalError,
    PromptmillError,
    RateLimited,
    RetryableError,
    Unavailable,
)
from promptmill.generators.base import GenerationRequest, GenerationResult, Generator, RateLimitInfo
from promptmill.store import FinishedRequest, JobStore, RequestRow

log = logging.getLogger("promptmill")

# Consecutive connection failures after which the server counts as down and the job pauses.
_OUTAGE_AFTER = 3
# Consecutive malformed bodies, before any success, that mean "this is not an OpenAI server".
_NOT_OPENAI_AFTER = 5


@dataclass
class EngineConfig:
    """How hard a job pushes: concurrency, limits, retries, outage tolerance."""

    max_concurrency: int = 64
    rpm: float | None = None
    tpm: float | None = None
    margin: float = 0.98
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    outage_timeout: float = 600.0
    flush_interval: float = 0.05
    flush_size: int = 256
    seed: int = 0


@dataclass
class EngineStats:
    """Live counters, read by the progress display and reported at the end."""

    total: int = 0
    sent: int = 0
    done: int = 0
    failed: int = 0
    in_flight: int = 0
    retries: Counter[str] = field(default_factory=Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    started_at: float = field(default_factory=time.monotonic)
    limiter_state: str = "ok"

    @property
    def finished(self) -> int:
        """Requests finished this run, done or failed."""
        return self.done + self.failed

    def as_dict(self) -> dict[str, object]:
        """Plain counters for reports."""
        data = asdict(self)
        data["retries"] = dict(self.retries)
        return data


@dataclass(slots=True)
class _Item:
    row: RequestRow
    request: GenerationRequest
    reserved: int
    attempts: int = 0  # counted attempts this run
    unavailable: int = 0  # connection failures this run (not counted as attempts)


class JobAborted(PromptmillError):
    """The job stopped early for a reason every request shares; rerun to resume."""


class Dispatcher:
    """Sends a store's pending requests through a generator until none is left."""

    def __init__(
        self,
        store: JobStore,
        generator: Generator,
        build_request: Callable[[RequestRow], GenerationRequest],
        config: EngineConfig,
        stats: EngineStats | None = None,
    ) -> None:
        self.store = store
        self.generator = generator
        self.build_request = build_request
        self.config = config
        self.stats = stats or EngineStats()
        self.limiter = RateLimiter(config.rpm, config.tpm, margin=config.margin)
        self._rng = random.Random(config.seed)
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        local = generator.is_local
        self._workers = 1 if local else max(1, config.max_concurrency)
        self._batch = max(1, generator.max_batch)
        self._slots = asyncio.Semaphore(self._workers * self._batch * 2)
        self._outstanding = 0
        self._feeding = True
        self._all_done = asyncio.Event()
        self._finished: list[FinishedRequest] = []
        self._stop = asyncio.Event()
        self._abort: PromptmillError | None = None
        self._consecutive_unavailable = 0
        self._outage_since: float | None = None
        self._probe = asyncio.Lock()
        self._any_success = False
        self._malformed_streak = 0

    def stop(self) -> None:
        """Ask for a graceful stop: nothing new is sent; requests in flight finish."""
        self._stop.set()
        self._all_done.set()

    async def run(self) -> None:
        """Dispatch until every pending request has finished, or a stop or abort."""
        feeder = asyncio.create_task(self._feed())
        workers = [asyncio.create_task(self._work()) for _ in range(self._workers)]
        flusher = asyncio.create_task(self._flush_periodically())
        try:
            await self._all_done.wait()
            if self._stop.is_set():
                feeder.cancel()
                await self._drain(workers)
        finally:
            for task in (feeder, *workers):
                task.cancel()
            await asyncio.gather(feeder, *workers, return_exceptions=True)
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)
            self.flush()
        if self._abort is not None:
            raise self._abort

    async def _drain(self, workers: list[asyncio.Task[None]]) -> None:
        """After a stop, let in-flight requests finish (queued ones stay pending)."""
        while not self._queue.empty():
            self._queue.get_nowait()
        for _ in workers:
            self._queue.put_nowait(None)
        await asyncio.gather(*workers, return_exceptions=True)

    # -- feeding -------------------------------------------------------------------------

    async def _feed(self) -> None:
        try:
            for row in self.store.iter_pending():
                await self._slots.acquire()
                if self._stop.is_set():
                    return
                request = self.build_request(row)
                reserved = self.generator.count_prompt_tokens(request) if self.config.tpm else 0
                reserved += (request.params.max_tokens or 0) * request.n if self.config.tpm else 0
                self._outstanding += 1
                self._queue.put_nowait(_Item(row, request, reserved))
        finally:
            self._feeding = False
            if self._outstanding == 0:
                self._all_done.set()

    def _settle(self) -> None:
        self._outstanding -= 1
        self._slots.release()
        if self._outstanding == 0 and not self._feeding:
            self._all_done.set()

    # -- sending -------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            item = await self._queue.get()
            if item is None or self._stop.is_set() and item is None:
                return
            batch = [item]
            while len(batch) < self._batch and not self._queue.empty():
                extra = self._queue.get_nowait()
                if extra is None:
                    self._queue.put_nowait(None)
                    break
                batch.append(extra)
            await self._send(batch)

    async def _send(self, batch: list[_Item]) -> None:
        reserved = sum(item.reserved for item in batch)
        await self.limiter.acquire(reserved)
        probing = False
        if self._outage_since is not None:
            await self._probe.acquire()
            probing = True
            if self._outage_since is None:  # another probe got through while we waited
                self._probe.release()
                probing = False
        self.stats.sent += len(batch)
        self.stats.in_flight += len(batch)
        used: int | None = None
        try:
            try:
                results = await self.generator.generate([item.request for item in batch])
            except GenerationError as error:
                for item in batch:
                    self._failed(item, error)
                return
            used = 0
            for item, result in zip(batch, results, strict=True):
                if result.rate_limit is not None:
                    self.limiter.observe(result.rate_limit)
                if result.error is not None:
                    self._failed(item, result.error)
                else:
                    used += result.usage.total_tokens if result.usage else 0
                    self._done(item, result)
        finally:
            self.stats.in_flight -= len(batch)
            self.limiter.release(reserved, used if used else None)
            self.stats.limiter_state = self.limiter.state
            if probing:
                self._probe.release()

    def _done(self, item: _Item, result: GenerationResult) -> None:
        self._any_success = True
        self._malformed_streak = 0
        self._consecutive_unavailable = 0
        if self._outage_since is not None:
            log.warning("server reachable again after %.0fs", time.monotonic() - self._outage_since)
            self._outage_since = None
        usage = result.usage
        responses = [
            {"text": r.text, "finish_reason": r.finish_reason}
            | ({"logprobs": r.logprobs} if r.logprobs is not None else {})
            for r in result.responses
        ]
        self._finish(
            FinishedRequest(
                id=item.row.id,
                attempts=item.row.attempts + item.attempts + 1,
                responses=json.dumps(responses, ensure_ascii=False),
                prompt_tokens=usage.prompt_tokens if usage else None,
                completion_tokens=usage.completion_tokens if usage else None,
            )
        )
        self.stats.done += 1
        if usage:
            self.stats.prompt_tokens += usage.prompt_tokens
            self.stats.completion_tokens += usage.completion_tokens

    def _failed(self, item: _Item, error: GenerationError) -> None:
        policy = self.config.retry
        if policy.counts_as_attempt(error):
            item.attempts += 1
        self.stats.retries[error.kind] += 1
        if isinstance(error, RetryableError) and isinstance(error.rate_limit, RateLimitInfo):
            self.limiter.observe(error.rate_limit)
        if isinstance(error, Unavailable):
            item.unavailable += 1
            self._note_unavailable(error)
        else:
            self._consecutive_unavailable = 0
        if isinstance(error, RateLimited):
            self.limiter.pause(policy.delay(error, item.attempts, self._rng), "HTTP 429")
        if "malformed response" in str(error) and not self._any_success:
            self._malformed_streak += 1
            if self._malformed_streak >= _NOT_OPENAI_AFTER:
                self._abort_job(JobAborted(f"{error}; stopped after {self._malformed_streak} such answers"))
        if isinstance(error, JobFatalError):
            self._abort_job(JobAborted(str(error)))
        if self._abort is not None or policy.gives_up(error, item.attempts, item.unavailable):
            self.stats.retries[error.kind] -= 1  # the last failure is not a retry
            self._finish(
                FinishedRequest(
                    id=item.row.id,
                    attempts=item.row.attempts + item.attempts,
                    error=str(error),
                    error_kind=error.kind,
                ),
                failed=self._abort is None,
            )
            return
        if isinstance(error, (Unavailable, RateLimited)):
            self._queue.put_nowait(item)  # the limiter holds it back while paused
        else:
            delay = policy.delay(error, item.attempts, self._rng)
            asyncio.get_running_loop().call_later(delay, self._queue.put_nowait, item)

    def _note_unavailable(self, error: Unavailable) -> None:
        self._consecutive_unavailable += 1
        if self._consecutive_unavailable < _OUTAGE_AFTER:
            return
        now = time.monotonic()
        if self._outage_since is None:
            self._outage_since = now
            log.warning("server unreachable (%s): pausing the job until it answers", error)
        down_for = now - self._outage_since
        if down_for > self.config.outage_timeout:
            self._abort_job(
                JobAborted(
                    f"server unreachable for {down_for:.0f}s ({error}): "
                    "rerun the same command to resume when it is back"
                )
            )
            return
        backoff = min(30.0, 0.25 * 2 ** min(self._consecutive_unavailable - _OUTAGE_AFTER, 7))
        self.limiter.pause(backoff, "server unreachable")

    def _abort_job(self, error: PromptmillError) -> None:
        if self._abort is None:
            self._abort = error
            self.stop()

    # -- recording -----------------------------------------------------------------------

    def _finish(self, finished: FinishedRequest, *, failed: bool = True) -> None:
        """Queue a request's final outcome for the next commit.

        A request cut short by a job abort is not recorded: it stays pending for the rerun.
        """
        if finished.error is not None:
            if not failed:
                self._settle()
                return
            self.stats.failed += 1
        self._finished.append(finished)
        self._settle()
        if len(self._finished) >= self.config.flush_size:
            self.flush()

    def flush(self) -> None:
        """Commit every finished request not yet committed."""
        if self._finished:
            batch, self._finished = self._finished, []
            try:
                self.store.record(batch)
            except PromptmillError as exc:
                self._abort_job(exc)

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.config.flush_interval)
            self.flush()
            self.stats.limiter_state = self.limiter.state
