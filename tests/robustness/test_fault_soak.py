"""Faults: 10,000 requests through every fault and an outage; giving up; faults that cost nothing.

1. The soak: 10,000 requests through every fault the test server can inject, and an outage
   midway.

Faults per attempt (seeded): 20% 429 with Retry-After, 5% 500, 3% dropped connections,
2% hanging responses (the client's 1 s timeout must fire), 1% cut-off JSON bodies. Halfway
through, the server goes away entirely (connections refused) for ``PROMPTMILL_SOAK_OUTAGE``
seconds: 30 by default, as the issue asks (``PROMPTMILL_SOAK_OUTAGE=3`` for a quick local run).

Driven through the library (``promptmill.api.execute``) so the retry backoff can be made small.
Checks: every row ends done or failed with its error, none missing or doubled; each row's
attempts stay within the policy's ``max_attempts`` (connection failures are not attempts);
the engine's retry counters, by fault, match what the server says it injected.

2. Giving up: with ``max_attempts=3``, 30% injected 500s and some prompts the server can never
   answer, many rows run out of attempts: each failed row has its error and exactly
   ``max_attempts`` attempts, and the server saw exactly as many requests for it as the row
   says.

3. Faults that spend no attempts: through the real CLI, against ``promptmill testing-server``
   injecting 502/503/504 and connection resets, a job with ``--max-attempts 1`` still answers
   every row with one attempt; the same job against 500s does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from robustness_helpers import clean_env, read_jsonl, write_jsonl

from promptmill.api import execute
from promptmill.engine.dispatch import EngineConfig
from promptmill.engine.retry import RetryPolicy
from promptmill.generators import get_generator
from promptmill.job import JobSpec
from promptmill.prompts.render import PromptSpec
from promptmill.store import store_path_for
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
    # Any answer to a probe (a 429, a 500) ends the pause; only a probe that meets a hang
    # holds it, for the client's timeout, before the next probe. (CI once saw 8.3 s after a
    # 30 s outage, over the old bound of 8.0 that left no room for either.)
    assert resumed_after <= max(1.0, OUTAGE_SECONDS / 4 + 0.5) + TIMEOUT
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
    # the outage, or one the client gave up waiting for. Never exported twice (checked above).
    doubled = served.total_completed - len(done)
    assert doubled >= 0

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

    # Retries by fault agree with what the server injected, attempt by attempt: for each row,
    # what the server gave its request (faults, answers) against the client's attempt records.
    # An answer the client did not see as itself is one it lost: cut by the outage (at most
    # the requests then in flight), or given after the client's timeout (a host too slow for
    # the server to read the request in time: it then answers late, with anything).
    seen_by_row: defaultdict[int, Counter[str]] = defaultdict(Counter)
    with contextlib.closing(sqlite3.connect(store_path_for(out))) as db:
        for row_index, outcome in db.execute("SELECT row_index, outcome FROM attempt_log"):
            seen_by_row[row_index][outcome] += 1
    lost = late = 0
    for row in rows:
        key = request_key(bodies[row["id"]])
        given = Counter({KIND_OF_FAULT[fault]: count
                         for fault, count in served.faults_by_prompt[key].items()})
        given["done"] = served.completed_by_prompt[key]
        seen = seen_by_row[row["id"]]
        # Nothing the server never gave (a 429 read as a 500, an answer from nowhere): the
        # client's extra outcomes are timeouts and lost connections (refused in the outage).
        unexplained = seen - given
        assert set(unexplained) <= {"timeout", "unavailable"}, (row["id"], given, seen)
        # ... and each outcome the client missed is matched by one of those.
        missed = given - seen
        assert missed.total() <= unexplained.total(), (row["id"], given, seen)
        lost += missed.total()
        late += min(missed.total(), unexplained["timeout"])
    print(f"  lost by the client: {lost} ({late} answered after its timeout); answered "
          f"twice: {doubled}")
    assert lost - late <= CONCURRENCY
    # The engine's own counters agree with its attempt records.
    final_kinds = Counter(
        next(kind for kind, text in (("rate_limited", "HTTP 429"), ("server_error", "HTTP 500"),
                                     ("timeout", "no answer"), ("malformed", "malformed"),
                                     ("unavailable", "")) if text in row["error"])
        for row in failed)
    recorded = sum(seen_by_row.values(), Counter[str]())
    assert recorded == Counter({"done": len(done)}) + Counter(stats.retries) + final_kinds, (
        recorded, stats.retries, final_kinds)
    # Drops, plus requests refused or cut by the outage (some never reach the server).
    injected = {kind: served.faults[fault] for fault, kind in KIND_OF_FAULT.items()}
    assert recorded["unavailable"] >= injected["unavailable"] + served.faults["outage"]
    # The job waited out the outage instead of failing requests: none failed for being
    # unreachable, and it resumed soon after the server came back.
    assert final_kinds.get("unavailable", 0) == 0


# -- 2. giving up --------------------------------------------------------------------------

GIVE_UP_ROWS = 2000
GIVE_UP_POLICY = RetryPolicy(max_attempts=3, backoff_base=0.005, backoff_max=0.02)
GIVE_UP_FAULTS = Faults(server_error=0.3, seed=4321)
DOOMED_EVERY = 40  # every 40th prompt the server can never answer (a 500 every time)
# Rows failed by chance: each non-doomed row fails with probability 0.3 ** 3 = 2.7% (about
# 53 of 1,950, standard deviation 7): the bounds are four deviations out.
CHANCE_FAILED = (24, 82)


@pytest.mark.timeout(180)
def test_rows_that_run_out_of_attempts_fail_with_their_error_and_attempts(
        tmp_path: Path) -> None:
    rows = [{"id": i, "prompt": f"{'doomed' if i % DOOMED_EVERY == 0 else 'fine'} question {i}"}
            for i in range(GIVE_UP_ROWS)]
    source = write_jsonl(tmp_path / "give-up.jsonl", rows)
    out = tmp_path / "give-up.results.jsonl"
    # The responder sees every request that reaches the server (before the fault draw): the
    # server's own count of the attempts each prompt got.
    asked: Counter[str] = Counter()

    def responder(body: dict[str, Any]) -> str:
        prompt = body["messages"][-1]["content"]
        asked[prompt] += 1
        if prompt.startswith("doomed"):
            raise LookupError(f"no answer to {prompt!r}")
        return f"The answer to {prompt}."

    with serve_in_thread(faults=GIVE_UP_FAULTS, responder=responder) as server:
        spec = JobSpec(input=source, output=out, prompts=PromptSpec(),
                       generator=get_generator(f"http!test-model,api_base={server.url}"))
        config = EngineConfig(max_concurrency=CONCURRENCY, retry=GIVE_UP_POLICY)
        # Bounded: a job that never gives up would retry the doomed rows for ever.
        outcome = asyncio.run(asyncio.wait_for(execute(spec, config), timeout=60))
        injected = server.stats.faults["server_error"]
        # Completions only: http!'s one GET /v1/models before the job is no attempt.
        received = server.stats.received["/v1/chat/completions"]

    results = read_jsonl(out)
    assert [row["id"] for row in results] == list(range(GIVE_UP_ROWS))
    failed = [row for row in results if row["status"] == "failed"]
    done = [row for row in results if row["status"] == "done"]
    doomed = [row for row in results if row["prompt"].startswith("doomed")]
    by_chance = [row for row in failed if row["prompt"].startswith("fine")]
    print(f"\n{len(failed)} of {GIVE_UP_ROWS} rows failed: {len(doomed)} doomed, "
          f"{len(by_chance)} by chance; {injected} 500s injected, {received} requests")
    assert outcome.complete and outcome.failed == len(failed) == outcome.stats.failed
    assert len(done) + len(failed) == GIVE_UP_ROWS
    # Every doomed row failed, after exactly max_attempts, with the server's message.
    assert all(row in failed for row in doomed)
    for row in doomed:
        assert row["attempts"] == GIVE_UP_POLICY.max_attempts, row
        assert row["error"].startswith("HTTP 500 from ") and row["responses"] == []
        assert f"LookupError: no answer to '{row['prompt']}'" in row["error"], row["error"]
    # Rows failed by chance: three injected 500s in a row, each said as it was.
    assert CHANCE_FAILED[0] <= len(by_chance) <= CHANCE_FAILED[1]
    for row in by_chance:
        assert row["attempts"] == GIVE_UP_POLICY.max_attempts and row["responses"] == []
        assert row["error"].startswith("HTTP 500 from ") and "injected" in row["error"], row
    # Done rows: the answer to their own prompt, within their attempts.
    for row in done:
        assert row["responses"][0]["text"] == f"The answer to {row['prompt']}."
        assert 1 <= row["attempts"] <= GIVE_UP_POLICY.max_attempts and row["error"] is None
    # The attempts each row reports are the requests the server received for it.
    assert {row["prompt"]: row["attempts"] for row in results} == dict(asked)
    assert sum(asked.values()) == received
    # The engine's counters agree: every 500 was retried, except each failed row's last.
    assert outcome.stats.retries["server_error"] == injected + 3 * len(doomed) - len(failed)


# -- 3. gateway errors and resets spend no attempts ------------------------------------------


@contextlib.contextmanager
def cli_test_server(*options: str) -> Iterator[str]:
    """``promptmill testing-server --port 0 OPTIONS`` in a child process; yields its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "promptmill", "testing-server", "--port", "0", *options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env())
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()  # printed once it listens
        assert url.startswith("http://127.0.0.1:"), process.communicate(timeout=10)
        yield url
    finally:
        process.terminate()
        process.communicate(timeout=10)
    assert process.returncode == 0  # SIGTERM ends it cleanly


def server_stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url.removesuffix("/v1") + "/_testing/stats") as response:
        stats: dict[str, Any] = json.load(response)
    return stats


GATEWAY_FAULTS = ("--fault-502", "0.06", "--fault-503", "0.06", "--fault-504", "0.06",
                  "--fault-reset", "0.06", "--seed", "7")


@pytest.mark.timeout(240)
def test_gateway_errors_and_resets_spend_no_attempts(
        tmp_path: Path, promptmill: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    rows = [{"id": i, "prompt": f"gateway question {i}"} for i in range(300)]
    write_jsonl(tmp_path / "in.jsonl", rows)
    with cli_test_server(*GATEWAY_FAULTS) as url:
        result = promptmill("run", "in.jsonl", "-m", f"http!test-model,api_base={url}",
                            "-o", "out.jsonl", "--max-attempts", "1")
        stats = server_stats(url)
    print(f"\ninjected {stats['faults']}, statuses {stats['statuses']}")
    assert result.returncode == 0, result.stderr
    # Each kind was injected, and the server answered every row once, at the last try.
    assert all(stats["faults"].get(kind, 0) >= 5 for kind in
               ("bad_gateway", "service_unavailable", "gateway_timeout", "reset"))
    assert {code: stats["statuses"].get(code, 0) for code in ("502", "503", "504")} == {
        "502": stats["faults"]["bad_gateway"], "503": stats["faults"]["service_unavailable"],
        "504": stats["faults"]["gateway_timeout"]}
    results = read_jsonl(tmp_path / "out.jsonl")
    assert [row["id"] for row in results] == list(range(300))
    # With a single attempt each, no row failed: none of those faults spent it.
    assert all(row["status"] == "done" and row["attempts"] == 1 for row in results)
    assert stats["completed"] == {"/v1/chat/completions": 300}

    # The control: 500s do spend attempts, so the same job with one attempt loses rows.
    with cli_test_server("--fault-500", "0.1", "--seed", "7") as url:
        result = promptmill("run", "in.jsonl", "-m", f"http!test-model,api_base={url}",
                            "-o", "control.jsonl", "--max-attempts", "1")
    control = read_jsonl(tmp_path / "control.jsonl")
    failed = [row for row in control if row["status"] == "failed"]
    assert result.returncode != 0 and failed
    assert all(row["attempts"] == 1 and "HTTP 500" in row["error"] for row in failed)
