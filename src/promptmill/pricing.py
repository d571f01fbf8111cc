"""Model prices: a table of the common OpenAI and Anthropic models, extended by the user.

Where a generator's price comes from, first match wins:

1. its identifier's ``price_in=`` / ``price_out=`` options (USD per million tokens);
2. ``--prices FILE`` or ``prices.toml`` in the user config directory, tables named by
   ``provider!model`` or by model name, each with ``input`` and ``output``::

       ["http!my-model"]
       input = 0.2
       output = 0.8

3. the table below (list prices; a dated snapshot, ``gpt-4o-mini-2024-07-18``, takes its
   model's price).

The Batch API costs half (``BATCH_DISCOUNT``). Used by ``--dry-run`` and the spending cap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from promptmill.engine.budget import Prices
from promptmill.errors import UsageError

# The Batch API's price, as a share of the online price (OpenAI and Anthropic: half).
BATCH_DISCOUNT = 0.5
# USD per million tokens (input, output), from the providers' public price lists.
PRICES: dict[str, tuple[float, float]] = {
    # OpenAI
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "o1": (15.00, 60.00),
    "o3": (2.00, 8.00),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-3.5-turbo": (0.50, 1.50),
    # Anthropic
    "claude-opus-4-5": (5.00, 25.00),
    "claude-opus-4-1": (15.00, 75.00),
    "claude-opus-4": (15.00, 75.00),
    "claude-sonnet-4-5": (3.00, 15.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-3-5-sonnet": (3.00, 15.00),
    "claude-haiku-4-5": (1.00, 5.00),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-3-opus": (15.00, 75.00),
    "claude-3-haiku": (0.25, 1.25),
}
# Providers whose model names the table's prices apply to (http! may be anyone's server).
_PRICED_PROVIDERS = frozenset({"openai", "anthropic", "litellm"})


def table_price(provider: str, model: str) -> Prices | None:
    """The table's price of a model, longest matching name first (None: not in it)."""
    if provider not in _PRICED_PROVIDERS:
        return None
    name = model.rsplit("/", 1)[-1]  # litellm's anthropic/claude-..., openai/gpt-...
    for known in sorted(PRICES, key=len, reverse=True):
        if name == known or name.startswith(known + "-"):
            return Prices(*PRICES[known])
    return None


def user_prices(path: Path | None = None) -> dict[str, Prices]:
    """The prices of a TOML file (default: ``prices.toml`` in the user config directory)."""
    from promptmill.userconfig import config_dir, read_toml

    if path is None:
        path = config_dir() / "prices.toml"
        if not path.is_file():
            return {}
    tables = read_toml(path, "prices file")
    prices = {}
    for name, entry in tables.items():
        if not isinstance(entry, dict) or not all(
                isinstance(entry.get(side), (int, float)) and not isinstance(entry[side], bool)
                and entry[side] >= 0 for side in ("input", "output")):
            raise UsageError(f"prices file {path}: [{name}] needs input = N and output = N "
                             "(USD per million tokens, >= 0)")
        prices[name] = Prices(float(entry["input"]), float(entry["output"]))
    return prices


def listed_price(provider: str, model: str, prices_file: Path | None = None) -> Prices | None:
    """A model's price from the user's prices file, else the table (None: unknown)."""
    known = user_prices(prices_file)
    return known.get(f"{provider}!{model}") or known.get(model) or table_price(provider, model)


def price_of(generator: Any, *, batch: bool = False, prices_file: Path | None = None,
             model: str | None = None) -> Prices | None:
    """What a generator's tokens cost (None: unknown), at the Batch API's price if ``batch``.

    ``model``: another model the same provider serves (a request file's line names it),
    priced from the lists only: the identifier's ``price_in``/``price_out`` are its own
    model's."""
    provider = generator.provider
    own = model is None or model == generator.model
    model = generator.model if model is None else model
    given = getattr(generator, "price_options", {}) if own else {}
    price = listed_price(provider, model, prices_file)
    if given:
        if len(given) == 1 and price is None:
            have, missing = next(iter(given)), ({"price_in", "price_out"} - set(given)).pop()
            raise UsageError(f"{provider}!{model} has {have}= but no {missing}=: give both "
                             "(USD per million prompt and completion tokens)")
        base = price or Prices(0.0, 0.0)
        price = Prices(float(given.get("price_in", base.prompt)),
                       float(given.get("price_out", base.completion)))
    if price is None:
        return None
    share = BATCH_DISCOUNT if batch else 1.0
    return Prices(price.prompt * share, price.completion * share)


__all__ = ["BATCH_DISCOUNT", "PRICES", "listed_price", "price_of", "table_price", "user_prices"]
