"""An OpenAI-compatible HTTP server for tests: deterministic answers, real limits, faults.

One ``TestServer`` serves ``/v1/chat/completions``, ``/v1/completions``, ``/v1/models``,
``/health`` and the Batch API's ``/v1/files`` and ``/v1/batches`` (see ``batches``) on a real
socket; it also plays Anthropic's Messages API (``/v1/messages``) and Ollama's (``/api/chat``,
``/api/generate``, ``/api/tags``), with their bodies, errors and headers (see ``dialects``).
Each completion request goes through, in order: the fixed ``latency``; validation (400 with
the dialect's error body); the rate limiter (429, see ``limits``); one fault draw (see
``faults``); the answer. A batch's lines are answered the
same way, without latency, limits or online faults (the Batch API has its own faults).
Endpoints are listed in ``TestServer._routes``, the one place to add more.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import json
import logging
import math
import secrets
import socket
import ssl
import struct
import time
from collections.abc import Callable, Collection, Coroutine, Mapping, Sequence
from types import TracebackType
from typing import Any

from aiohttp import web

from promptmill.testing.answers import (
    BadRequest,
    Choice,
    ParsedRequest,
    Responder,
    chat_body,
    completion_body,
    make_choices,
    parse_body,
    parse_chat,
    parse_completion,
)
from promptmill.testing.answers import usage as answer_usage
from promptmill.testing.batches import BatchFaults, BatchService, BatchTimings
from promptmill.testing.dialects import (
    ANTHROPIC,
    OLLAMA_CHAT,
    OLLAMA_GENERATE,
    OPENAI_CHAT,
    OPENAI_COMPLETIONS,
    Dialect,
    ollama_model_known,
    ollama_tags,
)
from promptmill.testing.faults import FaultPicker, Faults
from promptmill.testing.limits import RateLimiter, RateLimits, Refusal, format_duration
from promptmill.testing.stats import RecordedRequest, ServerStats, request_key
from promptmill.testing.structured import JsonFaults, JsonSpoiler

__all__ = ["TestServer"]

logger = logging.getLogger("promptmill.testing")


_JSON = "application/json"
_BACKLOG = 1024  # benchmarks open hundreds of connections at once
_SHUTDOWN_GRACE = 1.0  # seconds in-flight requests get to finish when the server stops


def _error_body(message: str, kind: str, param: str | None = None,
                code: str | None = None) -> bytes:
    return json.dumps(
        {"error": {"message": message, "type": kind, "param": param, "code": code}}).encode()


class TestServer:
    """An OpenAI-compatible test server on ``host:port`` (port 0: a free one); async with it.

    ``url`` is the base URL clients use, ending in ``/v1``. ``stats`` counts what it saw.
    ``set_outage`` and ``schedule_outage`` may be called from any thread. With
    ``ssl_context`` (a server context: its certificate and key) it serves HTTPS.
    """

    __test__ = False  # its name starts with "Test": keep pytest from collecting it

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        models: Sequence[str] = ("test-model",),
        latency: float = 0.0,
        limits: RateLimits | None = None,
        model_limits: Mapping[str, RateLimits] | None = None,
        faults: Faults | None = None,
        responder: Responder | None = None,
        send_limit_headers: bool = True,
        batch_timings: BatchTimings | None = None,
        batch_faults: BatchFaults | None = None,
        batch_max_requests: int = 50_000,
        batch_max_bytes: int = 200 * 1024 * 1024,
        json_faults: JsonFaults | None = None,
        ignores: Collection[str] = (),
        strict_models: bool = False,
        context_tokens: int | None = None,
        record_requests: bool = False,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if latency < 0:
            raise ValueError(f"latency must be >= 0 seconds, got {latency}")
        self.host = host
        self.ssl_context = ssl_context  # set: it serves HTTPS with it
        self.port = port  # the real port once started, kept across outages
        self.models = tuple(models)
        self.latency = latency
        self.limits = limits
        # Limits of their own for these models (as OpenAI limits each model apart); other
        # models share ``limits``.
        self.model_limits = dict(model_limits or {})
        self.faults = faults if faults is not None else Faults()
        self.responder = responder
        self.send_limit_headers = send_limit_headers
        self.batch_timings = batch_timings or BatchTimings()
        self.batch_faults = batch_faults or BatchFaults()
        self.batch_max_requests = batch_max_requests
        self.batch_max_bytes = batch_max_bytes
        # The Batch API's files and batches, made when the server starts.
        self.batch_service: BatchService | None = None
        self.stats = ServerStats()
        # Every request as received (but the models listing), in order, where
        # record_requests is set (else empty).
        self.requests: list[RecordedRequest] = []
        self.record_requests = record_requests
        # Structured answers (response_format): JSON matching the request's schema, some
        # spoiled on purpose; ``json.spoiled`` counts those by kind.
        self.json = JsonSpoiler(json_faults or JsonFaults())
        # Body fields dropped unread, as servers that silently ignore a parameter do
        # (llama-cpp-python's server: n). "logprobs" drops top_logprobs with it.
        self.ignores = frozenset(ignores) | (
            {"top_logprobs"} if "logprobs" in ignores else frozenset())
        # Refuse model names not in ``models`` with OpenAI's 404 (vLLM does the same); by
        # default any name is answered, as llama-cpp-python's server does.
        self.strict_models = strict_models
        # The model's context window: a longer prompt (plus max_tokens) gets OpenAI's 400.
        self.context_tokens = context_tokens
        self._outage = False  # requests are refused and nothing listens
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop it runs on, once started
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None  # None during an outage
        self._limiter: RateLimiter | None = None
        self._model_limiters: dict[str, tuple[RateLimits, RateLimiter]] = {}
        self._picker: FaultPicker | None = None
        self._closing: asyncio.Event | None = None  # set on close: wakes hanging requests
        self._tasks: set[asyncio.Task[None]] = set()  # scheduled outages
        self._relisten: asyncio.Task[None] | None = None  # listening again after an outage
        self._ids = itertools.count(1)
        self._id_prefix = secrets.token_hex(4)  # response ids differ between servers
        self._started = int(time.time())

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL for clients, e.g. ``http://127.0.0.1:8000/v1`` (``https`` where it
        serves TLS)."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        if ":" in host:
            host = f"[{host}]"
        scheme = "http" if self.ssl_context is None else "https"
        return f"{scheme}://{host}:{self.port}/v1"

    @property
    def root(self) -> str:
        """The server's address without ``/v1``: Ollama's base URL, ``http://127.0.0.1:8000``."""
        return self.url.removesuffix("/v1")

    @property
    def outage(self) -> bool:
        """Whether an outage is on: nothing listens, open connections are closed."""
        return self._outage

    async def start(self) -> None:
        """Bind the port and start serving on the running loop."""
        if self._loop is not None:
            raise RuntimeError("this TestServer was already started")
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._closing = asyncio.Event()
        limits = self.limits
        if limits is not None and (limits.requests is not None or limits.tokens is not None):
            self._limiter = RateLimiter(limits, loop.time())
        self._model_limiters = {model: (own, RateLimiter(own, loop.time()))
                                for model, own in self.model_limits.items()}
        if self.faults.enabled:
            self._picker = FaultPicker(self.faults)
        self.batch_service = BatchService(
            self.answer_line, timings=self.batch_timings, faults=self.batch_faults,
            max_requests=self.batch_max_requests, max_bytes=self.batch_max_bytes)
        self.batch_service.received = self._count_received
        app = web.Application(client_max_size=self.batch_max_bytes + (1 << 20),
                              middlewares=[self._record] if self.record_requests else [])
        app.add_routes(self._routes())
        # handler_cancellation: a client that gives up on a hanging request frees its task.
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True,
                                     shutdown_timeout=_SHUTDOWN_GRACE)
        await self._runner.setup()
        sock = self._bind()
        self.port = sock.getsockname()[1]
        await self._listen(sock)

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method == "GET" and request.path.endswith("/models"):
            # The listing a client asks before its first request (http!'s model check) is
            # not a generation request: left out, so tests see what was generated.
            return await handler(request)  # type: ignore[no-any-return]
        raw = await request.read()  # aiohttp keeps it: the handler reads it again
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        self.requests.append(RecordedRequest(request.method, request.path,
                                             dict(request.headers), body))
        response: web.StreamResponse = await handler(request)
        return response

    async def close(self) -> None:
        """Stop serving: wake hanging requests, close every connection, free the port."""
        if self._runner is None or self._closing is None:
            return
        self._closing.set()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._relisten is not None:
            await self._relisten  # not cancelled: it owns a bound socket it must close
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        await self._runner.cleanup()
        self._runner = None
        if self.batch_service is not None:
            await self.batch_service.close()
        if listener is not None:
            await listener.wait_closed()

    async def __aenter__(self) -> TestServer:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    def _bind(self) -> socket.socket:
        # Bound and listening before the loop serves it, so that a client connecting right
        # after ``set_outage(False)`` waits in the backlog instead of being refused.
        family, kind, proto, _, address = socket.getaddrinfo(
            self.host or None, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(_BACKLOG)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    async def _listen(self, sock: socket.socket) -> None:
        assert self._loop is not None and self._runner is not None
        factory = self._runner.server
        assert factory is not None
        try:
            listener = await self._loop.create_server(factory, sock=sock, backlog=_BACKLOG,
                                                     ssl=self.ssl_context)
        except BaseException:
            sock.close()
            raise
        if self._outage or self._closing is None or self._closing.is_set():
            listener.close()  # an outage began (or close) while this was starting
        else:
            self._listener = listener

    # -- outages --------------------------------------------------------------------------

    def set_outage(self, on: bool) -> None:
        """Start (connections refused, open ones closed) or end an outage; any thread."""
        self._in_loop(lambda: self._apply_outage(on))

    def schedule_outage(self, after: float, duration: float) -> None:
        """An outage that starts ``after`` seconds from now and lasts ``duration``; any thread."""

        async def outage() -> None:
            await asyncio.sleep(after)
            self._apply_outage(True)
            await asyncio.sleep(duration)
            self._apply_outage(False)

        self._in_loop(lambda: self._spawn(outage()))

    def _apply_outage(self, on: bool) -> None:
        if on == self._outage or self._runner is None:
            return
        self._outage = on
        if on:
            listener, self._listener = self._listener, None
            if listener is not None:
                listener.close()
            factory = self._runner.server
            for connection in factory.connections if factory is not None else ():
                connection.force_close()
        elif self._relisten is None or self._relisten.done():
            # (A re-listen still under way keeps the port bound, sees the outage is over and
            # keeps its listener; binding a second socket to the port would fail.)
            assert self._loop is not None
            self._relisten = self._loop.create_task(self._listen(self._bind()))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        assert self._loop is not None
        task = self._loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _in_loop(self, action: Callable[[], None]) -> None:
        """Run ``action`` on the server's loop and wait for it, from whatever thread."""
        loop = self._loop
        if loop is None or self._runner is None:
            raise RuntimeError("the TestServer is not running")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            action()
            return
        done: concurrent.futures.Future[None] = concurrent.futures.Future()

        def run() -> None:
            try:
                action()
            except BaseException as exc:
                done.set_exception(exc)
            else:
                done.set_result(None)

        loop.call_soon_threadsafe(run)
        done.result(timeout=10)

    # -- endpoints ------------------------------------------------------------------------

    def _routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/chat/completions", self._chat),
            web.post("/v1/completions", self._completions),
            web.post("/v1/messages", self._messages),
            web.post("/api/chat", self._ollama_chat),
            web.post("/api/generate", self._ollama_generate),
            web.get("/api/tags", self._ollama_tags),
            web.get("/v1/models", self._list_models),
            web.get("/health", self._health),
            web.get("/_testing/stats", self._stats),
            *(self.batch_service.routes() if self.batch_service is not None else []),
            # OpenAI answers unknown paths and methods with its JSON error, not HTML.
            web.route("*", "/{path:.*}", self._not_found),
        ]

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, "/v1/chat/completions", OPENAI_CHAT)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, "/v1/completions", OPENAI_COMPLETIONS)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, "/v1/messages", ANTHROPIC)

    async def _ollama_chat(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, "/api/chat", OLLAMA_CHAT)

    async def _ollama_generate(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, "/api/generate", OLLAMA_GENERATE)

    async def _ollama_tags(self, request: web.Request) -> web.StreamResponse:
        self.stats.received["/api/tags"] += 1
        return self._send(200, json.dumps(ollama_tags(self.models)).encode())

    async def _list_models(self, request: web.Request) -> web.StreamResponse:
        self.stats.received["/v1/models"] += 1
        # A strict server says "system", as OpenAI does (promptmill's check before a job knows
        # such servers refuse other names); a lenient one its own name.
        owner = "system" if self.strict_models else "promptmill"
        data = [{"id": model, "object": "model", "created": self._started,
                 "owned_by": owner} for model in self.models]
        return self._send(200, json.dumps({"object": "list", "data": data}).encode())

    async def _health(self, request: web.Request) -> web.StreamResponse:
        self.stats.received["/health"] += 1
        return self._send(200, b'{"status":"ok"}')

    async def _stats(self, request: web.Request) -> web.StreamResponse:
        # Not counted: it reports the counters, for a server in another process.
        return web.Response(body=json.dumps(self.stats.to_dict()).encode(), content_type=_JSON)

    def _count_received(self, route: str) -> None:
        self.stats.received[route] += 1

    def answer_line(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """A batch line's answer: (status, body), as the online endpoint would answer it."""
        if path == "/v1/chat/completions":
            parse, build = parse_chat, chat_body
        elif path == "/v1/completions":
            parse, build = parse_completion, completion_body
        else:
            return 404, json.loads(_error_body(f"Invalid URL (POST {path})",
                                               "invalid_request_error"))
        try:
            parsed = parse({k: v for k, v in body.items() if k not in self.ignores})
            choices = make_choices(parsed, self.responder, self.json.answer)
        except BadRequest as exc:
            return 400, json.loads(_error_body(exc.message, "invalid_request_error", exc.param))
        except Exception as exc:
            logger.exception("the responder failed on a batch line")
            return 500, json.loads(_error_body(
                f"The responder raised {type(exc).__name__}: {exc}", "server_error"))
        answer = build(parsed, choices, f"{self._id_prefix}{next(self._ids):x}",
                       int(time.time()))
        stats = self.stats
        stats.completed[path] += 1
        stats.completed_by_prompt[request_key(parsed.body)] += 1
        stats.prompt_tokens += answer["usage"]["prompt_tokens"]
        stats.completion_tokens += answer["usage"]["completion_tokens"]
        return 200, answer

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        self.stats.received[request.path] += 1
        message = f"Invalid URL ({request.method} {request.path})"
        return self._send(404, _error_body(message, "invalid_request_error"))

    # -- the completion path --------------------------------------------------------------

    async def _complete(self, request: web.Request, path: str,
                        dialect: Dialect) -> web.StreamResponse:
        stats = self.stats
        stats.received[path] += 1
        if self.latency:
            await asyncio.sleep(self.latency)
        if self._outage:
            return self._drop(request, "outage")
        try:
            body = parse_body(await request.read())
            for name in self.ignores:
                body.pop(name, None)
            parsed = dialect.parse(body)
        except BadRequest as exc:
            if dialect is OPENAI_CHAT or dialect is OPENAI_COMPLETIONS:
                return self._send(400, _error_body(exc.message, "invalid_request_error",
                                                   exc.param))
            return self._send(400, dialect.error(400, exc.message, "invalid_request_error"))
        context = self.context_tokens
        if context is not None and parsed.prompt_tokens + (parsed.max_tokens or 0) > context:
            return self._send(400, dialect.error(
                400, f"This model's maximum context length is {context} tokens. However, you "
                f"requested {parsed.prompt_tokens + (parsed.max_tokens or 0)} tokens. Please "
                "reduce the length of the messages.", "invalid_request_error"))
        if (self.strict_models and (dialect is OPENAI_CHAT or dialect is OPENAI_COMPLETIONS)
                and parsed.model not in self.models):
            return self._send(404, _error_body(
                f"The model `{parsed.model}` does not exist or you do not have access to it.",
                "invalid_request_error", "model"))
        if dialect.checks_model and not ollama_model_known(parsed.model, self.models):
            return self._send(404, dialect.error(
                404, f'model "{parsed.model}" not found, try pulling it first', "not_found"))
        try:
            choices = make_choices(parsed, self.responder, self.json.answer)
        except Exception as exc:
            logger.exception("the responder failed on %s", path)
            message = f"The responder raised {type(exc).__name__}: {exc}"
            return self._send(500, dialect.error(500, message, "server_error"))

        headers: dict[str, str] | None = None
        limits, limiter = self._model_limiters.get(parsed.model, (self.limits, self._limiter))
        if limiter is not None:
            # OpenAI's estimate: the prompt plus all it may generate; without max_tokens,
            # what it did generate (the test server knows the answer before it "generates").
            if parsed.max_tokens is not None:
                cost = parsed.prompt_tokens + parsed.max_tokens * len(choices)
            else:
                cost = parsed.prompt_tokens + sum(len(choice.tokens) for choice in choices)
            now = self._loop.time() if self._loop is not None else 0.0
            refusal = limiter.admit(cost, now)
            if self.send_limit_headers:
                headers = dialect.limit_headers(limiter.state(now))
            if refusal is not None:
                stats.rate_limited[refusal.limit_type] += 1
                return self._refuse(refusal, limiter.retry_after(refusal), parsed.model,
                                    headers, limits, dialect)

        fault = self._picker.pick() if self._picker is not None else None
        if fault is not None:
            stats.faults[fault] += 1
            stats.faults_by_prompt[request_key(parsed.body)][fault] += 1
            if fault == "slow":
                await asyncio.sleep(self.faults.slow_seconds)
            else:
                return await self._inject(fault, request, parsed, choices, dialect, headers)

        if self._outage:  # began while this request waited
            return self._drop(request, "outage")
        response_id = f"{self._id_prefix}{next(self._ids):x}"
        body = dialect.build(parsed, choices, response_id, int(time.time()))
        stats.completed[path] += 1
        stats.completed_by_prompt[request_key(parsed.body)] += 1
        counted = answer_usage(parsed, choices)
        stats.prompt_tokens += counted["prompt_tokens"]
        stats.completion_tokens += counted["completion_tokens"]
        return self._send(200, json.dumps(body).encode(), headers)

    async def _inject(self, fault: str, request: web.Request, parsed: ParsedRequest,
                      choices: list[Choice], dialect: Dialect,
                      headers: dict[str, str] | None) -> web.StreamResponse:
        faults = self.faults
        if fault == "rate_limit":
            message = (f"Rate limit reached for {parsed.model} (injected by the promptmill "
                       f"test server). Please try again in {format_duration(faults.retry_after)}.")
            return self._send(429, dialect.error(429, message, "requests"),
                              {**(headers or {}), **_retry_headers(faults.retry_after)})
        if fault == "server_error":
            message = ("The server had an error while processing your request. Sorry about "
                       "that! (injected by the promptmill test server)")
            return self._send(500, dialect.error(500, message, "server_error"), headers)
        if fault == "service_unavailable":
            message = ("The engine is currently overloaded, please try again later. (injected "
                       "by the promptmill test server)")
            status = dialect.overloaded_status
            return self._send(status, dialect.error(status, message, "server_error"), headers)
        if fault in _GATEWAY_PAGES:
            status, title = _GATEWAY_PAGES[fault]
            # What a proxy in front of the API sends: an HTML page, not OpenAI's JSON.
            page = (f"<html><head><title>{status} {title}</title></head><body><center><h1>"
                    f"{status} {title}</h1></center><hr><center>nginx</center></body></html>")
            return web.Response(status=self._count_status(status), text=page,
                                content_type="text/html")
        if fault == "reset":
            return self._reset(request)
        if fault == "malformed":
            whole = json.dumps(dialect.build(parsed, choices, "malformed", int(time.time())))
            return self._send(200, whole[: len(whole) // 2].encode(), headers)
        if fault == "hang":
            closing = self._closing
            assert closing is not None
            # Until the client gives up (its disconnect cancels this task), the server stops,
            # or hang_seconds pass; then the connection closes with no answer.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(closing.wait(), faults.hang_seconds)
        return self._drop(request, None)

    def _refuse(self, refusal: Refusal, wait: float, model: str, headers: dict[str, str] | None,
                limits: RateLimits | None, dialect: Dialect) -> web.StreamResponse:
        window = format_duration(limits.window if limits is not None else 60.0)
        if math.isinf(refusal.retry_after):
            message = (f"Request too large for {model} on {refusal.limit_type} per {window}: "
                       f"Limit {refusal.limit}, Requested {refusal.requested}. The input or "
                       "output tokens must be reduced in order to run successfully.")
        else:
            message = (f"Rate limit reached for {model} on {refusal.limit_type} per {window}: "
                       f"Limit {refusal.limit}, Used {refusal.used}, Requested "
                       f"{refusal.requested}. Please try again in {format_duration(wait)}.")
        body = (_error_body(message, refusal.limit_type, None, "rate_limit_exceeded")
                if dialect.name == "openai" else dialect.error(429, message, refusal.limit_type))
        return self._send(429, body, {**(headers or {}), **_retry_headers(wait)})

    def _drop(self, request: web.Request, fault: str | None) -> web.StreamResponse:
        """Close the connection with no response: the client sees the server disconnect."""
        if fault is not None:
            self.stats.faults[fault] += 1
        request.protocol.force_close()
        # aiohttp wants a response back; it is never written to the closed transport.
        return web.Response(status=204)

    def _reset(self, request: web.Request) -> web.StreamResponse:
        """Reset the connection (TCP RST, not FIN): the client sees ``connection reset``."""
        transport = request.transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None:
            # Linger on with a zero timeout: close() then discards the connection with an RST.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        if transport is not None:
            transport.abort()
        # aiohttp wants a response back; it is never written to the closed transport.
        return web.Response(status=204)

    def _count_status(self, status: int) -> int:
        self.stats.statuses[status] += 1
        return status

    def _send(self, status: int, body: bytes,
              headers: dict[str, str] | None = None) -> web.StreamResponse:
        return web.Response(status=self._count_status(status), body=body, content_type=_JSON,
                            headers=headers)


# Gateway faults: status and reason phrase of the proxy's page.
_GATEWAY_PAGES = {"bad_gateway": (502, "Bad Gateway"), "gateway_timeout": (504, "Gateway Time-out")}


def _retry_headers(wait: float) -> dict[str, str]:
    # Retry-After must be whole seconds (RFC 9110); retry-after-ms, which the openai SDK
    # reads first, keeps the precision that fast tests need.
    return {"retry-after": str(math.ceil(wait)), "retry-after-ms": str(math.ceil(wait * 1000))}
