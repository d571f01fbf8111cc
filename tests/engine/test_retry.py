"""The retry policy: what spends an attempt, when a request gives up, how long it waits."""

from __future__ import annotations

import random

import pytest

from promptmill.engine.retry import RetryPolicy
from promptmill.errors import FatalRequestError, RateLimited, ServerError, Unavailable


def test_connection_failures_spend_no_attempt_and_have_their_own_cap() -> None:
    policy = RetryPolicy(max_attempts=3, max_unavailable=5)
    down = Unavailable("HTTP 503 from http://x/v1: overloaded")
    assert not policy.counts_as_attempt(down)
    assert policy.counts_as_attempt(ServerError("HTTP 500"))
    assert not policy.gives_up(down, attempts=3, unavailable=4)
    assert policy.gives_up(down, attempts=0, unavailable=5)


def test_counted_failures_give_up_at_max_attempts_and_fatal_ones_at_once() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert [policy.gives_up(ServerError("HTTP 500"), n, 0) for n in (1, 2, 3)] == [
        False, False, True]
    assert policy.gives_up(FatalRequestError("HTTP 400"), 1, 0)


def test_backoff_doubles_with_equal_jitter_up_to_its_cap_even_after_many_attempts() -> None:
    policy = RetryPolicy(backoff_base=1.0, backoff_max=60.0)
    rng = random.Random(0)
    error = ServerError("HTTP 500")
    for attempt, ceiling in ((1, 1.0), (2, 2.0), (4, 8.0), (7, 60.0), (5000, 60.0)):
        delays = [policy.delay(error, attempt, rng) for _ in range(200)]
        assert ceiling / 2 <= min(delays) and max(delays) <= ceiling, attempt
    # A 429 waits exactly what its Retry-After says.
    assert policy.delay(RateLimited("HTTP 429", retry_after=2.5), 9, rng) == pytest.approx(2.5)
