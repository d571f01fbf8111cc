"""vLLM's OpenAI server on its CPU build (the module ``promptmill serve`` runs), serving the
tiny random-weight Llama of ``promptmill.testing.models``: a server that honours n and checks
the model name."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from interop_checks import CHECKS, Compat, Served, check_too_long, free_port

from promptmill.serve import server_command

pytestmark = [pytest.mark.interop, pytest.mark.timeout(1200)]
SERVER = "vLLM"
# The context the server is started with: the over-long prompt check passes it by far.
CONTEXT = 256


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    pytest.importorskip("vllm")
    from promptmill.testing.models import tiny_llama

    model = str(tiny_llama(tmp_path_factory.mktemp("model") / "tiny-llama"))
    port = free_port()
    # float32: vLLM's CPU default (bfloat16) makes near-ties among the random logits.
    # Compilation mode 0 (eager): inductor's compile of the model adds minutes to each of
    # the two starts (the restart check starts it again) and changes no answer.
    command = server_command("vllm", model, "127.0.0.1", port, max_model_len=CONTEXT,
                             gpu_memory_utilization=0.3,
                             engine_args=["--dtype", "float32",
                                          "--compilation-config", '{"mode": 0}'])
    server = Served(SERVER, command, port, model,
                    tmp_path_factory.mktemp("vllm") / "server.log", startup_timeout=900)
    server.start()
    yield server
    server.stop()


def test_version(served: Served, compat: Compat) -> None:
    import vllm

    compat.record(SERVER, "version", vllm.__version__)


@pytest.mark.parametrize("feature", list(CHECKS))
def test_feature(feature: str, served: Served, compat: Compat, tmp_path: Path) -> None:
    began = time.monotonic()
    check = CHECKS[feature]
    if check is check_too_long:
        observed = check_too_long(served, tmp_path, words=CONTEXT * 2)
    else:
        observed = check(served, tmp_path)
    compat.record(SERVER, feature, observed)
    print(f"{SERVER} {feature}: {time.monotonic() - began:.1f}s")
