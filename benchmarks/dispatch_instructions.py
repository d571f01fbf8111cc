"""Instructions the client spends per dispatched request, counted by valgrind (callgrind).

Wall-clock rates on a shared machine move with the neighbours' load; instruction counts do
not. This runs a job's dispatch phase (planned beforehand, export skipped) against the
test server in its own, uncounted process, with callgrind's instrumentation switched on only
around ``Job.dispatch``, at two job sizes: the difference divided by the difference in
requests is the marginal cost of one request, free of start-up and per-run constants.

    python benchmarks/dispatch_instructions.py                  # 1,000 and 3,000 requests
    python benchmarks/dispatch_instructions.py --small 500 --large 2000

Needs ``valgrind`` (Debian: ``apt-get install valgrind``). Each size takes a few minutes.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _toggle(state: str) -> None:
    """Switch callgrind's instrumentation on or off for this process.

    callgrind reads the command between basic blocks, so this process keeps running Python
    (a short spin) until ``callgrind_control`` has its answer, instead of blocking in wait().
    """
    control = subprocess.Popen(["callgrind_control", "-i", state, str(os.getpid())],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while control.poll() is None:
        sum(range(1000))
    time.sleep(0.05)


def inner(rows: int) -> None:
    """The counted process: plan ``rows`` requests, dispatch them with counting on."""
    sys.path.insert(0, str(HERE))
    from dispatch import MODEL, write_input

    from promptmill.engine.dispatch import EngineConfig
    from promptmill.generators import get_generator
    from promptmill.job import Job, JobSpec, run_async
    from promptmill.testing import serve_in_process

    with tempfile.TemporaryDirectory(prefix="pm-instr-") as folder, \
            serve_in_process() as server:
        source = Path(folder) / "input.jsonl"
        write_input(source, rows)
        spec = JobSpec(input=source, output=Path(folder) / "out.jsonl",
                       generator=get_generator(f"http!{MODEL},api_base={server.url}"))
        job = Job.open(spec)
        try:
            job.plan()
            _toggle("on")
            stats = run_async(job.dispatch(EngineConfig(max_concurrency=64)))
            _toggle("off")
            assert stats.done == rows, stats
        finally:
            job.close()


def count(rows: int, folder: Path) -> int:
    """Instructions counted while dispatching ``rows`` requests (one valgrind run)."""
    out = folder / f"callgrind.{rows}.out"
    command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--trace-children=no",
               f"--callgrind-out-file={out}", sys.executable, __file__, "--inner", str(rows)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"valgrind run failed ({result.returncode}):\n{result.stderr[-2000:]}")
    total = 0
    for path in folder.glob(f"callgrind.{rows}.out*"):
        for line in path.read_text().splitlines():
            match = re.match(r"totals: (\d+)", line)  # "summary:" may be 0 after toggling
            if match:
                total += int(match.group(1))
                break
    return total


def main(argv: list[str] | None = None) -> int:
    """Count both sizes and print the marginal instructions per request."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=1000, help="requests of the small run")
    parser.add_argument("--large", type=int, default=3000, help="requests of the large run")
    parser.add_argument("--inner", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inner is not None:
        inner(args.inner)
        return 0
    with tempfile.TemporaryDirectory(prefix="pm-callgrind-") as scratch:
        folder = Path(scratch)
        small = count(args.small, folder)
        large = count(args.large, folder)
    per_request = (large - small) / (args.large - args.small)
    print(f"dispatch instructions: {small:,} for {args.small:,} requests, {large:,} for "
          f"{args.large:,}; marginal {per_request:,.0f} per request (client process, "
          f"callgrind, load {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
