"""Ray's cost and gain: one local-engine job in one process, then on Ray with 1 and 2 replicas.

The same model, prompts and params each time (greedy, ``--max-tokens`` per answer), each run a
fresh job (open, plan, dispatch, export) with the response cache off. The Ray runs use a local
cluster started once (not timed: a real cluster is up before the job) with ``--cpus`` logical
CPUs; each run starts its replicas (loading the model in each) and that is timed, as a user
meets it. Printed per run: wall seconds and requests/s; then the medians and Ray's overhead
(1 replica against one process) and gain (2 replicas against 1).

    python benchmarks/ray.py                          # smollm2, 32 prompts, 3 runs each
    python benchmarks/ray.py --model "transformers!/path/to/model" --rows 64 --repeat 5

Every engine, in one process or in a replica, runs llama.cpp on ``--threads`` threads
(default 1), so that the settings differ only in Ray and in the number of engines: on a 2-core
machine two replicas of one thread each fill it, as one process of two threads would.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import promptmill
from promptmill.ray_ import RayOptions, import_ray


def _questions(path: Path, rows: int) -> Path:
    path.write_text("".join(
        json.dumps({"id": i, "question": f"Write one sentence about the number {i}."}) + "\n"
        for i in range(rows)))
    return path


def _model(base: str, threads: int) -> str:
    if base in ("smollm2",) or base.startswith("llamacpp!"):
        name = base if "!" in base else f"llamacpp!{base}"
        return f"{name},n_threads={threads}"
    return base


def _timed(source: Path, model: str, max_tokens: int, ray: RayOptions | None) -> float:
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        rows = promptmill.run(source, model, output=Path(folder) / "out.jsonl", cache=False,
                              params={"temperature": 0, "max_tokens": max_tokens}, ray=ray)
        elapsed = time.perf_counter() - start
    assert all(row["status"] == "done" for row in rows), "a request failed"
    return elapsed


def main() -> None:
    """Run the three settings and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    cores = os.cpu_count() or 2
    # This file is named ray.py: its folder first on sys.path would shadow the real package,
    # here and in the workers Ray starts with the driver's path.
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    ray = import_ray()
    ray.init(num_cpus=max(args.cpus, 2), include_dashboard=False,
             object_store_memory=128 * 1024 * 1024, logging_level="WARNING")
    results: dict[str, list[float]] = {"one process": [], "ray, 1 replica": [],
                                       "ray, 2 replicas": []}
    with tempfile.TemporaryDirectory() as folder:
        source = _questions(Path(folder) / "q.jsonl", args.rows)
        for run in range(args.repeat):
            for label, replicas in (("one process", 0), ("ray, 1 replica", 1),
                                    ("ray, 2 replicas", 2)):
                options = (RayOptions(replicas=replicas, batch_size=args.batch_size,
                                      cpus_per_replica=max(args.cpus, 2) // 2)
                           if replicas else None)
                seconds = _timed(source, _model(args.model, args.threads), args.max_tokens,
                                 options)
                results[label].append(seconds)
                print(f"run {run + 1} {label:16} {seconds:7.2f} s "
                      f"{args.rows / seconds:7.2f} req/s", flush=True)
    ray.shutdown()
    medians = {label: statistics.median(times) for label, times in results.items()}
    print(f"\n{args.model}, {args.rows} prompts, max_tokens {args.max_tokens}, "
          f"{args.threads} thread(s) an engine, {cores} cores, medians of {args.repeat}:")
    for label, seconds in medians.items():
        print(f"  {label:16} {seconds:7.2f} s  {args.rows / seconds:7.2f} req/s")
    one, single, double = medians.values()
    print(f"Ray overhead, 1 replica vs one process: {single - one:+.2f} s "
          f"({single / one:.2f}x the time)")
    print(f"2 replicas vs 1: {single / double:.2f}x the throughput")


if __name__ == "__main__":
    main()
