"""Seed 003's generator identifiers and examples, as its users write them.

Each identifier is resolved, round-tripped through ``to_identifier()``/``get_identifier()``,
and sent: the LiteLLM ones through LiteLLM to the test server (``api_base``) playing the
provider's own API, where the request it received shows the provider (its API's path and
headers), the model name and the parameters; the others through promptmill's own backends.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import promptmill as pm
from promptmill.errors import MissingDependency
from promptmill.generators.litellm_ import PROVIDER_KEYS
from promptmill.identifiers import LITELLM_PREFIXES
from promptmill.testing import TestServer

# The seed's identifiers, as written: identifier -> (provider, model held, identifier back).
SEED_IDENTIFIERS = {
    "gpt-3.5-turbo,temperature=0.5":
        ("openai", "gpt-3.5-turbo", "openai!gpt-3.5-turbo,temperature=0.5"),
    "openai/gpt-4,api_key=sk-1234":
        ("litellm", "openai/gpt-4", "litellm!openai/gpt-4,api_key=***"),
    "litellm!claude-3-sonnet-2024022":
        ("litellm", "claude-3-sonnet-2024022", "litellm!claude-3-sonnet-2024022"),
    "anthropic/claude-2.1,stop=output:;---,seed=1337":
        ("litellm", "anthropic/claude-2.1",
         'litellm!anthropic/claude-2.1,stop=["output:","---"],seed=1337'),
    "together_ai/meta-llama/Llama-3-70b-chat-hf":
        ("litellm", "together_ai/meta-llama/Llama-3-70b-chat-hf",
         "litellm!together_ai/meta-llama/Llama-3-70b-chat-hf"),
    "openai/google/gemma-7b,api_base=https://integrate.api.nvidia.com/v1":
        ("http", "google/gemma-7b",
         "http!google/gemma-7b,api_base=https://integrate.api.nvidia.com/v1"),
    # The seed's other examples.
    "ollama/llama3.1": ("ollama", "llama3.1", "ollama!llama3.1"),
    "claude-3-haiku-20240307": ("litellm", "claude-3-haiku-20240307",
                                "litellm!claude-3-haiku-20240307"),
    "litellm!openai/gpt-4o,max_connections=2,min_delay_between_requests=1000":
        ("litellm", "openai/gpt-4o", "litellm!openai/gpt-4o,max_concurrency=2,rpm=60.0"),
    "vllm!TinyLlama/TinyLlama-1.1B-Chat-v1.0,gpu_memory_utilization=0.3,trust_remote_code=True":
        ("vllm", "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
         "vllm!TinyLlama/TinyLlama-1.1B-Chat-v1.0,gpu_memory_utilization=0.3,"
         "trust_remote_code=true"),
}
KEYS = {"ANTHROPIC_API_KEY": "sk-ant-api03-seedTestKey000111222333",
        "TOGETHERAI_API_KEY": "tg-seedTestKey444555666", "OPENAI_API_KEY": "sk-seedTestKey777"}
NEEDS_LITELLM = {ident for ident, (provider, _, _) in SEED_IDENTIFIERS.items()
                 if provider == "litellm" and not ident.startswith("litellm!")}


def _case(ident: str) -> Any:
    marks = [pytest.mark.litellm] if ident in NEEDS_LITELLM else []
    return pytest.param(ident, marks=marks, id=ident.split(",")[0])


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("litellm"):
        if importlib.util.find_spec("litellm") is None:
            pytest.skip("litellm is not installed")
        from promptmill.generators.litellm_ import load_litellm

        load_litellm()  # as promptmill imports it: no price map fetched from the internet
    for name in [*KEYS, "OLLAMA_API_BASE", "OLLAMA_HOST"]:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("ident", [_case(ident) for ident in SEED_IDENTIFIERS])
def test_every_seed_identifier_resolves_and_round_trips(ident: str) -> None:
    provider, model, back = SEED_IDENTIFIERS[ident]
    generator = pm.get_generator(ident)
    assert (generator.provider, generator.model) == (provider, model)
    assert generator.to_identifier() == pm.get_identifier(generator) == back
    again = pm.get_generator(back)
    # A redacted key reads back as "from the environment": never the key itself.
    assert type(again) is type(generator)
    assert again.to_identifier() == back.replace(",api_key=***", "")
    assert again.params == generator.params and again.config == generator.config
    assert again.limit_options == generator.limit_options
    assert "sk-1234" not in repr(generator) + back


# identifier -> (the path the provider's API is at, the model name it must receive, what the
# body must hold besides, the header carrying the key and its value)
LITELLM_SENDS = {
    "openai/gpt-4,api_key=sk-1234": ("/v1/chat/completions", "gpt-4", {},
                                     ("Authorization", "Bearer sk-1234")),
    "litellm!claude-3-sonnet-2024022": ("/v1/messages", "claude-3-sonnet-2024022", {},
                                        ("x-api-key", KEYS["ANTHROPIC_API_KEY"])),
    "anthropic/claude-2.1,stop=output:;---,seed=1337": (
        "/v1/messages", "claude-2.1", {"stop_sequences": ["output:", "---"]},
        ("x-api-key", KEYS["ANTHROPIC_API_KEY"])),
    "together_ai/meta-llama/Llama-3-70b-chat-hf": (
        "/v1/chat/completions", "meta-llama/Llama-3-70b-chat-hf", {},
        ("Authorization", f"Bearer {KEYS['TOGETHERAI_API_KEY']}")),
    "claude-3-haiku-20240307": ("/v1/messages", "claude-3-haiku-20240307", {},
                                ("x-api-key", KEYS["ANTHROPIC_API_KEY"])),
}


@pytest.mark.litellm
@pytest.mark.parametrize("ident", list(LITELLM_SENDS), ids=lambda i: i.split(",")[0])
def test_litellm_identifiers_reach_the_provider_with_its_model_and_params(
        ident: str, make_server: Callable[..., TestServer], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    server = make_server(record_requests=True)
    path, model, fields, (header, value) = LITELLM_SENDS[ident]
    # Anthropic's API is at ROOT/v1/messages (LiteLLM adds /v1/messages), OpenAI-style ones
    # at URL/chat/completions.
    base = server.root if path == "/v1/messages" else server.url
    generator = pm.get_generator(ident).with_config(api_base=base)
    with caplog.at_level(logging.WARNING, logger="promptmill"):
        reply = generator.chat_sync("Say a haiku about boats", max_tokens=24)
    assert reply.text and reply.usage is not None and reply.usage.completion_tokens > 0
    sent = [r for r in server.requests if r.path == path]
    assert len(sent) == 1, [r.path for r in server.requests]
    body = sent[0].body
    assert body["model"] == model and body["max_tokens"] == 24
    assert body["messages"][-1]["content"] in ("Say a haiku about boats",
                                               [{"type": "text",
                                                 "text": "Say a haiku about boats"}])
    for name, expected in fields.items():
        assert body[name] == expected
    assert sent[0].headers.get(header) == value
    if "seed=" in ident:  # Anthropic takes no seed: dropped with a warning, as ours do
        assert "seed" not in body
        assert "does not take seed: dropped" in caplog.text


def test_openai_names_go_to_promptmills_own_openai_backend(
        make_server: Callable[..., TestServer], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEYS["OPENAI_API_KEY"])
    server = make_server(record_requests=True)
    generator = pm.get_generator("gpt-3.5-turbo,temperature=0.5").with_config(
        api_base=server.url)
    reply = generator.chat_sync([{"role": "user", "content": "Say a haiku about boats"}])
    assert reply.text
    (request,) = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.body["model"] == "gpt-3.5-turbo" and request.body["temperature"] == 0.5
    assert request.headers["Authorization"] == f"Bearer {KEYS['OPENAI_API_KEY']}"


def test_openai_prefix_with_api_base_sends_the_model_without_it(
        make_server: Callable[..., TestServer]) -> None:
    server = make_server(record_requests=True)
    generator = pm.get_generator(f"openai/google/gemma-7b,api_base={server.url}")
    assert generator.complete_sync("Once upon a time", max_tokens=8).text
    (request,) = server.requests
    assert request.path == "/v1/completions" and request.body["model"] == "google/gemma-7b"


@pytest.mark.parametrize("variable", ["OLLAMA_API_BASE", "OLLAMA_HOST"])
def test_ollama_prefix_reaches_the_server_the_environment_names(
        variable: str, make_server: Callable[..., TestServer],
        monkeypatch: pytest.MonkeyPatch) -> None:
    server = make_server(models=("llama3.1",), record_requests=True)
    monkeypatch.setenv(variable, server.root)
    if variable == "OLLAMA_HOST":  # OLLAMA_API_BASE (LiteLLM's) wins where both are set
        monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:9")
        monkeypatch.setenv("OLLAMA_API_BASE", server.root)
    ollama = pm.get_generator("ollama/llama3.1")
    assert ollama.to_identifier() == "ollama!llama3.1"
    assert ollama.chat_sync("hello", max_tokens=8).text
    assert [r.path for r in server.requests] == ["/api/tags", "/api/chat"]
    assert server.requests[1].body["model"] == "llama3.1"


def test_ollama_default_is_localhost_11434(monkeypatch: pytest.MonkeyPatch) -> None:
    assert pm.get_generator("ollama/llama3.1").api_base == "http://localhost:11434"


@pytest.mark.litellm
def test_a_seed_identifier_runs_a_whole_job_through_the_cli(
        make_server: Callable[..., TestServer], tmp_path: Path) -> None:
    server = make_server(record_requests=True)
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": i, "prompt": f"question {i}"}) + "\n"
                              for i in range(6)))
    ident = (f"anthropic/claude-2.1,stop=output:;---,seed=1337,max_tokens=16,"
             f"max_connections=2,api_base={server.root}")
    env = {k: v for k, v in __import__("os").environ.items() if not k.endswith("_API_KEY")}
    env["ANTHROPIC_API_KEY"] = KEYS["ANTHROPIC_API_KEY"]
    result = subprocess.run([sys.executable, "-m", "promptmill", "run", str(source), "-m", ident,
                             "-o", str(tmp_path / "out.jsonl")], capture_output=True, text=True,
                            cwd=tmp_path, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [row["id"] for row in rows] == list(range(6))
    assert all(row["status"] == "done" for row in rows)
    assert rows[0]["model"].startswith('litellm!anthropic/claude-2.1,')
    sent = [r.body for r in server.requests if r.path == "/v1/messages"]
    assert len(sent) == 6 and all(b["model"] == "claude-2.1" for b in sent)
    assert all(b["stop_sequences"] == ["output:", "---"] and "seed" not in b for b in sent)
    assert KEYS["ANTHROPIC_API_KEY"] not in result.stderr + (tmp_path / "out.jsonl").read_text()


@pytest.mark.parametrize(("ident", "native"), [
    ("anthropic/claude-2.1", "anthropic!claude-2.1"),
    ("openai/gpt-4", "openai!gpt-4"),
    ("together_ai/meta-llama/Llama-3-70b-chat-hf", None),
])
def test_litellm_names_without_the_extra_say_how_in_one_line(
        ident: str, native: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "litellm", None)  # as if not installed
    with pytest.raises(MissingDependency) as info:
        pm.get_generator(ident)
    message = str(info.value)
    assert "\n" not in message and 'pip install "promptmill[litellm]"' in message
    assert f"litellm!{ident}" in message
    if native:
        assert native in message


def test_rigging_stop_lists_beside_the_json_form() -> None:
    semicolons = pm.get_generator("openai!gpt-4o,stop=output:;---")
    json_list = pm.get_generator('openai!gpt-4o,stop=["output:","---"]')
    assert semicolons.params.stop == json_list.params.stop == ["output:", "---"]
    # A semicolon of its own is written as a JSON list (or alone: one stop, as written).
    assert pm.get_generator('openai!gpt-4o,stop=[";"]').params.stop == [";"]
    assert pm.get_generator("openai!gpt-4o,stop=;").params.stop == [";"]
    assert pm.GenerateParams(stop="a;b").stop == ["a", "b"]


def test_rigging_attributes_become_limits_engine_options_or_a_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    paced = pm.get_generator("openai!gpt-4o,max_connections=4,min_delay_between_requests=250")
    assert paced.limit_options == {"max_concurrency": 4, "rpm": 240.0}
    assert "max_connections" not in paced.config
    unlimited = pm.get_generator("openai!gpt-4o,max_connections=0")  # rigging's 0: no cap
    assert unlimited.limit_options == {}
    engine = pm.get_generator("vllm!m,gpu_memory_utilization=0.3,trust_remote_code=True")
    assert engine.config == {"gpu_memory_utilization": 0.3, "trust_remote_code": True}
    assert pm.get_generator("vllm!m,max_seq_len=2048").config == {"max_model_len": 2048}
    with caplog.at_level(logging.WARNING, logger="promptmill"):
        remote = pm.get_generator("openai!gpt-4o,trust_remote_code=True,load_in_4bit=true")
    assert remote.config == {}
    assert "openai! has no option load_in_4bit (rigging's)" in caplog.text
    assert "openai! has no option trust_remote_code (rigging's)" in caplog.text
    with pytest.raises(pm.PromptmillError, match="max_connections=-1 must be an integer >= 0"):
        pm.get_generator("openai!gpt-4o,max_connections=-1")


@pytest.mark.litellm
def test_our_litellm_prefixes_are_litellms() -> None:
    from promptmill.generators.litellm_ import load_litellm

    litellm = load_litellm()
    known = {str(getattr(p, "value", p)) for p in litellm.provider_list}
    assert set(PROVIDER_KEYS) <= LITELLM_PREFIXES
    assert known >= LITELLM_PREFIXES, sorted(LITELLM_PREFIXES - known)
