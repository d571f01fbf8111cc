"""Bytecode for the promptmill package, as ``pip install`` leaves it, before a benchmark spawns it.

``pip install`` compiles every module it installs; an editable checkout compiles a module the
first time Python imports it, unless ``PYTHONDONTWRITEBYTECODE`` is set (as it is in some
shells and CI images): then every ``promptmill`` process the benchmarks spawn compiles the
whole package again, about 0.1 s of CPU that no installed copy pays (measured 2026-12-01:
0.55 s against 0.44 s for a ten-row ``promptmill run``). Python reads bytecode that is there
even when told not to write it, so compiling once here is enough.
"""

from __future__ import annotations

import compileall
import importlib.util
from pathlib import Path


def compile_package(other_src: str | None = None) -> None:
    """Compile the promptmill package imported here, and ``other_src`` (another checkout's
    ``src``, for a before/after) when given, into their ``__pycache__`` folders."""
    spec = importlib.util.find_spec("promptmill")
    if spec is None or spec.origin is None:
        raise SystemExit("promptmill is not importable here")
    compileall.compile_dir(str(Path(spec.origin).parent), quiet=1)
    if other_src:
        compileall.compile_dir(other_src, quiet=1)
