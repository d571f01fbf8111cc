"""Scale: a million-row job through the CLI against the zero-latency test server.

Two measurements, each with the test server in its own process and promptmill run as a user
runs it (``python -m promptmill run INPUT -m http!... -o OUT``) in a child process:

1. ``full``: the whole job (plan, dispatch, export). The child's resident memory (VmRSS,
   and VmHWM, the kernel's peak) is sampled every second with the job's progress, read
   from the job store by a read-only connection. Verdicts: peak RSS under 300 MB, and flat
   while sending (after the first tenth of the requests it grows by less than 25 MB).
2. ``resume``: a job whose store has all but 1,000 requests done (built with the store API:
   plan every row, record the results) is run again. Verdict: the first request reaches the
   server within 5 seconds of the child process starting.
3. ``batch``: the same job through the Batch API (``--mode batch --wait``: input files of
   50,000 requests uploaded, polled, output files downloaded and recorded, export), the
   child's memory sampled the same way. Verdict: its peak RSS is within 2x of the online
   job's (measured by ``full`` in the same invocation, or run here when ``--only batch``).

    python benchmarks/scale.py                      # 1,000,000 rows (about 25 minutes)
    python benchmarks/scale.py --rows 20000         # quick, for CI
    python benchmarks/scale.py --only resume
    python benchmarks/scale.py --only batch         # online and batch, memory compared
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from promptmill.generators import get_generator
from promptmill.job import Job, JobSpec
from promptmill.store import FinishedRequest, store_path_for
from promptmill.testing import ProcessServer, serve_in_process

PEAK_LIMIT_MB = 300.0
FLAT_LIMIT_MB = 25.0
RESUME_LIMIT_S = 5.0
RESUME_PENDING = 1000
BATCH_RSS_RATIO = 2.0


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
    ok_peak = peak < PEAK_LIMIT_MB and run.returncode == 0
    ok_flat = growth < FLAT_LIMIT_MB and len(sending) >= 2
    print(f"full: {rows:,} rows in {run.seconds:.0f}s (exit {run.returncode}), "
          f"{rows / run.seconds:,.0f} rows/s overall")
    print(f"  VERDICT peak RSS {peak:.1f} MB (limit {PEAK_LIMIT_MB:.0f}): "
          f"{'PASS' if ok_peak else 'FAIL'}")
    print(f"  VERDICT RSS growth while sending {growth:+.1f} MB over {len(sending)} samples "
          f"(limit {FLAT_LIMIT_MB:.0f}): {'PASS' if ok_flat else 'FAIL'}")
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


def run_resume(rows: int, folder: Path, input_path: Path) -> bool:
    """Resume a job with all but RESUME_PENDING done: time to its first request; verdict."""
    pending = min(RESUME_PENDING, max(1, rows // 20))
    output = folder / "resume.jsonl"
    with serve_in_process() as server:
        model = model_for(server)
        built = build_resume_state(rows, pending, input_path, output, model)
        print(f"resume: built a store with {rows - pending:,} of {rows:,} done in {built:.0f}s")
        start = time.monotonic()
        first: float | None = None
        peak = 0.0
        with child_process(cli_command(input_path, output, model),
                           folder / "resume.stderr") as child:
            while child.poll() is None:
                memory = memory_mb(child.pid)
                if memory is not None:
                    peak = max(peak, memory[1])
                if first is None and sum(server.fetch_stats()["received"].values()) > 0:
                    first = time.monotonic() - start
                time.sleep(0.02)
            total = time.monotonic() - start
        served = server.fetch_stats()
    received = sum(served["received"].values())
    ok = first is not None and first < RESUME_LIMIT_S and child.returncode == 0
    ok = ok and received == pending
    shown = f"{first:.2f}s" if first is not None else "never"
    print(f"  resumed: {received:,} requests sent (expected {pending:,}), exit "
          f"{child.returncode}, {total:.1f}s in all, peak RSS {peak:.0f} MB")
    print(f"  VERDICT first request {shown} after the process started "
          f"(limit {RESUME_LIMIT_S:.0f}s): {'PASS' if ok else 'FAIL'}")
    if child.returncode != 0:
        print((folder / "resume.stderr").read_text()[-2000:])
    return ok


def main(argv: list[str] | None = None) -> int:
    """Run the measurements and print their verdicts; exit 1 if one fails."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="input rows (default 1M)")
    parser.add_argument("--only", choices=["full", "resume", "batch"],
                        help="one measurement only (batch: the online job too, to compare)")
    parser.add_argument("--workdir", type=Path, help="keep files here (default: a temp dir)")
    args = parser.parse_args(argv)
    print(f"scale benchmark: {args.rows:,} rows, Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}", flush=True)
    with contextlib.ExitStack() as stack:
        folder = args.workdir or Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="pm-scale-")))
        folder.mkdir(parents=True, exist_ok=True)
        input_path = folder / "input.jsonl"
        write_input(input_path, args.rows)
        ok = True
        online: FullRun | None = None
        if args.only in (None, "full"):
            online = run_full(args.rows, folder, input_path)
            ok = judge_full(args.rows, online) and ok
        if args.only in (None, "resume"):
            ok = run_resume(args.rows, folder, input_path) and ok
        if args.only in (None, "batch"):
            online = online or run_full(args.rows, folder, input_path)
            batch = run_full(args.rows, folder, input_path, "batch")
            ok = judge_batch(args.rows, batch, online) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
