"""``--dry-run``: how many requests and tokens a job would send, and what it would cost."""

from __future__ import annotations

from pathlib import Path

from promptmill import data
from promptmill.job import DEFAULT_COMPLETION_RESERVE, JobSpec, UniqueIds, check_row
from promptmill.pricing import price_of


def dry_run(spec: JobSpec, prices_file: Path | None = None) -> str:
    """Render every row as the job would, send nothing, and describe what would be sent."""
    data.check_input(spec.input)
    spec.resolve_prompts()
    params = spec.effective_params()
    fitter = spec.fitter(params)
    groups = spec.groups()
    rows = requests = prompt_tokens = 0
    ids = UniqueIds(spec) if spec.unique_ids else None
    try:
        # The same checks as planning, so that a dry run refuses what a real run would.
        for index, row in data.read_rows(spec.input):
            if spec.limit is not None and index >= spec.limit:
                break
            if ids is not None:
                ids.add(index, row)
            check_row(spec.input, index, row)
            _, tokens, _problem = fitter.fit(index, row)
            rows += 1
            requests += len(groups)
            prompt_tokens += tokens * len(groups)
        if ids is not None:
            ids.flush()
    finally:
        if ids is not None:
            ids.close()
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
    batch = spec.mode == "batch"
    price = price_of(spec.generator, batch=batch, prices_file=prices_file)
    if batch:
        from promptmill.batch_files import MAX_REQUESTS

        files = -(-requests // MAX_REQUESTS)
        lines.append(f"batches    at least {files:,} (Batch API, up to {MAX_REQUESTS:,} requests "
                     "each; results within 24h)")
    if price:
        rates = (price.prompt, price.completion)
        low = prompt_tokens * rates[0] / 1e6
        high = low + completion * rates[1] / 1e6
        note = ", the Batch API's half price" if batch else ""
        lines.append(f"cost       ${low:,.4f} prompt + up to ${high - low:,.4f} completion "
                     f"(at ${rates[0]:g}/${rates[1]:g} per 1M tokens{note})")
    else:
        lines.append("cost       unknown for this model")
    lines.append("nothing was sent (--dry-run)")
    return "\n".join(lines)
