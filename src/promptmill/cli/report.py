"""``report`` (the run report: a terminal summary, or one offline HTML file) and ``view`` (the
local results browser)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from promptmill.cli.app import cli


@cli.command()
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the report, with its plots, as one self-contained HTML file "
              "that opens offline (needs the report extra: plotly).")
@click.option("--accuracy", "accuracy_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Add the accuracy table from the JSON `promptmill extract --report` wrote.")
def report(output: Path, html_path: Path | None, accuracy_path: Path | None) -> None:
    """Summarise the run of the job writing OUTPUT: throughput, latency, retries and 429s,
    the rate limiter, tokens, cost and failures."""
    from rich.console import Console

    from promptmill import data
    from promptmill.report.accuracy import read_accuracy
    from promptmill.report.summary import print_summary
    from promptmill.report.timeline import read_run
    from promptmill.store import JobStore, existing_store_path

    accuracy = read_accuracy(accuracy_path) if accuracy_path is not None else None
    if html_path is not None:
        data.check_output_path(html_path)
    with JobStore(existing_store_path(output), lock=False) as store:
        run = read_run(store, str(output))
    print_summary(run, accuracy, Console(width=None if sys.stdout.isatty() else 160))
    if html_path is not None:
        from promptmill.report.html import write_html

        write_html(run, html_path, accuracy)
        click.echo(f"wrote {html_path}", err=True)


@cli.command()
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; the default is reachable from this machine only.")
@click.option("--extractions", "extractions_path",
              type=click.Path(dir_okay=False, path_type=Path),
              help="The JSONL `promptmill extract --out` wrote: extracted answers and "
              "correctness for every row (without it, a row's answers are extracted when it "
              "is opened).")
@click.option("--open/--no-open", "open_browser", default=False,
              help="Open the page in the default web browser.")
def view(output: Path, port: int, host: str, extractions_path: Path | None,
         open_browser: bool) -> None:
    """Browse the results of the job writing OUTPUT in a web browser: search, filter, and
    open a row to see its prompt as sent and its responses side by side."""
    import asyncio

    from promptmill.report.browser import ResultsBrowser, serve
    from promptmill.store import existing_store_path

    browser = ResultsBrowser(existing_store_path(output), str(output), extractions_path)

    def ready(url: str) -> None:
        click.echo(f"serving {output} at {url} (Ctrl-C to stop)")
        sys.stdout.flush()
        if open_browser:
            import webbrowser

            webbrowser.open(url)

    try:
        asyncio.run(serve(browser, host, port, ready))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        from promptmill.errors import UsageError

        raise UsageError(f"cannot listen on {host}:{port} ({exc.strerror}): pick another "
                         "--port (0: any free one)") from None
    finally:
        browser.close()
