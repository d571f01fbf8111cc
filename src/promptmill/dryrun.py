"""``--dry-run``: how many requests and tokens a job would send, and what it would cost."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from promptmill import data
from promptmill.datasets_ import is_hf_source
from promptmill.job import DEFAULT_COMPLETION_RESERVE, JobSpec, check_row
from promptmill.pricing import price_of


def dry_run(spec: JobSpec, prices_file: Path | None = None) -> str:
    """Render every row as the job would, send nothing, and describe what would be sent.

    Prices come from ``prices_file`` (default: the job's), then the built-in table."""
    prices_file = prices_file or spec.prices_file
    data.check_input(spec.input)
    if spec.requests:
        return _dry_run_requests(spec, prices_file)
    if not spec.prompts.given and not is_hf_source(spec.input):
        from promptmill.request_files import refuse_request_file

        refuse_request_file(spec.input)
    spec.resolve_prompts()
    params = spec.effective_params()
    fitter = spec.fitter(params)
    groups = spec.groups()
    rows = requests = prompt_tokens = 0
    for index, row in _checked_rows(spec):
        check_row(spec.input, index, row)
        _, tokens, _problem = fitter.fit(index, row)
        rows += 1
        requests += len(groups)
        prompt_tokens += tokens * len(groups)
    completion = (params.max_tokens or DEFAULT_COMPLETION_RESERVE) * rows * spec.k
    lines = [
        f"model      {spec.model_identifier()}",
        f"rows       {rows:,}",
        f"requests   {requests:,} (k={spec.k}, {len(groups)} per row)",
        f"tokens     {prompt_tokens:,} prompt + up to {completion:,} completion",
    ]
    if fitter.too_long_rows:
        lines.append(f"too long   {fitter.too_long_rows:,} rows over the context would fail "
                     "unsent (cut them to fit with --truncate-field FIELD)")
    if fitter.cut_rows:
        assert spec.truncation is not None
        lines.append(f"truncated  {fitter.cut_rows:,} rows cut to fit "
                     f"(--truncate-field {spec.truncation.field})")
    gen = spec.generator
    return _finish(lines, spec, requests, {gen.model: [prompt_tokens, completion]},
                   prices_file)


def _dry_run_requests(spec: JobSpec, prices_file: Path | None) -> str:
    """A request file's dry run: every line checked as planning checks it, tokens per model."""
    from promptmill.request_files import RequestPlanner

    planner = RequestPlanner(spec)
    requests: list[list[list[Any]]] = []
    unsendable: list[tuple[int, str]] = []
    count = 0
    for index, row in _checked_rows(spec):
        planner.plan(index, row, requests, unsendable)
        requests.clear()
        count += 1
    completion = sum(reserved for _, reserved in planner.models.values())
    models = ", ".join(sorted(planner.models)) or spec.generator.model
    lines = [
        f"endpoint   {spec.model_identifier()}",
        f"models     {models}",
        f"requests   {count:,} (one per line of the request file)",
        f"tokens     {planner.prompt_tokens:,} prompt + up to {completion:,} completion",
    ]
    if planner.too_long_rows:
        lines.append(f"too long   {planner.too_long_rows:,} lines over the context would fail "
                     "unsent (shorten them or lower max_tokens)")
    return _finish(lines, spec, count, planner.models, prices_file)


def _checked_rows(spec: JobSpec) -> Iterator[tuple[int, dict[str, Any]]]:
    """The rows a job would plan (``--limit``), their ids checked as planning checks them, so
    that a dry run refuses what a real run would."""
    ids = spec.unique_ids_check()
    try:
        for index, row in data.read_rows(spec.input):
            if spec.limit is not None and index >= spec.limit:
                break
            if ids is not None:
                ids.add(index, row)
            yield index, row
        if ids is not None:
            ids.flush()
    finally:
        if ids is not None:
            ids.close()


def _finish(lines: list[str], spec: JobSpec, requests: int, tokens: dict[str, list[int]],
            prices_file: Path | None) -> str:
    """The batch and cost lines; ``tokens``: model -> [prompt, completion reserved]."""
    batch = spec.mode == "batch"
    if batch:
        from promptmill.batch_files import MAX_REQUESTS

        files = max(len(tokens), -(-requests // MAX_REQUESTS))
        lines.append(f"batches    at least {files:,} (Batch API, up to {MAX_REQUESTS:,} requests "
                     "each, one model each; results within 24h)")
    prices = {model: price_of(spec.generator, batch=batch, prices_file=prices_file,
                              model=model) for model in tokens}
    if tokens and all(prices.values()):
        low = high = 0.0
        for model, (prompt, completion) in tokens.items():
            price = prices[model]
            assert price is not None
            low += prompt * price.prompt / 1e6
            high += completion * price.completion / 1e6
        rates = "; ".join((f"{model} " if len(prices) > 1 else "")
                          + f"${price.prompt:g}/${price.completion:g}"
                          for model, price in sorted(prices.items()) if price)
        note = ", the Batch API's half price" if batch else ""
        lines.append(f"cost       ${low:,.4f} prompt + up to ${high:,.4f} completion "
                     f"(at {rates} per 1M tokens{note})")
    else:
        lines.append("cost       unknown for this model")
    lines.append("nothing was sent (--dry-run)")
    return "\n".join(lines)
