"""The run report as one self-contained HTML file: plotly.js embedded, no network needed.

The page is a Jinja2 template with autoescaping on, so every string from the store (errors,
the identifier, categories) is shown as text. The figures travel as JSON inside a
``<script type="application/json">`` block, with ``<``, ``>`` and ``&`` written as JSON
escapes so that no text in them can close the block.
"""

from __future__ import annotations

import datetime
import json
from importlib import resources
from pathlib import Path
from typing import Any

from promptmill.errors import MissingDependency, OutputError
from promptmill.pricing import BATCH_DISCOUNT
from promptmill.report.accuracy import Accuracy
from promptmill.report.timeline import RETRY_OUTCOMES, RunReport

# Colours per series, the same in every figure.
_COLOURS = {
    "sent": "#6c8ebf", "done": "#2e7d32", "failed": "#c62828",
    "rate_limited": "#ef6c00", "server_error": "#8e24aa", "unavailable": "#546e7a",
    "malformed": "#6d4c41", "timeout": "#f9a825", "fatal": "#b71c1c",
    "invalid_output": "#ad1457",
    "p50": "#1565c0", "p90": "#6a1b9a", "p99": "#c62828",
    "prompt": "#00838f", "completion": "#5e35b1", "cost": "#2e7d32", "learned": "#000000",
}


def plotly_js() -> str:
    """plotly.js, minified, from the plotly Python package (the ``report`` extra)."""
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:
        raise MissingDependency(
            "promptmill report --html needs plotly: pip install 'promptmill[report]'"
        ) from None
    script: str = get_plotlyjs()
    # Never the case in the releases checked; a guard so that the page cannot break.
    return script.replace("</script", "<\\/script")


def _when(unix_s: float) -> str:
    """A local time for plotly's date axis (no zone: plotly draws it as it is)."""
    return datetime.datetime.fromtimestamp(unix_s).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _axis(title: str, **extra: Any) -> dict[str, Any]:
    return {"title": {"text": title}, "automargin": True, **extra}


def _layout(title: str, y_title: str, **extra: Any) -> dict[str, Any]:
    return {
        "title": {"text": title, "x": 0.01},
        "xaxis": _axis("local time", type="date"),
        "yaxis": _axis(y_title, rangemode="tozero"),
        "legend": {"orientation": "h", "y": -0.25},
        "margin": {"l": 60, "r": 20, "t": 40, "b": 40},
        "height": 340,
        "hovermode": "x unified",
        **extra,
    }


def _line(name: str, x: list[str], y: list[Any], colour: str, **extra: Any) -> dict[str, Any]:
    return {"type": "scatter", "mode": "lines", "name": name, "x": x, "y": y,
            "line": {"color": colour, "width": 1.8}, **extra}


def figures(run: RunReport) -> list[dict[str, Any]]:
    """The report's plotly figures: ``{"id", "data", "layout"}`` each, only those with data."""
    series = run.series
    if not series.times:
        return []
    x = [_when(t) for t in series.times]
    per_s = 1.0 / series.bucket_s
    figs: list[dict[str, Any]] = []

    def rate(values: list[int]) -> list[float]:
        return [round(v * per_s, 3) for v in values]

    throughput = [
        _line("sent", x, rate(series.sent), _COLOURS["sent"]),
        _line("done", x, rate(series.done), _COLOURS["done"]),
        _line("failed", x, rate(series.failed), _COLOURS["failed"]),
    ]
    learned = [c for c in run.changes if c.kind == "learned_rate"]
    if learned:
        # A step held from each change to the next, and the last one to the run's end.
        held = [*learned, learned[-1]]
        times = [_when(c.at) for c in learned] + [x[-1]]
        throughput.append(_line(
            "learned limit", times, [c.value if c.value else None for c in held],
            _COLOURS["learned"],
            line={"color": _COLOURS["learned"], "dash": "dot", "shape": "hv", "width": 1.5},
            connectgaps=False))
    stated = [c.value / 60 for c in run.changes if c.kind == "stated_rpm" and c.value]
    shapes = [_hline(rpm_s, f"stated --rpm {rpm_s * 60:g}") for rpm_s in stated]
    layout = _layout(f"Throughput (requests/s, per {series.bucket_s} s)", "requests/s",
                     shapes=shapes)
    # A first guess from one Retry-After can be far above any real rate: keep the scale of
    # what was sent, and let such a guess leave the top of the plot.
    top = max([*rate(series.sent), *rate(series.done), *stated, 0.0])
    if top and any(c.value and c.value > 1.5 * top for c in learned):
        layout["yaxis"]["range"] = [0, top * 1.3]
    figs.append({"id": "throughput", "data": throughput, "layout": layout})
    figs.append({"id": "latency", "data": [
        _line(name, x, series.latency[name], _COLOURS[name], connectgaps=False)
        for name in ("p50", "p90", "p99")],
        "layout": _layout("Latency of answered attempts (s)", "seconds")})
    bars = [{"type": "bar", "name": name.replace("_", " "), "x": x, "y": series.retries[name],
             "marker": {"color": _COLOURS[name]}}
            for name in RETRY_OUTCOMES if any(series.retries[name])]
    pauses = [_pause_shape(c.at, c.value or 0.0) for c in run.pauses]
    marks = [c for c in run.changes
             if c.kind in ("learned_rate", "provider_requests", "provider_tokens")]
    annotations = [_mark(c.at, _change_label(c)) for c in marks[:40]]
    if pauses:  # a legend entry for the shaded spans
        bars.append({"type": "scatter", "mode": "markers", "name": "limiter paused",
                     "x": [x[0]], "y": [None], "marker": {"color": "rgba(239,108,0,0.3)",
                                                         "symbol": "square", "size": 12}})
    figs.append({"id": "retries", "data": bars or [
        {"type": "bar", "name": "failed attempts", "x": x, "y": [0] * len(x)}],
        "layout": _layout(f"Retries and 429s (failed attempts per {series.bucket_s} s), "
                          "limiter pauses shaded", "attempts", barmode="stack",
                          shapes=pauses + [_vline(c.at) for c in marks[:40]],
                          annotations=annotations)})
    figs.append({"id": "tokens", "data": [
        _line("prompt tokens", x, series.prompt_tokens, _COLOURS["prompt"], fill="tozeroy"),
        _line("completion tokens", x, series.completion_tokens, _COLOURS["completion"],
              fill="tozeroy")],
        "layout": _layout("Tokens in and out (cumulative)", "tokens")})
    if run.cost is not None:
        cost = run.cost
        share = BATCH_DISCOUNT if cost.batch else 1.0
        dollars = [round((p * cost.input_per_m + c * cost.output_per_m) / 1e6 * share, 6)
                   for p, c in zip(series.prompt_tokens, series.completion_tokens, strict=True)]
        label = "Batch API, half price" if cost.batch else "standard prices"
        figs.append({"id": "cost", "data": [
            _line(f"cost ({label})", x, dollars, _COLOURS["cost"], fill="tozeroy")],
            "layout": _layout(f"Cost (USD, cumulative; {cost.model} at ${cost.input_per_m:g} / "
                              f"${cost.output_per_m:g} per 1M tokens, {label})", "USD")})
    if run.failures:
        figs.append({"id": "failures", "data": [{
            "type": "bar", "orientation": "h", "name": "failed requests",
            "y": [f.kind for f in run.failures], "x": [f.count for f in run.failures],
            "marker": {"color": [_COLOURS.get(f.kind, _COLOURS["failed"])
                                 for f in run.failures]}}],
            "layout": {"title": {"text": "Failed requests by error kind", "x": 0.01},
                       "xaxis": _axis("requests", rangemode="tozero"),
                       "yaxis": _axis("", autorange="reversed"),
                       "margin": {"l": 110, "r": 20, "t": 40, "b": 40},
                       "height": 120 + 30 * len(run.failures)}})
    return figs


def _hline(y: float, label: str) -> dict[str, Any]:
    return {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": y, "y1": y,
            "line": {"color": "#888", "dash": "dash", "width": 1}, "label": {"text": label}}


def _pause_shape(at: float, seconds: float) -> dict[str, Any]:
    return {"type": "rect", "xref": "x", "yref": "paper", "x0": _when(at),
            "x1": _when(at + max(seconds, 0.05)), "y0": 0, "y1": 1,
            "fillcolor": "rgba(239,108,0,0.3)", "line": {"width": 0}, "layer": "below"}


def _vline(at: float) -> dict[str, Any]:
    return {"type": "line", "xref": "x", "yref": "paper", "x0": _when(at), "x1": _when(at),
            "y0": 0, "y1": 1, "line": {"color": "#333", "dash": "dot", "width": 1}}


def _mark(at: float, text: str) -> dict[str, Any]:
    return {"x": _when(at), "yref": "paper", "y": 1, "text": text, "showarrow": False,
            "font": {"size": 10}, "textangle": -90, "xanchor": "right", "yanchor": "top"}


def _change_label(change: Any) -> str:
    if change.kind == "learned_rate":
        return (f"learned {change.value:.3g} req/s" if change.value
                else "unpaced (a blip, no limit)")
    what = "requests" if change.kind == "provider_requests" else "tokens"
    return f"provider limit {change.value:,.0f} {what}"


def _script_json(value: Any) -> str:
    """JSON that is safe inside a <script> block: no text in it can end the block."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(run: RunReport, accuracy: Accuracy | None = None) -> str:
    """The whole report page."""
    import jinja2
    from markupsafe import Markup

    from promptmill.report.summary import change_lines, summary_facts

    source = resources.files("promptmill.report").joinpath("static/report.html.jinja")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True)
    env.filters["when"] = lambda unix_s: datetime.datetime.fromtimestamp(unix_s).strftime(
        "%Y-%m-%d %H:%M:%S")
    env.filters["pct"] = lambda share: f"{share:.1%}"
    template = env.from_string(source.read_text(encoding="utf-8"))
    figs = figures(run)
    return template.render(
        run=run, facts=summary_facts(run), accuracy=accuracy, figures=figs,
        figures_json=Markup(_script_json(figs)), plotly_js=Markup(plotly_js()),
        changes=change_lines(run.changes),
        made_at=datetime.datetime.fromtimestamp(run.made_at).strftime("%Y-%m-%d %H:%M:%S"),
    )


def write_html(run: RunReport, target: Path, accuracy: Accuracy | None = None) -> None:
    """Write the report page to ``target`` (whole, or not at all)."""
    page = render_html(run, accuracy)
    partial = target.with_name(target.name + ".partial")
    try:
        partial.write_text(page, encoding="utf-8")
        partial.replace(target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise OutputError(f"--html {target}: cannot write it ({exc.strerror}); "
                          "choose another path") from None
