"""The spending cap: a job's spend in dollars and tokens, reserved before each send.

Before a request is sent its worst case (prompt tokens + the completion it may generate,
``max_tokens`` x n, at the model's prices) is reserved; when its answer arrives the
reservation is replaced by what the answer actually used. A send whose worst case does not
fit under the cap beside what is spent and reserved waits for requests in flight to settle;
once nothing is in flight and it still does not fit, the job stops sending. So the spend,
even with hundreds of requests in flight, never passes the cap: every request that could
take it over was never sent.

What is spent is kept in the job store (meta ``spent``, written in the same transaction as
the results it paid for), so a rerun with a higher cap goes on from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from promptmill.errors import GenerationError, MalformedResponse, RequestTimeout

if TYPE_CHECKING:
    import asyncio

# Failures the provider may have billed without telling us how much: the answer was
# generated (a body cut off) or may have been (no answer in time). Charged at worst case.
_MAYBE_BILLED = (RequestTimeout, MalformedResponse)


@dataclass(frozen=True, slots=True)
class Prices:
    """USD per million prompt and completion tokens."""

    prompt: float
    completion: float

    def cost(self, prompt_tokens: float, completion_tokens: float) -> float:
        """Dollars for that many tokens."""
        return (prompt_tokens * self.prompt + completion_tokens * self.completion) / 1e6


@dataclass(slots=True)
class Spend:
    """Dollars and tokens (prompt + completion): spent, reserved, or one request's share."""

    cost: float = 0.0
    tokens: int = 0

    def as_meta(self) -> dict[str, Any]:
        """The form the job store keeps."""
        return {"cost": self.cost, "tokens": self.tokens}


class Budget:
    """A job's spend against ``max_cost`` dollars and ``max_tokens`` tokens (None: no cap).

    With no cap at all it still counts what is spent (``status`` shows it).
    """

    __slots__ = ("max_cost", "max_tokens", "prices", "spent", "reserved", "in_flight",
                 "dirty", "_completion", "_planned", "_changed")

    def __init__(self, prices: Prices | None, completion_bound: int, *,
                 max_cost: float | None = None, max_tokens: int | None = None,
                 spent: Spend | None = None, planned_reserve: int | None = None) -> None:
        self.max_cost = max_cost
        self.max_tokens = max_tokens
        self.prices = prices  # None: unknown (then no dollar cap can be set)
        self.spent = spent or Spend()  # charged so far, this run and the runs before
        self.reserved = Spend()  # worst cases of the requests in flight
        self.in_flight = 0  # reservations not yet settled
        self.dirty = False  # spent changed since the store last kept it
        self._completion = completion_bound  # tokens one sample may generate at most
        # Completion tokens per sample that planning added to each request's token estimate.
        self._planned = completion_bound if planned_reserve is None else planned_reserve
        self._changed: asyncio.Future[None] | None = None  # woken when a reservation settles

    @property
    def capped(self) -> bool:
        """Whether a cap is set."""
        return self.max_cost is not None or self.max_tokens is not None

    def worst(self, prompt_tokens: int, n: int) -> Spend:
        """The most one request of ``n`` samples with this prompt can spend."""
        completion = self._completion * n
        cost = self.prices.cost(prompt_tokens, completion) if self.prices else 0.0
        return Spend(cost, prompt_tokens + completion)

    def share_for(self, est_tokens: int, planned_n: int, n: int) -> Spend:
        """The worst case of a request planned with ``est_tokens`` for ``planned_n`` samples
        (its prompt estimate plus the completion reserve), now asking ``n``."""
        return self.worst(max(0, est_tokens - self._planned * planned_n), n)

    def fits(self, share: Spend) -> bool:
        """Whether ``share`` fits under the cap beside what is spent and reserved."""
        if self.max_cost is not None and (
                self.spent.cost + self.reserved.cost + share.cost > self.max_cost * (1 + 1e-12)):
            return False
        return self.max_tokens is None or (
            self.spent.tokens + self.reserved.tokens + share.tokens <= self.max_tokens)

    def try_reserve(self, share: Spend) -> bool:
        """Reserve ``share`` if it fits; whether it did."""
        if not self.fits(share):
            return False
        self.reserved.cost += share.cost
        self.reserved.tokens += share.tokens
        self.in_flight += 1
        return True

    def reserve_all_or_wait(self, shares: list[Spend]) -> int | None:
        """Reserve a batch's shares: all of them if they fit; None (wait for requests in
        flight to settle) if not; once none is in flight, the first ones that fit (0: the
        cap is reached)."""
        total = Spend(sum(s.cost for s in shares), sum(s.tokens for s in shares))
        if not self.fits(total) and self.in_flight:
            return None
        kept = 0
        for share in shares:
            if not self.try_reserve(share):
                break
            kept += 1
        return kept

    def settle_usage(self, share: Spend, usage: Any, error: GenerationError | None) -> None:
        """:meth:`settle` with a result's ``Usage`` (None: the request got no answer)."""
        if usage is not None:
            self.settle(share, usage.prompt_tokens, usage.completion_tokens)
        else:
            self.settle(share, error=error)

    def settle(self, share: Spend, prompt_tokens: int | None = None,
               completion_tokens: int | None = None, error: GenerationError | None = None
               ) -> None:
        """Replace a reservation by what the request used (its usage; else by its error)."""
        self.reserved.cost -= share.cost
        self.reserved.tokens -= share.tokens
        self.in_flight -= 1
        if prompt_tokens is not None or completion_tokens is not None:
            prompt, completion = prompt_tokens or 0, completion_tokens or 0
            cost = self.prices.cost(prompt, completion) if self.prices else 0.0
            self._charge(Spend(cost, prompt + completion))
        elif isinstance(error, _MAYBE_BILLED):
            self._charge(share)
        if self.in_flight == 0:  # float sums drift: nothing is reserved now
            self.reserved = Spend()
        changed, self._changed = self._changed, None
        if changed is not None and not changed.done():
            changed.set_result(None)

    def release(self, share: Spend) -> None:
        """Give a reservation back unspent (the request was never sent)."""
        self.settle(share)

    def _charge(self, spend: Spend) -> None:
        if spend.cost or spend.tokens:
            self.spent.cost += spend.cost
            self.spent.tokens += spend.tokens
            self.dirty = True

    def changed(self) -> asyncio.Future[None]:
        """A future set when the next reservation settles."""
        if self._changed is None or self._changed.done():
            # Imported here: `promptmill status` reads the spend through this module.
            import asyncio

            self._changed = asyncio.get_running_loop().create_future()
        return self._changed

    def describe_stop(self, share: Spend) -> str:
        """Why the job stops sending: the cap, what is spent, what the next request risks."""
        parts = []
        if self.max_cost is not None:
            parts.append(f"spent ${self.spent.cost:.4f} of --max-cost ${self.max_cost:g}; the "
                         f"next request could cost up to ${share.cost:.4f}")
        if self.max_tokens is not None:
            parts.append(f"used {self.spent.tokens:,} of --max-tokens-total "
                         f"{self.max_tokens:,} tokens; the next request could use up to "
                         f"{share.tokens:,}")
        return ("spending cap reached: " + "; ".join(parts) + ". Nothing more was sent; rerun "
                "the same command with a higher cap to continue")


__all__ = ["Budget", "Prices", "Spend"]
