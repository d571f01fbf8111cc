"""Local engines' options, adapters and capabilities, checked before anything loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import promptmill
from promptmill.errors import MissingDependency, ParamError, UsageError
from promptmill.generators import get_generator
from promptmill.generators.local import require_module
from promptmill.testing import FakeLocalEngine, TestServer


def adapter_folder(path: Path, weights: bytes = b"weights") -> Path:
    path.mkdir()
    (path / "adapter_config.json").write_text("{}")
    (path / "adapter_model.safetensors").write_bytes(weights)
    return path


def test_a_missing_engine_names_its_extra() -> None:
    with pytest.raises(MissingDependency, match=r'promptmill\[vllm\]'):
        require_module("vllm", "no_such_module_here", "vllm")


@pytest.mark.parametrize(("identifier", "message"), [
    ("vllm!m,max_model_len=true", "max_model_len=True must be int"),
    ("vllm!m,gpu_memory_utilization=high", "must be int or float"),
    ("vllm!m,lora=[1]", r"lora=\[1\] must be str or dict"),
    ("transformers!m,adapter={\"a\":3}", "adapter must be a path"),
    ("transformers!m,batch_size=0", "batch_size must be at least 1"),
    ("vllm!m,max_modle_len=4096", "unknown option 'max_modle_len'"),
])
def test_bad_options_are_refused_by_name(identifier: str, message: str) -> None:
    with pytest.raises(ParamError, match=message):
        get_generator(identifier)


# check_ready looks for the engine's packages first: the hf and vllm tiers.
@pytest.mark.hf
@pytest.mark.vllm
def test_adapter_folders_are_checked_before_the_job(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is not a folder"):
        get_generator(f"transformers!m,adapter={tmp_path / 'missing'}").check_ready()
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no adapter_config.json"):
        get_generator(f"vllm!m,lora={tmp_path / 'empty'}").check_ready()


def test_the_fingerprint_holds_each_adapters_path_and_weights(tmp_path: Path) -> None:
    math = adapter_folder(tmp_path / "math")
    lora = json.dumps({"math": str(math)})
    before = get_generator(f"vllm!m,lora={lora}").content_fingerprint()
    assert before["adapters"]["math"]["path"] == str(math.resolve())
    (math / "adapter_model.safetensors").write_bytes(b"retrained")
    after = get_generator(f"vllm!m,lora={lora}").content_fingerprint()
    assert after != before
    assert get_generator("vllm!m").content_fingerprint() == {}  # old jobs keep their print


def test_prompt_logprobs_are_refused_where_the_backend_cannot_give_them(
    server: TestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # OpenAI's API has no prompt_logprobs (http! asks, since vLLM's servers give them).
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-prompt-logprobs")
    server.stats.reset()
    with pytest.raises(ParamError, match="cannot honour prompt_logprobs"):
        promptmill.run([{"prompt": "hi"}], f"openai!test-model,api_base={server.url}",
                       params={"prompt_logprobs": 1})
    assert sum(server.stats.received.values()) == 0


def test_adapter_field_needs_adapters_and_known_names(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--adapter-field tuned needs adapters"):
        promptmill.run([{"prompt": "hi"}], FakeLocalEngine(), adapter_field="tuned")
