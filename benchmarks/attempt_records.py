"""How much the per-attempt records grow a job store, and what writing them costs.

Writes N attempts through ``JobStore.record`` exactly as the dispatcher does (group commits of
256, each with its results' transaction; here the attempts alone, so the growth is theirs),
with sent times spread over an hour, durations of 0.1-30 s and one attempt in ten a failure,
then checkpoints the WAL and compares the file's size with an empty store's.

    python benchmarks/attempt_records.py                 # 1,000,000 attempts
    python benchmarks/attempt_records.py --attempts 200000
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from promptmill.store import JobStore

GROUP = 256  # the dispatcher's flush_size


def size_of(path: Path) -> int:
    """The store's bytes on disk, WAL included."""
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*")
               if not p.name.endswith(".lock"))


def main(argv: list[str] | None = None) -> int:
    """Write the attempts and print bytes per attempt and microseconds per attempt."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attempts", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    rng = random.Random(0)
    offset = time.time() - time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pm-attempts-") as folder:
        path = Path(folder) / "job.promptmill.db"
        with JobStore(path) as store:
            store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            empty = size_of(path)
            start = time.monotonic()
            batch = []
            elapsed = 0.0
            for request_id in range(args.attempts):
                sent = start + request_id * 3600 / args.attempts
                batch.append((request_id, sent, sent + rng.uniform(0.1, 30.0),
                              0 if rng.random() < 0.9 else rng.randint(1, 6)))
                if len(batch) == GROUP:
                    began = time.perf_counter()
                    store.record([], batch, (), offset)
                    elapsed += time.perf_counter() - began
                    batch = []
            if batch:
                store.record([], batch, (), offset)
            store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            grown = size_of(path) - empty
    print(f"attempt records: {args.attempts:,} attempts grow the store by {grown / 1e6:.1f} MB "
          f"({grown / args.attempts:.1f} bytes each); writing them took {elapsed:.2f} s "
          f"({elapsed / args.attempts * 1e6:.2f} us each, group commits of {GROUP}; "
          f"load {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
