"""Instructions the client spends per dispatched request, counted by valgrind (callgrind).

Wall-clock rates on a shared machine move with the neighbours' load; instruction counts do
not. This runs a job's dispatch phase (planned beforehand, export skipped) against the
test server in its own, uncounted process, with callgrind's instrumentation switched on only
around ``Job.dispatch``, at two job sizes: the difference divided by the difference in
requests is the marginal cost of one request, free of start-up and per-run constants.

    python benchmarks/dispatch_instructions.py                  # 1,000 and 3,000 requests
    python benchmarks/dispatch_instructions.py --small 500 --large 2000
    python benchmarks/dispatch_instructions.py --record         # the attempt records alone

Two runs of the same code differ by up to ~2% (the event loop wakes a different number of
times, results are grouped into commits differently), so a small change to dispatch is
better measured alone: ``--record`` counts what keeping per-attempt records adds, exactly
as the dispatcher does it (a tuple per attempt with a clock read, appended to a list; the
list written with each group commit of 256 results), against the same commits without them.

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
    from promptmill.eventloop import run_async
    from promptmill.generators import get_generator
    from promptmill.job import Job, JobSpec
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


def inner_record(rows: int, with_attempts: bool) -> None:
    """The counted process of ``--record``: group commits of ``rows`` results, as dispatch
    writes them, with or without the attempts' records (counting on for the commits only)."""
    import json

    from promptmill.store import FinishedRequest, JobStore

    with tempfile.TemporaryDirectory(prefix="pm-instr-") as folder, \
            JobStore(Path(folder) / "job.promptmill.db") as store:
        ids = range(rows)
        store.add_planned([ids, ["{}"] * rows], [ids, ids, [0] * rows, [1] * rows,
                                                 ['{"messages": []}'] * rows, [30] * rows], rows)
        answer = json.dumps([{"text": "Willow ultra jasper. " * 3, "finish_reason": "stop"}])
        sent = time.monotonic()
        offset = time.time() - sent
        _toggle("on")
        for first in range(0, rows, 256):
            finished, attempts = [], []
            for request_id in range(first, min(rows, first + 256)):
                if with_attempts:
                    attempts.append((request_id, sent, time.monotonic(), 0))
                finished.append(FinishedRequest(request_id, 1, answer, 12, 30))
            store.record(finished, attempts, (), offset)
        _toggle("off")


def count(rows: int, folder: Path, mode: str = "--inner", *extra: str) -> int:
    """Instructions counted in one valgrind run of this script in ``mode``."""
    out = folder / f"callgrind.{rows}{''.join(extra)}.out"
    command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--trace-children=no",
               f"--callgrind-out-file={out}", sys.executable, __file__, mode, str(rows),
               *extra]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"valgrind run failed ({result.returncode}):\n{result.stderr[-2000:]}")
    total = 0
    for path in folder.glob(out.name + "*"):
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
    parser.add_argument("--record", action="store_true",
                        help="count what the per-attempt records add to the group commits")
    parser.add_argument("--inner", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--inner-record", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--with-attempts", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inner is not None:
        inner(args.inner)
        return 0
    if args.inner_record is not None:
        inner_record(args.inner_record, args.with_attempts)
        return 0
    if args.record:
        with tempfile.TemporaryDirectory(prefix="pm-callgrind-") as scratch:
            folder = Path(scratch)
            rows = args.large
            without = count(rows, folder, "--inner-record")
            with_them = count(rows, folder, "--inner-record", "--with-attempts")
        added = (with_them - without) / rows
        print(f"attempt records: group commits of {rows:,} results take {without:,} "
              f"instructions without them, {with_them:,} with them: {added:,.0f} more per "
              f"request ({added / 1000:.1f}k; client process, callgrind)")
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
