"""Local engines: promptmill's vllm! and transformers! jobs against the plain library calls.

Two comparisons on the same prompts, the same model and the same sampling (greedy, a fixed
number of generated tokens: ``ignore_eos`` / ``min_new_tokens``):

- ``vllm``: a promptmill ``vllm!`` job (plan, dispatch, record every result, export) against
  one plain ``vllm.LLM.generate`` call over every prompt, on one engine built once (the job
  wraps it with ``from_obj``). Figure: generated tokens/s of the job's dispatch phase (the
  engine's work, every result committed; as ``benchmarks/dispatch.py`` counts) and of the
  whole job (planning and export added), and the ratio (target >= 0.97).
- ``transformers``: a promptmill ``transformers!`` job (batched, length-sorted) against a
  plain loop calling ``model.generate`` one prompt at a time. Target: >= 5x.

The model is promptmill.testing's tiny random-weight Llama (SmolLM2 tokenizer, head size
64) unless ``--model`` names another Hugging Face folder. Each run is printed; then medians.

    python benchmarks/local_engines.py                        # both, 3 runs each
    python benchmarks/local_engines.py --engine transformers --prompts 128 --repeat 5
    python benchmarks/local_engines.py --model /models/llama-1b --device cuda
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from promptmill.api import execute
from promptmill.engine.dispatch import EngineConfig, EngineStats
from promptmill.generators import from_obj, get_generator
from promptmill.generators.base import Generator
from promptmill.job import JobSpec
from promptmill.params import make_params
from promptmill.prompts.render import PromptSpec

TARGETS = {"vllm": 0.97, "transformers": 5.0}


def prompts_for(count: int) -> list[str]:
    """``count`` distinct prompts of a few lengths."""
    return [f"Question {i}: " + "tell me more, " * (i % 7) + f"what follows {i}?"
            for i in range(count)]


def timed_job(prompts: list[str], generator: Generator, params: dict[str, Any]
              ) -> tuple[int, float, float]:
    """A promptmill job over ``prompts`` (text); (generated tokens, dispatch s, total s)."""
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "in.jsonl"
        source.write_text("".join(json.dumps({"id": i, "prompt": p}) + "\n"
                                  for i, p in enumerate(prompts)))
        spec = JobSpec(input=source, output=Path(folder) / "out.jsonl", generator=generator,
                       prompts=PromptSpec(chat=False), params=make_params(params),
                       cache="off")  # greedy: the response cache would answer repeats
        holder: list[EngineStats] = []
        start = time.perf_counter()
        outcome = asyncio.run(execute(spec, EngineConfig(), on_start=holder.append))
        total = time.perf_counter() - start
    stats = holder[0]
    if not outcome.complete or outcome.failed or stats.finished_at is None:
        raise SystemExit(f"benchmark job failed: {outcome.first_failure}")
    return stats.completion_tokens, stats.finished_at - stats.started_at, total


def run_vllm(model: Path, prompts: list[str], max_tokens: int, repeat: int,
             options: dict[str, Any]) -> list[tuple[float, float]]:
    """(plain tokens/s, promptmill tokens/s) per run, on one engine."""
    from vllm import LLM, SamplingParams

    llm = LLM(model=str(model), **options)
    plain_params = SamplingParams(temperature=0, max_tokens=max_tokens, ignore_eos=True)
    generator = from_obj(llm)
    params = {"temperature": 0, "max_tokens": max_tokens, "extra.ignore_eos": True}
    llm.generate(prompts[:8], plain_params, use_tqdm=False)  # warm up both paths' kernels
    runs = []
    for run in range(repeat):
        start = time.perf_counter()
        outputs = llm.generate(prompts, plain_params, use_tqdm=False)
        plain_s = time.perf_counter() - start
        plain_tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
        job_tokens, dispatch_s, job_s = timed_job(prompts, generator, params)
        plain, job = plain_tokens / plain_s, job_tokens / dispatch_s
        print(f"vllm run {run + 1}: plain {plain:,.0f} tok/s ({plain_tokens} in {plain_s:.1f}s)"
              f"  promptmill dispatch {job:,.0f} tok/s ({job_tokens} in {dispatch_s:.1f}s), "
              f"whole job {job_tokens / job_s:,.0f} tok/s ({job_s:.1f}s)  "
              f"ratio {job / plain:.3f} (whole job {plain_s / job_s:.3f})", flush=True)
        runs.append((plain, job))
    return runs


def run_transformers(model: Path, prompts: list[str], max_tokens: int, repeat: int,
                     batch_size: int, device: str) -> list[tuple[float, float]]:
    """(one-at-a-time tokens/s, promptmill batched tokens/s) per run."""
    import torch

    generator = get_generator(f"transformers!{model},batch_size={batch_size},device={device}")
    generator.load()  # loaded once: the job reuses it, as the plain loop reuses its model
    hf_model, tokenizer = generator.hf_model, generator.tokenizer  # the same weights
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else \
        tokenizer.eos_token_id
    params = {"temperature": 0, "max_tokens": max_tokens, "extra.min_new_tokens": max_tokens}
    runs = []
    for run in range(repeat):
        start = time.perf_counter()
        plain_tokens = 0
        with torch.inference_mode():
            for prompt in prompts:
                encoded = tokenizer(prompt, return_tensors="pt").to(device)
                out = hf_model.generate(**encoded, max_new_tokens=max_tokens,
                                        min_new_tokens=max_tokens, do_sample=False,
                                        pad_token_id=pad)
                plain_tokens += out.shape[1] - encoded["input_ids"].shape[1]
        plain_s = time.perf_counter() - start
        job_tokens, dispatch_s, job_s = timed_job(prompts, generator, params)
        plain, job = plain_tokens / plain_s, job_tokens / job_s
        print(f"transformers run {run + 1}: one at a time {plain:,.0f} tok/s ({plain_tokens} in "
              f"{plain_s:.1f}s)  promptmill batch_size={batch_size} whole job {job:,.0f} tok/s "
              f"({job_tokens} in {job_s:.1f}s)  speed-up {job / plain:.2f}x", flush=True)
        runs.append((plain, job))
    generator.unload()
    return runs


def summary(engine: str, runs: list[tuple[float, float]]) -> None:
    """Medians and the verdict against the target."""
    plain = statistics.median(r[0] for r in runs)
    job = statistics.median(r[1] for r in runs)
    ratio = statistics.median(r[1] / r[0] for r in runs)
    verdict = "meets" if ratio >= TARGETS[engine] else "MISSES"
    print(f"{engine}: median plain {plain:,.0f} tok/s, promptmill {job:,.0f} tok/s, "
          f"median ratio {ratio:.3f} ({verdict} the target {TARGETS[engine]})", flush=True)


def main() -> None:
    """Parse arguments, build the model if needed, run the comparisons."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["both", "vllm", "transformers"], default="both")
    parser.add_argument("--model", type=Path, help="A Hugging Face model folder "
                        "(default: the tiny random Llama, built once in --cache)")
    parser.add_argument("--cache", type=Path,
                        default=Path(tempfile.gettempdir()) / "promptmill-bench-tiny-llama")
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.3,
                        help="vLLM's share of GPU memory (its CPU build: of RAM)")
    args = parser.parse_args()
    model = args.model
    if model is None:
        from promptmill.testing.models import tiny_llama

        model = tiny_llama(args.cache)
    prompts = prompts_for(args.prompts)
    load = os.getloadavg()
    print(f"model {model}; {args.prompts} prompts x {args.max_tokens} tokens; load average "
          f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs", flush=True)
    if args.engine in ("both", "transformers"):
        summary("transformers", run_transformers(model, prompts, args.max_tokens, args.repeat,
                                                 args.batch_size, args.device))
    if args.engine in ("both", "vllm"):
        options = {"max_model_len": 512, "gpu_memory_utilization": args.gpu_memory_utilization,
                   "dtype": "float32", "disable_log_stats": True}
        summary("vllm", run_vllm(model, prompts, args.max_tokens, args.repeat, options))
    print(f"load average at the end {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
