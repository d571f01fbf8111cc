"""One job over a fleet of endpoints, and what LiteLLM's route costs per request.

Fleet: three test servers (each in its own process) with different request limits, one of
them hiding its limit headers (learned from 429s alone), none told to promptmill; one job
of ``--requests`` requests over all three (``-m`` three times). Printed: the job's
throughput against the sum of the limits, each endpoint's throughput against its own limit
while the job ran, and the share refused. ``--kill-after`` stops the second server that many
seconds in: the others carry its share, and the output still holds every row once.

Overhead: the same job on one zero-latency test server through ``http!`` (aiohttp) and
through ``litellm!openai/...`` (LiteLLM's ``acompletion``), requests per second each.

    python benchmarks/fleet.py                         # 600/1200/2400 per minute, x5 scaled
    python benchmarks/fleet.py --kill-after 5
    python benchmarks/fleet.py --overhead-only

``tests/engine/test_fleet.py`` calls :func:`measure_fleet`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from promptmill.api import execute, make_generator
from promptmill.engine.dispatch import EngineConfig, EngineStats
from promptmill.job import JobSpec
from promptmill.params import make_params
from promptmill.testing import RateLimits, serve_in_process, serve_in_thread

# Requests per minute of the three endpoints; the benchmark scales them up (``scale``)
# so that a few thousand requests take seconds, not minutes, with 1 s windows.
LIMITS_PER_MINUTE = (600, 1200, 2400)
MAX_TOKENS = 8


@dataclass
class FleetResult:
    """What one fleet job achieved."""

    limits: list[float]  # requests/s each endpoint allows
    served: list[int]  # requests each answered
    refused: list[int]  # 429s each sent
    seconds: float  # the dispatch phase
    rows: int  # rows in the output
    unique_rows: int  # distinct ids among them
    done_rows: int  # rows whose status is done
    by_endpoint: Counter[str] = field(default_factory=Counter)  # output rows per endpoint

    @property
    def throughput(self) -> float:
        """Requests answered per second over the dispatch phase."""
        return sum(self.served) / self.seconds

    @property
    def share_of_limits(self) -> float:
        """The job's throughput over the sum of the endpoints' limits."""
        return self.throughput / sum(self.limits)

    @property
    def refused_share(self) -> float:
        """429s over every request the servers received."""
        received = sum(self.served) + sum(self.refused)
        return sum(self.refused) / received if received else 0.0

    def endpoint_shares(self) -> list[float]:
        """Each endpoint's throughput over its limit, over the whole dispatch phase."""
        return [served / self.seconds / limit for served, limit in zip(self.served, self.limits,
                                                                         strict=True)]

    def lines(self) -> list[str]:
        """A report."""
        out = [f"fleet: {self.throughput:,.1f} req/s = {self.share_of_limits:.1%} of the "
               f"limits' sum ({sum(self.limits):g}/s); refused {self.refused_share:.2%} "
               f"({sum(self.refused)}); {self.seconds:.1f}s; rows {self.rows} "
               f"({self.unique_rows} distinct, {self.done_rows} done)"]
        for number, (limit, served, refused, share) in enumerate(zip(
                self.limits, self.served, self.refused, self.endpoint_shares(), strict=True), 1):
            out.append(f"  endpoint {number}: limit {limit:g}/s, answered {served}, "
                       f"{share:.1%} of its limit, 429s {refused}")
        return out


def write_input(path: Path, rows: int) -> None:
    """``rows`` distinct short prompts."""
    with open(path, "w", encoding="utf-8") as handle:
        for index in range(rows):
            handle.write(json.dumps({"id": index, "prompt": f"fleet question {index}"}) + "\n")


def measure_fleet(folder: Path, *, requests: int = 5000, scale: float = 5.0,
                  hidden: tuple[bool, ...] = (False, False, True), window: float = 1.0,
                  kill_after: float | None = None) -> FleetResult:
    """Run one job over three limited servers; see the module docstring."""
    limits = [rpm / 60 * scale for rpm in LIMITS_PER_MINUTE]
    source, output = folder / "fleet-input.jsonl", folder / "fleet-output.jsonl"
    write_input(source, requests)
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(serve_in_process(
            limits=RateLimits(requests=round(limit * window), window=window),
            send_limit_headers=not hide)) for limit, hide in zip(limits, hidden, strict=True)]
        generator = make_generator([f"http!test-model,api_base={s.url}" for s in servers])
        spec = JobSpec(input=source, output=output, generator=generator,
                       params=make_params({"max_tokens": MAX_TOKENS}))
        holder: list[EngineStats] = []
        if kill_after is not None:
            victim = servers[1]

            def kill() -> None:
                time.sleep(kill_after)
                victim.process.kill()

            threading.Thread(target=kill, daemon=True).start()
        outcome = asyncio.run(execute(spec, EngineConfig(), on_start=holder.append,
                                      new_job=True))
        if not outcome.complete or outcome.failed:
            raise RuntimeError(f"the fleet job did not complete: {outcome}")
        # A killed server cannot be asked: it refused nothing we can count afterwards.
        refused = [0 if kill_after is not None and number == 1 else
                   sum(server.fetch_stats()["rate_limited"].values())
                   for number, server in enumerate(servers)]
        urls = [server.url for server in servers]
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    by_endpoint = Counter(str(row.get("endpoint")) for row in rows)
    # What each endpoint answered, as the output records it (a killed server's included).
    served = [sum(n for label, n in by_endpoint.items() if f"api_base={url}" in label)
              for url in urls]
    run = holder[0]
    return FleetResult(
        limits=limits, served=served, refused=refused,
        seconds=(run.finished_at or time.monotonic()) - run.started_at, rows=len(rows),
        unique_rows=len({row["id"] for row in rows}),
        done_rows=sum(row["status"] == "done" for row in rows), by_endpoint=by_endpoint)


def measure_overhead(folder: Path, *, requests: int = 2000) -> dict[str, float]:
    """Requests/s of one job through http! and through litellm! on a zero-latency server."""
    source = folder / "overhead-input.jsonl"
    write_input(source, requests)
    rates: dict[str, float] = {}
    with serve_in_thread() if os.environ.get("PM_SAME_PROCESS") else \
            serve_in_process() as server:
        for name, ident in (("http!", f"http!test-model,api_base={server.url}"),
                            ("litellm!", f"litellm!openai/test-model,api_base={server.url}")):
            spec = JobSpec(input=source, output=folder / f"{name[:-1]}.jsonl",
                           generator=make_generator(ident),
                           params=make_params({"max_tokens": MAX_TOKENS}))
            holder: list[EngineStats] = []
            asyncio.run(execute(spec, EngineConfig(), on_start=holder.append, new_job=True))
            stats = holder[0]
            rates[name] = stats.done / ((stats.finished_at or time.monotonic())
                                        - stats.started_at)
    return rates


def main(argv: list[str] | None = None) -> int:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--scale", type=float, default=5.0,
                        help="limits are 600/1200/2400 per minute times this (default 5)")
    parser.add_argument("--kill-after", type=float, help="stop server 2 after this many s")
    parser.add_argument("--overhead-only", action="store_true")
    parser.add_argument("--overhead-requests", type=int, default=2000)
    args = parser.parse_args(argv)
    print(f"fleet benchmark: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="pm-fleet-") as folder:
        if not args.overhead_only:
            result = measure_fleet(Path(folder), requests=args.requests, scale=args.scale,
                                   kill_after=args.kill_after)
            print("\n".join(result.lines()), flush=True)
        rates = measure_overhead(Path(folder), requests=args.overhead_requests)
        print(f"dispatch on a zero-latency server: http! {rates['http!']:,.0f} req/s, "
              f"litellm! {rates['litellm!']:,.0f} req/s "
              f"({rates['http!'] / rates['litellm!']:.1f}x slower through LiteLLM; "
              f"{1e3 / rates['litellm!'] - 1e3 / rates['http!']:.2f} ms more per request)")
    print(f"load {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
