"""The dispatcher's optional stages: the response cache, the spending cap, output checks.

Each is off (None) unless the job asks for it, and each meets a request at one point of its
way through ``engine.dispatch``: the cache when requests are read from the store (answered
there, or sent asking fewer samples) and when an answer is recorded (its samples queued for
the cache); the cap before a send (its worst case reserved) and when the answer or failure
comes back (the reservation replaced by what it cost); the validator when an answer comes
back (each response parsed and checked, an invalid one retried). ``DispatchHooks`` is a
base class of ``Dispatcher``, not a separate object: its methods are the dispatcher's own,
so the hot path pays no extra call or indirection for the split.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from promptmill.errors import GenerationError, InvalidOutput, PromptmillError, SpendingCapReached
from promptmill.store import FinishedRequest
from promptmill.structured import resampled

if TYPE_CHECKING:
    from promptmill.engine.budget import Budget
    from promptmill.engine.config import EngineStats
    from promptmill.engine.dispatch import _Item
    from promptmill.generators.base import GenerationResult
    from promptmill.jobcache import CachedSamples, JobCache, Lookup
    from promptmill.structured import OutputValidator

_T = TypeVar("_T")
# A chunk of items read from the store and its lookup in the response cache (None: none).
Looking = tuple[list["_Item"], "Lookup | None"]


class DispatchHooks:
    """The response cache, spending cap and output validation of a ``Dispatcher``."""

    # Set by Dispatcher.__init__; declared here for the methods below.
    stats: EngineStats
    _ready: deque[_Item]
    _cache: JobCache | None  # consulted before a request is sent; fed its answers
    _budget: Budget | None  # the spending cap: reserved before each send
    _validator: OutputValidator | None  # structured output: each answer parsed and checked

    # The dispatcher's own steps these stages call (defined in Dispatcher).
    def _finish(self, finished: FinishedRequest, *, failed: bool = True) -> None:
        raise NotImplementedError

    def _failed(self, item: _Item, error: GenerationError) -> None:
        raise NotImplementedError

    def _abort_job(self, error: PromptmillError) -> None:
        raise NotImplementedError

    async def _waiting_for(self, wait: Awaitable[_T]) -> _T:
        raise NotImplementedError

    # -- the response cache --------------------------------------------------------------

    def _look_up(self, items: list[_Item]) -> Looking:
        """Start looking a chunk of items up in the response cache (``_from_cache`` takes
        it)."""
        cache = self._cache
        assert cache is not None
        return items, (cache.look_up([item.row for item in items]) if items else None)

    def _from_cache(self, looking: Looking) -> list[_Item]:
        """Answer what the response cache holds of a chunk looked up; the items still to
        send (some asking fewer samples)."""
        items, lookup = looking
        cache = self._cache
        assert cache is not None
        found = cache.found(lookup) if lookup is not None else None
        if found is None:
            return items
        assert lookup is not None
        for item, key in zip(items, lookup.keys, strict=True):
            item.hit = key
        if not found:  # a first run's usual case: every request a miss
            return items
        kept = []
        for position, item in enumerate(items):
            entry = found.get(position)
            if entry is None:
                kept.append(item)
            elif entry.complete:
                self._answer_from_cache(item, entry)
            else:
                item.hit = entry
                item.request = entry.request_for_missing(item.request)
                kept.append(item)
        return kept

    def _answer_from_cache(self, item: _Item, entry: CachedSamples) -> None:
        self.stats.done += 1
        self.stats.cached += entry.n
        row = item.row
        self._finish(FinishedRequest(row.id, row.attempts, entry.stored(), 0, 0))

    # -- output validation ---------------------------------------------------------------

    def _valid(self, item: _Item, result: GenerationResult) -> bool:
        """Parse and check each response (kept in ``item.parsed``); an invalid answer is a
        failed attempt, asked again with a new seed."""
        assert self._validator is not None
        try:
            item.parsed = self._validator.parse_all([r.text for r in result.responses])
        except InvalidOutput as invalid:
            item.request = resampled(item.request)
            self._failed(item, invalid)
            return False
        return True

    # -- the spending cap ----------------------------------------------------------------

    async def _reserve(self, batch: list[_Item]) -> list[_Item]:
        """Reserve the batch's worst case against the cap; what may be sent ([]: nothing).

        While it does not fit it waits for requests in flight to settle; once none is in
        flight and it still does not fit, the job stops sending (SpendingCapReached).
        """
        budget = self._budget
        assert budget is not None
        shares = [budget.share_for(item.row.est_tokens, item.row.n, item.request.n)
                  for item in batch]
        while (kept := budget.reserve_all_or_wait(shares)) is None:
            await self._waiting_for(budget.changed())
        for item, share in zip(batch, shares[:kept], strict=False):
            item.share = share
        if kept < len(batch):
            self._ready.extendleft(reversed(batch[kept:]))
        if not kept:
            self._abort_job(SpendingCapReached(budget.describe_stop(shares[0])))
        return batch[:kept]

    def _settle_spend(self, item: _Item, usage: Any, error: GenerationError | None) -> None:
        budget, share = self._budget, item.share
        assert budget is not None and share is not None
        item.share = None
        budget.settle_usage(share, usage, error)

    def _release_spend(self, items: list[_Item]) -> None:
        """Give back the reservations of requests that were never sent."""
        budget = self._budget
        if budget is None:
            return
        for item in items:
            if item.share is not None:
                budget.release(item.share)
                item.share = None

    def _spend_to_record(self) -> dict[str, Any] | None:
        """The job's spend, for the next commit's meta, if it changed since the last."""
        budget = self._budget
        if budget is None or not budget.dirty:
            return None
        budget.dirty = False
        if budget.prices is not None:
            self.stats.spent = budget.spent.cost
        return {"spent": budget.spent.as_meta()}
