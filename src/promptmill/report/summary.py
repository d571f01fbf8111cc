"""The run report's key facts in words: the terminal summary and the page's header lines."""

from __future__ import annotations

from typing import Any

from promptmill.pricing import BATCH_DISCOUNT
from promptmill.report.accuracy import Accuracy
from promptmill.report.timeline import LimiterChange, RunReport


def duration(seconds: float) -> str:
    """``1h02m``, ``3m05s``, ``4.2s``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def describe_change(change: LimiterChange) -> str:
    """One limiter state change (or run start or end) in words."""
    value = change.value or 0.0
    if change.kind == "pause":
        return f"paused {duration(value)} ({change.detail})"
    if change.kind == "learned_rate":
        return (f"learned a limit of {value:.3g} requests/s from 429s" if value
                else f"stopped pacing: {change.detail}")
    if change.kind in ("provider_requests", "provider_tokens"):
        what = change.kind.removeprefix("provider_")
        return f"provider reported a limit of {value:,.0f} {what} ({change.detail})"
    if change.kind == "stated_rpm":
        return f"stated limit --rpm {value:g}"
    if change.kind == "stated_tpm":
        return f"stated limit --tpm {value:g}"
    if change.kind == "run_start":
        return f"run started with {value:,.0f} requests to send"
    if change.kind == "run_end":
        return f"run ended ({change.detail}) after {value:,.0f} requests finished"
    return f"{change.kind} {value:g} {change.detail}".strip()


def change_lines(changes: list[LimiterChange]) -> list[tuple[float, str]]:
    """(time, words) per change, runs of alike changes in a row folded into one line.

    A storm of 429s pauses the job hundreds of times for the same reason; one line says so.
    """
    lines: list[tuple[float, str]] = []
    index = 0
    while index < len(changes):
        change = changes[index]
        end = index + 1
        while (end < len(changes) and changes[end].kind == change.kind
               and changes[end].detail == change.detail
               and (change.kind == "pause" or changes[end].value == change.value)):
            end += 1
        alike = changes[index:end]
        if len(alike) > 1 and change.kind == "pause":
            total = sum(c.value or 0.0 for c in alike)
            text = (f"paused {len(alike)} times, {duration(total)} in all, until "
                    f"{_clock(alike[-1].at + (alike[-1].value or 0.0))} ({change.detail})")
        else:
            text = describe_change(change) + (f" ({len(alike)} times)" if len(alike) > 1
                                              else "")
        lines.append((change.at, text))
        index = end
    return lines


def _clock(unix_s: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(unix_s).strftime("%H:%M:%S")


def summary_facts(run: RunReport) -> list[tuple[str, str]]:
    """(label, text) lines: the summary the terminal prints and the page shows on top."""
    facts = [("job", f"{run.output}  ({run.model})"),
             ("requests", f"{run.requests:,}: {run.done:,} done, {run.failed:,} failed, "
                          f"{run.pending:,} pending ({run.rows:,} rows)")]
    if run.first_sent is not None and run.last_answer is not None:
        runs = f"{run.runs} runs" if run.runs != 1 else "1 run"
        facts.append(("time", f"{duration(run.active_s)} sending, {runs}"))
    attempts = sum(run.attempts.values())
    if attempts:
        kinds = ", ".join(f"{n:,} {name.replace('_', ' ')}"
                          for name, n in run.attempts.items() if n)
        facts.append(("attempts", f"{attempts:,}: {kinds}"))
        facts.append(("throughput", f"{run.mean_rate:,.1f} requests/s on average, "
                                    f"{run.peak_rate:,.1f} at the peak "
                                    f"(per {run.series.bucket_s} s)"))
    else:
        facts.append(("attempts", "not recorded (the job ran before promptmill kept them)"))
    if run.latency:
        facts.append(("latency", ", ".join(f"{name} {value:.2f}s"
                                            for name, value in run.latency.items())
                      + " (answered attempts)"))
    pauses = run.pauses
    limiter = []
    if pauses:
        reasons = sorted({p.detail for p in pauses})
        limiter.append(f"{len(pauses):,} pauses, {duration(sum(p.value or 0 for p in pauses))}"
                       f" in all ({', '.join(reasons)})")
    learned = [c for c in run.changes if c.kind == "learned_rate"]
    if learned:
        last = learned[-1]
        limiter.append((f"learned {last.value:.3g} requests/s from 429s" if last.value
                        else "learned limits from 429s, then judged them a blip: unpaced")
                       + f" ({len(learned)} changes)")
    for kind in ("provider_requests", "provider_tokens"):
        reported = [c for c in run.changes if c.kind == kind]
        if reported:
            limiter.append(f"provider limit {reported[-1].value:,.0f} "
                           f"{kind.removeprefix('provider_')}")
    if limiter:
        facts.append(("limiter", "; ".join(limiter)))
    facts.append(("tokens", f"{run.prompt_tokens:,} prompt + {run.completion_tokens:,} "
                            "completion"))
    if run.cost is None:
        facts.append(("cost", "unknown (no price known for this model)"))
    else:
        cost = run.cost
        price = f"{cost.model} at ${cost.input_per_m:g} / ${cost.output_per_m:g} per 1M tokens"
        if cost.batch:
            facts.append(("cost", f"${cost.charged:,.4f} as a Batch API job ({price}, half "
                                  f"price; ${cost.standard:,.4f} at standard prices)"))
        else:
            facts.append(("cost", f"${cost.standard:,.4f} ({price}; "
                                  f"${cost.standard * BATCH_DISCOUNT:,.4f} through the Batch "
                                  "API)"))
    for failure in run.failures:
        example = ""
        if failure.examples:
            row, error = failure.examples[0]
            example = f": row {row + 1}: {error}"
        facts.append(("failed", f"{failure.count:,} {failure.kind}{_cut(example, 160)}"))
    return facts


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def print_summary(run: RunReport, accuracy: Accuracy | None, console: Any) -> None:
    """Print the summary (and the accuracy table) with rich, every value as plain text."""
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for label, text in summary_facts(run):
        grid.add_row(label, Text(text))  # Text: no rich markup taken from the store
    console.print(grid)
    if accuracy is not None:
        console.print(accuracy_table(accuracy))


def accuracy_table(accuracy: Accuracy) -> Any:
    """The accuracy table for the terminal."""
    from rich.table import Table
    from rich.text import Text

    ks = list(accuracy.overall.pass_at_k)
    table = Table(title="accuracy (promptmill extract)")
    table.add_column("category")
    for name in ("rows", "responses", "accuracy", *(f"pass@{k}" for k in ks), "majority"):
        table.add_column(name, justify="right")
    for line in [*accuracy.per_category, accuracy.overall]:
        table.add_row(Text(line.name), str(line.rows), str(line.responses),
                      f"{line.accuracy:.1%}",
                      *(f"{line.pass_at_k.get(k, 0.0):.1%}" for k in ks),
                      f"{line.majority_accuracy:.1%}",
                      style="bold" if line is accuracy.overall else None)
    table.caption = (f"extraction failures {accuracy.extraction_failure_rate:.1%} of "
                     f"responses; failed rows {accuracy.failed_rows}")
    return table
