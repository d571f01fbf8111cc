"""``extract --judge``: a judge job through the real engine against the test server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from promptmill.extraction.judge import JUDGE_PROMPT_VERSION, read_reply
from promptmill.testing import TestServer, done_requests, judge_responder

CAPITALS = ["London", "Berlin", "Paris", "Madrid"]
# What the judge says about each response the rules are unsure of (the test decides).
VERDICTS = {
    "Paris is lovely in spring.": "NONE",  # the rule reads C; the judge disagrees
    "I think the capital is Berlin.": "B",
    "so we get 7 apples and 3 pears": "7",
    "No idea.": "NONE",
}


def _rows() -> list[dict[str, Any]]:
    return [
        {
            "unique_id": "q1", "question": "What is the capital of France?",
            "choices": CAPITALS, "choice_index_correct": 2, "category": "geo", "status": "done",
            "responses": [{"text": t, "finish_reason": "stop"} for t in (
                "The answer is (C).", "Paris is lovely in spring.",
                "I think the capital is Berlin.")],
        },
        {
            "unique_id": "m1", "question": "What is 3 + 4?", "choices": None,
            "answer_correct": "7", "category": "arith", "status": "done",
            "responses": [{"text": t, "finish_reason": "stop"} for t in (
                "\\boxed{7}", "so we get 7 apples and 3 pears", "No idea.")],
        },
    ]  # fmt: skip


@pytest.fixture
def results(tmp_path: Path) -> Path:
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in _rows()), encoding="utf-8")
    return path


def _extract(results: Path, *options: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "promptmill", "extract", str(results), *options]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def _judged(make_server: Callable[..., TestServer], verdicts: dict[str, str]) -> TestServer:
    return make_server(responder=judge_responder(lambda response: verdicts.get(response, "NONE")))


def test_judge_answers_the_uncertain_responses_and_keeps_the_rules(
    results: Path, tmp_path: Path, make_server: Callable[..., TestServer]
) -> None:
    server = _judged(make_server, VERDICTS)
    out, report_path = tmp_path / "out.jsonl", tmp_path / "report.json"
    run = _extract(results, "--out", str(out), "--report", str(report_path),
                   "--judge", f"http!judge,api_base={server.url}")
    assert run.returncode == 0, run.stderr
    assert "asked 4, answered 4, disagreed with the rules 1" in " ".join(run.stdout.split())

    report = json.loads(report_path.read_text(encoding="utf-8"))
    judge = report["judge"]
    assert (judge["asked"], judge["answered"], judge["disagreed"], judge["failed"]) == (4, 4, 1, 0)
    assert judge["prompt_version"] == JUDGE_PROMPT_VERSION and "api_base" in judge["model"]
    assert judge["by_rule_method"]["option_mention"] == {
        "asked": 2, "disagreed": 1, "rule_correct": 1, "judge_correct": 0}
    assert _sent(server) == 4  # only the uncertain responses were sent
    # the grade follows the judge where it answered: "Paris is lovely" is no answer now
    assert report["accuracy"] == pytest.approx(3 / 6)
    assert report["per_method"]["judge"] == {
        "responses": 4, "correct": 1, "accuracy": 0.25, "uncertain": False}
    assert report["per_method"]["boxed"]["responses"] == 1

    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    paris = rows[0]["extractions"][1]
    assert paris["method"] == "judge" and paris["extracted"] is None and not paris["correct"]
    assert paris["rule"] == {"extracted": "C", "correct": True, "method": "option_mention"}
    assert paris["judge"] == {"reply": "ANSWER: NONE", "extracted": None, "correct": False,
                              "agrees": False}
    assert rows[0]["extractions"][0] == {"response_index": 0, "extracted": "C", "correct": True,
                                         "method": "answer_statement", "uncertain": False}
    assert rows[1]["extractions"][1]["judge"]["extracted"] == "7"

    # the judge job is a promptmill job: run again, nothing is sent and the grade is the same
    job = Path(judge["job"])
    assert job.exists() and Path(f"{job}.promptmill.db").exists()
    again = _extract(results, "--out", str(out), "--report", str(report_path),
                     "--judge", f"http!judge,api_base={server.url}")
    assert again.returncode == 0, again.stderr
    assert _sent(server) == 4
    assert json.loads(report_path.read_text(encoding="utf-8")) == report


def test_judge_all_asks_about_every_response(
    results: Path, tmp_path: Path, make_server: Callable[..., TestServer]
) -> None:
    server = _judged(make_server, {**VERDICTS, "The answer is (C).": "C", "\\boxed{7}": "7"})
    report_path = tmp_path / "report.json"
    run = _extract(results, "--report", str(report_path), "--judge-all",
                   "--judge", f"http!judge,api_base={server.url}")
    assert run.returncode == 0, run.stderr
    judge = json.loads(report_path.read_text(encoding="utf-8"))["judge"]
    assert (judge["asked"], judge["disagreed"], judge["all"]) == (6, 1, True)
    assert _sent(server) == 6


def test_a_reply_without_an_answer_leaves_the_rules_answer(
    results: Path, tmp_path: Path, make_server: Callable[..., TestServer]
) -> None:
    server = make_server(responder=lambda body: "Let me think about this response.")
    out, report_path = tmp_path / "out.jsonl", tmp_path / "report.json"
    run = _extract(results, "--out", str(out), "--report", str(report_path),
                   "--judge", f"http!judge,api_base={server.url}")
    assert run.returncode == 0, run.stderr
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert (report["judge"]["asked"], report["judge"]["failed"]) == (4, 4)
    assert "judge" not in report["per_method"]
    assert report["accuracy"] == pytest.approx(4 / 6)  # the rules' grade, unchanged
    paris = json.loads(out.read_text(encoding="utf-8").splitlines()[0])["extractions"][1]
    assert paris["method"] == "option_mention" and paris["extracted"] == "C"
    assert paris["judge"]["error"] == "the reply states no answer"


def test_a_bad_judge_identifier_fails_before_grading(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    run = _extract(results, "--out", str(out), "--judge", "nosuchprovider!model")
    assert run.returncode == 2
    assert len(run.stderr.strip().splitlines()) == 1 and "nosuchprovider" in run.stderr
    assert not out.exists() and not (tmp_path / "results.jsonl.judge").exists()


def test_judge_options_without_a_judge_are_refused(results: Path) -> None:
    run = _extract(results, "--judge-all")
    assert run.returncode == 2 and "need --judge MODEL" in run.stderr


def test_a_killed_judge_job_resumes_without_asking_twice(
    tmp_path: Path, make_server: Callable[..., TestServer]
) -> None:
    texts = [f"Well, Paris has {i} bridges." for i in range(40)]
    row = {**_rows()[0], "responses": [{"text": t, "finish_reason": "stop"} for t in texts]}
    results = tmp_path / "many.jsonl"
    results.write_text(json.dumps(row) + "\n", encoding="utf-8")
    server = make_server(latency=0.25, responder=judge_responder(lambda response: "C"))
    command = [sys.executable, "-m", "promptmill", "extract", str(results), "--report",
               str(tmp_path / "report.json"), "--judge", f"http!judge,api_base={server.url}",
               "--judge-rpm", "600"]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while _judged_done(tmp_path) < 8 and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)
    assert child.poll() is None, child.communicate()
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    done_before = _judged_done(tmp_path)
    sent_before = _sent(server)
    assert 8 <= done_before < 40

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    judge = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))["judge"]
    assert (judge["asked"], judge["answered"], judge["judge_correct"]) == (40, 40, 40)
    # what was answered before the kill is not asked again; at most the in-flight ones are
    assert _sent(server) - sent_before == 40 - done_before
    assert sent_before - done_before <= 16


def _judged_done(folder: Path) -> int:
    stores = list((folder / "many.jsonl.judge").glob("*.promptmill.db"))
    return done_requests(stores[0]) if stores else 0


@pytest.mark.parametrize(
    ("reply", "choices", "expected"),
    [
        ("ANSWER: B", CAPITALS, ("B", True)),
        ("The response says Paris.\nANSWER: (C)", CAPITALS, ("C", True)),
        ("ANSWER: NONE", CAPITALS, (None, True)),
        ("Answer: Madrid", CAPITALS, ("D", True)),
        ("I am not sure.", CAPITALS, (None, False)),
        ("ANSWER: \\frac{1}{2}", None, ("\\frac{1}{2}", True)),
        ("ANSWER: $x = 4$", None, ("4", True)),
        ("ANSWER: none", None, (None, True)),
        ("The final value is 12.", None, ("12", True)),
        ("no idea", None, (None, False)),
    ],
)
def test_reading_a_judge_reply(reply: str, choices: list[str] | None,
                               expected: tuple[str | None, bool]) -> None:
    assert read_reply(reply, choices) == expected


def _sent(server: TestServer) -> int:
    # Completions: http!'s one GET /v1/models before a job asks the judge nothing.
    return sum(count for path, count in server.stats.received.items() if path != "/v1/models")


def test_the_judges_key_is_never_written(
    results: Path, tmp_path: Path, make_server: Callable[..., TestServer]
) -> None:
    canary = "gsk_judgecanary8c1f2e9d7b6a5"
    server = _judged(make_server, VERDICTS)
    out, report_path = tmp_path / "out.jsonl", tmp_path / "report.json"
    run = _extract(results, "--out", str(out), "--report", str(report_path),
                   "--judge", f"http!judge,api_base={server.url},api_key={canary}")
    assert run.returncode == 0, run.stderr
    assert json.loads(report_path.read_text(encoding="utf-8"))["judge"]["answered"] == 4
    written = [out, report_path, *sorted((tmp_path / "results.jsonl.judge").iterdir())]
    for path in written:
        assert canary.encode() not in path.read_bytes(), path
        assert canary not in path.name
    assert canary not in run.stdout + run.stderr
