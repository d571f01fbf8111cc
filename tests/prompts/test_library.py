"""The prompt library as the seeds use it: --prompt NAME, user prompts, question templates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptmill.errors import UsageError
from promptmill.prompts.library import get_prompt, load_library

SEED_001 = {
    "dailymail_cnn_21": "summarize this in a few sentences: ",
    "mrpc_21": "paraphrase this: ",
    "stories_21": "write a story based on this: ",
    "dailydialog_21": "continue the conversation between A and B by writing a single response "
                      "to the latest speaker. write only a concise response and nothing else: ",
}


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_seed_prompts_are_shipped_with_the_seed_texts_under_the_seed_keys() -> None:
    for name, text in SEED_001.items():
        assert get_prompt(name).text == text
    book = get_prompt("bookMIA/instruct-autoregressive/lightest")
    assert book.text and book.text.endswith(": ")
    assert {"question", "question/mcq", "question/open"} <= set(load_library())


def test_1000_rows_with_stories_21_send_the_seed_text_then_the_row(
    tmp_path: Path, make_server, recorder, promptmill_cli
) -> None:
    rows = [{"id": i, "prompt": f"a dragon who collects teacups, number {i}"} for i in range(1000)]
    source = write_rows(tmp_path / "stories.jsonl", rows)
    expected = {f"write a story based on this: {row['prompt']}" for row in rows}
    for kind, model in [("chat", "http!test-model"),
                        # a base model on a text-completion endpoint: no chat format at all
                        ("raw", "http!EleutherAI/pythia-1b,chat_format=auto")]:
        record = recorder()
        server = make_server(responder=record)
        out = tmp_path / f"{kind}.jsonl"
        done = promptmill_cli("run", source, "-m", f"{model},api_base={server.url}",
                              "--prompt", "stories_21", "-o", out)
        assert done.returncode == 0, done.stderr
        if kind == "chat":
            sent = [body["messages"] for body in record.bodies]
            assert all(len(messages) == 1 and messages[0]["role"] == "user" for messages in sent)
            prompts = {messages[0]["content"] for messages in sent}
        else:
            assert all("messages" not in body for body in record.bodies)
            prompts = {body["prompt"] for body in record.bodies}
        assert len(record.bodies) == 1000 and prompts == expected
        assert [row["id"] for row in read_jsonl(out)] == list(range(1000))


def test_user_prompts_from_the_config_dir_and_a_file_and_a_changed_text_is_refused(
    tmp_path: Path, server, promptmill_cli
) -> None:
    config = tmp_path / "config" / "promptmill"
    config.mkdir(parents=True)
    (config / "prompts.toml").write_text(
        '[mine.short]\ntext = "In one word: "\nsystem = "Be terse."\n'
    )
    extra = tmp_path / "more.toml"
    extra.write_text('[mine.long]\ntemplate = "Tell me at length about {{ topic }}."\n')
    listed = promptmill_cli("prompts", "list", "--prompts-file", extra)
    assert listed.returncode == 0, listed.stderr
    assert "mine/short" in listed.stdout and "mine/long" in listed.stdout
    assert "stories_21" in listed.stdout
    shown = promptmill_cli("prompts", "show", "mine/short")
    assert "'In one word: '" in shown.stdout and "Be terse." in shown.stdout

    source = write_rows(tmp_path / "in.jsonl", [{"topic": "tea", "prompt": "tea"}])
    out = tmp_path / "out.jsonl"
    model = f"http!test-model,api_base={server.url}"
    first = promptmill_cli("run", source, "-m", model, "--prompt", "mine/short", "-o", out)
    assert first.returncode == 0, first.stderr
    # The test server echoes the last user message.
    assert "In one word: tea" in read_jsonl(out)[0]["responses"][0]["text"]
    (config / "prompts.toml").write_text('[mine.short]\ntext = "In two words: "\n')
    again = promptmill_cli("run", source, "-m", model, "--prompt", "mine/short", "-o", out)
    assert again.returncode == 2 and "prompt" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1

    long = promptmill_cli("run", source, "-m", model, "--prompt", "mine/long",
                          "--prompts-file", extra, "-o", tmp_path / "long.jsonl")
    assert long.returncode == 0, long.stderr
    assert "Tell me at length about tea." in read_jsonl(tmp_path / "long.jsonl")[0][
        "responses"][0]["text"]


def test_an_unknown_prompt_names_the_closest(promptmill_cli) -> None:
    with pytest.raises(UsageError, match="did you mean stories_21"):
        get_prompt("stories_12")
    result = promptmill_cli("prompts", "show", "bookMIA/instruct-autoregresive/lightest")
    assert result.returncode == 2
    assert "bookMIA/instruct-autoregressive/lightest" in result.stderr


def test_a_broken_prompts_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[x]\ntext = "a"\ntemplate = "b"\n')
    with pytest.raises(UsageError, match=r"bad\.toml: prompt 'x' has both text and template"):
        load_library([bad])
    bad.write_text("[x\n")
    with pytest.raises(UsageError, match=r"bad\.toml: not valid TOML"):
        load_library([bad])


QUESTIONS = [
    {"unique_id": "geo-1", "question": "Capital of France?", "choices": ["Rome", "Paris", "Oslo"],
     "choice_index_correct": 1, "answer_correct": "Paris", "category": "geography"},
    {"unique_id": "math-1", "question": "What is 6 times 7?", "choices": None,
     "choice_index_correct": None, "answer_correct": "42", "category": "math"},
    {"unique_id": "geo-2", "question": "Capital of Norway?", "choices": ["Rome", "Paris", "Oslo"],
     "choice_index_correct": 2, "answer_correct": "Oslo", "category": "geography"},
    {"unique_id": "math-2", "question": "Half of 1?", "choices": None,
     "choice_index_correct": None, "answer_correct": "\\frac{1}{2}", "category": "math"},
]


def answer(body: dict) -> str:
    """A scripted model: right on everything, in the form each template asks for."""
    prompt = body["messages"][-1]["content"]
    if "Options:" in prompt:
        return "It is the capital. Answer: B" if "France" in prompt else "Answer: C"
    return "6 x 7 = \\boxed{42}" if "6 times 7" in prompt else "So \\boxed{0.5}"


def test_a_seed_002_dataset_runs_with_no_template_and_extract_grades_it(
    tmp_path: Path, make_server, recorder, promptmill_cli
) -> None:
    record = recorder(answer)
    server = make_server(responder=record)
    source = write_rows(tmp_path / "mixed.jsonl", QUESTIONS)
    out, report = tmp_path / "answers.jsonl", tmp_path / "report.json"
    run = promptmill_cli("run", source, "-m", f"http!test-model,api_base={server.url}",
                         "-k", "2", "-o", out)
    assert run.returncode == 0, run.stderr
    prompts = {b["messages"][-1]["content"] for b in record.bodies}
    france = next(p for p in prompts if "France" in p)
    assert "(A) Rome\n(B) Paris\n(C) Oslo" in france and '"Answer: X"' in france
    product = next(p for p in prompts if "6 times 7" in p)
    assert "\\boxed{}" in product and "(A)" not in product
    graded = promptmill_cli("extract", out, "--report", report)
    assert graded.returncode == 0, graded.stderr
    data = json.loads(report.read_text())
    assert data["accuracy"] == 1.0 and data["failed_rows"] == 0
    assert set(data["per_category"]) == {"geography", "math"}
