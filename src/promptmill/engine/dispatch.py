"""The dispatch loop: pull pending requests from the store, send them under the limits, record.

A fixed set of worker coroutines (one per request in flight) each loops: take the next
request, wait for the rate limiter, send it, note the outcome. Workers take requests from a
small in-memory queue that they refill themselves from the store, a chunk at a time, so
memory stays flat whatever the job's size and no task switch is spent per request on
feeding. Retries go back into that queue (after their backoff).

Exactly once: finished requests are recorded in small group commits (every ``flush_size``
results or ``flush_interval`` seconds), each request's result written once, in one
transaction, only if the request is still pending. A kill loses at most what is in flight
or not yet committed; those requests are still pending in the store and are sent again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from promptmill.engine.budget import Budget, Spend
from promptmill.engine.config import EngineConfig as EngineConfig
from promptmill.engine.config import EngineStats as EngineStats
from promptmill.engine.hooks import DispatchHooks, Looking
from promptmill.engine.limiter import LimiterEvent, RateLimiter
from promptmill.errors import (
    GenerationError,
    JobFatalError,
    MalformedResponse,
    PromptmillError,
    RateLimited,
    RequestTimeout,
    RetryableError,
    Unavailable,
)
from promptmill.fastjson import dumps_text, json_text
from promptmill.generators.base import (
    GenerationRequest,
    GenerationResult,
    Generator,
    RateLimitInfo,
    Response,
)
from promptmill.store import (
    AttemptRecord,
    EventRecord,
    FinishedRequest,
    JobStore,
    RequestRow,
    outcome_code,
)

if TYPE_CHECKING:
    from promptmill.jobcache import CachedSamples, CacheKey, JobCache
    from promptmill.structured import OutputValidator

log = logging.getLogger("promptmill")

# Consecutive connection failures after which the server counts as down and the job pauses.
_OUTAGE_AFTER = 3
# Consecutive malformed bodies, before any success, that mean "this is not an OpenAI server".
_NOT_OPENAI_AFTER = 5
_T = TypeVar("_T")


@dataclass(slots=True)
class _Item:
    row: RequestRow
    request: GenerationRequest
    reserved: int  # tokens booked with the limiter: the prompt estimate + max_tokens x n
    attempts: int = 0  # counted attempts this run
    unavailable: int = 0  # connection failures this run (not counted as attempts)
    sent_at: float = 0.0  # when the limiter let its last attempt go
    # Its key in the response cache (a miss), or the samples found there (None: no cache).
    hit: CacheKey | CachedSamples | None = None
    share: Spend | None = None  # spend reserved against the cap for the attempt in flight
    parsed: list[Any] | None = None  # each response's JSON value (structured output)


class JobAborted(PromptmillError):
    """The job stopped early for a reason every request shares; rerun to resume."""


class Dispatcher(DispatchHooks):
    """Sends a store's pending requests through a generator until none is left.

    Its optional stages (response cache, spending cap, output validation) are the methods
    of its base class, in ``engine.hooks``.
    """

    def __init__(
        self,
        store: JobStore,
        generator: Generator,
        build_request: Callable[[RequestRow], GenerationRequest],
        config: EngineConfig,
        stats: EngineStats | None = None,
        *,
        cache: JobCache | None = None,
        budget: Budget | None = None,
        validator: OutputValidator | None = None,
    ) -> None:
        self.store = store
        self.generator = generator
        self.build_request = build_request
        self.config = config
        self.stats = stats or EngineStats()
        # Remote APIs start with one request until the first answer tells their limits.
        self.limiter = RateLimiter(config.rpm, config.tpm, margin=config.margin,
                                   slow_start=config.slow_start and not generator.is_local)
        self._rng = random.Random(config.seed)
        self._workers = (max(1, generator.concurrent_batches) if generator.is_local
                         else max(1, config.max_concurrency))
        self._batch = max(1, generator.max_batch)
        # Requests read from the store ahead of need: enough for every worker to find one,
        # and a whole batch for an engine that takes more than 512 at once.
        self._refill_size = min(max(512, self._batch), self._workers * self._batch)
        self._ready: deque[_Item] = deque()  # to send now: retries and requests read ahead
        self._rows: Iterator[RequestRow] | None = None  # pending requests; None: all read
        self._outstanding = 0  # read from the store, not yet finished (ready, in flight, backoff)
        self._looking: Looking | None = None  # the next chunk, being looked up in the cache
        self._idle: deque[asyncio.Future[None]] = deque()  # workers waiting for a request
        self._timers: set[asyncio.TimerHandle] = set()  # retries waiting out their backoff
        self._tasks: list[asyncio.Task[None]] = []
        self._waiting: set[asyncio.Task[object]] = set()  # workers waiting for the limiter
        # Finished, not yet committed. Commits run on the loop's thread: a writer thread was
        # tried and lost, SQLite's per-row GIL handoffs cost more than the commit it moved.
        self._finished: list[FinishedRequest] = []
        # Attempts since the last commit, (request id, sent, answered, outcome code) on the
        # monotonic clock, written with the next commit.
        self._attempts: list[AttemptRecord] = []
        # Unix time less the monotonic clock the limiter stamps sends with.
        self._wall_offset = time.time() - time.monotonic()
        self._stopping = False  # a stop was asked: send nothing new
        self._abort: PromptmillError | None = None
        self._consecutive_unavailable = 0
        self._outage_since: float | None = None
        self._probe = asyncio.Lock()
        self._any_success = False
        self._malformed_streak = 0
        self._cache = cache
        self._budget = budget
        self._validator = validator
        if budget is not None and budget.prices is not None:
            self.stats.spent = budget.spent.cost

    def stop(self) -> None:
        """Ask for a graceful stop: nothing new is sent; requests in flight finish."""
        self._stopping = True
        for task in self._waiting:
            task.cancel()  # waiting for the limiter: nothing in flight; those sending finish
        self._wake_all()  # idle workers see the stop and end

    @property
    def answered(self) -> bool:
        """Whether an answer (not an error) came back from the generator this run."""
        return self._any_success

    async def run(self) -> None:
        """Dispatch until every pending request has finished, or a stop or abort."""
        self._rows = iter(self.store.iter_pending())
        self._note_run_start()
        self._tasks = []
        flusher = asyncio.create_task(self._flush_periodically())
        try:
            # One worker a turn of the loop: each sends its first request as the one before
            # it has, between the answers and connections of those. All started in one turn,
            # a job's whole concurrency went out as one burst, a server took it in one burst,
            # and its answers came back as one: a wave the job then kept (200 ms, 500 in
            # flight: the first answers took 0.48 s, 5,000 requests 2.9 s against 2.5 s).
            for _ in range(self._workers):
                if self._stopping:
                    break
                self._tasks.append(asyncio.create_task(self._work()))
                await asyncio.sleep(0)
            pending: set[asyncio.Task[None]] = set(self._tasks)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
                for task in done:
                    if not task.cancelled() and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]  # a bug: fail loudly
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)
            for timer in self._timers:
                timer.cancel()
            self._timers.clear()
            self._note_run_end()
            self.flush()
            self.stats.finished_at = time.monotonic()
        if self._abort is not None:
            raise self._abort

    # -- taking work ---------------------------------------------------------------------

    def _take(self) -> list[_Item]:
        """Up to one batch of requests to send now: retries first, then new ones from the store."""
        ready = self._ready
        if len(ready) < self._batch and self._unread():
            self._read_ahead()
            while not ready and self._unread():  # a chunk all answered from the cache
                self._read_ahead()
        if self._batch == 1:
            return [ready.popleft()] if ready else []
        batch: list[_Item] = []
        while ready and len(batch) < self._batch:
            batch.append(ready.popleft())
        return batch

    def _unread(self) -> bool:
        """Whether requests are left to read from the store (or a chunk read is being
        looked up)."""
        return self._rows is not None or self._looking is not None

    def _read_ahead(self) -> None:
        """Add the next chunk of the store's pending requests to those ready to send.

        With the response cache on, the chunk after it is read too and its lookup started
        on the cache's thread: the chunk taken now was looked up while the one before went
        out, so the loop's thread does not wait on the cache file's reads.
        """
        if self._cache is None:
            self._ready.extend(self._read_chunk())
            return
        looking = self._looking or self._look_up(self._read_chunk())
        self._looking = self._look_up(self._read_chunk()) if self._rows is not None else None
        self._ready.extend(self._from_cache(looking))

    def _read_chunk(self) -> list[_Item]:
        rows = self._rows
        assert rows is not None
        build = self.build_request
        items = []
        for _ in range(self._refill_size):
            row = next(rows, None)
            if row is None:
                self._rows = None
                break
            items.append(_Item(row, build(row), row.est_tokens))
        self._outstanding += len(items)
        return items

    def _requeue(self, item: _Item) -> None:
        self._ready.append(item)
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    def _requeue_later(self, item: _Item, delay: float) -> None:
        def due() -> None:
            self._timers.discard(handle)
            self._requeue(item)

        handle = asyncio.get_running_loop().call_later(delay, due)
        self._timers.add(handle)

    def _wake_all(self) -> None:
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _settle(self) -> None:
        self._outstanding -= 1
        if self._outstanding == 0 and self._rows is None:
            self._wake_all()  # nothing left: idle workers end

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            batch = self._take()
            if batch:
                await self._send(batch)
            elif self._rows is None and self._outstanding == 0:
                return
            else:  # requests are waiting out a backoff: wait for one to come back
                waiter = loop.create_future()
                self._idle.append(waiter)
                await waiter

    # -- sending -------------------------------------------------------------------------

    async def _send(self, batch: list[_Item]) -> None:
        if self._budget is not None:
            batch = await self._reserve(batch)
            if not batch:
                return
        limiter = self.limiter
        count = len(batch)
        reserved = batch[0].reserved if count == 1 else sum(i.reserved for i in batch)
        # A request naming its own model (a request file's line) has that model's limits;
        # a local engine's batch is of one model (the engine's: None).
        model = batch[0].request.model
        sent_at = limiter.try_book(reserved, model)
        if sent_at is None:
            try:
                sent_at = await self._waiting_for(limiter.acquire(reserved, model))
            except BaseException:
                self._release_spend(batch)
                raise
        for item in batch:
            item.sent_at = sent_at
        probing = False
        if self._outage_since is not None:
            try:
                await self._waiting_for(self._probe.acquire())
            except BaseException:
                limiter.release(reserved, None, accepted=False, sent_at=sent_at, model=model)
                self._release_spend(batch)
                raise
            probing = True
            if self._outage_since is None:  # another probe got through while we waited
                self._probe.release()
                probing = False
        stats = self.stats
        stats.sent += count
        stats.in_flight += count
        if self._batch > 1:
            await self._stream(batch, reserved, sent_at, probing)
            return
        # One request per call from here on (max_batch 1): the hot path of remote APIs.
        item = batch[0]
        try:
            results = await self.generator.generate([item.request])
        except GenerationError as error:
            self._call_failed(batch, error, reserved, sent_at, model)
            return
        except BaseException:
            limiter.release(reserved, None, accepted=False, sent_at=sent_at, model=model)
            self._release_spend(batch)
            raise
        finally:
            stats.in_flight -= count
            if probing:
                self._probe.release()
        result = results[0]
        limiter.release(reserved, _charge(item, result), sent_at=sent_at, model=model)
        self._note(item, result)

    def _note(self, item: _Item, result: GenerationResult) -> None:
        """Take one request's result: what its headers said, then done or failed."""
        if result.rate_limit is not None:
            self.limiter.observe(result.rate_limit, item.request.model)
        if item.share is not None:
            self._settle_spend(item, result.usage, result.error)
        if result.error is not None:
            self._failed(item, result.error)
        elif len(result.responses) < item.request.n:
            # k means k: a short answer is never recorded as done (it is asked again).
            self._failed(item, MalformedResponse(
                f"{self.generator.provider}! answered {len(result.responses)} of the "
                f"{item.request.n} samples asked"))
        elif self._validator is None or self._valid(item, result):
            self._done(item, result)

    async def _stream(self, batch: list[_Item], reserved: int, sent_at: float,
                      probing: bool) -> None:
        """Send a batch to an engine that finishes requests one by one; note each as it comes.

        Each result is queued for the next commit as soon as the engine yields it, so a kill
        loses only the requests still running, not the whole batch.
        """
        limiter, stats = self.limiter, self.stats
        waiting = {item.request.request_id: item for item in batch}
        charged: int | None = 0
        try:
            async for result in self.generator.stream([item.request for item in batch]):
                item = waiting.pop(result.request_id)  # KeyError: a backend bug, fail loudly
                stats.in_flight -= 1
                charge = _charge(item, result)
                charged = None if charge is None or charged is None else charged + charge
                self._note(item, result)
        except GenerationError as error:
            stats.in_flight -= len(waiting)
            self._call_failed(list(waiting.values()), error, reserved, sent_at)
            return
        except BaseException:
            stats.in_flight -= len(waiting)
            limiter.release(reserved, None, accepted=False, sent_at=sent_at)
            self._release_spend(list(waiting.values()))
            raise
        finally:
            if probing:
                self._probe.release()
        if waiting:
            stats.in_flight -= len(waiting)
            lost = MalformedResponse(f"{self.generator.provider}! ended a batch without "
                                     "answering this request")
            for item in waiting.values():
                if item.share is not None:
                    self._settle_spend(item, None, lost)
                self._failed(item, lost)
        limiter.release(reserved, charged, sent_at=sent_at)

    def _call_failed(self, items: list[_Item], error: GenerationError, reserved: int,
                     sent_at: float, model: str | None = None) -> None:
        """A whole generate()/stream() call failed: the error applies to each of ``items``
        (requests to ``model``, when not the job's own)."""
        limiter = self.limiter
        info = error.rate_limit if isinstance(error, RetryableError) else None
        limiter.release(reserved, None,
                        accepted=not isinstance(error, (RateLimited, Unavailable)),
                        refused=isinstance(error, RateLimited), sent_at=sent_at, model=model)
        if isinstance(info, RateLimitInfo):
            limiter.observe(info, model)
        for item in items:
            if item.share is not None:
                self._settle_spend(item, None, error)
            self._failed(item, error)

    async def _waiting_for(self, wait: Awaitable[_T]) -> _T:
        """Await ``wait`` as a worker that ``stop`` may cancel: it has nothing in flight."""
        task = asyncio.current_task()
        assert task is not None
        self._waiting.add(task)
        try:
            return await wait
        finally:
            self._waiting.discard(task)

    def _done(self, item: _Item, result: GenerationResult) -> None:
        self._any_success = True
        self._malformed_streak = 0
        self._consecutive_unavailable = 0
        if self._outage_since is not None:
            self._reachable()
        usage = result.usage
        # Plain answers (strings and None) through orjson; floats (logprobs, which may be
        # -inf) and parsed output through json, which writes them as it always has.
        encode = dumps_text
        responses: list[dict[str, Any]] = []
        for r in result.responses:
            if r.logprobs is None and r.prompt_logprobs is None:
                responses.append({"text": r.text, "finish_reason": r.finish_reason})
            else:
                responses.append(_with_logprobs(r))
                encode = json_text
        if item.parsed is not None:
            encode = json_text
            for stored, value in zip(responses, item.parsed, strict=True):
                stored["json"] = value
        row = item.row
        stats = self.stats
        stats.done += 1
        self._attempts.append((row.id, item.sent_at, time.monotonic(), 0))
        hit = item.hit
        entry = checksum = None  # the response cache entry the store records with it
        if hit is None:
            encoded = encode(responses)
        else:
            cache = self._cache
            assert cache is not None
            if isinstance(hit, tuple):  # a miss: the answers go to the cache as they are
                encoded, entry, checksum = cache.keep(hit, row.sample_group, responses, encode)
            else:
                encoded, taken = cache.merge(hit, responses, encode)
                stats.cached += taken
        if usage is None:
            finished = FinishedRequest(row.id, row.attempts + item.attempts + 1, encoded,
                                       None, None, None, None, None, entry, checksum)
        else:
            finished = FinishedRequest(row.id, row.attempts + item.attempts + 1, encoded,
                                       usage.prompt_tokens, usage.completion_tokens, None,
                                       None, None, entry, checksum)
            stats.prompt_tokens += usage.prompt_tokens
            stats.completion_tokens += usage.completion_tokens
        if result.endpoint is not None:  # a fleet: which endpoint answered
            finished = finished._replace(endpoint=result.endpoint)
        self._finish(finished)

    def _failed(self, item: _Item, error: GenerationError) -> None:
        policy = self.config.retry
        self._attempts.append((item.row.id, item.sent_at, time.monotonic(),
                               outcome_code(error.kind, isinstance(error, RetryableError))))
        if policy.counts_as_attempt(error):
            item.attempts += 1
        self.stats.retries[error.kind] += 1
        if isinstance(error, Unavailable):
            item.unavailable += 1
            self._note_unavailable(error)
        elif isinstance(error, RequestTimeout):
            self._consecutive_unavailable = 0  # a silent server: keep probing one at a time
        else:
            self._reachable()  # it answered (a 429, a 500): the outage is over
        if isinstance(error, RateLimited):
            info = error.rate_limit
            reported = isinstance(info, RateLimitInfo) and (
                info.remaining_requests is not None or info.remaining_tokens is not None)
            self.limiter.rate_limited(policy.delay(error, item.attempts, self._rng),
                                      item.sent_at, reported=reported, model=item.request.model)
        if isinstance(error, MalformedResponse) and not self._any_success:
            self._malformed_streak += 1
            if self._malformed_streak >= _NOT_OPENAI_AFTER:
                self._abort_job(JobAborted(
                    f"{error}; stopped after {self._malformed_streak} such answers"))
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
            self._requeue(item)  # the limiter holds it back while paused
        else:
            self._requeue_later(item, policy.delay(error, item.attempts, self._rng))

    def _reachable(self) -> None:
        """The server answered: any outage is over and every slot sends again."""
        self._consecutive_unavailable = 0
        if self._outage_since is not None:
            log.warning("server reachable again after %.0fs", time.monotonic() - self._outage_since)
            self._outage_since = None

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
        # Probe again after a quarter of the time it has been down (0.25 s to 30 s). Not
        # 2 ** consecutive failures: every request in flight fails at once when a server goes
        # down, so that count jumped to the 30 s cap and a 3 s outage paused the job for 30 s
        # (robustness suite, fault soak).
        backoff = min(30.0, max(0.25, down_for / 4))
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
        """Commit every finished request not yet committed, with the attempts and events
        (and the spend it cost)."""
        meta = self._spend_to_record()
        if self._finished or self._attempts or self.limiter.events or meta:
            batch, self._finished = self._finished, []
            attempts, self._attempts = self._attempts, []
            events: list[EventRecord] = [(e.at, e.kind, e.value, e.detail)
                                         for e in self.limiter.events]
            self.limiter.events.clear()  # in place: the limiter's parts hold this list
            if self._cache is not None:  # where the answers the cache copies from here begin
                span = self._cache.store_meta(batch)
                if span is not None:
                    meta = span if meta is None else meta | span
            try:
                self.store.record(batch, attempts, events, self._wall_offset, meta=meta)
            except PromptmillError as exc:
                self._abort_job(exc)
        if self._cache is not None:
            self._cache.flush()

    def _note_run_start(self) -> None:
        """Events for the report: this run began, and the limits the user stated."""
        now, events = time.monotonic(), self.limiter.events
        events.append(LimiterEvent(now, "run_start", self.stats.total))
        if self.config.rpm:
            events.append(LimiterEvent(now, "stated_rpm", self.config.rpm))
        if self.config.tpm:
            events.append(LimiterEvent(now, "stated_tpm", self.config.tpm))

    def _note_run_end(self) -> None:
        how = "aborted: " + str(self._abort) if self._abort else (
            "stopped" if self._stopping else "finished")
        self.limiter.events.append(LimiterEvent(time.monotonic(), "run_end",
                                                self.stats.finished, how))

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.config.flush_interval)
            self.flush()
            self.stats.limiter_state = self.limiter.state


def _with_logprobs(response: Response) -> dict[str, object]:
    """A response's stored form with the logprobs it carries (output, prompt)."""
    stored: dict[str, object] = {"text": response.text, "finish_reason": response.finish_reason}
    if response.logprobs is not None:
        stored["logprobs"] = response.logprobs
    if response.prompt_logprobs is not None:
        stored["prompt_logprobs"] = response.prompt_logprobs
    return stored


def _charge(item: _Item, result: GenerationResult) -> int | None:
    """What the provider counts against its token limit for one answered request.

    The prompt and the max_tokens it was told (the whole reservation, as OpenAI counts it),
    else what it generated; None when it reported no usage.
    """
    usage = result.usage
    if result.error is not None or usage is None:
        return None
    max_tokens = item.request.params.max_tokens
    return usage.prompt_tokens + (max_tokens * item.request.n if max_tokens
                                  else usage.completion_tokens)
