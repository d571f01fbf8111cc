"""Start-up: how long ``promptmill --help``, ``status`` and ``export`` take, and what they import.

Each command runs in a fresh interpreter, as a user's shell runs it (``python -m promptmill``),
``--repeat`` times, interleaved; printed: the median wall time of each, and the packages each
one imported (``python -X importtime``: each module's own time, summed by package), heaviest
first. ``status`` and ``export`` read a small job run first against the test server.
``--src`` times another checkout's ``src`` too (a before/after on the same machine).

    python benchmarks/startup.py
    python benchmarks/startup.py --repeat 21 --src /path/to/other/checkout/src
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from as_installed import compile_package

from promptmill.testing import serve_in_process

TARGET_HELP_S = 0.15  # issue 15: `promptmill --help` start-up


def command(args: list[str], src: str | None, cwd: Path, importtime: bool = False
            ) -> subprocess.CompletedProcess[str]:
    """``python -m promptmill ARGS`` in a fresh interpreter (``src`` first on the path)."""
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    flags = ["-X", "importtime"] if importtime else []
    return subprocess.run([sys.executable, *flags, "-m", "promptmill", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, check=False)


def heaviest(stderr: str, count: int = 8) -> list[tuple[str, float]]:
    """The packages an importtime log spent most in: each module's own time (ms), summed by
    its top-level package."""
    totals: dict[str, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        own, _, name = line.split(":", 1)[1].split("|")
        if not own.strip().isdigit():
            continue  # the header
        top = name.strip().split(".")[0]
        totals[top] = totals.get(top, 0.0) + int(own) / 1000
    return sorted(totals.items(), key=lambda item: -item[1])[:count]


def main(argv: list[str] | None = None) -> int:
    """Time the commands and print medians, the verdict and the heaviest imports."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=11, help="runs of each (default 11)")
    parser.add_argument("--src", help="also time this checkout's src, interleaved")
    args = parser.parse_args(argv)
    compile_package(args.src)  # the children run it as an installed copy does
    print(f"start-up: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.2f}, {args.repeat} runs each, interleaved")
    with tempfile.TemporaryDirectory(prefix="pm-startup-") as folder, \
            serve_in_process() as server:
        cwd = Path(folder)
        (cwd / "in.jsonl").write_text("".join(json.dumps({"prompt": f"q {i}"}) + "\n"
                                              for i in range(50)))
        done = command(["run", "in.jsonl", "-o", "out.jsonl", "-q", "-m",
                        f"http!test-model,api_base={server.url}"], None, cwd)
        if done.returncode != 0:
            sys.exit(f"the job failed: {done.stderr[-2000:]}")
        commands = {"--help": ["--help"], "status": ["status", "out.jsonl"],
                    "export": ["export", "out.jsonl", "--to", "again.jsonl"]}
        trees = {"this checkout": None, **({"--src": args.src} if args.src else {})}
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.repeat):
            for tree, src in trees.items():
                for name, words in commands.items():
                    start = time.perf_counter()
                    result = command(words, src, cwd)
                    times.setdefault((tree, name), []).append(time.perf_counter() - start)
                    if result.returncode != 0:
                        sys.exit(f"{name} failed: {result.stderr[-2000:]}")
        ok = True
        for (tree, name), values in times.items():
            median = statistics.median(values)
            verdict = ""
            if name == "--help" and tree == "this checkout":
                ok = median <= TARGET_HELP_S
                verdict = (f" (target <= {TARGET_HELP_S} s) "
                           f"{'PASS' if ok else 'FAIL'}")
            print(f"  {tree:14s} promptmill {name:8s} median {median:.3f} s "
                  f"(min {min(values):.3f}){verdict}")
        for tree, src in trees.items():
            for name, words in commands.items():
                log = command(words, src, cwd, importtime=True).stderr
                top = ", ".join(f"{package} {ms:.0f}" for package, ms in heaviest(log))
                print(f"  {tree:14s} {name:8s} imports (ms): {top}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
