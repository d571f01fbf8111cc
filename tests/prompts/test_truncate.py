"""Token-aware truncation with the model's tokenizer (tiktoken here; llama.cpp's in
tests/generators/test_llamacpp_prompts.py), and the check that comes before any request."""

from __future__ import annotations

import json
from pathlib import Path

from promptmill.generators.tokens import count_text_tokens

STORY = " ".join(f"The {i}th lantern flickered over the harbour." for i in range(300))


def rows() -> list[dict]:
    return [{"id": 0, "text": "A short one."}, {"id": 1, "text": STORY},
            {"id": 2, "text": "Another short one."}, {"id": 3, "text": STORY[::-1]}]


def run_job(promptmill_cli, tmp_path: Path, server, *extra: str):
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows()))
    # An OpenAI model name: tiktoken counts its tokens, offline.
    model = f"http!gpt-4o-mini,api_base={server.url},max_model_len=300"
    return promptmill_cli("run", source, "-m", model, "--text", "--template",
                          "Summarise: {{ text }}", "--param", "max_tokens=50", *extra)


def test_rows_that_do_not_fit_fail_unsent_and_the_others_go_on(
    tmp_path: Path, make_server, recorder, promptmill_cli
) -> None:
    record = recorder()
    server = make_server(responder=record)
    result = run_job(promptmill_cli, tmp_path, server, "-o", tmp_path / "out.jsonl")
    assert result.returncode == 1
    message = result.stderr.strip().splitlines()[-1]
    assert "2 requests failed (first: " in message and "in.jsonl:2: the prompt has" in message
    assert "over the 250 of" in message and "--truncate-field" in message
    # Only the two short rows were sent; the long ones never left the machine.
    assert sorted(body["prompt"] for body in record.bodies) == [
        "Summarise: A short one.", "Summarise: Another short one."]
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [row["status"] for row in out] == ["done", "failed", "done", "failed"]
    assert out[1]["attempts"] == 0 and out[1]["error"].startswith("the prompt has ")
    dry = run_job(promptmill_cli, tmp_path, server, "--dry-run")
    assert "too long   2 rows over the context would fail unsent" in dry.stdout


def test_truncation_cuts_the_field_to_fit_keeping_the_start_or_the_end(
    tmp_path: Path, make_server, recorder, promptmill_cli
) -> None:
    for keep in ("start", "end"):
        record = recorder()
        server = make_server(responder=record)
        out = tmp_path / f"{keep}.jsonl"
        result = run_job(promptmill_cli, tmp_path, server, "-o", out,
                         "--truncate-field", "text", "--truncate-keep", keep)
        assert result.returncode == 0, result.stderr
        assert f"truncated 2 rows to fit (--truncate-field text, kept the {keep})" in (
            result.stderr)
        sent = {b["prompt"] for b in record.bodies}
        assert "Summarise: A short one." in sent and "Summarise: Another short one." in sent
        for original in (STORY, STORY[::-1]):
            cut = next(p for p in sent if p != f"Summarise: {original}" and (
                original.startswith(p[len("Summarise: "):]) if keep == "start"
                else original.endswith(p[len("Summarise: "):])) and len(p) > 40)
            tokens = count_text_tokens(cut, "gpt-4o-mini")
            # As long as fits: one more character would not.
            assert 240 <= tokens <= 250
        results = [json.loads(line) for line in out.read_text().splitlines()]
        assert results[1]["text"] == STORY  # the output keeps the row as it was


def test_dry_run_reports_the_cut_rows(tmp_path: Path, server, promptmill_cli) -> None:
    result = run_job(promptmill_cli, tmp_path, server, "--dry-run", "--truncate-field", "text")
    assert result.returncode == 0, result.stderr
    assert "truncated  2 rows cut to fit (--truncate-field text)" in result.stdout
