"""The test server's own cost: CPU microseconds per answered request, and req/s end to end.

The server (``promptmill.testing``) runs in its own process (``serve_in_process``), a bare
aiohttp client in this one (``benchmarks/dispatch.py``'s loop: one pooled session, N requests,
``--concurrency`` in flight, the answer parsed). The server process's CPU time (user + system,
from /proc) over the run, divided by the requests it answered, is its cost per request: what
one core could serve, whatever else the machine runs. The wall-clock rate is what one client
process got, and moves with the load.

    python benchmarks/testserver.py                       # 20,000 requests, 5 runs
    python benchmarks/testserver.py --requests 2000 --repeat 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time

from dispatch import bare_loop  # benchmarks/dispatch.py, beside this file

from promptmill.testing import serve_in_process


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    # After the command's ")": state is field 3, utime 14 and stime 15 (1-based, man 5 proc).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    """Measure and print the server's CPU per request and the client's rate."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args(argv)
    print(f"test server cost: {args.requests:,} requests x {args.repeat}, {args.concurrency} "
          f"in flight, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    per_request: list[float] = []
    rates: list[float] = []
    with serve_in_process() as server:
        pid = server.process.pid
        asyncio.run(bare_loop(server.url, min(args.requests, 2000), args.concurrency))  # warm
        for run in range(args.repeat):
            before = server.fetch_stats()["completed"].get("/v1/chat/completions", 0)
            cpu = cpu_seconds(pid)
            started = time.perf_counter()
            rate = asyncio.run(bare_loop(server.url, args.requests, args.concurrency))
            wall = time.perf_counter() - started
            used = cpu_seconds(pid) - cpu
            answered = server.fetch_stats()["completed"]["/v1/chat/completions"] - before
            assert answered == args.requests, (answered, args.requests)
            per_request.append(used / answered * 1e6)
            rates.append(rate)
            print(f"  run {run + 1}: server CPU {per_request[-1]:.0f} us a request "
                  f"({used:.2f}s over {wall:.2f}s), client {rate:,.0f} req/s", flush=True)
    cost = statistics.median(per_request)
    print(f"  median: {cost:.0f} us of server CPU a request (= {1e6 / cost:,.0f} req/s on one "
          f"core); one client process {min(rates):,.0f}-{max(rates):,.0f} req/s, median "
          f"{statistics.median(rates):,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
