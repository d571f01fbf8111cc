"""The command line end to end, over real HTTP against the test server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from promptmill.testing import TestServer


def promptmill(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a fresh interpreter."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI")}
    return subprocess.run(
        [sys.executable, "-m", "promptmill", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=300,
    )


def write_questions(path: Path, count: int) -> Path:
    with open(path, "w") as handle:
        for index in range(count):
            row = {"id": index, "question": f"What is {index} + {index}?"}
            handle.write(json.dumps(row) + "\n")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_2000_prompts_k3_land_once_and_rerun_sends_nothing(
    tmp_path: Path, server: TestServer
) -> None:
    source = write_questions(tmp_path / "questions.jsonl", 2000)
    out = tmp_path / "answers.jsonl"
    command = ["run", source, "-m", f"http!test-model,api_base={server.url}", "-o", out,
               "-k", "3", "--template", "Q: {{ question }}", "--param", "max_tokens=16"]
    server.stats.reset()
    first = promptmill(*command)
    assert first.returncode == 0, first.stderr
    rows = read_jsonl(out)
    assert [row["id"] for row in rows] == list(range(2000))
    assert all(len(row["responses"]) == 3 and row["status"] == "done" for row in rows)
    assert all(row["error"] is None and row["attempts"] >= 1 for row in rows)
    # Answers land on the right rows: the test server echoes the prompt.
    assert all(f"What is {row['id']} + {row['id']}?" in row["responses"][0]["text"] for row in rows)
    assert len({r["text"] for r in rows[0]["responses"]}) == 3
    assert rows[0]["model"] == f"http!test-model,api_base={server.url},max_tokens=16"
    assert rows[0]["usage"]["completion_tokens"] > 0
    answered = server.stats.total_completed
    assert answered == 2000

    again = promptmill(*command)
    assert again.returncode == 0, again.stderr
    assert server.stats.total_completed == answered  # nothing sent twice
    assert read_jsonl(out) == rows

    changed = promptmill(*command[:-3], "Question: {{ question }}", *command[-2:])
    assert changed.returncode != 0
    assert "template" in changed.stderr and "Question: {{ question }}" in changed.stderr
    assert len(changed.stderr.strip().splitlines()) == 1
    assert server.stats.total_completed == answered
    assert read_jsonl(out) == rows


def test_status_and_export_formats(tmp_path: Path, server: TestServer) -> None:
    source = write_questions(tmp_path / "q.jsonl", 25)
    out = tmp_path / "a.jsonl"
    done = promptmill("run", source, "-m", f"http!m,api_base={server.url}", "-o", out, "-k", "2")
    assert done.returncode == 0, done.stderr
    status = promptmill("status", out)
    assert status.returncode == 0
    assert "25" in status.stdout and "0 pending" in status.stdout
    for fmt in ("parquet", "csv"):
        exported = promptmill("export", out, "--format", fmt)
        assert exported.returncode == 0, exported.stderr
    table = pq.read_table(tmp_path / "a.parquet").to_pylist()
    assert [row["id"] for row in table] == list(range(25))
    assert len(table[3]["responses"]) == 2 and table[3]["responses"][1]["text"]
    csv_lines = (tmp_path / "a.csv").read_text().splitlines()
    assert len(csv_lines) == 26 and csv_lines[0].startswith("id,question,responses")


def test_csv_input_with_prompt_field_and_limit(tmp_path: Path, server: TestServer) -> None:
    source = tmp_path / "in.csv"
    source.write_text("name,ask\n" + "".join(f"n{i},Say {i}\n" for i in range(10)))
    out = tmp_path / "out.jsonl"
    done = promptmill("run", source, "-m", f"http!m,api_base={server.url}", "-o", out,
                      "--prompt-field", "ask", "--limit", "4", "--system", "Be brief.")
    assert done.returncode == 0, done.stderr
    rows = read_jsonl(out)
    assert [row["name"] for row in rows] == ["n0", "n1", "n2", "n3"]
    # A larger limit extends the same job.
    more = promptmill("run", source, "-m", f"http!m,api_base={server.url}", "-o", out,
                      "--prompt-field", "ask", "--limit", "6", "--system", "Be brief.")
    assert more.returncode == 0, more.stderr
    assert [row["name"] for row in read_jsonl(out)] == [f"n{i}" for i in range(6)]


def test_text_completions_with_logprobs(tmp_path: Path, server: TestServer) -> None:
    source = write_questions(tmp_path / "q.jsonl", 3)
    out = tmp_path / "a.jsonl"
    done = promptmill("run", source, "-m", f"http!m,api_base={server.url}", "-o", out, "--text",
                      "--param", "logprobs=true", "--param", "top_logprobs=2")
    assert done.returncode == 0, done.stderr
    response = read_jsonl(out)[0]["responses"][0]
    assert response["logprobs"] and "logprob" in response["logprobs"][0]


def test_dry_run_counts_and_prices_without_sending(tmp_path: Path) -> None:
    source = write_questions(tmp_path / "q.jsonl", 100)
    result = promptmill("run", source, "-m", "openai!gpt-4o-mini", "-k", "2", "--dry-run",
                        "--param", "max_tokens=50")
    assert result.returncode == 0, result.stderr
    assert "requests   100" in result.stdout
    assert "$" in result.stdout and "nothing was sent" in result.stdout
    assert not list(tmp_path.glob("*.promptmill.db"))


def test_help_imports_no_heavy_module() -> None:
    code = (
        "import sys\n"
        "from promptmill.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = {'torch', 'vllm', 'transformers', 'llama_cpp', 'litellm', 'ray', 'math_verify'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("command", [["--help"], ["run", "--help"], ["--version"]])
def test_entry_points_answer(command: list[str]) -> None:
    assert promptmill(*command).returncode == 0
