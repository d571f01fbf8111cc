"""tokens/s of promptmill's llamacpp! backend next to plain llama-cpp-python, same prompts.

Both sides run in this process, one after the other (alternating, best of --repeat), on the
same GGUF file with the same n_ctx, threads, seed, max_tokens and greedy decoding, over the
chat prompts that examples/question.jinja makes of examples/questions.jsonl::

    python benchmarks/local.py                 # the embedded SmolLM2-135M model
    python benchmarks/local.py --model x.gguf --max-tokens 128 --repeat 5

The promptmill side is one function, ``run_promptmill``, so it can drive the full engine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import llama_cpp

from promptmill import get_generator
from promptmill.generators.base import GenerationRequest
from promptmill.generators.embedded import embedded_model_path
from promptmill.generators.llamacpp_ import default_threads
from promptmill.params import make_params

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
Messages = list[dict[str, str]]


@dataclass
class Settings:
    """What both sides share."""

    model: Path
    n_ctx: int
    threads: int
    max_tokens: int
    seed: int


@dataclass
class Measurement:
    """One timed pass over every prompt."""

    seconds: float
    cpu_seconds: float
    prompt_tokens: int
    completion_tokens: int
    texts: list[str]

    @property
    def completion_rate(self) -> float:
        """Generated tokens per second of wall time (prompt evaluation included)."""
        return self.completion_tokens / self.seconds

    @property
    def cpu_rate(self) -> float:
        """Generated tokens per CPU second of this process (what other load does not skew)."""
        return self.completion_tokens / self.cpu_seconds

    @property
    def total_rate(self) -> float:
        """Prompt and generated tokens per second of wall time."""
        return (self.prompt_tokens + self.completion_tokens) / self.seconds


def load_prompts(examples: Path) -> list[Messages]:
    """One single-message chat per example row, rendered by the example template."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    template = env.from_string((examples / "question.jinja").read_text())
    rows = [json.loads(line) for line in (examples / "questions.jsonl").read_text().splitlines()]
    return [[{"role": "user", "content": template.render(**row)}] for row in rows]


async def run_promptmill(settings: Settings, prompts: list[Messages]) -> Measurement:
    """The prompts through promptmill's llamacpp! generator, one request per call."""
    generator = get_generator(
        f"llamacpp!{settings.model},n_ctx={settings.n_ctx},n_threads={settings.threads}"
    )
    params = make_params(
        {"temperature": 0, "max_tokens": settings.max_tokens, "seed": settings.seed}
    )
    await generator.start()
    try:
        texts: list[str] = []
        prompt_tokens = completion_tokens = 0
        started, cpu_started = time.perf_counter(), time.process_time()
        for index, messages in enumerate(prompts):
            (result,) = await generator.generate(
                [GenerationRequest(str(index), params, messages=messages)]
            )
            if result.error is not None or result.usage is None:
                raise RuntimeError(f"request {index} failed: {result.error}")
            texts.append(result.responses[0].text)
            prompt_tokens += result.usage.prompt_tokens
            completion_tokens += result.usage.completion_tokens
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    finally:
        await generator.close()
    return Measurement(seconds, cpu, prompt_tokens, completion_tokens, texts)


def run_plain(settings: Settings, prompts: list[Messages]) -> Measurement:
    """The same prompts through llama-cpp-python as its README shows, same settings."""
    llm = llama_cpp.Llama(
        model_path=str(settings.model),
        n_ctx=settings.n_ctx,
        n_threads=settings.threads,
        n_threads_batch=settings.threads,
        verbose=False,
    )
    try:
        texts: list[str] = []
        prompt_tokens = completion_tokens = 0
        started, cpu_started = time.perf_counter(), time.process_time()
        for messages in prompts:
            out: Any = llm.create_chat_completion(
                messages=messages,  # type: ignore[arg-type]
                max_tokens=settings.max_tokens,
                temperature=0,
                seed=settings.seed,
            )
            texts.append(out["choices"][0]["message"]["content"] or "")
            prompt_tokens += out["usage"]["prompt_tokens"]
            completion_tokens += out["usage"]["completion_tokens"]
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    finally:
        llm.close()
    return Measurement(seconds, cpu, prompt_tokens, completion_tokens, texts)


def best_of(repeat: int, sides: dict[str, Callable[[], Measurement]]) -> dict[str, Measurement]:
    """Each side ``repeat`` times, alternating so that load on the machine hits both alike.

    Wall clock and CPU time each keep their own best: a run slowed by another process's load
    says nothing about either side.
    """
    best: dict[str, Measurement] = {}
    for _ in range(repeat):
        for name, run in sides.items():
            measured = run()
            if name in best:
                measured.seconds = min(measured.seconds, best[name].seconds)
                measured.cpu_seconds = min(measured.cpu_seconds, best[name].cpu_seconds)
            best[name] = measured
    return best


def main() -> None:
    """Parse the options, measure both sides, print the table and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="GGUF file (default: embedded)")
    parser.add_argument("--examples", type=Path, default=EXAMPLES)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=default_threads())
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    settings = Settings(
        model=args.model or embedded_model_path(),
        n_ctx=args.n_ctx,
        threads=args.threads,
        max_tokens=args.max_tokens,
        seed=args.seed,
    )
    prompts = load_prompts(args.examples)
    best = best_of(
        args.repeat,
        {
            "llama-cpp-python": lambda: run_plain(settings, prompts),
            "promptmill llamacpp!": lambda: asyncio.run(run_promptmill(settings, prompts)),
        },
    )
    print(
        f"{settings.model.name}: {len(prompts)} chat prompts, max_tokens={settings.max_tokens}, "
        f"n_ctx={settings.n_ctx}, threads={settings.threads}, greedy, best of {args.repeat}"
    )
    print(f"{'side':<22}{'prompt tok':>11}{'gen tok':>9}{'seconds':>9}{'gen tok/s':>11}"
          f"{'all tok/s':>11}{'CPU s':>8}{'gen tok/CPU-s':>15}")
    for name, m in best.items():
        print(f"{name:<22}{m.prompt_tokens:>11}{m.completion_tokens:>9}{m.seconds:>9.2f}"
              f"{m.completion_rate:>11.1f}{m.total_rate:>11.1f}{m.cpu_seconds:>8.2f}"
              f"{m.cpu_rate:>15.1f}")
    plain, ours = best["llama-cpp-python"], best["promptmill llamacpp!"]
    same = sum(a == b for a, b in zip(plain.texts, ours.texts, strict=True))
    print(f"ratio promptmill / plain: {ours.completion_rate / plain.completion_rate:.3f} by wall "
          f"clock, {ours.cpu_rate / plain.cpu_rate:.3f} by CPU time (target >= 0.95); "
          f"identical answers: {same}/{len(prompts)}")


if __name__ == "__main__":
    main()
