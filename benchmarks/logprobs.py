"""What logprobs cost on a local model: promptmill's llamacpp! against llama-cpp-python's own.

llama-cpp-python gives logprobs only for a ``Llama(logits_all=True)`` (n_ctx x vocabulary
floats kept), and then sorts the whole vocabulary in Python for every token. promptmill's
``llamacpp!`` reads the logits of each sampled position, which llama.cpp computes anyway, and
takes the top-k with numpy. Four sides, the same prompt, greedy, ``--max-tokens`` tokens, one
thread, CPU time of the process per generated token (best of ``--repeat``):

- llama-cpp-python ``create_completion`` without logprobs, and with ``logprobs=--top``
  (``logits_all=True``);
- promptmill's ``llamacpp!`` generator without logprobs, and with ``logprobs=true,
  top_logprobs=--top``.

    python benchmarks/logprobs.py
    python benchmarks/logprobs.py --max-tokens 64 --top 5 --repeat 5
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import llama_cpp

from promptmill import get_generator
from promptmill.generators.base import GenerationRequest
from promptmill.generators.embedded import embedded_model_path
from promptmill.params import make_params

PROMPT = "Once upon a time, in a small village by the sea, there lived"


def plain(llm: llama_cpp.Llama, max_tokens: int, top: int | None) -> Callable[[], int]:
    """llama-cpp-python as its README shows; returns a run that gives the tokens generated."""

    def run() -> int:
        out: Any = llm.create_completion(PROMPT, max_tokens=max_tokens, temperature=0,
                                         logprobs=top)
        if top is not None:
            assert len(out["choices"][0]["logprobs"]["top_logprobs"][0]) == top
        return int(out["usage"]["completion_tokens"])

    return run


def ours(model: Path, n_ctx: int, max_tokens: int, top: int | None) -> Callable[[], int]:
    """promptmill's llamacpp! generator, one request per call."""
    generator = get_generator(f"llamacpp!{model},n_ctx={n_ctx},n_threads=1")
    asyncio.run(generator.start())
    options: dict[str, Any] = {"max_tokens": max_tokens, "temperature": 0}
    if top is not None:
        options.update(logprobs=True, top_logprobs=top)
    request = GenerationRequest("r", make_params(options), prompt=PROMPT)

    def run() -> int:
        (result,) = asyncio.run(generator.generate([request]))
        assert result.error is None and result.usage is not None, result.error
        if top is not None:
            logprobs = result.responses[0].logprobs
            assert logprobs is not None and len(logprobs[0]["top_logprobs"]) == top
        return result.usage.completion_tokens

    return run


def main(argv: list[str] | None = None) -> int:
    """Measure the four sides and print CPU milliseconds per generated token."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="GGUF file (default: the embedded model)")
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    model = args.model or embedded_model_path()
    loaded = [llama_cpp.Llama(model_path=str(model), n_ctx=args.n_ctx, n_threads=1,
                              n_threads_batch=1, logits_all=logits_all, verbose=False)
              for logits_all in (False, True)]
    vocab = loaded[0].n_vocab()
    print(f"{model.name}: {args.max_tokens} tokens greedy, one thread, CPU time per generated "
          f"token, best of {args.repeat}; logits_all keeps n_ctx x vocabulary = {args.n_ctx} x "
          f"{vocab:,} floats = {args.n_ctx * vocab * 4 / 1e6:,.0f} MB")
    sides = {
        "llama-cpp-python": plain(loaded[0], args.max_tokens, None),
        f"llama-cpp-python, logprobs={args.top} (logits_all)": plain(
            loaded[1], args.max_tokens, args.top),
        "promptmill llamacpp!": ours(model, args.n_ctx, args.max_tokens, None),
        f"promptmill llamacpp!, top_logprobs={args.top}": ours(
            model, args.n_ctx, args.max_tokens, args.top),
    }
    best: dict[str, float] = {}
    for _ in range(args.repeat):
        for name, run in sides.items():  # alternating: load hits every side alike
            started = time.process_time()
            tokens = run()
            per_token = (time.process_time() - started) / tokens * 1000
            best[name] = min(best.get(name, per_token), per_token)
    reference = best["llama-cpp-python"]
    for name, cost in best.items():
        print(f"  {name:48s} {cost:6.1f} ms CPU a token  ({cost / reference:.2f} x plain)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
