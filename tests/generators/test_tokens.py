"""Token counts for OpenAI models agree with tiktoken's own, for chat and text prompts.

The reference side is written here from OpenAI's published rules, not from promptmill's code:
tiktoken's ``Encoding.encode`` on each text, and for chat the cookbook's count (3 tokens a
message plus the text of each of its fields, 1 more for a ``name``, 3 to prime the reply),
which is what the API reports as ``prompt_tokens``.
"""

from __future__ import annotations

from typing import Any

import pytest
import tiktoken

from promptmill.generators.base import GenerationRequest
from promptmill.generators.tokens import encoding, estimate_prompt_tokens
from promptmill.params import make_params

TEXTS = [
    "hello world",
    "What is the capital of France?",
    "  leading and trailing spaces  \n\nand blank lines\n",
    "Ünïcödé, 漢字, emoji 🎉 and a tab\there",
    "code: def f(x):\n    return x ** 2  # squared",
    "text that spells a special token: <|endoftext|> (sent as plain text)",
    "",
]

CHATS: list[list[dict[str, Any]]] = [
    [{"role": "user", "content": "hello world"}],
    [{"role": "system", "content": "You are a terse assistant."},
     {"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "Be brief."},
     {"role": "user", "name": "alice_1", "content": "Ünïcödé, 漢字, emoji 🎉"},
     {"role": "assistant", "content": "Noted."},
     {"role": "user", "content": "code: def f(x):\n    return x ** 2"}],
    [{"role": "user", "content": [{"type": "text", "text": "Describe two rivers."},
                                  {"type": "text", "text": " Briefly, please."}]}],
]

# Which encoding OpenAI's models use (tiktoken.model's table).
MODELS = {"gpt-4o-mini": "o200k_base", "gpt-4": "cl100k_base",
          "gpt-3.5-turbo-instruct": "cl100k_base"}


def tiktoken_encoding(model: str) -> tiktoken.Encoding:
    """tiktoken's Encoding for ``model``, from the files promptmill ships (checked by hash)."""
    assert tiktoken.model.encoding_name_for_model(model) == MODELS[model]
    return encoding(MODELS[model])


def cookbook_chat_tokens(messages: list[dict[str, Any]], enc: tiktoken.Encoding) -> int:
    """OpenAI cookbook's count of a chat's prompt tokens (text parts of a content list)."""
    total = 3  # the reply is primed with <|start|>assistant<|message|>
    for message in messages:
        total += 3
        for key, value in message.items():
            if isinstance(value, list):
                value = "".join(part["text"] for part in value)
            total += len(enc.encode(value, disallowed_special=()))
            if key == "name":
                total += 1
    return total


def request(messages: list[dict[str, Any]] | None = None,
            prompt: str | None = None) -> GenerationRequest:
    return GenerationRequest("r", make_params({}), messages=messages, prompt=prompt)


def test_the_packaged_encodings_are_tiktokens() -> None:
    # tiktoken's own test vectors.
    cl100k = encoding("cl100k_base")
    assert cl100k.encode("hello world") == [15339, 1917]
    assert cl100k.encode("hello <|endoftext|>", allowed_special="all") == [15339, 220, 100257]
    o200k = encoding("o200k_base")
    assert o200k.decode(o200k.encode("hello world")) == "hello world"
    assert o200k.n_vocab > 200_000


@pytest.mark.parametrize("model", ["gpt-3.5-turbo-instruct", "gpt-4o-mini"])
@pytest.mark.parametrize("text", TEXTS)
def test_text_prompts_count_what_tiktoken_counts(model: str, text: str) -> None:
    enc = tiktoken_encoding(model)
    assert estimate_prompt_tokens(request(prompt=text), model) == len(
        enc.encode(text, disallowed_special=()))


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-4"])
@pytest.mark.parametrize("messages", CHATS, ids=[f"chat{i}" for i in range(len(CHATS))])
def test_chat_prompts_count_what_the_cookbook_counts(
        model: str, messages: list[dict[str, Any]]) -> None:
    enc = tiktoken_encoding(model)
    assert estimate_prompt_tokens(request(messages=messages), model) == cookbook_chat_tokens(
        messages, enc)


def test_a_one_word_chat_is_eight_tokens() -> None:
    # Worked by hand: 3 (message) + 1 ("user") + 1 ("Hello") + 3 (reply priming).
    assert estimate_prompt_tokens(request([{"role": "user", "content": "Hello"}]),
                                  "gpt-4o-mini") == 8
