"""A job's spending cap (``--max-cost``, ``--max-tokens-total``): checked before anything is
sent, handed to the engine as a :class:`~promptmill.engine.budget.Budget`, shown by
``status``.

The cap is not part of the job's fingerprint: the same job rerun with a higher cap goes on
where it stopped, with what it spent before counted (the store's meta ``spent``).
"""

from __future__ import annotations

from typing import Any

from promptmill.engine.budget import Budget, Spend
from promptmill.errors import UsageError
from promptmill.pricing import price_of

# Completion tokens reserved per sample when a job sets no max_tokens and has no cap (the
# reservation then only paces nothing: it is never compared with a cap).
_UNCAPPED_RESERVE = 512


def completion_bound(spec: Any, params: Any) -> int | None:
    """The most tokens one sample may generate: max_tokens, else the model's context."""
    if params.max_tokens is not None:
        return int(params.max_tokens)
    context = spec.generator.context_length()
    return int(context) if context else None


def check_cap(spec: Any, params: Any) -> None:
    """UsageError before anything is sent if the cap cannot be kept: a price or a bound on
    each request's completion is missing."""
    if spec.max_cost is None and spec.max_tokens_total is None:
        return
    gen = spec.generator
    if spec.mode == "batch":
        raise UsageError("--max-cost and --max-tokens-total apply to online runs: drop them "
                         "with --mode batch (--dry-run --mode batch prices the job)")
    if spec.max_cost is not None and price_of(gen, prices_file=spec.prices_file) is None:
        raise UsageError(
            f"--max-cost: no price known for {gen.provider}!{gen.model}: add price_in=USD and "
            "price_out=USD (per million tokens) to the model identifier, or an entry in "
            "prices.toml (see the README)")
    if completion_bound(spec, params) is None:
        raise UsageError(
            "--max-cost/--max-tokens-total needs each request's worst case: set max_tokens "
            "(--param max_tokens=N, or max_tokens=N in the model identifier)")


def job_budget(spec: Any, params: Any, store: Any) -> Budget | None:
    """The engine's budget for a job: with a cap, or to count the spend where prices are
    known (None: neither, nothing to count on the hot path)."""
    from promptmill.job import DEFAULT_COMPLETION_RESERVE

    capped = spec.max_cost is not None or spec.max_tokens_total is not None
    prices = price_of(spec.generator, prices_file=spec.prices_file)
    store.set_meta(spend_cap={"max_cost": spec.max_cost, "max_tokens": spec.max_tokens_total})
    if not capped and prices is None:
        return None
    kept = store.get_meta("spent") or {}
    spent = Spend(float(kept.get("cost", 0.0)), int(kept.get("tokens", 0)))
    bound = completion_bound(spec, params) or _UNCAPPED_RESERVE
    return Budget(prices, bound, max_cost=spec.max_cost, max_tokens=spec.max_tokens_total,
                  spent=spent,
                  planned_reserve=params.max_tokens or DEFAULT_COMPLETION_RESERVE)


def spend_lines(store: Any) -> list[str]:
    """``status``'s lines on what the job spent, and what its last cap leaves."""
    spent = store.get_meta("spent")
    cap = store.get_meta("spend_cap") or {}
    if not spent and not any(cap.values()):
        return []
    spent = spent or {}
    cost, tokens = float(spent.get("cost", 0.0)), int(spent.get("tokens", 0))
    parts = [f"${cost:.4f}"] if cost or cap.get("max_cost") is not None else []
    if cap.get("max_cost") is not None:
        left = max(0.0, cap["max_cost"] - cost)
        parts[-1] += f" of --max-cost ${cap['max_cost']:g} (${left:.4f} remaining)"
    tokens_part = f"{tokens:,} tokens"
    if cap.get("max_tokens") is not None:
        left_tokens = max(0, cap["max_tokens"] - tokens)
        tokens_part += (f" of --max-tokens-total {cap['max_tokens']:,} ({left_tokens:,} "
                        "remaining)")
    parts.append(tokens_part)
    return ["spent    " + "; ".join(parts)]


__all__ = ["check_cap", "completion_bound", "job_budget", "spend_lines"]
