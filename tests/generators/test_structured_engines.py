"""Structured output on the in-process engines: llama.cpp's grammar on the embedded SmolLM2
(``local``), xgrammar's logits processor on transformers (``hf``). vLLM's structured outputs
are tested with its other jobs (test_vllm.py), on one engine load."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from promptmill.api import execute
from promptmill.engine.dispatch import EngineConfig
from promptmill.engine.retry import RetryPolicy
from promptmill.job import JobSpec
from promptmill.structured import response_format_for

SCHEMA = {"type": "object",
          "properties": {"city": {"type": "string", "maxLength": 12},
                         "population": {"type": "integer", "minimum": 0, "maximum": 99}},
          "required": ["city", "population"], "additionalProperties": False}


def _job(tmp_path: Path, generator: Any, rows: int, k: int, params: dict[str, Any],
         attempts: int) -> tuple[list[dict[str, Any]], Any]:
    from promptmill.params import make_params

    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"question": f"Name city number {i} and its "
                                          "population, as JSON."}) + "\n" for i in range(rows)))
    spec = JobSpec(input=source, output=tmp_path / "out.jsonl", generator=generator, k=k,
                   params=make_params({**params,
                                       "response_format": response_format_for(SCHEMA)}))
    outcome = asyncio.run(execute(spec, EngineConfig(retry=RetryPolicy(max_attempts=attempts))))
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    return lines, outcome.stats


def _check(rows: list[dict[str, Any]], stats: Any) -> int:
    """Every done row's answers validate; returns the invalid answers the job counted."""
    done = [row for row in rows if row["status"] == "done"]
    assert done, [row["error"] for row in rows]
    for row in done:
        for response in row["responses"]:
            jsonschema.validate(response["json"], SCHEMA)
    for row in rows:
        if row["status"] == "failed":
            assert "not valid JSON" in row["error"] or "does not match" in row["error"]
    # Each invalid answer cost one attempt: retried ones are counted as retries, and a
    # failed row's last one ended it.
    invalid = stats.retries["invalid_output"] + sum(r["status"] == "failed" for r in rows)
    assert invalid == sum(row["attempts"] for row in rows) - len(done)
    return invalid


@pytest.mark.local
def test_llamacpp_grammar_on_the_embedded_model(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    from promptmill.api import make_generator

    # max_tokens this short cuts some answers off mid-JSON: those are retried with another
    # seed; what is kept is valid.
    rows, stats = _job(tmp_path, make_generator(None), rows=2, k=1,
                       params={"max_tokens": 20, "temperature": 0.8, "seed": 0}, attempts=3)
    invalid = _check(rows, stats)
    assert invalid >= 1, "no answer was cut off: the retry path was not exercised"


@pytest.mark.hf
def test_transformers_xgrammar_makes_a_random_model_write_valid_json(
        tmp_path: Path, tiny_model: Path) -> None:
    pytest.importorskip("xgrammar")
    from promptmill.generators import get_generator

    generator = get_generator(f"transformers!{tiny_model},batch_size=4")
    rows, stats = _job(tmp_path, generator, rows=4, k=2,
                       params={"max_tokens": 48, "temperature": 1.0, "seed": 5}, attempts=2)
    assert _check(rows, stats) == 0
    assert all(row["status"] == "done" for row in rows)
