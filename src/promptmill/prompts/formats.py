"""Chat formats: how a conversation becomes one prompt string, for models fed raw text.

A chat API (OpenAI, an OpenAI-compatible server's ``/chat/completions``) applies the model's
template itself; an engine fed text (llama.cpp with a GGUF that carries no template, a
text-completion endpoint, vLLM or transformers without a tokenizer template) needs the
conversation rendered first. Each format here writes, byte for byte, what its family's
official template writes (the source is named on each); the tests render the official
templates with transformers and llama-cpp-python and compare.

A family without a system role folds the system prompt in the way its authors' current
template does (Mistral and Gemma put it before the first user message, a blank line apart).
A model name that marks a base model gets no format (:func:`detect_format` returns None).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from promptmill.errors import UsageError

Message = dict[str, Any]


class ConversationError(ValueError):
    """A conversation the format cannot render (roles out of order, a system message late)."""


@dataclass(frozen=True, slots=True)
class ChatFormat:
    """One family's chat format: renders messages into the prompt the model was trained on."""

    name: str
    description: str
    # The official template this format reproduces, for `promptmill formats show`.
    source: str
    # The beginning-of-sequence text the official template writes first ("" if none).
    bos: str
    # Strings that end the assistant's turn, sent as stop sequences where the format is used.
    stop: tuple[str, ...]
    _render: Callable[[list[Message]], str]

    def render(self, messages: Sequence[Message], *, with_bos: bool = True) -> str:
        """The prompt for ``messages``, ready for the assistant's answer.

        ``with_bos=False`` leaves out the leading BOS text: engines add the BOS token
        themselves when they tokenize a text prompt, and a second one would change the input.
        """
        text = self._render([_checked(m) for m in messages])
        if not with_bos and self.bos:
            return text.removeprefix(self.bos)
        return text


def _checked(message: Message) -> Message:
    content = message.get("content")
    if not isinstance(content, str):
        raise ConversationError(
            f"a {message.get('role')!r} message's content must be text for a chat format, "
            f"not {type(content).__name__}"
        )
    return message


def _split_system(messages: list[Message]) -> tuple[str | None, list[Message]]:
    """The leading system message's content (None if there is none) and the rest."""
    if messages and messages[0].get("role") == "system":
        system, rest = messages[0]["content"], messages[1:]
    else:
        system, rest = None, messages
    if any(m.get("role") == "system" for m in rest):
        raise ConversationError("a system message must be the first message")
    return system, rest


def _alternating(messages: list[Message], family: str) -> list[Message]:
    """Refuse what the family's template refuses: roles other than user/assistant alternating."""
    for index, message in enumerate(messages):
        expected = "user" if index % 2 == 0 else "assistant"
        if message.get("role") != expected:
            raise ConversationError(
                f"{family} needs user and assistant messages alternating, starting with user "
                f"(message {index + 1} is {message.get('role')!r})"
            )
    return messages


def _llama2(messages: list[Message]) -> str:
    system, rest = _split_system(messages)
    parts = []
    for index, message in enumerate(_alternating(rest, "llama2")):
        content = message["content"]
        if index == 0 and system is not None:
            content = f"<<SYS>>\n{system}\n<</SYS>>\n\n{content}"
        if message["role"] == "user":
            parts.append(f"<s>[INST] {content.strip()} [/INST]")
        else:
            parts.append(f" {content.strip()} </s>")
    return "".join(parts)


_LLAMA3_HEADER = "<|start_header_id|>{}<|end_header_id|>\n\n"


def _llama3(messages: list[Message]) -> str:
    parts = ["<|begin_of_text|>"]
    for message in messages:
        parts.append(_LLAMA3_HEADER.format(message["role"]))
        parts.append(message["content"].strip() + "<|eot_id|>")
    parts.append(_LLAMA3_HEADER.format("assistant"))
    return "".join(parts)


# Llama 3.1's template writes these lines into the system turn of every prompt; 3.2 would
# write today's date instead, which would change a job's prompts from one day to the next.
LLAMA31_DATES = "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"


def _llama31(messages: list[Message]) -> str:
    system, rest = _split_system(messages)
    parts = ["<|begin_of_text|>", _LLAMA3_HEADER.format("system"), LLAMA31_DATES,
             (system or "").strip(), "<|eot_id|>"]
    for message in rest:
        parts.append(_LLAMA3_HEADER.format(message["role"]))
        parts.append(message["content"].strip() + "<|eot_id|>")
    parts.append(_LLAMA3_HEADER.format("assistant"))
    return "".join(parts)


def _mistral(messages: list[Message]) -> str:
    system, rest = _split_system(messages)
    parts = ["<s>"]
    for index, message in enumerate(_alternating(rest, "mistral")):
        content = message["content"]
        if message["role"] == "user":
            if index == 0 and system is not None:
                content = f"{system}\n\n{content}"
            parts.append(f" [INST] {content} [/INST]")
        else:
            parts.append(f" {content}</s>")
    return "".join(parts)


def _gemma(messages: list[Message]) -> str:
    system, rest = _split_system(messages)
    parts = ["<bos>"]
    for index, message in enumerate(_alternating(rest, "gemma")):
        role = "model" if message["role"] == "assistant" else "user"
        prefix = f"{system}\n\n" if index == 0 and system is not None else ""
        parts.append(f"<start_of_turn>{role}\n{prefix}{message['content'].strip()}<end_of_turn>\n")
    parts.append("<start_of_turn>model\n")
    return "".join(parts)


def _chatml(default_system: str | None) -> Callable[[list[Message]], str]:
    def render(messages: list[Message]) -> str:
        parts = []
        if default_system is not None and (not messages or messages[0]["role"] != "system"):
            parts.append(f"<|im_start|>system\n{default_system}<|im_end|>\n")
        for message in messages:
            parts.append(f"<|im_start|>{message['role']}\n{message['content']}<|im_end|>\n")
        parts.append("<|im_start|>assistant\n")
        return "".join(parts)

    return render


def _tulu(bos: str, eos: str) -> Callable[[list[Message]], str]:
    def render(messages: list[Message]) -> str:
        parts = [bos]
        for index, message in enumerate(messages):
            role, content = message["role"], message["content"]
            if role == "assistant":
                last = index == len(messages) - 1
                parts.append(f"<|assistant|>\n{content}{eos}" + ("" if last else "\n"))
            elif role in ("system", "user"):
                parts.append(f"<|{role}|>\n{content}\n")
            else:
                raise ConversationError(f"tulu has no {role!r} role")
        parts.append("<|assistant|>\n")
        return "".join(parts)

    return render


def _stablebeluga(messages: list[Message]) -> str:
    titles = {"system": "System", "user": "User", "assistant": "Assistant"}
    parts = []
    for message in messages:
        title = titles.get(message["role"])
        if title is None:
            raise ConversationError(f"stablebeluga has no {message['role']!r} role")
        if message["role"] != "system" or message["content"]:
            parts.append(f"### {title}:\n{message['content']}\n\n")
    parts.append("### Assistant:\n")
    return "".join(parts)


def _plain(messages: list[Message]) -> str:
    return "\n\n".join(m["content"] for m in messages if m["content"])


PLAIN = ChatFormat(
    "plain", "no chat format: the messages' text, a blank line apart (base models, --text)",
    "none", "", (), _plain,
)

FORMATS: dict[str, ChatFormat] = {
    f.name: f
    for f in (
        ChatFormat("llama2", "Llama 2 chat: [INST] turns, system in a <<SYS>> block",
                   "meta-llama/Llama-2-7b-chat-hf tokenizer_config.json chat_template",
                   "<s>", ("</s>",), _llama2),
        ChatFormat("llama3", "Llama 3 instruct: header tokens, <|eot_id|> after each turn",
                   "meta-llama/Meta-Llama-3-8B-Instruct tokenizer_config.json chat_template",
                   "<|begin_of_text|>", ("<|eot_id|>",), _llama3),
        ChatFormat("llama3.1", "Llama 3.1/3.2/3.3 instruct: llama3 with the system turn's "
                   "knowledge-date lines (Today Date fixed at 26 Jul 2024, the template's "
                   "default)",
                   "meta-llama/Llama-3.1-8B-Instruct tokenizer_config.json chat_template",
                   "<|begin_of_text|>", ("<|eot_id|>", "<|eom_id|>"), _llama31),
        ChatFormat("mistral", "Mistral/Mixtral instruct (v1 tokenizer): [INST] turns, the "
                   "system prompt before the first user message",
                   "mistralai/Mixtral-8x7B-Instruct-v0.1 tokenizer_config.json chat_template",
                   "<s>", ("</s>",), _mistral),
        ChatFormat("gemma", "Gemma instruct (-it): user/model turns, the system prompt before "
                   "the first user message",
                   "google/gemma-3-4b-it tokenizer_config.json chat_template "
                   "(gemma-7b-it and gemma-2 write the same without a system prompt)",
                   "<bos>", ("<end_of_turn>",), _gemma),
        ChatFormat("stablebeluga", "StableBeluga: ### System: / ### User: / ### Assistant:",
                   "stabilityai/StableBeluga-7B model card (prompt format)",
                   "", ("### User:",), _stablebeluga),
        ChatFormat("chatml", "ChatML (Hermes, Qwen, SmolLM without a default system prompt)",
                   "teknium/OpenHermes-2.5-Mistral-7B tokenizer_config.json chat_template",
                   "", ("<|im_end|>",), _chatml(None)),
        ChatFormat("qwen2.5", "ChatML with Qwen2.5's default system prompt",
                   "Qwen/Qwen2.5-7B-Instruct tokenizer_config.json chat_template (no tools)",
                   "", ("<|im_end|>", "<|endoftext|>"),
                   _chatml("You are Qwen, created by Alibaba Cloud. You are a helpful "
                           "assistant.")),
        ChatFormat("smollm2", "ChatML with SmolLM2's default system prompt",
                   "HuggingFaceTB/SmolLM2-135M-Instruct chat_template (also in its GGUF)",
                   "", ("<|im_end|>",),
                   _chatml("You are a helpful AI assistant named SmolLM, trained by "
                           "Hugging Face")),
        ChatFormat("olmo", "OLMo 2 instruct: <|user|> / <|assistant|> turns",
                   "allenai/OLMo-2-1124-7B-Instruct tokenizer_config.json chat_template",
                   "<|endoftext|>", ("<|endoftext|>",), _tulu("<|endoftext|>", "<|endoftext|>")),
        ChatFormat("tulu", "Tulu 2/3: <|user|> / <|assistant|> turns",
                   "allenai/open-instruct chat template 'tulu' (Tulu 2 and 3)",
                   "", ("</s>",), _tulu("", "</s>")),
        PLAIN,
    )
}
# Other names people use for the same formats (llama-cpp-python's among them).
FORMAT_ALIASES = {
    "llama-2": "llama2", "llama-3": "llama3", "llama-3.1": "llama3.1", "llama31": "llama3.1",
    "mistral-instruct": "mistral", "mixtral": "mistral", "beluga": "stablebeluga",
    "qwen": "chatml", "hermes": "chatml", "tulu2": "tulu", "olmo2": "olmo", "none": "plain",
    "raw": "plain",
}


def get_format(name: str, where: str = "chat_format") -> ChatFormat:
    """The format called ``name`` (or one of its aliases); UsageError listing the known ones."""
    key = name.strip().lower()
    found = FORMATS.get(FORMAT_ALIASES.get(key, key))
    if found is None:
        raise UsageError(
            f"unknown {where} {name!r}: known are {', '.join(FORMATS)} "
            "(`promptmill formats list` describes them)"
        )
    return found


def is_format_name(name: str) -> bool:
    """Whether ``name`` names one of promptmill's formats."""
    key = name.strip().lower()
    return FORMAT_ALIASES.get(key, key) in FORMATS


# A word in a model name that marks an instruction-tuned (chat) model.
_TUNED = re.compile(r"(?:^|[^a-z0-9])(?:chat|instruct|it|sft|dpo|rlhf)(?:[^a-z0-9]|$)")
# (pattern on the lowered name, whether the name must also mark a tuned model, format)
_FAMILIES: tuple[tuple[re.Pattern[str], bool, str], ...] = tuple(
    (re.compile(pattern), tuned, name)
    for pattern, tuned, name in (
        (r"beluga", False, "stablebeluga"),
        (r"tulu", False, "tulu"),
        (r"hermes", False, "chatml"),
        (r"olmo", True, "olmo"),
        (r"llama[-_ ]?3[._]?[123]", True, "llama3.1"),
        (r"llama[-_ ]?3", True, "llama3"),
        (r"llama[-_ ]?2", True, "llama2"),
        (r"mi[sx]tral", True, "mistral"),
        (r"gemma", True, "gemma"),
        (r"qwen[-_ ]?2\.5", True, "qwen2.5"),
        (r"qwen", True, "chatml"),
        (r"smollm[-_ ]?2", True, "smollm2"),
        (r"smollm", True, "chatml"),
    )
)


def detect_format(model: str) -> ChatFormat | None:
    """The format a model's name implies, or None for a base model or an unknown family.

    Instruction-tuned variants are told by a ``chat``/``instruct``/``it`` (or sft, dpo,
    rlhf) word in the name; families that only come tuned (StableBeluga, Tulu, Hermes) need
    none. Only the last path component counts, so a folder's name cannot decide.
    """
    name = model.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1].lower()
    if name.endswith(".gguf"):
        name = name[: -len(".gguf")]
    tuned = bool(_TUNED.search(name))
    for pattern, needs_tuned, format_name in _FAMILIES:
        if pattern.search(name):
            return FORMATS[format_name] if tuned or not needs_tuned else None
    return None


def resolve_format(model: str, setting: str | None) -> ChatFormat | None:
    """The format for ``model`` given a ``chat_format=`` setting (None: not set).

    ``auto`` detects it from the name (a base model gets :data:`PLAIN`); a name picks it.
    """
    if setting is None:
        return None
    if setting.strip().lower() == "auto":
        return detect_format(model) or PLAIN
    return get_format(setting)


__all__ = [
    "FORMATS",
    "PLAIN",
    "ChatFormat",
    "ConversationError",
    "detect_format",
    "get_format",
    "is_format_name",
    "resolve_format",
]
