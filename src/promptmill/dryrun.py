"""``--dry-run``: how many requests and tokens a job would send, and what it would cost."""

from __future__ import annotations

from promptmill import data
from promptmill.job import DEFAULT_COMPLETION_RESERVE, JobSpec, UniqueIds, check_row

# The Batch API's price, as a share of the online price (OpenAI: half).
BATCH_DISCOUNT = 0.5
# USD per million tokens (input, output), from OpenAI's public price list; None: unknown.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "gpt-3.5-turbo": (0.50, 1.50),
}


def price_for(provider: str, model: str) -> tuple[float, float] | None:
    """The (input, output) price per million tokens of an OpenAI model, longest prefix first."""
    if provider != "openai":
        return None
    for name in sorted(PRICES, key=len, reverse=True):
        if model == name or model.startswith(name + "-"):
            return PRICES[name]
    return None


def dry_run(spec: JobSpec) -> str:
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
    price = price_for(spec.generator.provider, spec.generator.model)
    batch = spec.mode == "batch"
    if batch:
        from promptmill.batch_files import MAX_REQUESTS

        files = -(-requests // MAX_REQUESTS)
        lines.append(f"batches    at least {files:,} (Batch API, up to {MAX_REQUESTS:,} requests "
                     "each; results within 24h)")
    if price:
        share = BATCH_DISCOUNT if batch else 1.0
        rates = (price[0] * share, price[1] * share)
        low = prompt_tokens * rates[0] / 1e6
        high = low + completion * rates[1] / 1e6
        note = ", the Batch API's half price" if batch else ""
        lines.append(f"cost       ${low:,.4f} prompt + up to ${high - low:,.4f} completion "
                     f"(at ${rates[0]:g}/${rates[1]:g} per 1M tokens{note})")
    else:
        lines.append("cost       unknown for this model")
    lines.append("nothing was sent (--dry-run)")
    return "\n".join(lines)
