"""Rate-limit fidelity: how much of what the server allows a job gets, and how much is refused.

The test server (in its own process) enforces requests or tokens per window, counted one of
four ways (``--kind``, ``promptmill.testing.limits``): a continuously refilling bucket that
starts full, as OpenAI describes its limits; fixed windows on the clock; a sliding window;
windows quantized into slices. A job runs through
``promptmill.api.execute``; its throughput over the whole dispatch phase and in the steady
state (after a warm-up) is compared with the allowed rate (limit / window), and the server
counts what it refused over the whole run and in the steady state. Printed per mode, with its
verdict against the issue's targets, judged on the whole run:

- learning (``headers``, ``no-headers``): at least 90% of the allowed rate, under 2% refused;
- told the limits (``stated``, ``stated-headers``): at least 97% of the allowed rate, none
  refused.

The whole run's throughput is its requests over its dispatch time; the full bucket at the
start lets a learning job go above 100% (stated limits are paced from the first second, by
design, and forgo that burst). Modes:

- ``headers``: not told the limits; learns from ``x-ratelimit-*`` headers and 429s;
- ``no-headers``: not told the limits, headers hidden: learns from 429 + Retry-After alone;
- ``stated``: told the limits (``rpm=`` / ``tpm=``, per minute), headers hidden;
- ``stated-headers``: told the limits, headers sent too.

    python benchmarks/ratelimit.py                                    # 60 s windows
    python benchmarks/ratelimit.py --window 1 --windows 12 --rate 100  # what the tests run
    python benchmarks/ratelimit.py --window 1 --windows 10 --rate 100 --kind all --runs 5

``tests/engine/test_ratelimit_fidelity.py`` calls :func:`measure` with 1 s windows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from promptmill.api import execute
from promptmill.engine.dispatch import EngineConfig, EngineStats
from promptmill.generators import get_generator
from promptmill.job import JobSpec
from promptmill.params import make_params
from promptmill.testing import RateLimits, serve_in_process

PROMPT_WORDS = 10  # the server counts a prompt's words as its tokens
MAX_TOKENS = 20
COST = PROMPT_WORDS + MAX_TOKENS  # tokens the server charges a request: prompt + max_tokens
MODES = ("headers", "no-headers", "stated", "stated-headers")
KINDS = ("bucket", "fixed", "sliding", "quantized")
# A quantized limit counts each window in this many slices (a quarter of the window's limit
# each): a client told the window's limit must pace evenly within a quarter window.
QUANTA = 4


@dataclass
class Fidelity:
    """What one job achieved against the server's limits."""

    mode: str
    kind: str
    whole_share: float  # requests / dispatch time / allowed throughput, whole run
    steady_share: float  # steady-state throughput / allowed throughput
    refused_share: float  # 429s / requests the server received, whole run
    steady_refused_share: float  # 429s / requests, steady state only
    refused: int  # 429s, whole run
    received: int  # requests the server received, whole run
    seconds: float  # the dispatch phase

    @property
    def meets_target(self) -> bool:
        """The issue's target for this mode, judged on the whole run."""
        if self.mode.startswith("stated"):
            return self.whole_share >= 0.97 and self.refused == 0
        return self.whole_share >= 0.90 and self.refused_share < 0.02

    def line(self) -> str:
        """One line for a report, with the verdict."""
        return (f"whole run {self.whole_share:6.1%} of allowed, refused {self.refused_share:5.2%}"
                f" ({self.refused}/{self.received}); steady state {self.steady_share:6.1%}, "
                f"refused {self.steady_refused_share:5.2%}; {self.seconds:.0f}s: target "
                f"{'MET' if self.meets_target else 'NOT MET'}")


def write_input(path: Path, rows: int) -> None:
    """``rows`` prompts of exactly PROMPT_WORDS words each."""
    with open(path, "w", encoding="utf-8") as handle:
        for index in range(rows):
            words = [f"w{index}"] + ["word"] * (PROMPT_WORDS - 1)
            handle.write(json.dumps({"prompt": " ".join(words)}) + "\n")


def measure(folder: Path, *, mode: str, tokens: bool = False, rate: float = 100.0,
            window: float = 1.0, windows: float = 12, warm_up: float | None = None,
            latency: float = 0.0, kind: str = "bucket") -> Fidelity:
    """Run one job against a server allowing ``rate`` requests/s; how close it came.

    ``tokens`` puts the limit on tokens instead (``rate * COST`` per second). The job has
    enough rows for ``windows`` windows at the allowed rate plus the server's initial burst;
    steady state is after ``warm_up`` seconds (default: two windows, at most 20 s).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    limit = round(rate * window * (COST if tokens else 1))
    limits = RateLimits(requests=None if tokens else limit, tokens=limit if tokens else None,
                        window=window, kind=kind, quanta=QUANTA)
    rows = int(rate * window * (windows + 1))
    warm_up = min(2 * window, 20.0) if warm_up is None else warm_up
    source = folder / "ratelimit-input.jsonl"
    write_input(source, rows)
    config = EngineConfig()
    if mode.startswith("stated"):  # per minute, as --rpm / --tpm take them
        if tokens:
            config.tpm = limit * 60 / window
        else:
            config.rpm = limit * 60 / window
    samples: list[tuple[float, int, int]] = []  # (time, done, refused so far)

    async def job(url: str) -> EngineStats:
        spec = JobSpec(input=source, output=folder / "ratelimit-output.jsonl",
                       generator=get_generator(f"http!test-model,api_base={url}"),
                       params=make_params({"max_tokens": MAX_TOKENS}))
        holder: list[EngineStats] = []

        async def sample() -> None:
            while True:
                if holder:
                    stats = holder[0]
                    samples.append((time.monotonic(), stats.done,
                                    stats.retries["rate_limited"]))
                await asyncio.sleep(0.05)

        sampler = asyncio.create_task(sample())
        try:
            outcome = await execute(spec, config, on_start=holder.append, new_job=True)
        finally:
            sampler.cancel()
        if not outcome.complete or outcome.failed:
            raise RuntimeError(f"the job did not complete: {outcome}")
        return holder[0]

    with serve_in_process(limits=limits, send_limit_headers=mode in ("headers", "stated-headers"),
                          latency=latency) as server:
        stats = asyncio.run(job(server.url))
        served = server.fetch_stats()
    start = samples[0][0]
    steady = [s for s in samples if s[0] - start >= warm_up and s[1] < rows]
    if len(steady) < 2:
        raise RuntimeError("the job ended before the warm-up did: give it more windows")
    (t0, done0, refused0), (t1, done1, refused1) = steady[0], steady[-1]
    refused = sum(served["rate_limited"].values())
    received = sum(served["received"].values())
    seconds = (stats.finished_at or time.monotonic()) - stats.started_at
    return Fidelity(
        mode=mode,
        kind=kind,
        whole_share=stats.done / seconds / rate,
        steady_share=(done1 - done0) / (t1 - t0) / rate,
        refused_share=refused / received,
        steady_refused_share=(refused1 - refused0) / max(1, done1 - done0 + refused1 - refused0),
        refused=refused,
        received=received,
        seconds=seconds,
    )


def main(argv: list[str] | None = None) -> int:
    """Measure every mode and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=float, default=60.0, help="seconds (default 60)")
    parser.add_argument("--windows", type=float, default=3.0,
                        help="job length in windows at the allowed rate (default 3)")
    parser.add_argument("--rate", type=float, default=20.0,
                        help="allowed requests per second (default 20)")
    parser.add_argument("--latency", type=float, default=0.0, help="server latency, seconds")
    parser.add_argument("--mode", choices=MODES, action="append", help="default: all")
    parser.add_argument("--limit-on", choices=["requests", "tokens", "both"], default="both")
    parser.add_argument("--kind", choices=[*KINDS, "all"], default="bucket",
                        help="how the server counts its limits (default: bucket)")
    parser.add_argument("--runs", type=int, default=1, help="jobs per setting (default 1)")
    args = parser.parse_args(argv)
    print(f"rate-limit fidelity: {args.rate:g} req/s allowed, window {args.window:g}s, "
          f"{args.windows:g} windows, latency {args.latency:g}s, Python "
          f"{sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}",
          flush=True)
    limits_on = [False, True] if args.limit_on == "both" else [args.limit_on == "tokens"]
    missed = 0
    for kind in KINDS if args.kind == "all" else [args.kind]:
        for tokens in limits_on:
            for mode in args.mode or MODES:
                for _ in range(args.runs):
                    with tempfile.TemporaryDirectory(prefix="pm-ratelimit-") as folder:
                        result = measure(Path(folder), mode=mode, tokens=tokens, rate=args.rate,
                                         window=args.window, windows=args.windows,
                                         latency=args.latency, kind=kind)
                    limit = "tokens" if tokens else "requests"
                    missed += not result.meets_target
                    print(f"  {kind:9s} {limit:8s} {mode:14s} {result.line()}", flush=True)
    print(f"load {os.getloadavg()[0]:.2f} at the end; {missed} run(s) missed the target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
