"""Export: rows per second and peak memory of `promptmill export` from a finished job's store.

A store with every row done (k=1, one short answer each, built with the store API as
``scale.py`` builds its resume state) is exported by the CLI in a child process, as a user
runs it, to each format; the child's peak resident memory (VmHWM) is read as it ends.
Each format is exported from a store of a tenth of the rows too: the verdict is that a
format streams, i.e. its peak grows by less than 25 MB from a tenth of the rows to all of
them. (The Parquet and Arrow peaks start higher: pyarrow imports pandas, about 55 MB, the
first time it converts Python objects.)

    python benchmarks/export.py                  # 1,000,000 rows
    python benchmarks/export.py --rows 50000     # quick
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scale import build_resume_state, memory_mb, write_input

GROWTH_LIMIT_MB = 25.0
FORMATS = ("jsonl", "parquet", "arrow", "csv")


def export_once(output: Path, fmt: str, folder: Path) -> tuple[float, float, int]:
    """(seconds, peak RSS MB, exit code) of one `promptmill export` child process."""
    command = [sys.executable, "-m", "promptmill", "export", str(output), "--format", fmt,
               "--to", str(folder / f"export.{fmt}")]
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
    return seconds, peak, child.returncode


def build(rows: int, folder: Path) -> Path:
    """A job store of ``rows`` done rows; the job's output path."""
    input_path = folder / "input.jsonl"
    write_input(input_path, rows)
    output = folder / "job.jsonl"
    built = build_resume_state(rows, 0, input_path, output,
                               "http!test-model,api_base=http://127.0.0.1:9/v1")
    print(f"built a store of {rows:,} done rows in {built:.0f}s")
    return output


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    ok = True
    peaks: dict[tuple[str, int], float] = {}
    for rows in (args.rows // 10, args.rows):
        with tempfile.TemporaryDirectory(prefix="promptmill-export-") as scratch:
            output = build(rows, Path(scratch))
            for fmt in FORMATS:
                seconds, peak, code = export_once(output, fmt, Path(scratch))
                peaks[fmt, rows] = peak
                ok = ok and code == 0
                print(f"  {fmt:8} {rows / seconds:>10,.0f} rows/s  ({seconds:5.1f}s, process "
                      f"incl. start-up)  peak RSS {peak:6.1f} MB  exit {code}")
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
