"""The report page and the results browser in a real headless Chromium (Debian's chromium,
driven by Playwright): what a person sees, with what the store holds as the reference."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from report_helpers import (
    CATEGORIES,
    FAILING,
    KEY,
    KEY_ROW,
    NEEDLE_ROW,
    ROWS,
    GradedJob,
    K,
    cli,
    correct_samples,
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A fresh headless Chromium context (skipped, hence failed as a tier, if missing)."""
    from promptmill.testing.browser import launch_chromium

    try:
        context = launch_chromium(viewport={"width": 1400, "height": 900})
        opened = context.__enter__()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    try:
        yield opened
    finally:
        context.__exit__(None, None, None)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A new tab that records console errors and page errors."""
    tab = browser.new_page()
    tab.problems = []
    tab.on("console", lambda m: tab.problems.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: tab.problems.append(str(e)))
    yield tab
    tab.close()


def _serve(job: GradedJob, *options: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI")}
    env["OPENAI_API_KEY"] = KEY
    process = subprocess.Popen(
        [sys.executable, "-m", "promptmill", "view", str(job.output), "--port", "0", *options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=job.folder)
    assert process.stdout is not None
    line = process.stdout.readline()
    if "serving" not in line:
        process.kill()
        raise AssertionError(f"promptmill view did not start: {line}{process.stderr.read()}")
    process.url = line.split(" at ", 1)[1].split()[0]  # type: ignore[attr-defined]
    return process


@pytest.fixture(scope="module")
def view_url(graded_job: GradedJob) -> Iterator[str]:
    """``promptmill view`` of the graded job (with its extractions), in a child process."""
    process = _serve(graded_job, "--extractions", str(graded_job.extractions))
    try:
        yield process.url  # type: ignore[attr-defined]
    finally:
        process.terminate()
        process.communicate(timeout=30)


def _store(job: GradedJob) -> sqlite3.Connection:
    return sqlite3.connect(job.store)


def _shown_rows(page: Any) -> list[int]:
    return [int(r) for r in page.eval_on_selector_all(
        "#rows tbody tr", "rows => rows.map(r => r.dataset.row)")]


def _wait_list(page: Any, contains: str = "") -> None:
    """Wait until the list shows the page whose query holds ``contains``."""
    key = f'[data-list-key*="{contains}"]' if contains else ""
    page.wait_for_selector(f"body[data-list=ready]{key}")


# -- the report page ------------------------------------------------------------------------

def test_report_opens_offline_and_draws_every_plot(graded_job: GradedJob, page: Any,
                                                   tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    made = cli("report", graded_job.output, "--html", target, "--accuracy",
               graded_job.accuracy, cwd=graded_job.folder)
    assert made.returncode == 0, made.stderr
    asked: list[str] = []

    def block(route: Any) -> None:  # the network is blocked: anything not the file fails
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            asked.append(route.request.url)
            route.abort()

    page.route("**/*", block)
    page.goto(target.as_uri())
    page.wait_for_selector("body[data-plots=drawn]", timeout=60_000)
    plots = page.eval_on_selector_all("[data-figure]", """nodes => nodes.map(n => ({
        id: n.dataset.figure, rendered: n.dataset.rendered,
        points: n.data.map(t => (t.type === 'bar' && t.orientation === 'h' ? t.x : t.y)
                                .filter(v => v !== null && v > 0).length),
        svg: n.querySelectorAll('.main-svg').length,
        drawn: n.querySelectorAll('path.js-line, .point, g.trace.bars path').length}))""")
    assert [p["id"] for p in plots] == ["throughput", "latency", "retries", "tokens", "cost",
                                        "failures"]
    for plot in plots:
        assert plot["rendered"] == "true" and plot["svg"] >= 1, plot
        assert sum(plot["points"]) > 0 and plot["drawn"] > 0, plot  # drawn with data
    assert asked == [] and page.problems == []
    # Limiter pauses are shaded on the retries plot.
    assert page.eval_on_selector("#plot-retries", "n => n.layout.shapes.filter("
                                 "s => s.type === 'rect').length") > 0
    # The error quoting an <img onerror> tag is text: no such element, nothing ran.
    assert page.locator("#failures img").count() == 0
    assert "<img src=x onerror=window.__pwned=2>" in page.inner_text("#failures")
    assert page.evaluate("window.__pwned === undefined")
    assert page.locator("#accuracy tr.total td").nth(0).inner_text() == "all"
    assert KEY not in page.content()


# -- the results browser --------------------------------------------------------------------

def test_first_page_search_and_filters(graded_job: GradedJob, view_url: str,
                                       page: Any) -> None:
    db = _store(graded_job)
    page.goto(view_url)
    _wait_list(page)
    assert _shown_rows(page) == list(range(50))
    page.wait_for_selector("#match-count[data-count]")
    assert page.get_attribute("#match-count", "data-count") == str(ROWS)
    # Search: the prompt text.
    page.fill("#search", "needle")
    _wait_list(page, "q=needle")
    assert _shown_rows(page) == [NEEDLE_ROW]
    # Search reaches the responses too: every done row answered "Answer: ...".
    page.fill("#search", "answer: d")
    _wait_list(page, "q=answer")
    expected = sorted({row for (row,) in db.execute(
        "SELECT row_index FROM requests WHERE responses LIKE '%answer: d%'")})[:50]
    assert _shown_rows(page) == expected and expected
    page.fill("#search", "")
    page.press("#search", "Enter")
    _wait_list(page, "after=-1")
    # Status: failed rows are exactly the store's.
    page.select_option("#status", "failed")
    _wait_list(page, "status=failed")
    failed = [row for (row,) in db.execute(
        "SELECT row_index FROM requests WHERE status = 'failed' ORDER BY row_index")]
    assert _shown_rows(page) == failed and set(FAILING) <= set(failed)
    # Error kind within them.
    page.select_option("#kind", "server_error")
    _wait_list(page, "kind=server_error")
    assert _shown_rows(page) == list(FAILING)
    page.select_option("#kind", "")
    page.select_option("#status", "")
    # Category (the options come from the rows).
    page.wait_for_selector("body[data-facets=ready]")
    page.select_option("#category", "biology")
    _wait_list(page, "category=biology")
    biology = [i for i in range(ROWS) if CATEGORIES[i % 3] == "biology"]
    assert _shown_rows(page) == biology[:50]
    page.wait_for_selector("#match-count[data-count]")
    assert page.get_attribute("#match-count", "data-count") == str(len(biology))
    # Correctness, from extract's --out file: none right.
    page.select_option("#correct", "none")
    _wait_list(page, "correct=none")
    # (a failed row has no answer, so none right)
    none_right = [i for i in biology if correct_samples(i) == 0 or i in failed]
    assert _shown_rows(page) == none_right
    # Paging: the next page of all rows continues where the first ended.
    page.select_option("#correct", "")
    page.select_option("#category", "")
    _wait_list(page, "after=-1")
    page.click("#next")
    _wait_list(page, "after=49")
    assert _shown_rows(page) == list(range(50, 100))
    assert page.problems == []


def test_a_row_shows_its_k_responses_as_text(graded_job: GradedJob, view_url: str,
                                             page: Any) -> None:
    row = 6  # 6 % 4 = 2 of its 3 samples are right
    page.goto(f"{view_url}#row={row + 1}")
    page.wait_for_selector(f"#detail[data-row='{row}']")
    cards = page.locator("#responses .response")
    assert cards.count() == K
    texts = [cards.nth(i).locator(".response-text").inner_text() for i in range(K)]
    assert all(t.startswith("Thinking about <b>it</b> <script>window.__pwned = 1</script>.")
               for t in texts)
    assert page.locator("#detail b, #detail script").count() == 0  # no element made from it
    assert page.evaluate("window.__pwned === undefined")
    verdicts = [cards.nth(i).locator(".badge.right, .badge.wrong").inner_text()
                for i in range(K)]
    assert verdicts == ["correct", "correct", "wrong"]
    assert cards.nth(0).locator(".answer").inner_text() == "answer: C"
    assert "logprobs (" in cards.nth(0).locator("details summary").inner_text()
    assert page.locator("#prompt").inner_text().strip().endswith("Which option is right?")
    # Its attempts, as the store has them, arrive after the row.
    page.wait_for_selector("#attempts[data-state=ready]")
    outcomes = [o for (o,) in _store(graded_job).execute(
        "SELECT outcome FROM attempt_log WHERE row_index = ? ORDER BY sent_ms", (row,))]
    shown = page.eval_on_selector_all("#attempts tr td:nth-child(3)",
                                      "cells => cells.map(c => c.textContent)")
    assert shown == [o.replace("_", " ") for o in outcomes] and shown[-1] == "done"
    assert page.problems == []


def test_no_key_on_any_page(graded_job: GradedJob, view_url: str, page: Any) -> None:
    page.goto(f"{view_url}#row={KEY_ROW + 1}")
    page.wait_for_selector(f"#detail[data-row='{KEY_ROW}']")
    _wait_list(page)
    prompt = page.locator("#prompt").inner_text()
    assert "My key is ***" in prompt and KEY not in prompt
    assert KEY not in page.content()
    for path in ("/api/job", f"/api/row/{KEY_ROW}", "/api/rows?q=key", "/api/facets"):
        with urllib.request.urlopen(view_url.rstrip("/") + path) as response:
            assert KEY not in response.read().decode()


def test_rows_graded_when_opened_without_extractions(graded_job: GradedJob,
                                                     page: Any) -> None:
    process = _serve(graded_job)
    try:
        page.goto(f"{process.url}#row=4")  # type: ignore[attr-defined]
        page.wait_for_selector("#detail[data-row='3']")
        verdicts = page.locator("#responses .badge.right, #responses .badge.wrong")
        assert [verdicts.nth(i).inner_text() for i in range(K)] == ["correct"] * 3
        assert page.locator("#correct").is_hidden()  # no correctness filter without grades
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_only_its_own_host_name_is_served(view_url: str) -> None:
    request = urllib.request.Request(view_url + "api/job", headers={"Host": "evil.example"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request)
    assert refused.value.code == 421
    with urllib.request.urlopen(view_url) as response:
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    json.loads(urllib.request.urlopen(view_url + "api/job").read())
