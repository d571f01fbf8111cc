"""Job files: `run --config job.toml` (the command line wins) and `--save-config`."""

from __future__ import annotations

import json
from pathlib import Path


def test_a_job_file_runs_and_the_command_line_wins(tmp_path: Path, server,
                                                   promptmill_cli) -> None:
    source = tmp_path / "q.jsonl"
    source.write_text("".join(json.dumps({"id": i, "topic": f"t{i}"}) + "\n" for i in range(6)))
    job = tmp_path / "job.toml"
    job.write_text(
        f'input = "{source}"\nmodel = "http!test-model,api_base={server.url}"\n'
        'output = "answers.jsonl"\nk = 2\nlimit = 3\ntemplate = "About {{ topic }}"\n'
        "params = { temperature = 0.5, max_tokens = 20 }\n"
    )
    done = promptmill_cli("run", "--config", job, "--limit", "4", "--param", "max_tokens=9")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(x) for x in (tmp_path / "answers.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(len(r["responses"]) == 2 for r in rows)
    assert rows[0]["model"].endswith("temperature=0.5,max_tokens=9")
    assert "About t1" in rows[1]["responses"][0]["text"]


def test_save_config_writes_what_repeats_the_job_and_never_a_key(
    tmp_path: Path, server, promptmill_cli
) -> None:
    source = tmp_path / "q.jsonl"
    source.write_text('{"prompt": "hi"}\n{"prompt": "there"}\n')
    saved = tmp_path / "saved.toml"
    key = "sk-test-0123456789abcdefghij"
    model = f"http!test-model,api_base={server.url},api_key={key}"
    first = promptmill_cli("run", source, "-m", model, "-k", "3", "--system", "Be brief.",
                           "--param", "seed=4", "--save-config", saved, "--new-job")
    assert first.returncode == 0, first.stderr
    text = saved.read_text()
    assert key not in text and "api_key=***" in text
    keys = {line.split(" = ")[0] for line in text.splitlines() if " = " in line}
    assert not keys & {"new_job", "save_config", "config", "dry_run", "retry_failed"}
    assert 'system = "Be brief."' in text and "seed = 4" in text and "k = 3" in text
    server.stats.reset()
    again = promptmill_cli("run", "--config", saved, env={"OPENAI_API_KEY": ""})
    assert again.returncode == 0, again.stderr
    assert server.stats.total_completed == 0  # the same job: it continues, nothing resent


def test_a_bad_job_file_is_named(tmp_path: Path, promptmill_cli) -> None:
    job = tmp_path / "job.toml"
    job.write_text('inptu = "q.jsonl"\n')
    result = promptmill_cli("run", "--config", job)
    assert result.returncode == 2
    assert "job.toml: unknown option 'inptu' (did you mean input?)" in result.stderr
    job.write_text("k = [1\n")
    result = promptmill_cli("run", "--config", job)
    assert result.returncode == 2 and "not valid TOML" in result.stderr
