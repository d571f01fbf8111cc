"""A whole local job through promptmill next to a plain llama-cpp-python script, same prompts.

Both sides answer the chat prompts that examples/question.jinja makes of
examples/questions.jsonl, on the same GGUF file with the same n_ctx, threads, seed,
max_tokens and greedy decoding, and both are timed from nothing to the answers on disk:

- promptmill: ``promptmill.api.execute`` with a fresh job store, as ``promptmill run`` runs
  it: open the store, plan (read, render, record every request), load the model, dispatch,
  record each answer in its transaction, export the JSONL;
- plain: the script a user would write instead: load the model with ``llama_cpp.Llama``,
  ``create_chat_completion`` for each prompt, write the answers as JSONL.

They run in this process one after the other (alternating, best of --repeat); wall-clock
and CPU time each keep their best. Printed: both sides, the ratio (target >= 0.95, VERDICT)
and whether the answers are identical::

    python benchmarks/local.py --threads 1            # the embedded SmolLM2-135M model
    python benchmarks/local.py --model x.gguf --max-tokens 128 --repeat 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import llama_cpp

from promptmill import get_generator
from promptmill.api import execute
from promptmill.engine.dispatch import EngineConfig
from promptmill.generators.embedded import embedded_model_path
from promptmill.generators.llamacpp_ import default_threads
from promptmill.job import JobSpec
from promptmill.params import make_params
from promptmill.prompts.render import PromptSpec

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
Messages = list[dict[str, str]]
TARGET = 0.95  # promptmill's rate / plain llama-cpp-python's


@dataclass
class Settings:
    """What both sides share."""

    model: Path
    n_ctx: int
    threads: int
    max_tokens: int
    seed: int
    options: str = ""  # more llamacpp! options for promptmill's side, ",key=value..."


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


async def run_promptmill(settings: Settings, examples: Path) -> Measurement:
    """The examples as one promptmill job, from an empty folder to the exported answers."""
    with tempfile.TemporaryDirectory(prefix="pm-local-") as folder:
        spec = JobSpec(
            input=examples / "questions.jsonl", output=Path(folder) / "answers.jsonl",
            generator=get_generator(f"llamacpp!{settings.model},n_ctx={settings.n_ctx},"
                                    f"n_threads={settings.threads}{settings.options}"),
            prompts=PromptSpec.build(template=str(examples / "question.jinja")),
            params=make_params({"temperature": 0, "max_tokens": settings.max_tokens,
                                "seed": settings.seed}),
            cache="off",  # the engine's work is measured, not the response cache's
        )
        started, cpu_started = time.perf_counter(), time.process_time()
        outcome = await execute(spec, EngineConfig(), new_job=True)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        if not outcome.complete or outcome.failed:
            raise RuntimeError(f"the job did not complete: {outcome}")
        rows = [json.loads(line) for line in spec.output.read_text().splitlines()]
    texts = [row["responses"][0]["text"] for row in rows]
    prompt_tokens = sum(row["usage"]["prompt_tokens"] for row in rows)
    completion_tokens = sum(row["usage"]["completion_tokens"] for row in rows)
    return Measurement(seconds, cpu, prompt_tokens, completion_tokens, texts)


def run_plain(settings: Settings, prompts: list[Messages]) -> Measurement:
    """The plain script: load the model, answer each prompt, write the answers as JSONL."""
    with tempfile.TemporaryDirectory(prefix="pm-local-plain-") as folder:
        started, cpu_started = time.perf_counter(), time.process_time()
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
            with open(Path(folder) / "answers.jsonl", "w", encoding="utf-8") as handle:
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
                    handle.write(json.dumps({"messages": messages, "answer": texts[-1]}) + "\n")
        finally:
            llm.close()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
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


def main() -> int:
    """Parse the options, measure both sides, print the table, the ratio and the verdict."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="GGUF file (default: embedded)")
    parser.add_argument("--examples", type=Path, default=EXAMPLES)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=default_threads())
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a llamacpp! option for promptmill's side (cache_prompt=false)")
    args = parser.parse_args()
    settings = Settings(
        model=args.model or embedded_model_path(),
        n_ctx=args.n_ctx,
        threads=args.threads,
        max_tokens=args.max_tokens,
        seed=args.seed,
        options="".join(f",{option}" for option in args.option),
    )
    prompts = load_prompts(args.examples)
    best = best_of(
        args.repeat,
        {
            "plain llama-cpp-python": lambda: run_plain(settings, prompts),
            "promptmill job": lambda: asyncio.run(run_promptmill(settings, args.examples)),
        },
    )
    print(
        f"{settings.model.name}: {len(prompts)} chat prompts, max_tokens={settings.max_tokens}, "
        f"n_ctx={settings.n_ctx}, threads={settings.threads}{settings.options}, greedy, whole "
        f"job (model load "
        f"to answers on disk), best of {args.repeat}, load {os.getloadavg()[0]:.2f}"
    )
    print(f"{'side':<24}{'prompt tok':>11}{'gen tok':>9}{'seconds':>9}{'gen tok/s':>11}"
          f"{'all tok/s':>11}{'CPU s':>8}{'gen tok/CPU-s':>15}")
    for name, m in best.items():
        print(f"{name:<24}{m.prompt_tokens:>11}{m.completion_tokens:>9}{m.seconds:>9.2f}"
              f"{m.completion_rate:>11.1f}{m.total_rate:>11.1f}{m.cpu_seconds:>8.2f}"
              f"{m.cpu_rate:>15.1f}")
    plain, ours = best["plain llama-cpp-python"], best["promptmill job"]
    same = sum(a == b for a, b in zip(plain.texts, ours.texts, strict=True))
    wall, cpu = plain.seconds / ours.seconds, plain.cpu_seconds / ours.cpu_seconds
    ok = wall >= TARGET or cpu >= TARGET
    print(f"VERDICT promptmill / plain: {wall:.3f} by wall clock, {cpu:.3f} by CPU time "
          f"(target >= {TARGET}); identical answers {same}/{len(prompts)}: "
          f"{'PASS' if ok and same == len(prompts) else 'FAIL'}")
    return 0 if ok and same == len(prompts) else 1


if __name__ == "__main__":
    sys.exit(main())
