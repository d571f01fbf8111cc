"""An OpenAI-compatible test server with rate limits and fault injection, for offline tests.

Answers are deterministic (a pure function of the model, the prompt, the choice index, the
seed and the temperature); limits and faults behave like a real provider's::

    async with TestServer(limits=RateLimits(requests=100, window=1.0)) as server:
        ...  # point a client at server.url

    with serve_in_thread(faults=Faults(drop=0.1, seed=1)) as server:
        ...  # the same, for synchronous code

    with serve_in_thread(ssl_context=context) as server:
        ...  # HTTPS (a server context with its certificate; server.url starts with https)

``FakeLocalEngine`` stands in for a local engine; ``promptmill.testing.models`` builds tiny
random-weight models for the real ones (it needs the ``hf`` extra).
"""

from promptmill.testing.answers import Responder, count_tokens, expected_answers
from promptmill.testing.batches import BatchFaults, BatchService, BatchTimings
from promptmill.testing.engines import FakeLocalEngine
from promptmill.testing.faults import FAULT_KINDS, Faults
from promptmill.testing.judging import judge_responder, judged_response
from promptmill.testing.limits import RateLimits, format_duration
from promptmill.testing.runners import (
    ProcessServer,
    serve_in_process,
    serve_in_thread,
    testing_server_command,
)
from promptmill.testing.server import TestServer
from promptmill.testing.stats import RecordedRequest, ServerStats, request_key
from promptmill.testing.stores import (
    done_requests,
    done_responses,
    kill_when_done,
    wait_for_done,
)
from promptmill.testing.structured import JsonFaults

__all__ = [
    "BatchFaults",
    "BatchService",
    "BatchTimings",
    "FAULT_KINDS",
    "FakeLocalEngine",
    "Faults",
    "JsonFaults",
    "ProcessServer",
    "RateLimits",
    "RecordedRequest",
    "Responder",
    "ServerStats",
    "TestServer",
    "count_tokens",
    "done_requests",
    "done_responses",
    "expected_answers",
    "format_duration",
    "judge_responder",
    "judged_response",
    "kill_when_done",
    "request_key",
    "serve_in_process",
    "serve_in_thread",
    "testing_server_command",
    "wait_for_done",
]
