"""Export: rows per second and peak memory of `promptmill export` from a finished job's store.

A store with every row done (k=1, one short answer each, built with the store API as
``scale.py`` builds its resume state) is exported by the CLI in a child process, as a user
runs it, to each format; the child's peak resident memory (VmHWM) is read as it ends.
Each format is exported from a store of a tenth of the rows too: the verdict is that a
format streams, i.e. its peak grows by less than 25 MB from a tenth of the rows to all of
them. (The Parquet and Arrow peaks start higher: pyarrow itself, and where a chunk goes
through Python objects, pandas, about 55 MB, which pyarrow imports the first time it converts
them.)

Beside each rate: the child's rate per CPU-second (user + system, which a loaded machine moves
less than the wall clock), and that of the code before issue 15, measured interleaved with it
on the same machine, and the previous quiet rates of the whole process (see
docs/benchmarks.md). Target (issue 15): 300,000 rows/s to JSONL and to Parquet.

    python benchmarks/export.py                  # 1,000,000 rows
    python benchmarks/export.py --rows 50000     # quick
    python benchmarks/export.py --rows 20000 --instructions   # under callgrind

With ``--instructions``: the export alone (the store open, start-up left out) in a child under
callgrind, instructions a row for JSONL and Parquet; the code before issue 15's export half is
measured the same way by running this script with that code first on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import functools
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from as_installed import compile_package
from scale import build_resume_state, memory_mb, write_input

GROWTH_LIMIT_MB = 25.0
FORMATS = ("jsonl", "parquet", "arrow", "csv")
TARGETS = {"jsonl": 300_000, "parquet": 300_000}
# Rows per CPU-second of the export before issue 15 (this script on main at ebcbd20, 200,000
# rows, the child process with its start-up, load 6-7).
BEFORE = {"jsonl": 63_300, "parquet": 41_900}
# Rows per second of the whole process before Parquet and Arrow were read by pyarrow's JSON
# reader (merged main 458df8a, the lead's quiet run, 1,000,000 rows).
PREVIOUS = {"jsonl": 323_520, "parquet": 106_127, "arrow": 118_898, "csv": 50_149}


def children_usage() -> tuple[float, int]:
    """CPU seconds (user + system) and minor page faults of the children waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime, usage.ru_minflt


def export_once(output: Path, fmt: str, folder: Path
                ) -> tuple[float, float, int, float, int]:
    """(seconds, CPU seconds, minor page faults, peak RSS MB, exit code) of one
    `promptmill export` child. Page faults: memory the child was given by the system, freed
    back and given again (a chunk's objects, when chunks are of megabytes) cost kernel time
    that its own instructions do not show."""
    command = [sys.executable, "-m", "promptmill", "export", str(output), "--format", fmt,
               "--to", str(folder / f"export.{fmt}")]
    before = children_usage()
    start = time.monotonic()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0.0
    while child.poll() is None:
        memory = memory_mb(child.pid)
        if memory is not None:
            peak = max(peak, memory[1])
        time.sleep(0.02)
    seconds = time.monotonic() - start
    if child.returncode != 0:
        print(child.stderr.read().decode()[-2000:] if child.stderr else "")
    after = children_usage()
    return seconds, after[0] - before[0], after[1] - before[1], peak, child.returncode


def build(rows: int, folder: Path) -> Path:
    """A job store of ``rows`` done rows; the job's output path."""
    input_path = folder / "input.jsonl"
    write_input(input_path, rows)
    output = folder / "job.jsonl"
    built = build_resume_state(rows, 0, input_path, output,
                               "http!test-model,api_base=http://127.0.0.1:9/v1")
    print(f"built a store of {rows:,} done rows in {built:.0f}s")
    return output


def export_child(output: Path, fmt: str, destination: Path) -> None:
    """Export ``output``'s store to ``destination`` in this process, the export alone inside
    ``functools.reduce`` (a C function only this call uses: under valgrind,
    ``--toggle-collect=functools_reduce`` counts it alone, and ``thread_run`` the threads
    it starts)."""
    try:
        from promptmill.export import export_results
    except ImportError:  # the code before the exporters had a module of their own
        from promptmill.job import export_results  # type: ignore[attr-defined,no-redef]
    from promptmill.store import JobStore, store_path_for

    if fmt != "jsonl":  # imported first: pyarrow (and pandas, at its first conversion) cost
        import pyarrow as pa  # a fixed 70M instructions, which would weigh per row here
        import pyarrow.parquet  # noqa: F401

        pa.RecordBatch.from_pylist([{"a": [{"b": 1}]}])
    with JobStore(store_path_for(output)) as store:
        functools.reduce(lambda _a, _b: export_results(store, destination, fmt), [0, 0])


def count_instructions(rows: int) -> None:
    """Instructions a row of the export alone (pyarrow imported first), JSONL and Parquet,
    each child under callgrind."""
    with tempfile.TemporaryDirectory(prefix="promptmill-export-") as scratch:
        output = build(rows, Path(scratch))
        for fmt in ("jsonl", "parquet"):
            child = subprocess.run(
                # thread_run: the threads the Parquet and Arrow batches are written on
                ["valgrind", "--tool=callgrind", "--toggle-collect=functools_reduce",
                 "--toggle-collect=thread_run",
                 f"--callgrind-out-file={scratch}/export.callgrind", sys.executable, __file__,
                 "--export-child", str(output), fmt, str(Path(scratch) / f"out.{fmt}")],
                capture_output=True, text=True, check=False)
            collected = re.search(r"Collected : (\d+)", child.stderr)
            if child.returncode != 0 or collected is None:
                print(child.stderr[-2000:])
                continue
            print(f"  {fmt:8} {int(collected[1]) / rows:>10,.0f} instructions a row "
                  f"(export alone, {rows:,} rows)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--instructions", action="store_true",
                        help="count the export's instructions a row under callgrind instead")
    parser.add_argument("--export-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export_child:
        output, fmt, destination = args.export_child
        export_child(Path(output), fmt, Path(destination))
        return 0
    compile_package()  # the children run it as an installed copy does
    if args.instructions:
        count_instructions(args.rows)
        return 0
    ok = True
    peaks: dict[tuple[str, int], float] = {}
    for rows in (args.rows // 10, args.rows):
        with tempfile.TemporaryDirectory(prefix="promptmill-export-") as scratch:
            output = build(rows, Path(scratch))
            for fmt in FORMATS:
                seconds, cpu, faults, peak, code = export_once(output, fmt, Path(scratch))
                peaks[fmt, rows] = peak
                ok = ok and code == 0
                before = (f"; before issue 15 {BEFORE[fmt]:,}" if fmt in BEFORE else "") + (
                    f"; 458df8a, quiet: {PREVIOUS[fmt]:,} rows/s")
                print(f"  {fmt:8} {rows / seconds:>10,.0f} rows/s  ({seconds:5.1f}s, process "
                      f"incl. start-up; {rows / cpu:,.0f} per CPU-second{before})  peak RSS "
                      f"{peak:6.1f} MB  {faults:,} page faults  exit {code}")
                if rows == args.rows and fmt in TARGETS:
                    met = rows / seconds >= TARGETS[fmt]
                    print(f"  VERDICT {fmt} export at least {TARGETS[fmt]:,} rows/s: "
                          f"{'PASS' if met else 'FAIL'}")
    for fmt in FORMATS:
        growth = peaks[fmt, args.rows] - peaks[fmt, args.rows // 10]
        streamed = growth < GROWTH_LIMIT_MB
        ok = ok and streamed
        print(f"VERDICT {fmt} streams: peak {peaks[fmt, args.rows]:.1f} MB at {args.rows:,} rows, "
              f"{growth:+.1f} MB over {args.rows // 10:,} rows (limit {GROWTH_LIMIT_MB:.0f}): "
              f"{'PASS' if streamed else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
