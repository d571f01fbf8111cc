"""The results browser on a large job: first page served and drawn, search, filters, one row.

Builds a job store of N rows through the store API (prompts of 40-110 words, k responses of
30-90 words each, 2% failed, 3 categories, one attempt per request), starts ``promptmill
view`` on it (the real CLI, a child process), and drives headless Chromium (Debian's
chromium, through Playwright): the time from navigation to the first page's rows in the
table; from pressing Enter in the search box to the matching rows drawn (a word in every
row, a word in one row near the end: a whole scan, the worst case); a status filter; a
category filter; opening a row. Also the server alone (HTTP, no browser) for the same
requests, the full match count of a search (asked for beside the page), and the time
``promptmill report --html`` takes over the same job.

    python benchmarks/view.py                     # 100,000 rows, 3 runs of each
    python benchmarks/view.py --rows 1000000 --repeat 1
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from promptmill.store import FinishedRequest, JobStore
from promptmill.testing.browser import launch_chromium

TARGETS = {"first page": 1.0, "search": 2.0}
_WORDS = ["alpha", "bravo", "cedar", "delta", "ember", "fjord", "glacier", "harbor", "iris",
          "jasper", "kelp", "lotus", "maple", "nectar", "opal", "quill", "raven", "sierra",
          "tundra", "umber", "violet", "walnut", "xenon", "yarrow", "zephyr", "amber", "basil",
          "coral", "dune", "elm", "fern", "garnet", "hazel", "indigo", "juniper", "kiwi",
          "lumen", "moss"]
RARE = "quetzalcoatl"  # in one row only, near the end
COMMON = "harbor"  # in nearly every row
CATEGORIES = ("algebra", "biology", "history")


def _text(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(low, high)))


def build_store(folder: Path, rows: int, k: int) -> Path:
    """A finished job of ``rows`` rows in ``folder``; the output path."""
    output = folder / "big.jsonl"
    rng = random.Random(0)
    chunk = 5000
    with JobStore(output.with_name(output.name + ".promptmill.db")) as store:
        store.bind_job({"model": "http!bench-model", "k": k})
        store.set_meta(model_identifier="http!bench-model,api_base=http://127.0.0.1:1/v1")
        now = time.time() - 3600
        for first in range(0, rows, chunk):
            indices = range(first, min(rows, first + chunk))
            texts, payloads, finished, attempts = [], [], [], []
            for index in indices:
                prompt = _text(rng, 40, 110)
                if index == rows - 7:
                    prompt += f" {RARE}"
                texts.append(json.dumps({"id": index, "question": prompt,
                                         "category": CATEGORIES[index % 3]}))
                payloads.append(json.dumps({"messages": [{"role": "user", "content": prompt}]}))
                sent = now + index * 3600 / rows
                if rng.random() < 0.02:
                    finished.append(FinishedRequest(index, 8, error="HTTP 500 from server",
                                                    error_kind="server_error"))
                    attempts.append((index, sent, sent + 0.5, 2))
                else:
                    answers = [{"text": _text(rng, 30, 90), "finish_reason": "stop"}
                               for _ in range(k)]
                    finished.append(FinishedRequest(index, 1, json.dumps(answers), 90, 60 * k))
                    attempts.append((index, sent, sent + rng.uniform(0.2, 3.0), 0))
            count = len(indices)
            store.add_planned([indices, texts], [indices, indices, [0] * count, [k] * count,
                                                 payloads, [200] * count], indices.stop)
            store.record(finished, attempts, (), 0.0)
        store.set_meta(planned_complete=True)
    return output


def start_view(output: Path) -> tuple[subprocess.Popen[str], str]:
    """``promptmill view OUTPUT --port 0`` in a child process, and its URL."""
    process = subprocess.Popen([sys.executable, "-m", "promptmill", "view", str(output),
                                "--port", "0"], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if " at " not in line:
        process.kill()
        raise SystemExit(f"promptmill view did not start: {line!r}")
    return process, line.split(" at ", 1)[1].split()[0]


def timed(action: Callable[[], Any]) -> float:
    """Seconds ``action`` took."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def http_seconds(url: str) -> float:
    """Seconds the server takes to answer ``url`` (read whole)."""
    return timed(lambda: urllib.request.urlopen(url).read())


def browser_run(page: Any, url: str, note: Callable[[str, float], None]) -> None:
    """One pass of the page measurements in the tab ``page``."""
    note("first page", timed(lambda: (
        page.goto(url), page.wait_for_selector("body[data-list=ready]"))))
    for name, term in (("search, common word", COMMON), ("search, rare word (whole scan)", RARE)):
        page.fill("#search", term)
        note(name, timed(lambda term=term: (
            page.press("#search", "Enter"),
            page.wait_for_selector(f'body[data-list=ready][data-list-key*="q={term}"]'))))
        page.fill("#search", "")
        page.press("#search", "Enter")
        page.wait_for_selector('body[data-list=ready][data-list-key="after=-1"]')
    note("filter status=failed", timed(lambda: (
        page.select_option("#status", "failed"),
        page.wait_for_selector('body[data-list=ready][data-list-key*="status=failed"]'))))
    page.select_option("#status", "")
    page.wait_for_selector('body[data-list=ready][data-list-key="after=-1"]')
    page.wait_for_selector("body[data-facets=ready]", timeout=120_000)
    note("filter category", timed(lambda: (
        page.select_option("#category", "history"),
        page.wait_for_selector('body[data-list=ready][data-list-key*="category"]'))))
    note("open a row", timed(lambda: (
        page.click("#rows tbody tr:nth-child(3)"),
        page.wait_for_selector("#detail[data-row]:not([data-row=loading])"))))


def measure(url: str, repeat: int) -> dict[str, list[float]]:
    """Each measurement ``repeat`` times, in a fresh tab each time."""
    times: dict[str, list[float]] = {}

    def note(name: str, seconds: float) -> None:
        times.setdefault(name, []).append(seconds)

    def query(**params: str) -> str:
        return url + "api/rows?" + urllib.parse.urlencode(params)

    with launch_chromium(viewport={"width": 1400, "height": 900}) as browser:
        for _ in range(repeat):
            page = browser.new_page()
            browser_run(page, url, note)
            page.close()
            note("server: first page", http_seconds(query()))
            note("server: search, rare word", http_seconds(query(q=RARE)))
            note("server: count of a search", http_seconds(
                url + "api/count?" + urllib.parse.urlencode({"q": COMMON})))
            note("server: categories (a scan)", http_seconds(url + "api/facets"))
    return times


def main(argv: list[str] | None = None) -> int:
    """Build the store, serve it, measure, print medians and verdicts."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--k", type=int, default=3, help="responses per row (default 3)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"view benchmark: {args.rows:,} rows, k={args.k}, {args.repeat} runs, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="pm-view-") as folder:
        built = time.perf_counter()
        output = build_store(Path(folder), args.rows, args.k)
        size = sum(p.stat().st_size for p in Path(folder).iterdir())
        print(f"  store built in {time.perf_counter() - built:.0f} s ({size / 1e6:.0f} MB)",
              flush=True)
        process, url = start_view(output)
        try:
            times = measure(url, args.repeat)
        finally:
            process.terminate()
            process.wait(timeout=30)
        page = Path(folder) / "report.html"
        times["report --html of the same job (not a target)"] = [timed(lambda: subprocess.run(
            [sys.executable, "-m", "promptmill", "report", str(output), "--html", str(page)],
            check=True, capture_output=True))]
    ok = True
    for name, values in times.items():
        median = statistics.median(values)
        target = next((t for key, t in TARGETS.items() if name.startswith(key)), None)
        verdict = ""
        if target is not None:
            verdict = f" (target < {target:g} s) " + ("PASS" if median < target else "FAIL")
            ok = ok and median < target
        runs = ", ".join(f"{v:.2f}" for v in values)
        print(f"  {name}: median {median:.2f} s [{runs}]{verdict}")
    print(f"  load {os.getloadavg()[0]:.2f} at the end")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
