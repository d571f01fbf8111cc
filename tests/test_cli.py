"""The command line end to end, over real HTTP against the test server."""

from __future__ import annotations

import csv
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from promptmill.generators.tokens import encoding
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
    write_questions(tmp_path / "q.jsonl", 25)
    model = f"http!m,api_base={server.url}"
    done = promptmill("run", "q.jsonl", "-m", model, "-o", "a.jsonl", "-k", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = read_jsonl(tmp_path / "a.jsonl")
    prompt = sum(row["usage"]["prompt_tokens"] for row in rows)
    completion = sum(row["usage"]["completion_tokens"] for row in rows)
    assert prompt == 25 * 5 and completion > 0  # "What is 7 + 7?": five words, sent once

    status = promptmill("status", "a.jsonl", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert status.stdout.splitlines() == [
        f"job      a.jsonl  ({model})",
        "rows     25",
        "requests 25: 25 done, 0 failed, 0 pending",
        f"attempts 25; tokens {prompt} prompt + {completion} completion",
    ]
    # Each format holds the same rows and values.
    for fmt in ("parquet", "csv"):
        exported = promptmill("export", "a.jsonl", "--format", fmt, cwd=tmp_path)
        assert exported.returncode == 0, exported.stderr
        assert f"wrote 25 rows to a.{fmt}" in exported.stderr
    table = pq.read_table(tmp_path / "a.parquet").to_pylist()
    # Parquet: promptmill's fixed schema, every response with every field.
    assert [list(row) for row in table] == [list(row) for row in rows]
    unset = {"logprobs": None, "prompt_logprobs": None, "json": None, "cached": None}
    assert table == [{**row, "responses": [{**unset, **r} for r in row["responses"]]}
                     for row in rows]
    with open(tmp_path / "a.csv", newline="") as handle:
        records = list(csv.DictReader(handle))
    assert [decoded(record) for record in records] == [
        {key: as_csv_text(value) for key, value in row.items()} for row in rows]


def decoded(row: dict[str, Any]) -> dict[str, Any]:
    """A CSV row with its JSON-text columns parsed back."""
    return {key: json.loads(value) if key in ("responses", "usage") else value
            for key, value in row.items()}


def as_csv_text(value: Any) -> Any:
    """What a JSONL value reads back as from CSV (nested values stay parsed)."""
    if isinstance(value, (list, dict)):
        return value
    return "" if value is None else str(value)


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
    # What the API would count (tiktoken's o200k_base and OpenAI's chat overhead: 3 per
    # message, its role and content, 3 for the reply), once per request (k=2 is n=2).
    enc = encoding("o200k_base")
    prompt = sum(3 + len(enc.encode("user")) + len(enc.encode(f"What is {i} + {i}?")) + 3
                 for i in range(100))
    assert result.stdout.splitlines() == [
        "model      openai!gpt-4o-mini,max_tokens=50",
        "rows       100",
        "requests   100 (k=2, 1 per row)",
        f"tokens     {prompt:,} prompt + up to 10,000 completion",
        f"cost       ${prompt * 0.15 / 1e6:,.4f} prompt + up to $0.0060 completion "
        "(at $0.15/$0.6 per 1M tokens)",
        "nothing was sent (--dry-run)",
    ]
    assert not list(tmp_path.glob("*.promptmill.db"))


def test_help_imports_no_heavy_module_and_no_library() -> None:
    # The engines never load for --help; nor, since issue 15 (--help in 0.15 s), does the
    # library behind the commands: it loads when a command runs.
    code = (
        "import sys\n"
        "from promptmill.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = {'torch', 'vllm', 'transformers', 'llama_cpp', 'litellm', 'ray', 'math_verify'}\n"
        "library = {'aiohttp', 'pydantic', 'jinja2', 'pyarrow', 'rich', 'asyncio', 'sqlite3',\n"
        "           'promptmill.api', 'promptmill.job', 'promptmill.store'}\n"
        "print(sorted((heavy | library) & set(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_run_called_in_process_gives_back_the_garbage_collector(
    tmp_path: Path, server: TestServer
) -> None:
    # `promptmill run` holds collection off while it imports and builds the job; a program
    # that calls main() itself must get it back, after a job and after a refused one.
    import gc

    from promptmill.cli import main

    source = write_questions(tmp_path / "questions.jsonl", 20)
    out = tmp_path / "answers.jsonl"
    command = ["run", str(source), "-m", f"http!test-model,api_base={server.url}", "-o",
               str(out), "--template", "Q: {{ question }}"]
    # It also collects less often while the job runs: the program's thresholds come back.
    thresholds = gc.get_threshold()
    with pytest.raises(SystemExit) as refused:
        main([*command, "--cache", str(tmp_path / "c"), "--no-cache"])
    assert refused.value.code == 2
    assert gc.isenabled()
    assert gc.get_threshold() == thresholds
    main(command)
    assert [row["id"] for row in read_jsonl(out)] == list(range(20))
    assert gc.isenabled()
    assert gc.get_threshold() == thresholds


def test_help_lists_every_command_and_run_lists_its_options() -> None:
    top = promptmill("--help")
    assert top.returncode == 0, top.stderr
    commands = top.stdout.split("Commands:", 1)[1].split()
    for command in ("export", "extract", "run", "status", "testing-server"):
        assert command in commands
    run = promptmill("run", "--help")
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("Usage: promptmill run [OPTIONS] INPUT")
    for option in ("--model", "--output", "--template", "--rpm", "--tpm", "--max-concurrency",
                   "--max-attempts", "--retry-failed", "--new-job", "--dry-run"):
        assert option in run.stdout
    server = promptmill("testing-server", "--help")
    for option in ("--fault-429", "--fault-500", "--fault-502", "--fault-503", "--fault-504",
                   "--fault-reset", "--rpm", "--tpm", "--latency", "--seed"):
        assert option in server.stdout


def test_version_is_the_installed_one() -> None:
    result = promptmill("--version")
    assert result.returncode == 0
    version = importlib.metadata.version("promptmill")
    assert result.stdout.strip() == f"promptmill, version {version}"


@pytest.mark.parametrize(("options", "message"), [
    (["--fault-502", "2"], "Invalid value for '--fault-502': 2.0 is not in the range "
                           "0.0<=x<=1.0."),
    (["--fault-503", "0.7", "--fault-reset", "0.7"], "fault probabilities must sum to at most "
                                                     "1, not service_unavailable 0.7 + reset "
                                                     "0.7 = 1.4"),
])
def test_testing_server_refuses_bad_options_in_one_line(options: list[str],
                                                        message: str) -> None:
    result = promptmill("testing-server", "--port", "0", *options)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == f"Error: {message}"
