"""Chat formats against implementations no one here wrote, byte for byte.

Three references: the families' official Jinja templates (tests/data/chat_templates, sources
in its README) rendered by transformers' ``apply_chat_template`` (tier ``hf``) and by
llama-cpp-python's ``Jinja2ChatFormatter`` (tier ``local``), and llama.cpp's own built-in
formatters (``llama_chat_apply_template``, tier ``local``). llama.cpp writes no BOS text (it
adds the BOS token when it tokenizes), so it is compared with ``render(with_bos=False)``.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import pytest

from promptmill.errors import UsageError
from promptmill.prompts.formats import (
    FORMATS,
    PLAIN,
    ConversationError,
    detect_format,
    get_format,
    resolve_format,
)

TEMPLATES = Path(__file__).parent.parent / "data" / "chat_templates"
SYSTEM = {"role": "system", "content": "You are terse."}
CONVERSATIONS: dict[str, list[dict[str, str]]] = {
    "user": [{"role": "user", "content": "What is 2+2?"}],
    "system": [SYSTEM, {"role": "user", "content": "What is 2+2?"}],
    "multi": [SYSTEM, {"role": "user", "content": "Hi"},
              {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "2+2?"}],
    "multi-nosys": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
                    {"role": "user", "content": "2+2?"}],
    # Whitespace around contents: some templates trim it, some keep it.
    "spaces": [{"role": "system", "content": "  Be brief.\n"},
               {"role": "user", "content": "\n  Hi there  \n"}],
}
# The special tokens each family's tokenizer has (the templates write bos_token/eos_token).
SPECIAL_TOKENS = {
    "llama2": ("<s>", "</s>"), "llama3": ("<|begin_of_text|>", "<|eot_id|>"),
    "llama3.1": ("<|begin_of_text|>", "<|eot_id|>"), "mistral": ("<s>", "</s>"),
    "gemma": ("<bos>", "<eos>"), "olmo": ("<|endoftext|>", "<|endoftext|>"),
    "tulu": ("<s>", "</s>"),
}
TEMPLATED = sorted(name for name in FORMATS if name != "plain")


def cases() -> list[tuple[str, str]]:
    return [(name, conv) for name in TEMPLATED for conv in CONVERSATIONS]


def official(name: str) -> str:
    return (TEMPLATES / f"{name}.jinja").read_text(encoding="utf-8")


def test_every_format_has_an_official_template_to_be_tested_against() -> None:
    assert {p.stem for p in TEMPLATES.glob("*.jinja")} == set(TEMPLATED)


@pytest.mark.hf
@pytest.mark.parametrize(("name", "conversation"), cases())
def test_format_equals_the_official_template_rendered_by_transformers(
    name: str, conversation: str
) -> None:
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel

    bos, eos = SPECIAL_TOKENS.get(name, (None, None))
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(WordLevel({"<unk>": 0}, unk_token="<unk>")),
        bos_token=bos, eos_token=eos,
    )
    messages = CONVERSATIONS[conversation]
    expected = tokenizer.apply_chat_template(
        messages, chat_template=official(name), tokenize=False, add_generation_prompt=True
    )
    assert FORMATS[name].render(messages) == expected


@pytest.mark.local
@pytest.mark.parametrize(("name", "conversation"), cases())
def test_format_equals_the_official_template_rendered_by_llama_cpp(
    name: str, conversation: str
) -> None:
    chat_format = pytest.importorskip("llama_cpp.llama_chat_format")
    bos, eos = SPECIAL_TOKENS.get(name, ("", ""))
    formatter = chat_format.Jinja2ChatFormatter(official(name), eos_token=eos, bos_token=bos)
    messages = CONVERSATIONS[conversation]
    assert FORMATS[name].render(messages) == formatter(messages=messages).prompt


@pytest.mark.local
@pytest.mark.parametrize("conversation", list(CONVERSATIONS))
def test_smollm2_equals_the_template_inside_the_embedded_gguf(conversation: str) -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    from promptmill.generators.embedded import embedded_model_path

    vocab = llama_cpp.Llama(str(embedded_model_path()), vocab_only=True, verbose=False)
    template = vocab.metadata["tokenizer.chat_template"]
    formatter = llama_cpp.llama_chat_format.Jinja2ChatFormatter(template, "", "")
    messages = CONVERSATIONS[conversation]
    assert FORMATS["smollm2"].render(messages) == formatter(messages=messages).prompt


def llama_cpp_builtin(template: str, messages: list[dict[str, str]]) -> str:
    llama_cpp = pytest.importorskip("llama_cpp")
    chat = (llama_cpp.llama_chat_message * len(messages))(*[
        llama_cpp.llama_chat_message(role=m["role"].encode(), content=m["content"].encode())
        for m in messages
    ])
    buffer = ctypes.create_string_buffer(1 << 14)
    written = llama_cpp.llama_chat_apply_template(
        template.encode(), chat, len(messages), True, buffer, len(buffer)
    )
    assert written > 0, f"llama.cpp does not know {template}"
    return buffer.raw[:written].decode()


# (our format, a llama.cpp formatter, the conversations where it follows the official
# template). Where it does not, it is llama.cpp that differs from the family's template
# (checked above). Built-ins (C++, llama_chat_apply_template): llama2 multi-turn writes
# "[/INST]Hello.</s>" where Meta's template writes "[/INST] Hello. </s><s>"; gemma trims the
# system prompt, Google's does not. llama-cpp-python's Python handlers: its llama-2 one is
# broken on every conversation (" <s>[INST]What..."), its mistral-instruct one predates
# Mistral's current template, its gemma and chatml ones drop or invent system turns.
IMPLEMENTATIONS = [
    ("llama2", "builtin:llama2-sys", ("user", "system")),
    ("llama3", "builtin:llama3", tuple(CONVERSATIONS)),
    ("mistral", "builtin:mistral-v1", tuple(CONVERSATIONS)),
    ("gemma", "builtin:gemma", ("user", "system", "multi", "multi-nosys")),
    ("chatml", "builtin:chatml", tuple(CONVERSATIONS)),
    ("llama3", "handler:format_llama3", ("user", "system", "multi", "multi-nosys")),
    ("gemma", "handler:format_gemma", ("user", "multi-nosys")),
    ("chatml", "handler:format_chatml", ("system", "multi", "spaces")),
]


@pytest.mark.local
@pytest.mark.parametrize(
    ("name", "implementation", "conversation"),
    [(n, i, c) for n, i, convs in IMPLEMENTATIONS for c in convs],
)
def test_format_equals_llama_cpp_formatter(name: str, implementation: str,
                                           conversation: str) -> None:
    messages: Any = CONVERSATIONS[conversation]
    kind, _, which = implementation.partition(":")
    if kind == "builtin":
        expected = llama_cpp_builtin(which, messages)
    else:
        chat_format = pytest.importorskip("llama_cpp.llama_chat_format")
        expected = getattr(chat_format, which)(messages=messages).prompt
    # llama.cpp writes no BOS text: it adds the BOS token when it tokenizes.
    assert FORMATS[name].render(messages, with_bos=False) == expected


@pytest.mark.parametrize(("model", "expected"), [
    ("meta-llama/Llama-2-7b-chat-hf", "llama2"),
    ("meta-llama/Llama-2-7b-hf", None),
    ("/models/llama-2-13b-chat.Q4_K_M.gguf", "llama2"),
    ("meta-llama/Meta-Llama-3-8B-Instruct", "llama3"),
    ("meta-llama/Meta-Llama-3-8B", None),
    ("meta-llama/Llama-3.1-8B-Instruct", "llama3.1"),
    ("meta-llama/Llama-3.2-1B-Instruct", "llama3.1"),
    ("mistralai/Mistral-7B-Instruct-v0.2", "mistral"),
    ("mistralai/Mixtral-8x7B-Instruct-v0.1", "mistral"),
    ("mistralai/Mistral-7B-v0.1", None),
    ("google/gemma-7b-it", "gemma"),
    ("google/gemma-2-9b", None),
    ("stabilityai/StableBeluga-7B", "stablebeluga"),
    ("allenai/OLMo-2-1124-7B-Instruct", "olmo"),
    ("allenai/OLMo-7B", None),
    ("allenai/tulu-2-dpo-7b", "tulu"),
    ("allenai/Llama-3.1-Tulu-3-8B", "tulu"),
    ("teknium/OpenHermes-2.5-Mistral-7B", "chatml"),
    ("Qwen/Qwen2.5-7B-Instruct", "qwen2.5"),
    ("Qwen/Qwen2-7B-Instruct", "chatml"),
    ("HuggingFaceTB/SmolLM2-135M-Instruct", "smollm2"),
    ("/opt/instruct-models/gpt2", None),  # a folder's name does not decide
    ("EleutherAI/pythia-1b", None),
])
def test_format_detected_from_the_model_name(model: str, expected: str | None) -> None:
    found = detect_format(model)
    assert (found.name if found else None) == expected


def test_resolve_and_aliases() -> None:
    assert resolve_format("meta-llama/Llama-2-7b-hf", None) is None
    assert resolve_format("meta-llama/Llama-2-7b-hf", "auto") is PLAIN
    assert resolve_format("x", "llama-3") is FORMATS["llama3"]
    assert get_format("Mistral-Instruct") is FORMATS["mistral"]
    with pytest.raises(UsageError, match="unknown chat_format 'llama9'.*llama2"):
        get_format("llama9")


def test_conversations_a_family_cannot_take_are_refused() -> None:
    with pytest.raises(ConversationError, match="alternating"):
        FORMATS["mistral"].render([{"role": "assistant", "content": "hi"}])
    with pytest.raises(ConversationError, match="first message"):
        FORMATS["llama3.1"].render([{"role": "user", "content": "a"}, SYSTEM])


def test_plain_joins_the_text() -> None:
    assert PLAIN.render(CONVERSATIONS["system"]) == "You are terse.\n\nWhat is 2+2?"


def test_http_chat_format_sends_the_rendered_prompt_to_the_completions_endpoint(
    tmp_path, make_server, recorder, promptmill_cli
) -> None:
    record = recorder()
    server = make_server(responder=record)
    source = tmp_path / "q.jsonl"
    source.write_text('{"question": "What is 2+2?"}\n')
    model = f"http!meta-llama/Llama-2-7b-chat-hf,api_base={server.url},chat_format=auto"
    done = promptmill_cli("run", source, "-m", model, "--system", "You are terse.",
                          "-o", tmp_path / "out.jsonl")
    assert done.returncode == 0, done.stderr
    # No BOS text: the server's tokenizer adds the BOS token.
    assert [b["prompt"] for b in record.bodies] == [
        "[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nWhat is 2+2? [/INST]"]
    assert record.bodies[0]["stop"] == ["</s>"]  # the format's end of turn
    shown = promptmill_cli("formats", "show", "llama2")
    assert shown.returncode == 0 and "meta-llama/Llama-2-7b-chat-hf" in shown.stdout
    listed = promptmill_cli("formats", "list")
    assert all(name in listed.stdout for name in FORMATS)
