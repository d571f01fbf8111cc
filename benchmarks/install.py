"""How long installing llama-cpp-python takes (it compiles llama.cpp), per CMAKE_ARGS.

Each run makes a fresh virtualenv and runs ``pip install --no-cache-dir SPEC`` in it with the
given ``CMAKE_ARGS`` (no cached wheel: pip builds from the sdist), and prints the wall-clock
time and the CPU time of pip and the compilers it ran. The README's portable build, the one
docs/local.md recommends, is the default; ``--cmake-args ""`` is llama.cpp's native default::

    python benchmarks/install.py                                   # the README's flags
    python benchmarks/install.py --cmake-args "-DGGML_NATIVE=OFF"  # with the multimodal lib
    python benchmarks/install.py --cmake-args ""                   # -march=native
    python benchmarks/install.py --spec tabulate                   # a quick check of the script

Several minutes per build on two cores, and it keeps them busy: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

README_CMAKE_ARGS = "-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF"


def default_spec() -> str:
    """llama-cpp-python at the version installed here (what the docs' figures are about)."""
    try:
        return f"llama-cpp-python=={importlib.metadata.version('llama_cpp_python')}"
    except importlib.metadata.PackageNotFoundError:
        return "llama-cpp-python"


def children_cpu() -> float:
    """CPU seconds of every waited-for child process so far (user + system)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    """Time one install and print it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default=default_spec(), help="what to pip install")
    parser.add_argument("--cmake-args", default=README_CMAKE_ARGS,
                        help=f"CMAKE_ARGS (default: the README's, {README_CMAKE_ARGS!r})")
    args = parser.parse_args(argv)
    print(f"install {args.spec} with CMAKE_ARGS={args.cmake_args!r}: Python "
          f"{sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="pm-install-") as folder:
        venv = Path(folder) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        env = {**os.environ, "CMAKE_ARGS": args.cmake_args}
        cpu, started = children_cpu(), time.perf_counter()
        done = subprocess.run([str(venv / "bin" / "pip"), "install", "--no-cache-dir", "-q",
                               args.spec], env=env, capture_output=True, text=True, check=False)
        wall, cpu = time.perf_counter() - started, children_cpu() - cpu
    if done.returncode != 0:
        print(done.stdout[-2000:] + done.stderr[-3000:])
        return 1
    print(f"  {wall:.0f}s wall ({wall / 60:.1f} min), {cpu:.0f}s CPU ({cpu / 60:.1f} min; pip "
          f"and the compilers), load "
          f"{os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
