"""Scale: a million-row job through the CLI against the zero-latency test server.

Three measurements, each with the test server in its own process and promptmill run as a user
runs it (``python -m promptmill run INPUT -m http!... -o OUT``) in a child process:

1. ``full``: the whole job (plan, dispatch, export). The child's resident memory (VmRSS,
   and VmHWM, the kernel's peak) is sampled every second with the job's progress, read
   from the job store by a read-only connection. Verdicts: peak RSS under 300 MB, and flat
   while sending: after the first tenth of the requests, RSS grows by less than 4 MB (SQLite's
   page cache filling, allocator noise) plus 16 bytes per request sent meanwhile (14 MB over
   a million-row job's 900,000; a leak of 300 bytes a request fails even a 20,000-row run).
2. ``resume``: a job whose store has all but 1,000 requests done (built with the store API:
   plan every row, record the results) is run again, and so is a job of 1,000 rows with none
   done, the baseline (process start, imports, opening a store). Verdict: the first request
   reaches the server within 1.5 x the baseline + 0.25 s + 4 us per done row: 5 s for a
   million rows, the target; a resume whose cost grows with the rows already done fails it
   at any size where 4 us a row stands out of the noise (``--resume-rows``).
3. ``batch``: the same job through the Batch API (``--mode batch --wait``: input files of
   50,000 requests uploaded, polled, output files downloaded and recorded, export), the
   child's memory sampled the same way. Verdict: its peak RSS is within 2x of the online
   job's (measured by ``full`` in the same invocation, or run here when ``--only batch``).
4. ``plan`` (only with ``--only plan``): planning alone (open the job, read, check, render,
   store every row; nothing sent), in a child process of its own, with a field prompt
   (``--prompt-field prompt``) and with a Jinja template: rows per second (wall clock, and
   per second of the child's CPU time, which a loaded machine moves less) and the child's
   peak RSS, beside the figures of the code before issue 15. Targets: 200,000 rows/s with
   the field prompt, 100,000 with the template. With ``--instructions``: planning's
   instructions a row instead, each child under callgrind (planning alone is counted).
   With ``--cache``: at temperature 0, where the response cache is on by default and
   planning also hashes each request's cache key. With ``--k K``: K samples a row, each its
   own request (K sample groups: a backend told ``supports_n=false``).

    python benchmarks/scale.py                      # 1,000,000 rows (about 25 minutes)
    python benchmarks/scale.py --rows 20000 --resume-rows 100000   # quick, for CI
    python benchmarks/scale.py --only resume
    python benchmarks/scale.py --only batch         # online and batch, memory compared
    python benchmarks/scale.py --only plan          # planning alone: rows/s, peak RSS
    python benchmarks/scale.py --only plan --rows 20000 --instructions   # under callgrind
    python benchmarks/scale.py --only plan --cache  # planning a temperature-0 job
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from as_installed import compile_package

from promptmill.generators import get_generator
from promptmill.job import Job, JobSpec
from promptmill.store import FinishedRequest, store_path_for
from promptmill.testing import ProcessServer, serve_in_process

PEAK_LIMIT_MB = 300.0
# RSS growth while sending: a fixed allowance plus a budget per request sent.
FLAT_BASE_MB = 4.0
FLAT_PER_REQUEST_B = 16.0
# Time to the first request of a resumed job: a multiple of the baseline's, a fixed slack for
# a loaded machine, and a budget per done row (5 s for 1M rows with a ~0.5 s baseline).
RESUME_BASE_FACTOR = 1.5
RESUME_SLACK_S = 0.25
RESUME_PER_DONE_ROW_S = 4e-6
RESUME_PENDING = 1000
BATCH_RSS_RATIO = 2.0
# Planning targets (issue 15), rows per second; and what the code before it did on the same
# machine, interleaved with it (load 5-10: see docs/benchmarks.md), rows per CPU-second.
PLAN_TARGETS = {"field": 200_000, "jinja": 100_000}
PLAN_BEFORE = {"field": 39_800, "jinja": 28_500}
# Instructions a planned row before issue 15 (callgrind, 20,000 rows, main at ebcbd20).
PLAN_BEFORE_INSTRUCTIONS = {"field": 154_585, "jinja": 234_435}
# The figures of issue 15's first half (merged main a72c1cf, the lead's quiet run): rows/s,
# and instructions a row under callgrind.
PLAN_PREVIOUS = {"field": 46_300, "jinja": 52_100}
PLAN_PREVIOUS_INSTRUCTIONS = {"field": 101_989, "jinja": 126_726}
PLAN_TEMPLATE = "Answer briefly. {{ prompt }}"


def write_input(path: Path, rows: int) -> None:
    """An input JSONL file of ``rows`` rows with an id and a prompt."""
    with open(path, "w", encoding="utf-8") as handle:
        for start in range(0, rows, 10_000):
            handle.write("".join(
                json.dumps({"id": i, "prompt": f"Question {i}: what is {i} plus {i * 7 % 101}?"})
                + "\n" for i in range(start, min(rows, start + 10_000))))


def model_for(server: ProcessServer) -> str:
    """The identifier that points promptmill at ``server``."""
    return f"http!test-model,api_base={server.url}"


def cli_command(input_path: Path, output: Path, model: str, mode: str = "online") -> list[str]:
    """The user's command line."""
    command = [sys.executable, "-m", "promptmill", "run", str(input_path), "-m", model,
               "-o", str(output)]
    if mode == "batch":
        command += ["--mode", "batch", "--wait", "--poll-interval", "1"]
    return command


def memory_mb(pid: int) -> tuple[float, float] | None:
    """(VmRSS, VmHWM) of a process in MB, or None once it has gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            fields = dict(line.split(":", 1) for line in handle if line.startswith("Vm"))
    except (FileNotFoundError, ProcessLookupError):
        return None
    try:
        return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)
    except KeyError:
        return None  # a zombie: no memory left to report


@dataclass
class Sample:
    """One reading of the child process and its job."""

    at: float  # seconds since the child started
    rss: float  # MB
    hwm: float  # MB, the peak so far
    planned: int  # rows planned
    done: int  # requests finished


@dataclass
class FullRun:
    """What the full job did."""

    samples: list[Sample] = field(default_factory=list)
    seconds: float = 0.0
    returncode: int | None = None


def progress(store: Path) -> tuple[int, int]:
    """(rows planned, requests finished) read from a running job's store, without locking it."""
    if not store.exists():
        return 0, 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True,
                                                timeout=1)) as db:
            planned = db.execute("SELECT MAX(row_index) FROM rows").fetchone()[0]
            # Index-only and O(log n): results are recorded in about id order.
            done = db.execute("SELECT MAX(id) FROM requests WHERE status = 'done'").fetchone()[0]
    except sqlite3.Error:
        return 0, 0
    return (planned + 1 if planned is not None else 0), (done + 1 if done is not None else 0)


def run_full(rows: int, folder: Path, input_path: Path, mode: str = "online") -> FullRun:
    """The whole job through the CLI, sampling the child's memory every second."""
    name = "full" if mode == "online" else mode
    output = folder / f"{name}.jsonl"
    result = FullRun()
    with serve_in_process() as server:
        start = time.monotonic()
        with open(folder / f"{name}.stderr", "w") as errors:
            child = subprocess.Popen(cli_command(input_path, output, model_for(server), mode),
                                     stdout=subprocess.DEVNULL, stderr=errors)
            next_print = 0.0
            while child.poll() is None:
                memory = memory_mb(child.pid)
                if memory is not None:
                    planned, done = progress(store_path_for(output))
                    sample = Sample(time.monotonic() - start, *memory, planned, done)
                    result.samples.append(sample)
                    if sample.at >= next_print:
                        print(f"  t={sample.at:6.1f}s  rss {sample.rss:6.1f} MB  peak "
                              f"{sample.hwm:6.1f} MB  planned {planned:>9,}  done {done:>9,}",
                              flush=True)
                        next_print = sample.at + max(1.0, rows / 100_000)
                time.sleep(1.0 if rows > 100_000 else 0.25)
        result.seconds = time.monotonic() - start
        result.returncode = child.returncode
    if child.returncode != 0:
        print((folder / f"{name}.stderr").read_text()[-2000:])
    return result


def peak_mb(run: FullRun) -> float:
    """The child's peak RSS (VmHWM) over a run, in MB."""
    return max((s.hwm for s in run.samples), default=0.0)


def judge_batch(rows: int, batch: FullRun, online: FullRun) -> bool:
    """Print the batch job's memory verdict against the online job's; True if it passes."""
    ratio = peak_mb(batch) / max(1e-9, peak_mb(online))
    ok = ratio <= BATCH_RSS_RATIO and batch.returncode == 0
    print(f"batch: {rows:,} rows in {batch.seconds:.0f}s (exit {batch.returncode}), "
          f"{rows / batch.seconds:,.0f} rows/s overall; online: {online.seconds:.0f}s")
    print(f"  VERDICT peak RSS batch {peak_mb(batch):.1f} MB vs online {peak_mb(online):.1f} MB,"
          f" ratio {ratio:.2f} (limit {BATCH_RSS_RATIO:.0f}): {'PASS' if ok else 'FAIL'}")
    return ok


def judge_full(rows: int, run: FullRun) -> bool:
    """Print the memory verdicts of the full run; True if both pass."""
    samples = run.samples
    peak = max((s.hwm for s in samples), default=0.0)
    sending = [s for s in samples if s.done >= rows // 10 and s.done < rows]
    growth = (max(s.rss for s in sending) - sending[0].rss) if len(sending) >= 2 else 0.0
    sent = sending[-1].done - sending[0].done if len(sending) >= 2 else 0
    limit = FLAT_BASE_MB + FLAT_PER_REQUEST_B * sent / 2**20
    ok_peak = peak < PEAK_LIMIT_MB and run.returncode == 0
    ok_flat = growth < limit and len(sending) >= 2
    print(f"full: {rows:,} rows in {run.seconds:.0f}s (exit {run.returncode}), "
          f"{rows / run.seconds:,.0f} rows/s overall")
    print(f"  VERDICT peak RSS {peak:.1f} MB (limit {PEAK_LIMIT_MB:.0f}): "
          f"{'PASS' if ok_peak else 'FAIL'}")
    per_request = growth * 2**20 / sent if sent else 0.0
    print(f"  VERDICT RSS growth while sending {growth:+.1f} MB over {sent:,} requests "
          f"({len(sending)} samples), {per_request:,.0f} bytes a request (limit "
          f"{FLAT_BASE_MB:g} MB + {FLAT_PER_REQUEST_B:g} B x {sent:,} = {limit:.1f} MB): "
          f"{'PASS' if ok_flat else 'FAIL'}")
    return ok_peak and ok_flat


def build_resume_state(rows: int, pending: int, input_path: Path, output: Path,
                       model: str) -> float:
    """A store with every row planned and all but the last ``pending`` requests done."""
    start = time.monotonic()
    spec = JobSpec(input=input_path, output=output, generator=get_generator(model))
    job = Job.open(spec)
    try:
        job.plan()
        answer = json.dumps([{"text": "Amber basil cedar.", "finish_reason": "stop"}])
        for first in range(0, rows - pending, 50_000):
            job.store.record(FinishedRequest(id=i, attempts=1, responses=answer,
                                             prompt_tokens=9, completion_tokens=4)
                             for i in range(first, min(rows - pending, first + 50_000)))
        status = job.store.status()
        assert status.done == rows - pending and status.pending == pending, status
    finally:
        job.close()
    return time.monotonic() - start


@contextlib.contextmanager
def child_process(command: list[str], stderr: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child process, killed if still running when the block ends."""
    with open(stderr, "w") as errors:
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
        try:
            yield child
        finally:
            if child.poll() is None:
                child.kill()
            child.wait()


@dataclass
class Resume:
    """One resumed job: when its first request came, and what it did."""

    done: int  # requests already done in the store
    first: float | None  # seconds from the child's start to its first request
    received: int  # requests the server got (expected: the pending ones)
    pending: int
    returncode: int | None
    total: float
    peak: float  # MB


def resume_once(rows: int, pending: int, folder: Path, name: str) -> Resume:
    """Build a store of ``rows`` with all but ``pending`` done, run the job again, time it."""
    input_path = folder / f"{name}-input.jsonl"
    write_input(input_path, rows)
    output = folder / f"{name}.jsonl"
    with serve_in_process() as server:
        model = model_for(server)
        built = build_resume_state(rows, pending, input_path, output, model)
        print(f"resume ({name}): built a store with {rows - pending:,} of {rows:,} done in "
              f"{built:.0f}s", flush=True)
        start = time.monotonic()
        first: float | None = None
        peak = 0.0
        with child_process(cli_command(input_path, output, model),
                           folder / f"{name}.stderr") as child:
            while child.poll() is None:
                memory = memory_mb(child.pid)
                if memory is not None:
                    peak = max(peak, memory[1])
                if first is None and generation_requests(server.fetch_stats()) > 0:
                    first = time.monotonic() - start
                time.sleep(0.02)
            total = time.monotonic() - start
        served = server.fetch_stats()
    received = generation_requests(served)
    shown = f"{first:.2f}s" if first is not None else "never"
    print(f"  resumed: first request {shown} after the process started, {received:,} requests "
          f"sent (expected {pending:,}), exit {child.returncode}, {total:.1f}s in all, peak "
          f"RSS {peak:.0f} MB")
    if child.returncode != 0:
        print((folder / f"{name}.stderr").read_text()[-2000:])
    return Resume(rows - pending, first, received, pending, child.returncode, total, peak)


def generation_requests(stats: dict[str, Any]) -> int:
    """Requests the server received but the models listing (http!'s check before the job)."""
    return sum(n for path, n in stats["received"].items() if not path.endswith("/models"))


def run_resume(rows: int, folder: Path) -> bool:
    """Resume a job with all but RESUME_PENDING done, and a baseline with none done; verdict."""
    pending = min(RESUME_PENDING, max(1, rows // 20))
    base = resume_once(pending, pending, folder, "resume-baseline")
    big = resume_once(rows, pending, folder, "resume")
    ok = all(r.first is not None and r.returncode == 0 and r.received == r.pending
             for r in (base, big))
    if not ok or base.first is None or big.first is None:
        print("  VERDICT first request of the resumed job: FAIL (see above)")
        return False
    limit = RESUME_BASE_FACTOR * base.first + RESUME_SLACK_S + RESUME_PER_DONE_ROW_S * big.done
    per_row = (big.first - base.first) / big.done * 1e6
    ok = big.first < limit
    print(f"  VERDICT first request {big.first:.2f}s after the process started with "
          f"{big.done:,} rows done, {base.first:.2f}s with none: {per_row:+.1f} us a done row "
          f"(limit {RESUME_BASE_FACTOR:g} x {base.first:.2f}s + {RESUME_SLACK_S:g}s + "
          f"{RESUME_PER_DONE_ROW_S * 1e6:g} us x {big.done:,} = {limit:.2f}s): "
          f"{'PASS' if ok else 'FAIL'}")
    return ok


def plan_child(prompt: str, input_path: Path, output: Path, cached: bool = False,
               k: int = 1) -> None:
    """Plan ``input_path`` in this process; print seconds, CPU seconds and peak RSS as JSON.
    ``cached``: at temperature 0, so planning also hashes each request's response cache key.
    ``k`` > 1: k samples a row, each its own request (k sample groups)."""
    import resource

    from promptmill.prompts.render import PromptSpec

    prompts = (PromptSpec(template=PLAN_TEMPLATE) if prompt == "jinja"
               else PromptSpec(prompt_field="prompt"))
    spec = JobSpec(input=input_path, output=output, prompts=prompts,
                   generator=get_generator("http!test-model,api_base=http://127.0.0.1:9/v1"
                                           + (",temperature=0" if cached else "")
                                           + (",supports_n=false" if k > 1 else "")),
                   k=k, cache_path=output.with_name(output.name + ".cache.sqlite"))
    start, cpu = time.perf_counter(), time.process_time()
    job = Job.open(spec)
    try:
        # Through functools.reduce, a C function only this call uses: under valgrind,
        # --toggle-collect=functools_reduce counts the instructions of planning alone.
        functools.reduce(lambda _a, _b: job.plan(), [0, 0])
    finally:
        job.close()
    print(json.dumps({"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu,
                      "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run_plan(rows: int, folder: Path, instructions: bool = False, cached: bool = False,
             k: int = 1) -> bool:
    """Planning alone, field prompt and template, each in a fresh child; True if both meet
    their targets (by wall clock: the figure a user waits for). ``instructions``: the
    children run under callgrind instead, and planning's instructions a row are printed."""
    input_path = folder / "input.jsonl"
    if not input_path.exists():
        write_input(input_path, rows)
    ok = True
    for prompt in ("field", "jinja"):
        output = folder / f"plan-{prompt}.jsonl"
        for stale in folder.glob(f"plan-{prompt}.jsonl*"):
            stale.unlink()
        command = [sys.executable, __file__, "--plan-child", prompt, str(input_path),
                   str(output), *(["--cache"] if cached else []), "--k", str(k)]
        if instructions:
            command = ["valgrind", "--tool=callgrind", "--toggle-collect=functools_reduce",
                       f"--callgrind-out-file={folder}/plan-{prompt}.callgrind", *command]
        child = subprocess.run(command, capture_output=True, text=True, check=False)
        if child.returncode != 0:
            print(child.stderr[-2000:])
            return False
        if instructions:
            collected = re.search(r"Collected : (\d+)", child.stderr)
            if collected is None:
                print(child.stderr[-2000:])
                return False
            print(f"plan ({prompt} prompt): {int(collected[1]) / rows:,.0f} instructions a row "
                  f"(before issue 15: {PLAN_BEFORE_INSTRUCTIONS[prompt]:,}; a72c1cf: "
                  f"{PLAN_PREVIOUS_INSTRUCTIONS[prompt]:,})")
            continue
        got = json.loads(child.stdout.splitlines()[-1])
        rate, per_cpu = rows / got["seconds"], rows / got["cpu"]
        passed = rate >= PLAN_TARGETS[prompt]
        ok = ok and passed
        print(f"plan ({prompt} prompt): {rows:,} rows in {got['seconds']:.1f}s, {rate:,.0f} "
              f"rows/s ({per_cpu:,.0f} per CPU-second; before issue 15: "
              f"{PLAN_BEFORE[prompt]:,} per CPU-second; a72c1cf, quiet: "
              f"{PLAN_PREVIOUS[prompt]:,} rows/s), peak RSS {got['peak']:.1f} MB")
        print(f"  VERDICT planning at least {PLAN_TARGETS[prompt]:,} rows/s: "
              f"{'PASS' if passed else 'FAIL'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    """Run the measurements and print their verdicts; exit 1 if one fails."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="input rows (default 1M)")
    parser.add_argument("--resume-rows", type=int,
                        help="rows of the resumed job (default: --rows)")
    parser.add_argument("--plan-child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--instructions", action="store_true",
                        help="with --only plan: count instructions under callgrind instead")
    parser.add_argument("--cache", action="store_true",
                        help="with --only plan: at temperature 0 (response cache keys hashed)")
    parser.add_argument("--k", type=int, default=1,
                        help="with --only plan: k samples a row, one request each (default 1)")
    parser.add_argument("--only", choices=["full", "resume", "batch", "plan"],
                        help="one measurement only (batch: the online job too, to compare)")
    parser.add_argument("--workdir", type=Path, help="keep files here (default: a temp dir)")
    args = parser.parse_args(argv)
    compile_package()  # the children run it as an installed copy does
    if args.plan_child:
        prompt, input_path, output = args.plan_child
        plan_child(prompt, Path(input_path), Path(output), args.cache, args.k)
        return 0
    print(f"scale benchmark: {args.rows:,} rows, Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}", flush=True)
    with contextlib.ExitStack() as stack:
        folder = args.workdir or Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="pm-scale-")))
        folder.mkdir(parents=True, exist_ok=True)
        ok = True
        online: FullRun | None = None
        if args.only in (None, "full"):
            input_path = folder / "input.jsonl"
            write_input(input_path, args.rows)
            online = run_full(args.rows, folder, input_path)
            ok = judge_full(args.rows, online) and ok
        if args.only in (None, "resume"):
            ok = run_resume(args.resume_rows or args.rows, folder) and ok
        if args.only == "plan":  # on request only: the CI's run has its four verdicts
            ok = run_plan(args.rows, folder, args.instructions, args.cache, args.k) and ok
        if args.only in (None, "batch"):
            input_path = folder / "input.jsonl"
            if not input_path.exists():
                write_input(input_path, args.rows)
            online = online or run_full(args.rows, folder, input_path)
            batch = run_full(args.rows, folder, input_path, "batch")
            ok = judge_batch(args.rows, batch, online) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
