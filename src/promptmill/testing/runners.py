"""Ways to run the test server: in a thread, in another process, or from the shell."""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Iterator, Sequence
from typing import IO, Any

from promptmill.testing.batches import BatchFaults, BatchTimings
from promptmill.testing.faults import Faults
from promptmill.testing.limits import WINDOW_KINDS, RateLimits
from promptmill.testing.server import TestServer
from promptmill.testing.structured import JsonFaults

__all__ = ["ProcessServer", "serve_in_process", "serve_in_thread", "testing_server_command"]

_START_TIMEOUT = 30.0  # seconds; a cold interpreter importing aiohttp on a busy CI machine


@contextlib.contextmanager
def serve_in_thread(**options: Any) -> Iterator[TestServer]:
    """Run a ``TestServer(**options)`` on its own loop in a background thread; yield it."""
    server = TestServer(**options)
    started: concurrent.futures.Future[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = (
        concurrent.futures.Future())

    async def serve() -> None:
        stop = asyncio.Event()
        try:
            await server.start()
        except BaseException as exc:
            started.set_exception(exc)
            return
        started.set_result((asyncio.get_running_loop(), stop))
        try:
            await stop.wait()
        finally:
            await server.close()

    # asyncio.run cancels and awaits whatever is left when serve() ends: no leaked tasks.
    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True,
                              name=f"promptmill-test-server-{id(server):x}")
    thread.start()
    loop, stop = started.result(timeout=_START_TIMEOUT)
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=_START_TIMEOUT)


class ProcessServer:
    """A test server running in another process (see ``serve_in_process``)."""

    def __init__(self, url: str, process: subprocess.Popen[str]) -> None:
        self.url = url
        self.process = process

    def fetch_stats(self) -> dict[str, Any]:
        """The server's counters, as ``ServerStats.to_dict`` gives them."""
        stats_url = self.url.removesuffix("/v1") + "/_testing/stats"
        with urllib.request.urlopen(stats_url, timeout=10) as response:
            stats: dict[str, Any] = json.load(response)
        return stats


@contextlib.contextmanager
def serve_in_process(**options: Any) -> Iterator[ProcessServer]:
    """Run a test server in a child Python process (client and server then use two cores).

    Takes ``TestServer``'s options except ``responder`` and ``ssl_context``, which cannot
    cross processes.
    """
    server = TestServer(**options)  # checks the options here, where errors are readable
    for option in ("responder", "ssl_context"):
        if getattr(server, option) is not None:
            raise ValueError(f"a {option} cannot be sent to another process; use serve_in_thread")
    env = dict(os.environ)
    # The child must import this same promptmill, even from a checkout that is not installed.
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    argv = [sys.executable, "-m", "promptmill.testing", *server_arguments(server)]
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors, text=True,
                                   env=env)
        try:
            url = _first_line(process, errors)
            yield ProcessServer(url, process)
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if process.stdout is not None:
                process.stdout.close()


def _first_line(process: subprocess.Popen[str], errors: IO[str]) -> str:
    """The URL the child prints once it listens, or an error with what it wrote to stderr."""
    assert process.stdout is not None
    stdout = process.stdout
    line: concurrent.futures.Future[str] = concurrent.futures.Future()
    # A thread, not select(): pipes cannot be selected on Windows.
    threading.Thread(target=lambda: line.set_result(stdout.readline()), daemon=True).start()
    try:
        url = line.result(timeout=_START_TIMEOUT).strip()
    except concurrent.futures.TimeoutError:
        url = ""
    if not url.startswith("http"):
        process.kill()
        process.wait()
        errors.seek(0)
        raise RuntimeError(f"the test server process did not start: {errors.read().strip()}")
    return url


# -- the command line -----------------------------------------------------------------------


def server_arguments(server: TestServer) -> list[str]:
    """The ``python -m promptmill.testing`` arguments that make a server like ``server``."""
    limits = server.limits or RateLimits()
    faults = server.faults
    argv = ["--host", server.host, "--port", str(server.port), "--latency", str(server.latency),
            "--window", str(limits.window), "--window-kind", limits.kind,
            "--quanta", str(limits.quanta), "--seed", str(faults.seed),
            "--fault-429", str(faults.rate_limit), "--fault-500", str(faults.server_error),
            "--fault-drop", str(faults.drop), "--fault-hang", str(faults.hang),
            "--fault-malformed", str(faults.malformed), "--fault-slow", str(faults.slow),
            "--slow-seconds", str(faults.slow_seconds), "--retry-after", str(faults.retry_after),
            "--fault-502", str(faults.bad_gateway), "--fault-503", str(faults.service_unavailable),
            "--fault-504", str(faults.gateway_timeout), "--fault-reset", str(faults.reset)]
    for model in server.models:
        argv += ["--model", model]
    if limits.requests is not None:
        argv += ["--rpm", str(limits.requests)]
    if limits.tokens is not None:
        argv += ["--tpm", str(limits.tokens)]
    if faults.hang_seconds is not None:
        argv += ["--hang-seconds", str(faults.hang_seconds)]
    if not server.send_limit_headers:
        argv.append("--no-limit-headers")
    timings, batch = server.batch_timings, server.batch_faults
    argv += ["--batch-seconds", str(timings.in_progress),
             "--batch-fault-line", str(batch.line_error),
             "--batch-fault-expire", str(batch.expire),
             "--batch-fault-validation", str(batch.fail_validation),
             "--batch-fault-upload", str(batch.upload_error)]
    return argv


def testing_server_command(
    host: str = "127.0.0.1",
    port: int = 8000,
    latency: float = 0.0,
    rpm: int | None = None,
    tpm: int | None = None,
    window: float = 60.0,
    fault_429: float = 0.0,
    fault_500: float = 0.0,
    fault_drop: float = 0.0,
    fault_hang: float = 0.0,
    fault_malformed: float = 0.0,
    fault_slow: float = 0.0,
    seed: int = 0,
    *,
    models: Sequence[str] = ("test-model",),
    slow_seconds: float = 1.0,
    retry_after: float = 1.0,
    hang_seconds: float | None = None,
    send_limit_headers: bool = True,
    outage_after: float | None = None,
    outage_for: float = 0.0,
    fault_502: float = 0.0,
    fault_503: float = 0.0,
    fault_504: float = 0.0,
    fault_reset: float = 0.0,
    batch_seconds: float = 0.0,
    batch_faults: BatchFaults | None = None,
    window_kind: str = "bucket",
    quanta: int = 10,
    json_faults: JsonFaults | None = None,
    ignores: Sequence[str] = (),
    strict_models: bool = False,
    context_tokens: int | None = None,
) -> None:
    """Serve until Ctrl-C or SIGTERM, after printing the base URL alone on one line.

    ``rpm`` and ``tpm`` are the requests and tokens allowed per ``window`` seconds, counted
    the ``window_kind`` way (``RateLimits.kind``); the
    ``fault_*`` arguments are the probabilities of ``Faults``' kinds; ``batch_seconds`` is how
    long a batch stays validating, in progress and finalizing; ``ignores`` are body fields
    dropped unread (a server that ignores ``n``); ``strict_models`` refuses unknown models;
    ``context_tokens`` refuses longer prompts (plus max_tokens) with a 400.
    """
    server = TestServer(
        host=host, port=port, models=models, latency=latency,
        limits=RateLimits(requests=rpm, tokens=tpm, window=window, kind=window_kind,
                          quanta=quanta),
        faults=Faults(rate_limit=fault_429, server_error=fault_500, drop=fault_drop,
                      hang=fault_hang, malformed=fault_malformed, slow=fault_slow,
                      bad_gateway=fault_502, service_unavailable=fault_503,
                      gateway_timeout=fault_504, reset=fault_reset, seed=seed,
                      slow_seconds=slow_seconds, retry_after=retry_after,
                      hang_seconds=hang_seconds),
        send_limit_headers=send_limit_headers,
        batch_timings=BatchTimings(validating=batch_seconds, in_progress=batch_seconds,
                                   finalizing=batch_seconds),
        batch_faults=batch_faults or BatchFaults(seed=seed),
        json_faults=json_faults, ignores=ignores, strict_models=strict_models,
        context_tokens=context_tokens,
    )

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGTERM, stop.set)  # main thread, POSIX only
        async with server:
            print(server.url, flush=True)
            if outage_after is not None:
                server.schedule_outage(outage_after, outage_for)
            await stop.wait()

    # Ctrl-C cancels serve(), whose ``async with`` then closes the server.
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m promptmill.testing`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m promptmill.testing",
        description="Serve an OpenAI-compatible test API with rate limits and injected faults. "
                    "Prints the base URL, then serves until Ctrl-C.")
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    add("--port", type=int, default=8000, help="port; 0 picks a free one (default: %(default)s)")
    add("--model", dest="models", action="append",
        help="a model name /v1/models lists; repeat for more (default: test-model); "
             "requests may name any model")
    add("--latency", type=float, default=0.0, help="seconds added to every response")
    add("--rpm", type=int, help="requests allowed per window (default: unlimited)")
    add("--tpm", type=int, help="tokens (prompt + max_tokens x n) allowed per window "
                                "(default: unlimited)")
    add("--window", type=float, default=60.0, help="rate limit window in seconds (default: 60)")
    add("--window-kind", choices=WINDOW_KINDS, default="bucket",
        help="how the limits count: a continuously refilling bucket, fixed windows on the "
             "clock, a sliding window, or windows quantized into --quanta slices "
             "(default: %(default)s)")
    add("--quanta", type=int, default=10,
        help="slices of a window for --window-kind quantized (default: %(default)s)")
    add("--no-limit-headers", dest="send_limit_headers", action="store_false",
        help="do not send x-ratelimit-* headers: clients must learn the limits from 429s")
    for flag, what in (("429", "a 429 with Retry-After"), ("500", "a 500"),
                       ("drop", "a closed connection"), ("hang", "no answer at all"),
                       ("malformed", "a 200 with cut-off JSON"), ("slow", "a late answer"),
                       ("502", "a 502 page from a proxy"), ("503", "a 503 (overloaded)"),
                       ("504", "a 504 page from a proxy"), ("reset", "a reset connection")):
        add(f"--fault-{flag}", type=float, default=0.0, metavar="P",
            help=f"probability that a request gets {what}")
    add("--seed", type=int, default=0, help="seed of the fault draws (default: 0)")
    add("--slow-seconds", type=float, default=1.0, help="delay of a slow answer (default: 1)")
    add("--retry-after", type=float, default=1.0,
        help="Retry-After seconds of an injected 429 (default: 1)")
    add("--hang-seconds", type=float, help="close a hanging request after this long "
                                           "(default: only when the client gives up)")
    add("--outage-after", type=float, help="seconds after start when an outage begins")
    add("--outage-for", type=float, default=0.0, help="seconds the outage lasts")
    add("--batch-seconds", type=float, default=0.0,
        help="seconds a batch spends validating, in progress and finalizing (default: 0)")
    for flag, what in (("line", "a batch line gets a 500 in the error file"),
                       ("expire", "a batch expires halfway"),
                       ("validation", "a batch fails validation"),
                       ("upload", "an upload gets a 500")):
        add(f"--batch-fault-{flag}", type=float, default=0.0, metavar="P",
            help=f"probability that {what}")
    add("--ignore", dest="ignores", action="append", default=[], metavar="PARAM",
        help="a request field to ignore silently, as some servers do (n, logprobs, seed, "
             "stop, max_tokens); repeat for more")
    add("--strict-models", action="store_true",
        help="refuse model names --model does not list (404), as vLLM and OpenAI do")
    add("--context-tokens", type=int,
        help="the model's context window: longer prompts (plus max_tokens) get a 400")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m promptmill.testing``."""
    args = build_parser().parse_args(argv)
    try:
        testing_server_command(
            args.host, args.port, args.latency, args.rpm, args.tpm, args.window,
            args.fault_429, args.fault_500, args.fault_drop, args.fault_hang,
            args.fault_malformed, args.fault_slow, args.seed,
            models=args.models or ("test-model",), slow_seconds=args.slow_seconds,
            retry_after=args.retry_after, hang_seconds=args.hang_seconds,
            send_limit_headers=args.send_limit_headers, outage_after=args.outage_after,
            outage_for=args.outage_for, fault_502=args.fault_502, fault_503=args.fault_503,
            fault_504=args.fault_504, fault_reset=args.fault_reset,
            batch_seconds=args.batch_seconds, window_kind=args.window_kind, quanta=args.quanta,
            batch_faults=BatchFaults(
                line_error=args.batch_fault_line, expire=args.batch_fault_expire,
                fail_validation=args.batch_fault_validation,
                upload_error=args.batch_fault_upload, seed=args.seed),
            ignores=args.ignores, strict_models=args.strict_models,
            context_tokens=args.context_tokens)
    except (ValueError, OSError) as exc:
        sys.exit(f"error: {exc}")
