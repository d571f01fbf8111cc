"""Grading a folder of results files: flat memory and every core (issue 20).

A folder of ``--files`` results files of ``--rows`` rows (``--k`` responses each) is graded as
a user grades it, ``python -m promptmill extract FOLDER -o OUT`` in a child process, which
grades chunks of the files in worker processes. Half the files are promptmill's results,
half seed 002's inference format. Rows are half multiple choice (the labelled responses of
``tests/data``), half math: plain numbers mostly, and ``--verify-share`` of the math
responses are fractions against a decimal gold (random numbers, so no cache answers), which
only math-verify can compare: that is where the CPU goes.

The child and its workers are sampled every 0.1 s from /proc: the peak of each process
(VmHWM), and the peak of their sum (VmRSS added over the tree at one sample). CPU time is
the child's and its workers' (``wait4``), so cores used = CPU seconds / wall seconds.

Runs: the first ``--small`` files, then all of them, with the default workers (one per
core), then the first ``--small`` files with ``--workers 1``. Verdicts: memory flat (the
tree's peak with all files within 1.25x + 20 MB of its peak with the few), and cores used
with the default workers at least 1.6 on a 2-core machine (0.8 x the cores).

    python benchmarks/extract_many.py                          # 50 files x 10,000 rows
    python benchmarks/extract_many.py --files 10 --rows 2000   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from scale import memory_mb

from promptmill.extraction.labelled import read_cases

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
FLAT_RATIO, FLAT_SLACK_MB = 1.25, 20.0
CORES_SHARE = 0.8


def _mcq_pool() -> list[list[dict[str, Any]]]:
    """Labelled multiple-choice responses grouped by question."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for name in ("extraction_cases.jsonl", "extraction_heldout.jsonl"):
        for case in read_cases(DATA / name):
            if case["choices"]:
                groups[case["question"]].append(case)
    return list(groups.values())


def _row(index: int, k: int, rng: random.Random, pool: list[list[dict[str, Any]]],
         verify_share: float, seed_format: bool) -> dict[str, Any]:
    """One results row: multiple choice (even index) or math (odd)."""
    if index % 2 == 0:
        group = pool[rng.randrange(len(pool))]
        picked = [rng.choice(group) for _ in range(k)]
        case = picked[0]
        row: dict[str, Any] = {
            "question": case["question"], "choices": case["choices"],
            "choice_index_correct": "ABCDEFGHIJ".index(case["gold"]),
            "category": case.get("category", "mcq"),
        }
        texts = [c["response"] for c in picked]
    else:
        a, b = rng.randrange(1, 999), rng.randrange(1000, 9999)
        row = {"question": f"What is {a} / {b}?", "choices": None, "category": "math"}
        if rng.random() < verify_share * 2:  # half of the rows are math
            row["answer_correct"] = f"{a / b:.6f}"  # a long decimal: math-verify decides
            texts = [f"Dividing, we get \\boxed{{\\frac{{{a}}}{{{b + rng.choice((0, 0, 1))}}}}}."
                     for _ in range(k)]
        else:
            row["answer_correct"] = str(a + b)
            texts = [f"Adding them: {a} + {b} = {a + b + rng.choice((0, 0, 0, 1))}.\n"
                     f"The answer is {a + b + rng.choice((0, 0, 0, 1))}." for _ in range(k)]
    row["unique_id"] = f"q{index}"
    if seed_format:
        row["problem"] = row.pop("question")
        row["is_mcq"] = bool(row["choices"])
        row["responses"] = [{"full_response": t} for t in texts]
    else:
        row["responses"] = [{"text": t, "finish_reason": "stop"} for t in texts]
        row.update(status="done", attempts=1, error=None,
                   usage={"prompt_tokens": 100, "completion_tokens": 200})
    return row


def write_folder(folder: Path, files: int, rows: int, k: int, verify_share: float,
                 seed: int) -> int:
    """The results files; their total size in bytes."""
    pool = _mcq_pool()
    total = 0
    for number in range(files):
        rng = random.Random(seed * 1000 + number)
        path = folder / f"model_{number:02d}.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            for index in range(rows):
                row = _row(index, k, rng, pool, verify_share, seed_format=number % 2 == 1)
                if number % 2 == 0:
                    row["model"] = f"http!model-{number:02d}"
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        total += path.stat().st_size
    return total


def _tree(pid: int) -> list[int]:
    """A process and its descendants."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children", encoding="ascii") as handle:
                    todo.extend(int(child) for child in handle.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def _cpu_seconds(pid: int) -> float | None:
    """CPU seconds a live process has used (user + system), from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def grade_once(paths: list[Path], out: Path, workers: int | None) -> dict[str, Any]:
    """Grade ``paths`` in a child process; its wall time, CPU time and memory peaks."""
    command = [sys.executable, "-m", "promptmill", "extract", *map(str, paths), "-o", str(out)]
    if workers:
        command += ["--workers", str(workers)]
    started = time.monotonic()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    parent_peak = worker_peak = tree_peak = 0.0
    processes = 1
    worker_cpu: dict[int, float] = {}  # the last reading of each process but the child
    while True:
        pids = _tree(child.pid)
        processes = max(processes, len(pids))
        total = 0.0
        for pid in pids:
            seconds = _cpu_seconds(pid)
            if pid != child.pid and seconds is not None:
                worker_cpu[pid] = seconds
            memory = memory_mb(pid)
            if memory is None:
                continue
            total += memory[0]
            if pid == child.pid:
                parent_peak = max(parent_peak, memory[1])
            else:
                worker_peak = max(worker_peak, memory[1])
        tree_peak = max(tree_peak, total)
        finished, status, usage = os.wait4(child.pid, os.WNOHANG)
        if finished:
            break
        time.sleep(0.1)
    wall = time.monotonic() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        print(child.stderr.read().decode()[-3000:] if child.stderr else "", file=sys.stderr)
        raise SystemExit(f"promptmill extract failed with exit code {code}")
    cpu = usage.ru_utime + usage.ru_stime
    # the workers that graded (the pool's resource tracker uses next to none)
    busy = sorted((s for s in worker_cpu.values() if s >= 1.0), reverse=True)
    return {"wall": wall, "cpu": cpu, "cores": cpu / wall, "parent_mb": parent_peak,
            "worker_mb": worker_peak, "tree_mb": tree_peak, "processes": processes,
            "worker_cpu": busy}


def main() -> int:
    """Write the folder, grade it three ways, print the figures and the verdicts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--k", type=int, default=1)
    parser.add_argument("--small", type=int, default=5, help="files in the smaller runs")
    parser.add_argument("--verify-share", type=float, default=0.05,
                        help="share of responses that only math-verify can compare")
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--folder", type=Path, help="keep the results files here")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    print(f"load average at start: {os.getloadavg()[0]:.2f}; {cores} cores")
    with tempfile.TemporaryDirectory(prefix="promptmill-extract-many-") as scratch:
        folder = args.folder or Path(scratch) / "results"
        folder.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        size = write_folder(folder, args.files, args.rows, args.k, args.verify_share, args.seed)
        print(f"wrote {args.files} files x {args.rows:,} rows x {args.k} responses "
              f"({size / 1e6:,.0f} MB) in {time.monotonic() - started:.0f} s")
        paths = sorted(folder.glob("*.jsonl"))
        runs = [("few", paths[:args.small], None), ("all", paths, None),
                ("few, 1 worker", paths[:args.small], 1)]
        figures = {}
        for name, chosen, workers in runs:
            out = Path(scratch) / f"graded-{len(figures)}"
            figures[name] = run = grade_once(chosen, out, workers)
            responses = len(chosen) * args.rows * args.k
            print(f"{name:>14}: {len(chosen):3} files  {run['wall']:7.1f} s  "
                  f"{responses / run['wall']:8,.0f} responses/s  cores used "
                  f"{run['cores']:.2f}  peak RSS: parent {run['parent_mb']:.0f} MB, "
                  f"largest worker {run['worker_mb']:.0f} MB, all processes together "
                  f"{run['tree_mb']:.0f} MB ({run['processes']:.0f} processes)  "
                  f"CPU s per worker {[round(s) for s in run['worker_cpu']]}  "
                  f"load average {os.getloadavg()[0]:.2f}")
    few, every, single = figures["few"], figures["all"], figures["few, 1 worker"]
    flat = every["tree_mb"] <= few["tree_mb"] * FLAT_RATIO + FLAT_SLACK_MB
    busy = every["cores"] >= CORES_SHARE * cores
    spread = every["worker_cpu"]
    shared = len(spread) >= cores and spread[cores - 1] >= 0.5 * spread[0]
    print(f"VERDICT memory flat: {every['tree_mb']:.0f} MB for {len(paths)} files vs "
          f"{few['tree_mb']:.0f} MB for {args.small} (limit {FLAT_RATIO}x + {FLAT_SLACK_MB:.0f}"
          f" MB): {'PASS' if flat else 'FAIL'}")
    print(f"VERDICT work spread over {cores} workers: CPU seconds {spread} (the {cores}th "
          f"busiest at least half the busiest): {'PASS' if shared else 'FAIL'}")
    print(f"VERDICT every core: {every['cores']:.2f} cores used of {cores} (limit "
          f"{CORES_SHARE * cores:.1f}): {'PASS' if busy else 'FAIL'} at load average "
          f"{os.getloadavg()[0]:.2f} (other work on the machine takes its share of the "
          f"cores); speed-up over one worker on {args.small} files: "
          f"{single['wall'] / few['wall']:.2f}x")
    return 0 if flat and busy and shared else 1


if __name__ == "__main__":
    raise SystemExit(main())
