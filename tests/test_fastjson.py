"""orjson on the dispatch path: what is stored and exported is what json gave before."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import promptmill
from promptmill import fastjson
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
