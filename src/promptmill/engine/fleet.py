"""One job over several endpoints of the same model: a fleet.

``-m`` given several times (or ``--fleet FILE``) makes a :class:`FleetGenerator`: to the
dispatcher one generator, inside it one :class:`Endpoint` per identifier, each with its own
concurrency, its own rate limiter (``rpm=``/``tpm=`` on its identifier, or learned from its
headers and 429s) and its own outage state. Requests wait in one queue; a pacer hands each to
whichever endpoint has room first, round robin among those that do.

What an endpoint's trouble costs: a 429 goes into that endpoint's limiter and the request is
sent again at once to whichever endpoint has room (no attempt spent, the job not paused); a
connection failure benches the endpoint (probed again after a quarter of the time it has
been down, 0.25 s to 30 s, one request at a time) and the request goes elsewhere; only when
every endpoint is down does the dispatcher see the outage and pause the job. Other failures
(500s, timeouts, bad bodies) go back to the dispatcher, whose retry may land anywhere; an
endpoint failing ``_FAILING_AFTER`` times in a row is benched the same way, so it hands its
requests back instead of burning their attempts. A key refused (401/403) disables that
endpoint for the job; the job stops only when every endpoint is disabled.

Exactly once holds as for one endpoint: the dispatcher records each request once, and a
request is in flight on one endpoint at a time. Each answer records the endpoint that gave
it (``endpoint``: its identifier, secrets redacted).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from promptmill.engine.limiter import RateLimiter
from promptmill.errors import (
    GenerationError,
    IdentifierError,
    InputError,
    JobFatalError,
    RateLimited,
    Unavailable,
    UsageError,
)
from promptmill.generators.base import GenerationRequest, GenerationResult, Generator
from promptmill.params import GenerateParams

# Identifier options that configure an endpoint of a fleet, not the backend.
ENDPOINT_OPTIONS = ("rpm", "tpm", "max_concurrency")
# Backend options that say where an endpoint is and how it is reached, not what it answers:
# endpoints of one fleet may differ in these, and they are not part of the job.
PLACE_OPTIONS = frozenset({"api_base", "api_key_env", "timeout"})
# Consecutive failures (not 429s, not connection failures) that bench an endpoint.
_FAILING_AFTER = 5
# An endpoint benched for connection failures is probed again after a quarter of the time it
# has been down, within these bounds (seconds).
_PROBE_MIN, _PROBE_MAX = 0.25, 30.0


class Endpoint:
    """One endpoint of a fleet: its generator, limits, concurrency and health."""

    __slots__ = ("generator", "label", "limits", "limiter", "concurrency", "in_flight",
                 "answered", "refused", "failures", "benched_until", "down_since", "probing",
                 "disabled", "why", "started")

    def __init__(self, generator: Generator, *, rpm: float | None = None,
                 tpm: float | None = None, concurrency: int = 64) -> None:
        self.generator = generator
        self.label = generator.to_identifier()  # secrets redacted (identifiers never hold one)
        self.limits = (rpm, tpm)  # as given on its identifier
        # This endpoint's limits, stated or learned; one request until its first answer.
        self.limiter = RateLimiter(rpm, tpm, slow_start=True)
        self.concurrency = concurrency  # requests in flight at most
        self.in_flight = 0
        self.answered = 0  # requests it answered
        self.refused = 0  # 429s it sent
        self.failures = 0  # failures in a row (not 429s, not connection failures)
        self.benched_until = 0.0  # not picked before this (monotonic time)
        self.down_since: float | None = None  # first connection failure of the outage
        self.probing = False  # back from the bench: one request at a time until one passes
        self.disabled = False  # its key was refused: out for the rest of the job
        self.why = ""  # why it is benched or disabled, for the display
        self.started = time.monotonic()

    def room(self, now: float) -> bool:
        """Whether it may take one more request now (limits aside)."""
        if self.disabled or self.benched_until > now:
            return False
        return self.in_flight < (1 if self.probing else self.concurrency)

    def bench(self, seconds: float, why: str) -> None:
        """Take it out of rotation for ``seconds``; then one probe request at a time."""
        self.benched_until = max(self.benched_until, time.monotonic() + seconds)
        self.probing = True
        self.why = why

    def state(self, now: float) -> str:
        """One word or phrase for the display."""
        if self.disabled:
            return f"disabled ({self.why})"
        if self.benched_until > now:
            return f"benched {self.benched_until - now:.1f}s ({self.why})"
        if self.probing:
            return "probing"
        return self.limiter.state

    def rate(self, now: float) -> float:
        """Requests answered per second since the job started."""
        return self.answered / max(1e-3, now - self.started)


class FleetGenerator(Generator):
    """Several endpoints of one model, presented to the dispatcher as one generator."""

    provider = "fleet"

    def __init__(self, endpoints: Sequence[Endpoint]) -> None:
        if len(endpoints) < 1:
            raise UsageError("a fleet needs at least one endpoint")
        first = endpoints[0].generator
        _check_same_model(endpoints)
        shared = {k: v for k, v in first.config.items() if k not in PLACE_OPTIONS}
        # Not Generator.__init__: the config is the endpoints', already checked by them.
        self.model = first.model
        self.params = first.params
        self.config = shared
        # The job's price (dry run, spending cap): the first endpoint's price options, if any.
        self.price_options = dict(first.price_options)
        self.limit_options: dict[str, float] = {}  # each endpoint has its own
        self._api_key = None
        self._key_given = False
        self.provider = first.provider  # type: ignore[misc]  # the job's model is theirs
        self.endpoints = list(endpoints)
        gens = [e.generator for e in self.endpoints]
        self.supports_n = all(g.supports_n for g in gens)  # type: ignore[misc]
        self.supports_logprobs = all(g.supports_logprobs for g in gens)  # type: ignore[misc]
        self.supported_params = frozenset.intersection(  # type: ignore[misc]
            *(g.supported_params for g in gens))
        self.config_fields = frozenset.intersection(  # type: ignore[misc]
            *(g.config_fields for g in gens))
        self._queue: deque[tuple[asyncio.Future[Endpoint], int]] = deque()  # waiting sends
        self._changed: asyncio.Event | None = None  # room may have appeared: the pacer looks
        self._pacer: asyncio.Task[None] | None = None
        self._next = 0  # where the round robin starts looking

    # -- what the job sees --------------------------------------------------------------

    def with_params(self, params: GenerateParams) -> Generator:
        """A fleet of the same endpoints, each with ``params`` merged over its own."""
        return FleetGenerator([_endpoint_like(e, e.generator.with_params(params))
                               for e in self.endpoints])

    def with_config(self, **config: Any) -> Generator:
        """A fleet of the same endpoints, each with backend options overridden."""
        return FleetGenerator([_endpoint_like(e, e.generator.with_config(**config))
                               for e in self.endpoints])

    def key_env_name(self) -> str | None:
        """Each endpoint has its own key: none for the fleet."""
        return None

    def check_ready(self) -> None:
        """Every endpoint must be ready (its key set, its server up) before the job starts."""
        for endpoint in self.endpoints:
            endpoint.generator.check_ready()

    def check_params(self, params: GenerateParams) -> None:
        """Every endpoint must take the job's params."""
        for endpoint in self.endpoints:
            endpoint.generator.check_params(params)

    def count_prompt_tokens(self, request: GenerationRequest) -> int:
        """As the first endpoint counts them (all serve one model)."""
        return self.endpoints[0].generator.count_prompt_tokens(request)

    def chat_format(self) -> Any:
        """The first endpoint's (all serve one model with the same options)."""
        return self.endpoints[0].generator.chat_format()

    def context_length(self) -> int | None:
        """The smallest context any endpoint states."""
        lengths = [n for e in self.endpoints if (n := e.generator.context_length()) is not None]
        return min(lengths) if lengths else None

    def concurrency(self) -> int:
        """Requests the whole fleet may have in flight: the dispatcher runs this many workers."""
        return sum(e.concurrency for e in self.endpoints)

    # -- running ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every endpoint and the pacer."""
        for endpoint in self.endpoints:
            await endpoint.generator.start()
            endpoint.started = time.monotonic()
        self._changed = asyncio.Event()
        self._pacer = asyncio.create_task(self._pace())

    async def close(self) -> None:
        """Stop the pacer and close every endpoint."""
        if self._pacer is not None:
            self._pacer.cancel()
            await asyncio.gather(self._pacer, return_exceptions=True)
            self._pacer = None
        for future, _ in self._queue:
            future.cancel()
        self._queue.clear()
        for endpoint in self.endpoints:
            await endpoint.generator.close()

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Send each request through an endpoint with room; see the module docstring."""
        return [await self._one(request) for request in requests]

    async def _one(self, request: GenerationRequest) -> GenerationResult:
        tokens = _reserve(self, request)
        while True:
            endpoint = await self._slot(tokens)
            sent_at = time.monotonic()
            limiter = endpoint.limiter
            try:
                results = await endpoint.generator.generate([request])
            except RateLimited as error:
                limiter.release(tokens, None, accepted=False, refused=True, sent_at=sent_at)
                self._refused(endpoint, error, sent_at)
                continue  # another endpoint, or this one once its pause is over
            except Unavailable as error:
                limiter.release(tokens, None, accepted=False, sent_at=sent_at)
                self._unreachable(endpoint, error)
                if all(e.disabled or e.down_since is not None for e in self.endpoints):
                    raise  # the whole fleet is down: the dispatcher pauses the job
                continue
            except GenerationError as error:
                limiter.release(tokens, None, sent_at=sent_at)
                if self._failed(endpoint, error):
                    continue  # this endpoint's own fault (its key): the others answer
                raise
            finally:
                endpoint.in_flight -= 1
                self._wake()
            result = results[0]
            self._answered(endpoint, result, tokens, sent_at)
            return result

    async def _slot(self, tokens: int) -> Endpoint:
        """Wait for the pacer to give this send an endpoint (its limiter already booked)."""
        future: asyncio.Future[Endpoint] = asyncio.get_running_loop().create_future()
        self._queue.append((future, tokens))
        self._wake()
        return await future

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()

    async def _pace(self) -> None:
        """Hand queued sends to endpoints with room, in order; sleep until room may appear."""
        changed = self._changed
        assert changed is not None
        queue = self._queue
        while True:
            while queue and queue[0][0].done():  # its worker was cancelled (a stop)
                queue.popleft()
            if not queue:
                changed.clear()
                await changed.wait()
                continue
            future, tokens = queue[0]
            endpoint, wait = self._choose(tokens)
            if endpoint is not None:
                queue.popleft()
                endpoint.limiter.book(tokens)
                endpoint.in_flight += 1
                future.set_result(endpoint)
                continue
            if all(e.disabled for e in self.endpoints):
                reasons = "; ".join(f"{e.label}: {e.why}" for e in self.endpoints)
                for waiting, _ in queue:
                    if not waiting.done():
                        waiting.set_exception(JobFatalError(
                            f"every endpoint of the fleet is disabled ({reasons})"))
                queue.clear()
                continue
            changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(changed.wait(), None if math.isinf(wait) else wait)

    def _choose(self, tokens: int) -> tuple[Endpoint | None, float]:
        """An endpoint that may send ``tokens`` now (round robin), else the shortest wait."""
        now = time.monotonic()
        endpoints = self.endpoints
        count = len(endpoints)
        wait = math.inf
        for offset in range(count):
            index = (self._next + offset) % count
            endpoint = endpoints[index]
            if not endpoint.room(now):
                if not endpoint.disabled and endpoint.benched_until > now:
                    wait = min(wait, endpoint.benched_until - now)
                continue  # full: a finished request wakes the pacer
            delay = endpoint.limiter.delay(tokens)
            if delay <= 0:
                self._next = (index + 1) % count
                return endpoint, 0.0
            wait = min(wait, delay)
        return None, wait

    # -- outcomes -----------------------------------------------------------------------

    def _answered(self, endpoint: Endpoint, result: GenerationResult, tokens: int,
                  sent_at: float) -> None:
        limiter = endpoint.limiter
        usage = result.usage
        limiter.release(tokens, None if usage is None else usage.total_tokens, sent_at=sent_at)
        if result.rate_limit is not None:
            limiter.observe(result.rate_limit)
            result.rate_limit = None  # this endpoint's: the job's own limiter must not pace by it
        result.endpoint = endpoint.label
        endpoint.answered += 1
        endpoint.failures = 0
        if endpoint.down_since is not None or endpoint.probing:
            endpoint.down_since = None
            endpoint.probing = False
            endpoint.why = ""

    def _refused(self, endpoint: Endpoint, error: RateLimited, sent_at: float) -> None:
        endpoint.refused += 1
        info = error.rate_limit
        reported = info is not None and (getattr(info, "remaining_requests", None) is not None
                                         or getattr(info, "remaining_tokens", None) is not None)
        if info is not None:
            endpoint.limiter.observe(info)  # type: ignore[arg-type]
        endpoint.limiter.rate_limited(error.retry_after or 1.0, sent_at, reported=reported)

    def _unreachable(self, endpoint: Endpoint, error: Unavailable) -> None:
        now = time.monotonic()
        if endpoint.down_since is None:
            endpoint.down_since = now
        down_for = now - endpoint.down_since
        endpoint.bench(min(_PROBE_MAX, max(_PROBE_MIN, down_for / 4)), "unreachable")

    def _failed(self, endpoint: Endpoint, error: GenerationError) -> bool:
        """Note a failure; True if the request should go to another endpoint at once."""
        if isinstance(error, JobFatalError):
            endpoint.why = str(error)[:160]
            if any(not e.disabled and e is not endpoint for e in self.endpoints):
                endpoint.disabled = True  # a refused key, a missing model: this endpoint's
                return True
            return False  # the last one: the job stops with this error
        endpoint.failures += 1
        if endpoint.failures >= _FAILING_AFTER:
            endpoint.bench(min(_PROBE_MAX, _PROBE_MIN * 2 ** (endpoint.failures
                                                                 - _FAILING_AFTER)),
                           f"{endpoint.failures} failures in a row")
        return False

    def status_lines(self) -> list[tuple[str, str]]:
        """(endpoint, its rate and state) for the progress display."""
        now = time.monotonic()
        return [(e.label, f"{e.rate(now):,.1f} req/s  {e.answered:,} answered  "
                          f"in flight {e.in_flight}  429s {e.refused}  {e.state(now)}")
                for e in self.endpoints]


def _reserve(fleet: FleetGenerator, request: GenerationRequest) -> int:
    """Tokens an endpoint's limiter books for ``request``: prompt estimate + max_tokens x n."""
    max_tokens = request.params.max_tokens or 0
    return fleet.count_prompt_tokens(request) + max_tokens * request.n


def _endpoint_like(endpoint: Endpoint, generator: Generator) -> Endpoint:
    """An endpoint with ``endpoint``'s limits and label over another generator."""
    rpm, tpm = endpoint.limits
    made = Endpoint(generator, rpm=rpm, tpm=tpm, concurrency=endpoint.concurrency)
    made.label = endpoint.label
    return made


def _check_same_model(endpoints: Sequence[Endpoint]) -> None:
    """Refuse a fleet whose endpoints would not give the same answers."""
    first = endpoints[0].generator
    want = _answer_options(first)
    for number, endpoint in enumerate(endpoints[1:], start=2):
        gen = endpoint.generator
        if gen.model != first.model:
            raise UsageError(
                f"a fleet serves one model: endpoint {number} is {gen.model!r}, endpoint 1 "
                f"{first.model!r}; run a job per model")
        got = _answer_options(gen)
        if got != want:
            names = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
            raise UsageError(
                f"a fleet's endpoints must answer alike: endpoint {number} differs from "
                f"endpoint 1 in {', '.join(names)}; give them the same options (only "
                f"{', '.join(sorted(PLACE_OPTIONS | set(ENDPOINT_OPTIONS)))} may differ)")


def _answer_options(gen: Generator) -> dict[str, Any]:
    options = {k: v for k, v in gen.config.items() if k not in PLACE_OPTIONS}
    return {**options, "params": gen.params.model_dump(exclude_none=True)}


def fleet_from_identifiers(identifiers: Iterable[str], *,
                           concurrency: int = 64) -> FleetGenerator:
    """A fleet from identifier strings; each may carry ``rpm=``, ``tpm=``, ``max_concurrency=``."""
    from promptmill.aliases import resolve_identifier
    from promptmill.generators import generator_class
    from promptmill.identifiers import Identifier

    endpoints = []
    for text in identifiers:
        ident = resolve_identifier(text)
        options = dict(ident.options)
        limits = {name: options.pop(name) for name in ENDPOINT_OPTIONS if name in options}
        for name, value in limits.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise IdentifierError(f"{ident.provider}!{ident.model}: {name}={value!r} must "
                                      "be a positive number")
        generator = generator_class(ident.provider).from_identifier(
            Identifier(ident.provider, ident.model, options, ident.api_key))
        # Limits rigging's attributes stated (max_connections=...) where none is given.
        limits = {**generator.limit_options, **limits}
        endpoint = Endpoint(generator, rpm=limits.get("rpm"), tpm=limits.get("tpm"),
                            concurrency=int(limits.get("max_concurrency", concurrency)))
        endpoint.label = Identifier(ident.provider, ident.model, {
            k: v for k, v in ident.options.items() if k in PLACE_OPTIONS
            or k in ENDPOINT_OPTIONS}).format()
        endpoints.append(endpoint)
    return FleetGenerator(endpoints)


def read_fleet_file(path: Path) -> list[str]:
    """The identifiers of a ``--fleet`` file: one a line; blank lines and ``#`` comments skipped."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"--fleet {path}: {exc.strerror}") from None
    identifiers = [line.strip() for line in lines
                   if line.strip() and not line.strip().startswith("#")]
    if not identifiers:
        raise InputError(f"--fleet {path}: no identifier in it: write one model identifier a "
                         "line (e.g. http!MODEL,api_base=http://host:8000/v1,rpm=600)")
    return identifiers


def adopt_fleet_change(stored: Any, fingerprint: dict[str, Any], generator: Generator) -> bool:
    """Whether a stored fingerprint is the same job as ``fingerprint`` with endpoints added or
    removed: equal but for where the endpoints are (``api_base``, ``api_key_env``), with a
    fleet on one side. A single endpoint moved to another server is still a change."""
    if not isinstance(stored, dict) or stored == fingerprint:
        return False
    was_fleet = "api_base" not in (stored.get("model_options") or {})
    if not (isinstance(generator, FleetGenerator) or was_fleet):
        return False

    def placeless(value: dict[str, Any]) -> dict[str, Any]:
        options = {k: v for k, v in (value.get("model_options") or {}).items()
                   if k not in PLACE_OPTIONS}
        return {**value, "model_options": options}

    return placeless(stored) == placeless(fingerprint)
