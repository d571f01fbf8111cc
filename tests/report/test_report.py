"""``promptmill report``: the terminal summary and the HTML file, checked against the store.

The page drawn in a real browser is tested in ``test_pages.py``; here, what the files and
the terminal say.
"""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import subprocess
from pathlib import Path

from report_helpers import ERROR_HTML, FAILING, KEY, ROWS, GradedJob, cli

from promptmill.pricing import table_price
from promptmill.report.timeline import read_run
from promptmill.store import MIGRATIONS, JobStore


def _counts(job: GradedJob) -> dict[str, int]:
    db = sqlite3.connect(job.store)
    counts = dict(db.execute("SELECT status, COUNT(*) FROM requests GROUP BY status"))
    counts.update(db.execute("SELECT outcome, COUNT(*) FROM attempt_log GROUP BY outcome"))
    counts["attempts"] = db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0]
    return counts


def test_terminal_summary_states_the_run(graded_job: GradedJob) -> None:
    result = cli("report", graded_job.output, cwd=graded_job.folder)
    assert result.returncode == 0, result.stderr
    counts = _counts(graded_job)
    out = result.stdout
    assert f"{ROWS:,}: {counts['done']:,} done, {counts['failed']:,} failed, 0 pending" in out
    assert f"attempts    {counts['attempts']:,}: {counts['done']:,} done" in out
    assert f"{counts['rate_limited']:,} rate limited" in out
    assert re.search(r"latency +p50 [\d.]+s, p90 [\d.]+s, p99 [\d.]+s", out)
    assert "stated limit" not in out  # the page lists limiter changes; the summary sums them
    assert re.search(r"limiter +\d+ pauses", out)
    assert "gpt-4o-mini at $0.15 / $0.6 per 1M tokens" in out
    assert "server_error: row 6: HTTP 500" in out  # row 5 is the 6th input row
    assert KEY not in out and KEY not in result.stderr
    assert "pass@" not in out  # no accuracy without --accuracy


def test_summary_numbers_match_the_store(graded_job: GradedJob) -> None:
    with JobStore(graded_job.store, lock=False) as store:
        run = read_run(store, "answers.jsonl")
    counts = _counts(graded_job)
    assert sum(run.attempts.values()) == counts["attempts"]
    assert run.attempts["rate_limited"] == counts.get("rate_limited", 0)
    series = run.series
    assert sum(series.sent) == counts["attempts"]
    assert sum(series.done) == counts["done"] and sum(series.failed) == counts["failed"]
    assert series.prompt_tokens[-1] == run.prompt_tokens > 0
    assert series.completion_tokens[-1] == run.completion_tokens > 0
    assert sum(sum(v) for v in series.retries.values()) == counts["attempts"] - counts["done"]
    price = table_price("openai", "gpt-4o-mini")
    assert price is not None and run.cost is not None and not run.cost.batch
    assert abs(run.cost.standard - (run.prompt_tokens * price.prompt
                                    + run.completion_tokens * price.completion) / 1e6) < 1e-12
    kinds = {f.kind: f for f in run.failures}
    assert kinds["server_error"].count == len(FAILING)
    assert [row for row, _ in kinds["server_error"].examples] == list(FAILING)
    assert [c.kind for c in run.changes][0] == "run_start"
    assert {"stated_rpm", "pause", "run_end"} <= {c.kind for c in run.changes}


def test_html_file_is_whole_offline_escaped_and_keyless(graded_job: GradedJob,
                                                         tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    result = cli("report", graded_job.output, "--html", page, "--accuracy",
                 graded_job.accuracy, cwd=graded_job.folder)
    assert result.returncode == 0, result.stderr
    assert f"wrote {page}" in result.stderr
    html = page.read_text(encoding="utf-8")
    assert KEY not in html
    # Every resource is inline: no script, style or image is fetched from anywhere.
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", html)
    assert "Plotly.newPlot" in html and len(html) > 1_000_000  # plotly.js itself is inside
    # The error quoting an <img> tag is shown as text.
    assert ERROR_HTML not in html
    assert "&lt;img src=x onerror=window.__pwned=2&gt;" in html
    report = json.loads(graded_job.accuracy.read_text())
    assert f"{report['accuracy']:.1%}" in html and "pass@3" in html
    for name in ("algebra", "biology", "history"):
        assert f"<td>{name}</td>" in html
    assert list(page.parent.iterdir()) == [page]  # no partial file left behind


def test_accuracy_table_in_the_terminal(graded_job: GradedJob) -> None:
    result = cli("report", graded_job.output, "--accuracy", graded_job.accuracy,
                 cwd=graded_job.folder)
    assert result.returncode == 0, result.stderr
    report = json.loads(graded_job.accuracy.read_text())
    assert "pass@1" in result.stdout and "pass@3" in result.stdout
    assert f"{report['majority_accuracy']:.1%}" in result.stdout


def _one_line_error(result: subprocess.CompletedProcess[str], says: str) -> None:
    """A usage error: exit 2, one line on stderr saying ``says``."""
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0 and says in result.stderr, result.stderr


def test_bad_input_is_a_one_line_error(graded_job: GradedJob, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"hello": 1}\n')
    for command, option, says in (
            ("report", "--accuracy", ": not a report of `promptmill extract --report`"),
            ("view", "--extractions", ", line 1: not a line of `promptmill extract --out`")):
        _one_line_error(cli(command, tmp_path / "nothing.jsonl", cwd=tmp_path),
                        "no job store for")
        _one_line_error(cli(command, graded_job.output, option, broken, cwd=tmp_path),
                        f"{option} {broken}{says}")
    folder = cli("report", graded_job.output, "--html", tmp_path / "no" / "r.html",
                 cwd=tmp_path)
    assert folder.returncode != 0 and "does not exist" in folder.stderr
    assert not (tmp_path / "no").exists()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = cli("view", graded_job.output, "--port", port, cwd=tmp_path)
    _one_line_error(busy, f"cannot listen on 127.0.0.1:{port}")
    assert "pick another --port" in busy.stderr


def test_a_job_stored_before_attempts_were_kept(tmp_path: Path) -> None:
    path = tmp_path / "old.jsonl.promptmill.db"
    db = sqlite3.connect(path, isolation_level=None)
    MIGRATIONS[0](db)
    db.execute("PRAGMA user_version=1")
    db.execute("INSERT INTO rows VALUES (0, '{}')")
    db.execute("INSERT INTO requests (id, row_index, sample_group, n, payload, est_tokens, "
               "status, attempts, responses, prompt_tokens, completion_tokens, finished_at) "
               "VALUES (0, 0, 0, 1, '{}', 5, 'done', 1, '[]', 3, 4, 1700000000.5)")
    db.close()
    result = cli("report", tmp_path / "old.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "not recorded (the job ran before promptmill kept them)" in result.stdout
    assert "1: 1 done, 0 failed, 0 pending" in result.stdout
