"""Make the README's screenshots of the run report and the results browser (docs/*.png).

Runs a small multiple-choice job (600 rows, k=3, ``openai!gpt-4o-mini`` against the test
server with a 60 requests/s limit it does not announce and a few injected faults, so that
the limiter pauses and learns), grades it with ``promptmill extract``, writes the report
and serves the browser, and photographs both in headless Chromium.

    python docs/screenshots.py            # writes docs/report.png and docs/view.png
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from promptmill.testing import Faults, RateLimits, serve_in_thread
from promptmill.testing.browser import launch_chromium

DOCS = Path(__file__).resolve().parent
SUBJECTS = ("astronomy", "biology", "chemistry", "geography")


def answer(body: dict[str, object]) -> list[str]:
    """Scripted answers: right more often for lower row numbers."""
    text = str(body["messages"][-1]["content"])  # type: ignore[index]
    index = int(text.split("#", 1)[1].split(":", 1)[0])
    n = int(body.get("n", 1))  # type: ignore[call-overload]
    return [f"Let me think step by step about question {index}. The key fact is option "
            f"{'ABCD'[index % 4]}... Answer: {'ABCD'[(index + (j * index) % 3) % 4]}"
            for j in range(n)]


def cli(*args: object, cwd: Path) -> None:
    """Run the CLI; a failure of ``run`` (some requests failed) is expected."""
    env = dict(os.environ, OPENAI_API_KEY="sk-demo-key-not-a-real-one-000000")
    subprocess.run([sys.executable, "-m", "promptmill", *map(str, args)], cwd=cwd, env=env,
                   check=args[0] != "run", capture_output=True)


def main() -> int:
    """Make the job and both screenshots."""
    with tempfile.TemporaryDirectory(prefix="pm-shots-") as scratch:
        folder = Path(scratch)
        with open(folder / "questions.jsonl", "w", encoding="utf-8") as handle:
            for i in range(600):
                handle.write(json.dumps({
                    "unique_id": f"q{i}", "category": SUBJECTS[i % 4],
                    "question": f"Question #{i}: which of these is true of "
                                f"{SUBJECTS[i % 4]} fact {i}?",
                    "choices": [f"statement {c}" for c in "ABCD"],
                    "choice_index_correct": i % 4}) + "\n")
        with serve_in_thread(models=("gpt-4o-mini",), responder=answer, latency=0.3,
                             send_limit_headers=False,
                             limits=RateLimits(requests=60, window=1.0),
                             faults=Faults(server_error=0.03, malformed=0.01, seed=4)) as server:
            cli("run", "questions.jsonl", "--template", "{{ question }}", "-k", 3,
                "-m", f"openai!gpt-4o-mini,api_base={server.url},logprobs=true,top_logprobs=3",
                "-o", "answers.jsonl", "--max-attempts", 2, cwd=folder)
        cli("extract", "answers.jsonl", "--report", "accuracy.json", "--out", "graded.jsonl",
            cwd=folder)
        cli("report", "answers.jsonl", "--html", "report.html", "--accuracy", "accuracy.json",
            cwd=folder)
        view = subprocess.Popen([sys.executable, "-m", "promptmill", "view", "answers.jsonl",
                                 "--port", "0", "--extractions", "graded.jsonl"],
                                cwd=folder, stdout=subprocess.PIPE, text=True)
        try:
            assert view.stdout is not None
            url = view.stdout.readline().split(" at ", 1)[1].split()[0]
            with launch_chromium(viewport={"width": 1280, "height": 900},
                                 device_scale_factor=1) as browser:
                page = browser.new_page()
                page.goto((folder / "report.html").as_uri())
                page.wait_for_selector("body[data-plots=drawn]", timeout=60_000)
                page.screenshot(path=str(DOCS / "report.png"),
                                clip={"x": 0, "y": 0, "width": 1280, "height": 2000},
                                full_page=True)
                page.goto(f"{url}#row=7")
                page.wait_for_selector("#detail[data-row='6']")
                page.wait_for_selector("body[data-list=ready]")
                page.screenshot(path=str(DOCS / "view.png"))
        finally:
            view.terminate()
            view.wait(timeout=30)
    print(f"wrote {DOCS / 'report.png'} and {DOCS / 'view.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
