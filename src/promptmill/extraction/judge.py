"""``--judge MODEL``: a second pass where a model reads the responses the rules are unsure of.

The judge pass is a promptmill job of its own (``promptmill.api.execute``): its input file and
its job store sit in a folder beside the results (``RESULTS.judge/``), named after the judge
model and a digest of what it is asked, so rate limits, retries, resume after a crash and
exactly-once answers are the engine's, and asking the same questions again sends nothing.
The grading prompt is fixed and versioned (``JUDGE_PROMPT_VERSION``): a new wording is a new
version, and so a new job.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptmill.extraction.choice import extract_choice_method, option_letter
from promptmill.extraction.mathanswer import extract_math_method
from promptmill.extraction.options import LETTERS, Options
from promptmill.generators.base import Generator
from promptmill.grading import JudgeRun

JUDGE_PROMPT_VERSION = "judge-v1"
"""Changes whenever the wording below does; reported with every judged grade."""

JUDGE_SYSTEM = (
    "You check exam answers. You never solve the question yourself: you report which answer "
    "a response gave."
)

JUDGE_TEMPLATE = """\
Read the response below to a {{ kind }} question and report the final answer it commits to.

Question:
{{ question }}
{% if options %}
Options:
{{ options }}
{% endif %}
Response{% if cut_off %} (cut off by the length limit){% endif %}:
<<<
{{ response }}
>>>

Rules:
- Take the answer the response finally commits to: if it changes its mind, the last one.
- Options it rejects, hypotheticals and asides do not count.
- If it gives no answer, gives several answers, only wavers between answers, refuses, or stops \
before answering, the answer is NONE.
- Do not correct the response and do not solve the question yourself.

Reply with one line: ANSWER: followed by {% if options %}the option's letter{% else %}the final \
value (LaTeX allowed){% endif %}, or ANSWER: NONE."""

EMBEDDED = "embedded"
"""``--judge embedded``: the embedded default model (SmolLM2 on llama.cpp), as ``run`` uses."""

_REPLY = re.compile(r"answer\s*[:=]\s*(.+)", re.IGNORECASE)
_NONE = re.compile(r"\W*(?:none|no\s+answer|n/?a)\W*", re.IGNORECASE)


@dataclass(frozen=True)
class JudgeOptions:
    """Which model judges, what it is asked about, and how hard the judge job may push."""

    model: str | Generator
    judge_all: bool = False  # every response, not only those the rules are unsure of
    folder: Path | None = None  # where the judge job lives (default: RESULTS.judge/)
    rpm: float | None = None
    tpm: float | None = None
    max_concurrency: int = 16
    max_attempts: int = 4

    def generator(self) -> Generator:
        """The judge model, with greedy decoding and a short reply unless its identifier says
        otherwise; an identifier error or a missing key surfaces here, before any grading."""
        from promptmill.api import make_generator
        from promptmill.params import make_params

        model = None if self.model == EMBEDDED else self.model  # None: the embedded default
        generator = make_generator(model)
        defaults: dict[str, Any] = {}
        if generator.params.temperature is None:
            defaults["temperature"] = 0.0
        if generator.params.max_tokens is None:
            defaults["max_tokens"] = 64
        generator = generator.with_params(make_params(defaults)) if defaults else generator
        generator.check_ready()
        return generator


@dataclass(frozen=True)
class JudgeItem:
    """One response the judge is asked about, and where its grade sits in the report."""

    position: int  # the row's place among the graded rows
    response_index: int
    question: str
    choices: Sequence[Any] | None
    response: str
    truncated: bool

    def row(self) -> dict[str, Any]:
        """The judge job's input row for this response."""
        options = None
        if self.choices:
            options = "\n".join(
                f"{LETTERS[i]}. {choice}" for i, choice in enumerate(self.choices[: len(LETTERS)])
            )
        return {
            "id": f"{self.position}:{self.response_index}",
            "kind": "multiple-choice" if self.choices else "math",
            "question": self.question or "(not given)",
            "options": options,
            "response": self.response if self.response.strip() else "(empty)",
            "cut_off": self.truncated,
        }


Verdict = tuple[str | None, str | None, str | None]
"""The judge's reply, the answer in it (None: it says there is none), and an error."""


@dataclass(frozen=True)
class JudgeOutcome:
    """Every judged response's verdict, by (row position, response index), and the run."""

    answers: dict[tuple[int, int], Verdict]
    summary: JudgeRun


def read_reply(reply: str, choices: Sequence[Any] | None) -> tuple[str | None, bool]:
    """The answer a judge's reply gives (a letter, or math) and whether it gives one at all
    (``ANSWER: NONE`` gives none on purpose: the judge says the response has no answer).
    Without an ``ANSWER:`` line the reply is read as any response is."""
    stated = _REPLY.findall(reply)
    value = stated[-1].strip() if stated else reply.strip()
    if _NONE.fullmatch(value):
        return None, True
    text = f"Answer: {value}" if stated else reply
    if choices:
        index, _ = extract_choice_method(text, choices, False, Options(choices))
        return option_letter(index), index is not None
    answer, _ = extract_math_method(text)
    return answer, answer is not None


def _slug(generator: Generator) -> str:
    """A file-name-safe short name for the judge model (never a key)."""
    name = Path(str(generator.model)).name or str(generator.model)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{generator.provider}-{name}")[:60]


def _write_input(items: Sequence[JudgeItem], folder: Path, slug: str) -> Path:
    """The judge job's input file, named by a digest of its content and the prompt version,
    so the same questions find the same job (and resume it) and new ones a new job."""
    lines = "".join(json.dumps(item.row(), ensure_ascii=False) + "\n" for item in items)
    digest = hashlib.sha256(f"{JUDGE_PROMPT_VERSION}\n{lines}".encode()).hexdigest()[:12]
    path = folder / f"{slug}-{digest}.input.jsonl"
    if not path.exists() or path.read_text(encoding="utf-8") != lines:
        partial = path.with_name(path.name + ".partial")
        partial.write_text(lines, encoding="utf-8")
        os.replace(partial, path)
    return path


def run_judge(items: Sequence[JudgeItem], options: JudgeOptions, beside: Path) -> JudgeOutcome:
    """Ask the judge about ``items`` in a promptmill job kept beside ``beside``."""
    from promptmill.api import execute
    from promptmill.engine.dispatch import EngineConfig
    from promptmill.engine.retry import RetryPolicy
    from promptmill.errors import OutputError
    from promptmill.eventloop import run_async
    from promptmill.export import iter_results
    from promptmill.job import JobSpec
    from promptmill.prompts.render import PromptSpec
    from promptmill.store import JobStore

    generator = options.generator()
    folder = options.folder or beside.with_name(beside.name + ".judge")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"judge folder {folder}: cannot create it ({exc.strerror})") from None
    slug = _slug(generator)
    if not items:
        summary = JudgeRun(generator.to_identifier(), JUDGE_PROMPT_VERSION, "", options.judge_all)
        return JudgeOutcome({}, summary)
    source = _write_input(items, folder, slug)
    output = source.with_name(source.name.replace(".input.jsonl", ".jsonl"))
    spec = JobSpec(
        input=source,
        output=output,
        generator=generator,
        prompts=PromptSpec(template=JUDGE_TEMPLATE, system=JUDGE_SYSTEM),
        id_field="id",
    )
    config = EngineConfig(
        max_concurrency=options.max_concurrency,
        rpm=options.rpm,
        tpm=options.tpm,
        retry=RetryPolicy(max_attempts=options.max_attempts),
    )
    run_async(execute(spec, config))
    by_key = {(item.position, item.response_index): item for item in items}
    answers: dict[tuple[int, int], Verdict] = {}
    with JobStore(spec.store_path) as store:
        for row in iter_results(store):
            position, index = (int(part) for part in str(row["id"]).split(":"))
            item = by_key[(position, index)]
            texts = [r.get("text") for r in row["responses"] if isinstance(r, dict)]
            reply = texts[0] if texts and isinstance(texts[0], str) else None
            if reply is None:
                answers[(position, index)] = (None, None, row.get("error") or "no reply")
                continue
            answer, stated = read_reply(reply, item.choices)
            error = None if stated else "the reply states no answer"
            answers[(position, index)] = (reply, answer, error)
    summary = JudgeRun(generator.to_identifier(), JUDGE_PROMPT_VERSION, str(output),
                       options.judge_all)
    return JudgeOutcome(answers, summary)


__all__ = [
    "EMBEDDED",
    "JUDGE_PROMPT_VERSION",
    "JUDGE_SYSTEM",
    "JUDGE_TEMPLATE",
    "JudgeItem",
    "JudgeOptions",
    "JudgeOutcome",
    "read_reply",
    "run_judge",
]
