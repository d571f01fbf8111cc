"""What a job did over time, read from its store: the numbers behind the report and summary.

Everything here is plain data (lists of numbers and strings), computed with a few grouped
queries over the ``attempts``, ``events`` and ``requests`` tables, so that the HTML page and
the terminal summary show the same figures. Text that came from the store or a provider
(errors, the identifier) is redacted here, once.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from promptmill.pricing import BATCH_DISCOUNT, listed_price
from promptmill.redaction import redact_secrets
from promptmill.store import ATTEMPT_OUTCOMES, JobStore

# Buckets a time axis is cut into, at most: enough to see a trend, few enough to draw fast.
_MAX_BUCKETS = 240
# Bucket sizes (seconds) a time axis may use: round numbers a reader can take in.
_BUCKET_SIZES = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)
# Failed requests quoted per error kind.
_EXAMPLES = 3
# Outcome names that are failures of an attempt, in the order the report stacks them.
RETRY_OUTCOMES = ATTEMPT_OUTCOMES[1:]


@dataclass
class Series:
    """Per-bucket values of one time axis (bucket start times in Unix seconds)."""

    bucket_s: int = 1
    times: list[float] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    done: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    # outcome name -> attempts per bucket (rate_limited, server_error, ...)
    retries: dict[str, list[int]] = field(default_factory=dict)
    latency: dict[str, list[float | None]] = field(default_factory=dict)  # p50/p90/p99, s
    prompt_tokens: list[int] = field(default_factory=list)  # cumulative
    completion_tokens: list[int] = field(default_factory=list)  # cumulative


@dataclass
class LimiterChange:
    """One state change of the rate limiter (or a run starting or ending)."""

    at: float  # Unix seconds
    kind: str  # pause, learned_rate, provider_requests, provider_tokens, stated_*, run_*
    value: float | None
    detail: str


@dataclass
class FailureKind:
    """Requests that finally failed with one error kind, and a few of them."""

    kind: str
    count: int
    examples: list[tuple[int, str]]  # (input row index, error)


@dataclass
class Cost:
    """What the job's tokens cost at a known price."""

    model: str
    input_per_m: float  # USD per million prompt tokens
    output_per_m: float  # USD per million completion tokens
    standard: float  # USD at standard prices
    batch: bool  # whether the job ran through a Batch API (then half price applies)

    @property
    def charged(self) -> float:
        """USD the job costs as it ran (half for a Batch API job)."""
        return self.standard * BATCH_DISCOUNT if self.batch else self.standard


@dataclass
class RunReport:
    """A job's run, summarised: counts, series over time, limiter changes, failures, cost."""

    output: str
    model: str
    rows: int
    requests: int
    done: int
    failed: int
    pending: int
    prompt_tokens: int
    completion_tokens: int
    attempts: dict[str, int]  # outcome name -> attempts
    series: Series
    changes: list[LimiterChange]
    failures: list[FailureKind]
    cost: Cost | None
    latency: dict[str, float]  # p50/p90/p99 over every answered attempt, seconds
    first_sent: float | None  # Unix seconds
    last_answer: float | None
    active_s: float  # seconds some run was sending (gaps between runs left out)
    peak_rate: float  # requests/s of the busiest bucket
    made_at: float = field(default_factory=time.time)

    @property
    def pauses(self) -> list[LimiterChange]:
        """The limiter's pauses (Retry-After, outages)."""
        return [c for c in self.changes if c.kind == "pause"]

    @property
    def runs(self) -> int:
        """How many times the job was started (a resume is a run)."""
        return sum(c.kind == "run_start" for c in self.changes)

    @property
    def mean_rate(self) -> float:
        """Requests finished per active second."""
        return (self.done + self.failed) / self.active_s if self.active_s else 0.0


def job_is_batch(store: JobStore) -> bool:
    """Whether the job ran through a provider's Batch API (its tokens cost half).

    The Batch API mode keeps its batches in the store; a job that submitted any is one.
    """
    found = store.db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'batches'").fetchone()
    if not found:
        return False
    return store.db.execute("SELECT 1 FROM batches LIMIT 1").fetchone() is not None


def read_run(store: JobStore, output: str) -> RunReport:
    """Everything the report shows about the run of the job in ``store``."""
    db = store.db
    status = store.status()
    fingerprint = store.get_meta("fingerprint") or {}
    model = redact_secrets(str(store.get_meta("model_identifier")
                               or fingerprint.get("model", "?")))
    attempts = dict.fromkeys(ATTEMPT_OUTCOMES, 0)
    for code, count in db.execute("SELECT outcome, COUNT(*) FROM attempts GROUP BY outcome"):
        attempts[ATTEMPT_OUTCOMES[code] if 0 <= code < len(ATTEMPT_OUTCOMES) else "fatal"] += count
    changes = [LimiterChange(at / 1000, kind, value, redact_secrets(detail or ""))
               for at, kind, value, detail in
               db.execute("SELECT at_ms, kind, value, detail FROM events ORDER BY at_ms")]
    series, latency, first, last, active, peak = _series(db, changes)
    return RunReport(
        output=output, model=model, rows=status.rows, requests=status.requests,
        done=status.done, failed=status.failed, pending=status.pending,
        prompt_tokens=status.prompt_tokens, completion_tokens=status.completion_tokens,
        attempts=attempts, series=series, changes=changes, failures=_failures(db),
        cost=_cost(str(fingerprint.get("model", "")), status.prompt_tokens,
                   status.completion_tokens, job_is_batch(store),
                   _tokens_by_model(db) if "requests" in fingerprint else None),
        latency=latency, first_sent=first, last_answer=last, active_s=active, peak_rate=peak,
    )


def _bucket_size(span_s: float) -> int:
    for size in _BUCKET_SIZES:
        if span_s / size <= _MAX_BUCKETS:
            return size
    return math.ceil(span_s / _MAX_BUCKETS / 86400) * 86400


def _series(db: Any, changes: list[LimiterChange]
            ) -> tuple[Series, dict[str, float], float | None, float | None, float, float]:
    """Per-bucket series; overall latency percentiles; first send, last answer; active
    seconds; the peak rate."""
    first_ms, last_ms = db.execute(
        "SELECT MIN(sent_ms), MAX(sent_ms + duration_ms) FROM attempts").fetchone()
    finished = db.execute("SELECT MIN(finished_at), MAX(finished_at) FROM requests "
                          "WHERE finished_at IS NOT NULL").fetchone()
    # Jobs stored before attempts were kept still have their requests' finishing times.
    starts = [t for t in (first_ms and first_ms / 1000, finished[0]) if t is not None]
    ends = [t for t in (last_ms and last_ms / 1000, finished[1]) if t is not None]
    if not starts:
        return Series(), {}, None, None, 0.0, 0.0
    start, end = min(starts), max(ends)
    size = _bucket_size(max(end - start, 1.0))
    count = int((end - start) // size) + 1
    start_ms, size_ms = int(start * 1000), size * 1000
    series = Series(bucket_s=size, times=[start + i * size for i in range(count)],
                    sent=[0] * count, done=[0] * count, failed=[0] * count,
                    retries={name: [0] * count for name in RETRY_OUTCOMES})
    prompt, completion = [0] * count, [0] * count
    for bucket, outcome, n in db.execute(
            "SELECT (sent_ms - ?) / ?, outcome, COUNT(*) FROM attempts GROUP BY 1, 2",
            (start_ms, size_ms)):
        series.sent[bucket] += n
        if outcome:
            name = ATTEMPT_OUTCOMES[outcome] if outcome < len(ATTEMPT_OUTCOMES) else "fatal"
            series.retries[name][bucket] += n
    durations: dict[int, list[int]] = defaultdict(list)
    for bucket, duration in db.execute(
            "SELECT (sent_ms + duration_ms - ?) / ?, duration_ms FROM attempts "
            "WHERE outcome = 0", (start_ms, size_ms)):
        durations[bucket].append(duration)
    # Finished requests by when their result was committed (a few ms after the answer).
    for status, bucket, n, p_tokens, c_tokens in db.execute(
            "SELECT status, CAST((finished_at - ?) / ? AS INTEGER), COUNT(*), "
            "SUM(prompt_tokens), SUM(completion_tokens) FROM requests "
            "WHERE finished_at IS NOT NULL AND status IN ('done', 'failed') GROUP BY 1, 2",
            (start, size)):
        bucket = min(max(bucket, 0), count - 1)
        target = series.done if status == "done" else series.failed
        target[bucket] += n
        prompt[bucket] += p_tokens or 0
        completion[bucket] += c_tokens or 0
    everything: list[int] = []
    series.latency = {"p50": [], "p90": [], "p99": []}
    for bucket in range(count):
        values = sorted(durations.get(bucket, ()))
        everything.extend(values)
        for name, share in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
            series.latency[name].append(_percentile(values, share))
    everything.sort()
    overall = {name: value for name, share in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
               if (value := _percentile(everything, share)) is not None}
    series.prompt_tokens = _cumulative(prompt)
    series.completion_tokens = _cumulative(completion)
    busy = sum(1 for i in range(count) if series.sent[i] or series.done[i] or series.failed[i])
    peak = max((d + f for d, f in zip(series.done, series.failed, strict=True)), default=0)
    return series, overall, start, end, busy * size if count > 1 else end - start, peak / size


def _percentile(sorted_ms: list[int], share: float) -> float | None:
    """The nearest-rank percentile of sorted milliseconds, in seconds (None: no values)."""
    if not sorted_ms:
        return None
    rank = max(0, math.ceil(share * len(sorted_ms)) - 1)
    return sorted_ms[rank] / 1000


def _cumulative(values: list[int]) -> list[int]:
    total, out = 0, []
    for value in values:
        total += value
        out.append(total)
    return out


def _failures(db: Any) -> list[FailureKind]:
    kinds = db.execute(
        "SELECT COALESCE(error_kind, 'error'), COUNT(*) AS c FROM requests "
        "WHERE status = 'failed' GROUP BY 1 ORDER BY c DESC").fetchall()
    failures = []
    for kind, count in kinds:
        examples = db.execute(
            "SELECT row_index, error FROM requests WHERE status = 'failed' "
            "AND COALESCE(error_kind, 'error') = ? ORDER BY id LIMIT ?",
            (kind, _EXAMPLES)).fetchall()
        failures.append(FailureKind(kind, count, [(row, redact_secrets(str(error)))
                                                  for row, error in examples]))
    return failures


def _cost(model: str, prompt_tokens: int, completion_tokens: int, batch: bool,
          by_model: dict[str, tuple[int, int]] | None = None) -> Cost | None:
    """The cost at the model's known price (``pricing``: the user's prices file, then the
    table); None where unknown.

    ``by_model``: a request file's (prompt, completion) tokens per model its lines name
    ("" for the job's own), each model at its own price; the prices shown are then the
    token-weighted means.
    """
    provider, _, name = model.partition("!")
    if by_model is None or set(by_model) <= {"", name}:
        price = listed_price(provider, name)
        if price is None:
            return None
        standard = (prompt_tokens * price.prompt + completion_tokens * price.completion) / 1e6
        return Cost(name, price.prompt, price.completion, standard, batch)
    prompt_cost = completion_cost = 0.0
    for line_model, (prompt, completion) in by_model.items():
        price = listed_price(provider, line_model or name)
        if price is None:
            return None  # one model without a price: the total is unknown
        prompt_cost += prompt * price.prompt
        completion_cost += completion * price.completion
    names = sorted({line_model or name for line_model in by_model})
    return Cost(f"{len(names)} models ({', '.join(names)}), on average",
                prompt_cost / max(prompt_tokens, 1), completion_cost / max(completion_tokens, 1),
                (prompt_cost + completion_cost) / 1e6, batch)


def _tokens_by_model(db: Any) -> dict[str, tuple[int, int]]:
    """A request file's answered tokens per model its lines name ("": the job's model)."""
    return {str(model): (int(prompt or 0), int(completion or 0))
            for model, prompt, completion in db.execute(
                "SELECT COALESCE(json_extract(payload, '$.model'), ''), SUM(prompt_tokens), "
                "SUM(completion_tokens) FROM requests GROUP BY 1")}
