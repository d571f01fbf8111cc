"""vllm! and promptmill serve on vLLM's CPU build, with a tiny random-weight Llama.

vLLM's engine spawns processes, so every engine here lives in a child process: a script
that wraps an ``LLM`` it builds (model objects, LoRA, several jobs on one engine), the
``promptmill run`` command (killed with SIGKILL mid-job, then resumed), and a server started
by ``promptmill serve``. Each loads the engine once (about a minute on 2 cores).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.timeout(1200)]

# float32: vLLM's CPU default (bfloat16) makes near-ties among 49k random logits, so the
# greedy token and the top logprob could differ by a rounding.
ENGINE = "max_model_len=256,gpu_memory_utilization=0.3,dtype=float32"
ROWS = 48


@pytest.fixture(scope="module", autouse=True)
def _needs_vllm() -> None:
    pytest.importorskip("vllm")


def write_questions(path: Path, count: int) -> Path:
    path.write_text("".join(
        json.dumps({"id": i, "question": "Tell me " + "more " * (i % 4) + f"about {i}."}) + "\n"
        for i in range(count)))
    return path


def texts(rows: list[dict[str, Any]]) -> list[list[str]]:
    return [[r["text"] for r in row["responses"]] for row in rows]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def promptmill(*args: object, env: dict[str, str], timeout: float = 900
               ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "promptmill", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The module's own state and cache directories: its CLI jobs must generate, not answer
    from a cache another test filled."""
    state = tmp_path_factory.mktemp("state")
    cache = tmp_path_factory.mktemp("vllm-cache")
    return {**os.environ, "PROMPTMILL_STATE_DIR": str(state), "XDG_CACHE_HOME": str(cache)}


OBJECT_SCRIPT = textwrap.dedent('''
    import json, sys
    import promptmill
    from promptmill.generators import from_obj

    def main():
        model, adapter, out = sys.argv[1:4]
        from vllm import LLM
        llm = LLM(model=model, max_model_len=256, gpu_memory_utilization=0.3,
                  dtype="float32", enable_lora=True, max_lora_rank=8)
        rows = [{"id": i, "question": "Tell me " + "more " * (i % 4) + f"about {i}."}
                for i in range(8)]
        greedy = {"temperature": 0, "max_tokens": 8}
        base = from_obj(llm, lora={"tuned": adapter})
        results = {}
        results["base"] = promptmill.run(
            rows + [{"id": 8, "question": "word " * 400}], base, k=2,
            params={**greedy, "logprobs": True, "top_logprobs": 2})
        results["text"] = promptmill.run(rows[:2], base, chat=False, params=greedy)
        results["adapted"] = promptmill.run(rows, from_obj(llm, lora=adapter), params=greedy)
        mixed = [dict(row, adapter="tuned" if row["id"] % 2 else "") for row in rows]
        results["mixed"] = promptmill.run(mixed, base, params=greedy, adapter_field="adapter")
        results["again"] = promptmill.run(rows, base, params=greedy)
        # Structured output: a random-weight model writes JSON only under vLLM's constraint.
        schema = {"type": "object", "properties": {"ok": {"type": "boolean"}, "label": {
            "enum": ["red", "green", "blue"]}, "n": {"type": "integer", "minimum": 0,
            "maximum": 99}}, "required": ["ok", "label", "n"], "additionalProperties": False}
        sampled = {"temperature": 1.0, "seed": 3, "max_tokens": 48}
        results["schema"] = schema
        results["structured"] = promptmill.run(rows, from_obj(llm), k=2, schema=schema,
                                               params=sampled)
        results["free"] = promptmill.run(rows, from_obj(llm), k=2, params=sampled)
        results["loaded_after_jobs"] = base.loaded
        base.unload()
        results["loaded_after_unload"] = base.loaded
        with open(out, "w") as handle:
            json.dump(results, handle)

    if __name__ == "__main__":
        main()
''')


@pytest.fixture(scope="module")
def object_jobs(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path,
                tiny_adapter: Path, env: dict[str, str]) -> dict[str, Any]:
    """Several jobs on one vllm.LLM the script built itself, wrapped with from_obj."""
    folder = tmp_path_factory.mktemp("vllm-object")
    script = folder / "jobs.py"
    script.write_text(OBJECT_SCRIPT)
    out = folder / "results.json"
    done = subprocess.run([sys.executable, script, tiny_model, tiny_adapter, out],
                          capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    results: dict[str, Any] = json.loads(out.read_text())
    return results


def test_vllm_job_schema_k_logprobs_and_an_over_long_row(object_jobs: dict[str, Any]) -> None:
    rows = object_jobs["base"]
    assert [row["id"] for row in rows] == list(range(9))
    for row in rows[:8]:
        assert row["status"] == "done", row["error"]
        assert len(row["responses"]) == 2 and row["responses"][0] == row["responses"][1]
        first = row["responses"][0]
        assert set(first) == {"text", "finish_reason", "logprobs"}
        assert first["finish_reason"] == "length" and len(first["logprobs"]) == 8
        assert all(len(e["top_logprobs"]) == 2 and e["top_logprobs"][0]["token"] == e["token"]
                   for e in first["logprobs"])
        assert row["usage"]["completion_tokens"] == 16 and row["model"].startswith("vllm!")
    assert rows[8]["status"] == "failed" and "maximum context length" in rows[8]["error"]
    assert "truncate=true" in rows[8]["error"]
    assert all(row["status"] == "done" for row in object_jobs["text"])


def test_vllm_structured_output_is_valid_json_only_under_the_constraint(
    object_jobs: dict[str, Any]
) -> None:
    import jsonschema

    schema = object_jobs["schema"]
    for row in object_jobs["structured"]:
        assert row["status"] == "done" and row["attempts"] == 1, row["error"]
        assert len(row["responses"]) == 2
        for response in row["responses"]:
            jsonschema.validate(response["json"], schema)
            assert json.loads(response["text"]) == response["json"]
    # The same sampling without the schema: not one answer is JSON.
    for row in object_jobs["free"]:
        for response in row["responses"]:
            with pytest.raises(ValueError):
                json.loads(response["text"])


def test_vllm_lora_changes_greedy_answers_and_removing_it_restores_them(
    object_jobs: dict[str, Any]
) -> None:
    base = [answers[:1] for answers in texts(object_jobs["base"][:8])]
    adapted = texts(object_jobs["adapted"])
    assert all(a != b for a, b in zip(adapted, base, strict=True))
    assert texts(object_jobs["again"]) == base
    # Rows naming the adapter get its answers; the others the base model's.
    assert texts(object_jobs["mixed"]) == [adapted[i] if i % 2 else base[i] for i in range(8)]


def test_wrapped_llm_stays_loaded_until_unload(object_jobs: dict[str, Any]) -> None:
    assert object_jobs["loaded_after_jobs"] is True
    assert object_jobs["loaded_after_unload"] is False


def done_responses(store: Path) -> dict[int, str]:
    try:
        db = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5)
        try:
            return dict(db.execute(
                "SELECT id, responses FROM requests WHERE status='done'").fetchall())
        finally:
            db.close()
    except sqlite3.Error:
        return {}


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path,
                       env: dict[str, str]) -> dict[str, Any]:
    """A vllm! CLI job killed with SIGKILL inside its second commit of answers, then rerun.

    The crash suite's failpoint pauses the job inside that transaction, so the kill lands
    mid-job however fast the machine generates (polling the store raced a fast machine).
    """
    sys.path.insert(0, str(Path(__file__).parents[1] / "robustness"))
    from robustness_helpers import FAILPOINTS

    folder = tmp_path_factory.mktemp("vllm-kill")
    (folder / "sitecustomize.py").write_text(FAILPOINTS)
    mark = folder / "failpoint.json"
    source = write_questions(folder / "q.jsonl", ROWS)
    out = folder / "a.jsonl"
    store = folder / "a.jsonl.promptmill.db"
    # max_num_seqs=2: the engine answers two at a time, so answers come in several commits.
    args = ["run", source, "-o", out, "-m", f"vllm!{tiny_model},{ENGINE},max_num_seqs=2",
            "--param", "temperature=0", "--param", "max_tokens=16", "--param", "logprobs=true",
            "--param", "prompt_logprobs=1"]
    paused = {**env, "PROMPTMILL_FAILPOINT": "answers:2", "PROMPTMILL_FAILPOINT_MARK": str(mark),
              "PYTHONPATH": os.pathsep.join(filter(None, [str(folder),
                                                          env.get("PYTHONPATH")]))}
    log = folder / "killed.log"
    with open(log, "w") as output:
        # A session of its own: vLLM's engine process outlives a job killed with SIGKILL (it
        # is not told), and holds its memory; the test cleans it up through the group.
        child = subprocess.Popen([sys.executable, "-m", "promptmill", *map(str, args)],
                                 env=paused, stdout=output, stderr=output,
                                 start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not mark.exists() and time.monotonic() < deadline:
            assert child.poll() is None, "the job ended before its second commit:\n" + (
                log.read_text()[-3000:])
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
    before = done_responses(store)
    resumed = promptmill(*args, env=env)
    return {"before": before, "resumed": resumed, "rows": read_jsonl(out) if out.exists()
            else [], "source": source, "mark": json.loads(mark.read_text())}


def test_sigkill_then_rerun_keeps_every_row_exactly_once(
    killed_and_resumed: dict[str, Any]
) -> None:
    before, resumed = killed_and_resumed["before"], killed_and_resumed["resumed"]
    # The first commit's answers are stored; the paused second one's are lost with the kill.
    assert 1 <= len(before) < killed_and_resumed["mark"]["visible"] <= ROWS
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rows = killed_and_resumed["rows"]
    assert [row["id"] for row in rows] == list(range(ROWS))
    assert all(row["status"] == "done" and len(row["responses"]) == 1 for row in rows)
    for request_id, responses in before.items():  # answered before the kill: kept as it was
        assert rows[request_id]["responses"] == json.loads(responses)
        assert rows[request_id]["attempts"] == 1


def test_prompt_logprobs_are_kept_when_asked(killed_and_resumed: dict[str, Any]) -> None:
    row = killed_and_resumed["rows"][0]
    prompt_logprobs = row["responses"][0]["prompt_logprobs"]
    assert prompt_logprobs[0] is None  # the first prompt token has no logprob
    assert len(prompt_logprobs) == row["usage"]["prompt_tokens"]
    assert all(entry["logprob"] <= 0 and len(entry["top_logprobs"]) == 1
               for entry in prompt_logprobs[1:])


def test_served_model_answers_as_vllm_in_process_and_transformers_shares_the_schema(
    killed_and_resumed: dict[str, Any], tiny_model: Path, env: dict[str, str],
    tmp_path: Path
) -> None:
    port = 18000 + os.getpid() % 1000
    started = promptmill("serve", tiny_model, "--port", port, "--max-model-len", 256,
                         "--gpu-memory-utilization", 0.3, "--engine-arg=--dtype",
                         "--engine-arg=float32", "--timeout", 600, env=env)
    assert started.returncode == 0, started.stderr[-3000:]
    try:
        identifier = started.stdout.strip()
        assert identifier == f"http!{tiny_model},api_base=http://127.0.0.1:{port}/v1"
        listed = promptmill("serve", "--list", env=env)
        assert f"{port}\trunning" in listed.stdout and "vllm" in listed.stdout
        out = tmp_path / "served.jsonl"
        done = promptmill("run", killed_and_resumed["source"], "-o", out, "-m", identifier,
                          "--param", "temperature=0", "--param", "max_tokens=16",
                          "--param", "logprobs=true", env=env)
        assert done.returncode == 0, done.stderr[-3000:]
    finally:
        stopped = promptmill("serve", "--stop", port, env=env)
    assert stopped.returncode == 0 and f"port {port}" in stopped.stderr
    assert "no servers" in promptmill("serve", "--list", env=env).stderr
    hf_out = tmp_path / "transformers.jsonl"
    hf = promptmill("run", killed_and_resumed["source"], "-o", hf_out, "-m",
                    f"transformers!{tiny_model}", "--param", "temperature=0",
                    "--param", "max_tokens=16", "--param", "logprobs=true", env=env)
    assert hf.returncode == 0, hf.stderr[-3000:]
    served, by_hf = read_jsonl(out), read_jsonl(hf_out)
    in_process = killed_and_resumed["rows"]
    assert texts(served) == texts(in_process)  # greedy agrees
    for a, b, c in zip(served, in_process, by_hf, strict=True):
        assert set(a) == set(b) == set(c)  # one output schema
        assert set(a["responses"][0]) == set(c["responses"][0]) == {
            "text", "finish_reason", "logprobs"}
        assert len(a["responses"][0]["logprobs"]) == len(b["responses"][0]["logprobs"]) == \
            len(c["responses"][0]["logprobs"])
        assert a["usage"] == b["usage"] == c["usage"]
