"""Counters of what the test server received and sent, for tests to assert on."""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["VOLATILE_FIELDS", "RecordedRequest", "ServerStats", "request_key"]

# Fields that do not change what is asked, so resending a request with another value for them
# is still "the same request" for ``completed_by_prompt``.
VOLATILE_FIELDS = frozenset({"user", "metadata", "store", "service_tier", "stream_options"})


@dataclass(frozen=True)
class RecordedRequest:
    """One request as it reached the server (``TestServer(record_requests=True)``): what a
    client really sent, headers and all, to assert on (the test server is the caller's own)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # the parsed JSON, else the raw bytes (None: no body)


def request_key(body: Mapping[str, Any]) -> str:
    """The key of ``body`` in ``ServerStats.completed_by_prompt``: a hash of its fields.

    Every field counts (model, messages or prompt, n, seed, temperature, max_tokens, ...)
    except ``VOLATILE_FIELDS``, and the order of keys does not.
    """
    kept = {name: value for name, value in body.items() if name not in VOLATILE_FIELDS}
    payload = json.dumps(kept, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


@dataclass
class ServerStats:
    """What the server saw; an answered request and a faulted one are counted apart.

    - ``received``: every request that reached an endpoint, by path (``/v1/chat/completions``).
    - ``statuses``: every response sent, by HTTP status (dropped and hung requests send none).
    - ``faults``: injected faults by kind (``rate_limit``, ``server_error``, ``drop``,
      ``hang``, ``malformed``, ``slow``) and ``outage`` for requests dropped by an outage.
    - ``rate_limited``: real limit refusals (429), by OpenAI's type (``requests``, ``tokens``).
    - ``completed``: requests answered with a valid 200, by path; a ``slow`` one counts here
      too, since its answer is right, only late.
    - ``completed_by_prompt``: the same, by ``request_key(body)``: "answered exactly once".
    - ``faults_by_prompt``: the injected faults, by ``request_key(body)`` then kind: with
      ``completed_by_prompt``, what the server gave each request, to match attempt by attempt
      against what a client saw (an outage's drops, before the body is read, are not in it).
    - ``prompt_tokens`` / ``completion_tokens``: summed over completed requests.
    """

    received: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    rate_limited: Counter[str] = field(default_factory=Counter)
    completed: Counter[str] = field(default_factory=Counter)
    completed_by_prompt: Counter[str] = field(default_factory=Counter)
    faults_by_prompt: defaultdict[str, Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter))
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens of every completed request."""
        return self.prompt_tokens + self.completion_tokens

    @property
    def total_completed(self) -> int:
        """How many requests were answered with a valid 200, over all endpoints."""
        return sum(self.completed.values())

    def times_answered(self, body: Mapping[str, Any]) -> int:
        """How many times a request with this body was answered with a valid 200."""
        return self.completed_by_prompt[request_key(body)]

    def reset(self) -> None:
        """Zero every counter (for a server shared between tests)."""
        for counter in (self.received, self.statuses, self.faults, self.rate_limited,
                        self.completed, self.completed_by_prompt, self.faults_by_prompt):
            counter.clear()
        self.prompt_tokens = self.completion_tokens = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (status codes become strings)."""
        return {
            "received": dict(self.received),
            "statuses": {str(code): count for code, count in self.statuses.items()},
            "faults": dict(self.faults),
            "rate_limited": dict(self.rate_limited),
            "completed": dict(self.completed),
            "completed_by_prompt": dict(self.completed_by_prompt),
            "faults_by_prompt": {key: dict(faults)
                                 for key, faults in self.faults_by_prompt.items()},
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
