"""orjson on the dispatch path: what is stored and exported is what json gave before."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

import promptmill
from promptmill import fastjson
from promptmill.generators import register_generator
from promptmill.generators.base import GenerationResult
from promptmill.generators.openai_ import HTTPGenerator
from promptmill.testing import TestServer


def test_loads_reads_what_json_reads() -> None:
    assert math.isnan(fastjson.loads(b'{"x": NaN}')["x"])  # orjson refuses the literal
    assert fastjson.loads(b'[-Infinity]') == [-math.inf]
    assert fastjson.loads(b'{"usage": {"prompt_tokens": 12}}') == {"usage": {"prompt_tokens": 12}}
    assert fastjson.loads('"\\ud800"') == "\ud800"  # a lone surrogate, escaped
    with pytest.raises(ValueError):
        fastjson.loads(b"<html>not json</html>")


@pytest.mark.parametrize("value", [
    [{"text": "caf\u00e9 \u4e16\u754c \U0001f600", "finish_reason": "stop"}],
    [{"text": "lone \ud800 surrogate", "finish_reason": None}],  # orjson refuses it
    {"seed": 2 ** 70, "messages": []},  # past 64 bits
])
def test_dumps_writes_what_json_reads_back(value: object) -> None:
    assert json.loads(fastjson.dumps_text(value)) == value
    assert json.loads(fastjson.dumps(value)) == value


def test_answers_stored_as_before(tmp_path: Path, make_server, recorder) -> None:  # type: ignore[no-untyped-def]
    texts = ["caf\u00e9 \U0001f600", "plain", 'quote " and \\ slash', "line\nbreak\ttab"]
    server: TestServer = make_server(responder=recorder(lambda body: texts[int(
        body["messages"][0]["content"])]))
    out = tmp_path / "out.jsonl"
    results = promptmill.run([{"prompt": str(i)} for i in range(len(texts))],
                             f"http!test-model,api_base={server.url}", output=out)
    assert [r["responses"][0]["text"] for r in results] == texts
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["responses"][0]["text"] for line in lines] == texts


class NegativeInfinityLogprobs(HTTPGenerator):
    """http!, each answer's one token given a logprob of -inf (as engines report a token
    they could not have sampled)."""

    provider = "neg-inf-logprobs"

    def _result(self, request: Any, status: int, raw: bytes, headers: Any,
                url: str) -> GenerationResult:
        result = super()._result(request, status, raw, headers, url)
        for response in result.responses:
            response.logprobs = [{"token": "x", "logprob": -math.inf, "top_logprobs": []}]
        return result


def test_infinite_logprobs_are_kept(tmp_path: Path, server: TestServer) -> None:
    # orjson would write -inf as null: the stored answer must keep what json keeps.
    register_generator("neg-inf-logprobs", NegativeInfinityLogprobs)
    out = tmp_path / "out.jsonl"
    promptmill.run([{"prompt": "a"}, {"prompt": "b"}],
                   f"neg-inf-logprobs!test-model,api_base={server.url}", output=out)
    for line in out.read_text(encoding="utf-8").splitlines():
        assert json.loads(line)["responses"][0]["logprobs"][0]["logprob"] == -math.inf
