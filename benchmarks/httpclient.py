"""The API backends' HTTP client alone against a bare aiohttp session: same server, same bodies.

No engine, no store: N POSTs of one chat-completion body, C in flight, each answer read whole,
once through ``promptmill.httpclient.HTTPClient`` and once through one pooled
``aiohttp.ClientSession`` (as ``dispatch.py``'s bare loop holds it), alternating, each round
against a fresh test server in its own process. Printed per run: wall seconds, the client's
CPU a request (``time.process_time``: the figure the client decides where the server is
fast), the median round trip, and the server's CPU seconds (read from ``/proc`` where there
is one); then the medians of each. Both clients run on the same loop: uvloop where it
installs (as promptmill's jobs run), asyncio's with ``--loop asyncio``.

    python benchmarks/httpclient.py                          # zero latency, 64 in flight
    python benchmarks/httpclient.py --setting latency        # 200 ms, 500 in flight
    python benchmarks/httpclient.py --loop asyncio --requests 20000 --repeat 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from collections.abc import Awaitable, Callable

from promptmill.httpclient import HTTPClient
from promptmill.testing import serve_in_process

SETTINGS = {"zero": (0.0, 64), "latency": (0.2, 500)}  # server latency (s), requests in flight
BODY = json.dumps({"model": "test-model", "max_tokens": 16,
                   "messages": [{"role": "user", "content": "What is 2 plus 2?"}]}).encode()
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer not-a-key"}

Send = Callable[[], Awaitable[None]]


async def _drive(send: Send, requests: int, concurrency: int) -> list[float]:
    """Send ``requests`` requests ``concurrency`` at a time; each one's round trip."""
    left = iter(range(requests))
    trips: list[float] = []

    async def worker() -> None:
        for _ in left:
            start = time.perf_counter()
            await send()
            trips.append(time.perf_counter() - start)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return trips


async def with_promptmill(url: str, requests: int, concurrency: int) -> list[float]:
    client = HTTPClient(HEADERS, timeout=600)

    async def send() -> None:
        response = await client.request("POST", url, BODY)
        if response.status != 200:
            raise SystemExit(f"promptmill's client: HTTP {response.status} from {url}")

    try:
        return await _drive(send, requests, concurrency)
    finally:
        await client.close()


async def with_aiohttp(url: str, requests: int, concurrency: int) -> list[float]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, headers=HEADERS) as session:

        async def send() -> None:
            async with session.post(url, data=BODY) as response:
                await response.read()
                if response.status != 200:
                    raise SystemExit(f"aiohttp: HTTP {response.status} from {url}")

        return await _drive(send, requests, concurrency)


CLIENTS = {"aiohttp": with_aiohttp, "promptmill": with_promptmill}


def _cpu_of(pid: int) -> float | None:
    """A process's user + system CPU seconds, where ``/proc`` tells them."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_run(client: str, latency: float, concurrency: int, requests: int,
            run: Callable[[Awaitable[list[float]]], list[float]]) -> dict[str, float]:
    with serve_in_process(latency=latency) as server:
        url = server.url + "/chat/completions"
        run(CLIENTS[client](url, min(requests, concurrency * 2), concurrency))  # warm-up
        server_before = _cpu_of(server.process.pid)
        cpu, wall = time.process_time(), time.perf_counter()
        trips = run(CLIENTS[client](url, requests, concurrency))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        server_after = _cpu_of(server.process.pid)
    figures = {"wall": wall, "cpu_us": cpu / requests * 1e6,
               "trip_ms": statistics.median(trips) * 1000}
    if server_before is not None and server_after is not None:
        figures["server_cpu"] = server_after - server_before
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", choices=list(SETTINGS), default="zero")
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    args = parser.parse_args(argv)
    latency, concurrency = SETTINGS[args.setting]
    run: Callable[[Awaitable[list[float]]], list[float]] = asyncio.run  # type: ignore[assignment]
    if args.loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            raise SystemExit("uvloop is not installed here: --loop asyncio") from None
        run = uvloop.run  # type: ignore[assignment]
    print(f"HTTP client alone: {args.requests:,} requests, {concurrency} in flight, server "
          f"latency {latency * 1000:g} ms, {args.loop}'s loop, {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.1f}")
    results: dict[str, list[dict[str, float]]] = {name: [] for name in CLIENTS}
    for round_ in range(1, args.repeat + 1):
        for name in CLIENTS:
            figures = one_run(name, latency, concurrency, args.requests, run)
            results[name].append(figures)
            server = (f", server CPU {figures['server_cpu']:.2f} s"
                      if "server_cpu" in figures else "")
            print(f"  run {round_} {name:10} {figures['wall']:6.2f} s, "
                  f"{args.requests / figures['wall']:7,.0f} req/s, client CPU "
                  f"{figures['cpu_us']:5.0f} us a request, round trip median "
                  f"{figures['trip_ms']:6.1f} ms{server}", flush=True)
    for name, runs in results.items():
        line = ", ".join(f"{key} {statistics.median(run_[key] for run_ in runs):.2f}"
                         for key in runs[0])
        print(f"  median {name:10} {line}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
