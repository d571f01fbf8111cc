"""10,000 requests through every fault the test server can inject, and an outage midway.

Faults per attempt (seeded): 20% 429 with Retry-After, 5% 500, 3% dropped connections,
2% hanging responses (the client's 1 s timeout must fire), 1% cut-off JSON bodies. Halfway
through, the server goes away entirely (connections refused) for ``PROMPTMILL_SOAK_OUTAGE``
seconds: 30 by default, as the issue asks (``PROMPTMILL_SOAK_OUTAGE=3`` for a quick local run).

Driven through the library (``promptmill.api.execute``) so the retry backoff can be made small.
Checks: every row ends done or failed with its error, none missing or doubled; each row's
attempts stay within the policy's ``max_attempts`` (connection failures are not attempts);
the engine's retry counters, by fault, match what the server says it injected.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest
from robustness_helpers import read_jsonl, write_jsonl

from promptmill.api import execute
from promptmill.engine.dispatch import EngineConfig
from promptmill.engine.retry import RetryPolicy
from promptmill.generators import get_generator
from promptmill.job import JobSpec
from promptmill.prompts.render import PromptSpec
from promptmill.testing import Faults, request_key, serve_in_thread

REQUESTS = 10_000
OUTAGE_SECONDS = float(os.environ.get("PROMPTMILL_SOAK_OUTAGE", "30"))
TIMEOUT = 1.0  # seconds before the client gives up on a hanging response
CONCURRENCY = 64
FAULTS = Faults(rate_limit=0.20, server_error=0.05, drop=0.03, hang=0.02, malformed=0.01,
                seed=1234, retry_after=0.05)
POLICY = RetryPolicy(max_attempts=8, backoff_base=0.01, backoff_max=0.2)
# Faults that spend one of a request's attempts (a dropped connection does not).
COUNTED = FAULTS.rate_limit + FAULTS.server_error + FAULTS.hang + FAULTS.malformed
# Attempts a request makes on average: a geometric series cut at max_attempts.
EXPECTED_ATTEMPTS = REQUESTS * (1 - COUNTED**POLICY.max_attempts) / (1 - COUNTED)
# The engine's error kind for each injected fault.
KIND_OF_FAULT = {"rate_limit": "rate_limited", "server_error": "server_error",
                 "hang": "timeout", "malformed": "malformed", "drop": "unavailable"}


@pytest.mark.slow
@pytest.mark.timeout(240 + 2 * OUTAGE_SECONDS)
def test_10k_requests_through_faults_and_an_outage(tmp_path: Path) -> None:
    rows = [{"id": i, "prompt": f"soak question number {i}"} for i in range(REQUESTS)]
    source = write_jsonl(tmp_path / "soak.jsonl", rows)
    out = tmp_path / "soak.results.jsonl"
    with serve_in_thread(faults=FAULTS) as server:
        spec = JobSpec(
            input=source, output=out, prompts=PromptSpec(),
            generator=get_generator(f"http!test-model,api_base={server.url},timeout={TIMEOUT}"),
        )
        outage: dict[str, float] = {}

        def outage_halfway() -> None:
            while server.stats.total_completed < REQUESTS // 2:
                time.sleep(0.01)
            outage["received_before"] = sum(server.stats.received.values())
            server.set_outage(True)
            outage["start"] = time.monotonic()
            time.sleep(OUTAGE_SECONDS)
            answered = server.stats.total_completed
            server.set_outage(False)
            outage["end"] = time.monotonic()
            while server.stats.total_completed == answered:
                time.sleep(0.01)
            outage["resumed"] = time.monotonic()

        watcher = threading.Thread(target=outage_halfway, daemon=True)
        watcher.start()
        config = EngineConfig(max_concurrency=CONCURRENCY, retry=POLICY)
        started = time.monotonic()
        outcome = asyncio.run(execute(spec, config))
        elapsed = time.monotonic() - started
        watcher.join(timeout=10)
        served = server.stats
        bodies = {row["id"]: {"model": "test-model", "n": 1,
                              "messages": [{"role": "user", "content": row["prompt"]}]}
                  for row in rows}

    stats = outcome.stats
    retries = {kind: count for kind, count in sorted(stats.retries.items()) if count}
    resumed_after = outage["resumed"] - outage["end"]
    print(f"\n{REQUESTS:,} requests in {elapsed:.1f}s; outage {OUTAGE_SECONDS:g}s, answers "
          f"flowing again {resumed_after:.2f}s after the server came back")
    print(f"  server injected: {dict(sorted(served.faults.items()))}")
    print(f"  retries by kind: {retries}; failed {stats.failed}")
    total_attempts = sum(row["attempts"] for row in read_jsonl(out))
    print(f"  counted attempts {total_attempts:,} (expected {EXPECTED_ATTEMPTS:,.0f}, bound "
          f"{REQUESTS * POLICY.max_attempts:,}); HTTP requests received "
          f"{sum(served.received.values()):,}")

    assert outcome.complete and outcome.pending == 0
    # While the server is down the job probes it at a quarter of the time it has been down
    # (at least every 0.25 s, at most 30 s): it notices the return within that, not minutes.
    assert resumed_after <= max(1.0, OUTAGE_SECONDS / 4 + 0.5)
    results = read_jsonl(out)
    # Every row once, in input order; done with one answer, or failed with its error.
    assert [row["id"] for row in results] == list(range(REQUESTS))
    done = [row for row in results if row["status"] == "done"]
    failed = [row for row in results if row["status"] == "failed"]
    assert len(done) + len(failed) == REQUESTS == stats.done + stats.failed
    assert all(len(row["responses"]) == 1 and row["error"] is None for row in done)
    assert all(not row["responses"] and row["error"] for row in failed)
    # The server answered each done row at least once, and each answer it gave landed on
    # its own row (the test server echoes the prompt).
    assert all(served.completed_by_prompt[request_key(bodies[row["id"]])] >= 1 for row in done)
    assert all(row["prompt"] in row["responses"][0]["text"] for row in done)
    # Answered twice only where the client never got the first answer: a response cut by
    # the outage, or one slower than the timeout. Never exported twice (checked above).
    doubled = served.total_completed - len(done)
    assert 0 <= doubled <= CONCURRENCY

    # Attempts: at most max_attempts per request, and close to what the fault rates predict.
    attempts = [row["attempts"] for row in results]
    assert max(attempts) <= POLICY.max_attempts
    assert sum(attempts) <= REQUESTS * POLICY.max_attempts
    assert sum(attempts) <= 1.05 * EXPECTED_ATTEMPTS, (sum(attempts), EXPECTED_ATTEMPTS)
    # ... and exactly the attempts the engine counted: each success, each retried counted
    # failure, and the last failure of each request that ran out of attempts.
    retried = sum(count for kind, count in stats.retries.items() if kind != "unavailable")
    assert sum(attempts) == len(done) + retried + len(failed)
    # Every request reaching the server is an attempt or an uncounted connection failure.
    assert sum(served.received.values()) <= REQUESTS * (POLICY.max_attempts
                                                        + POLICY.max_unavailable)

    # Retries by fault agree with what the server injected. The only slack: responses the
    # outage cut off (at most the requests in flight) reach the client as connection errors.
    final_kinds: dict[str, int] = {}
    for row in failed:
        kind = next(k for k, text in (("rate_limited", "HTTP 429"), ("server_error", "HTTP 500"),
                                      ("timeout", "no answer"), ("malformed", "malformed"),
                                      ("unavailable", "")) if text in row["error"])
        final_kinds[kind] = final_kinds.get(kind, 0) + 1
    for fault, kind in KIND_OF_FAULT.items():
        seen = stats.retries[kind] + final_kinds.get(kind, 0)
        injected = served.faults[fault]
        if kind == "unavailable":
            # Drops, plus requests refused or cut by the outage (some never reach the server).
            assert seen >= injected + served.faults["outage"], (fault, seen, injected)
        else:
            assert injected - CONCURRENCY <= seen <= injected + (doubled if kind == "timeout"
                                                                 else 0), (fault, seen, injected)
    # The job waited out the outage instead of failing requests: none failed for being
    # unreachable, and it resumed soon after the server came back.
    assert final_kinds.get("unavailable", 0) == 0
