"""Deterministic answers in OpenAI's shapes: request validation, answer text, logprobs, usage.

Tokens here are whitespace-delimited words: a token is a run of non-space characters with the
whitespace before it (``"Hello world"`` is ``["Hello", " world"]``), so joining the tokens
gives back the text exactly. Prompt tokens are the words of every message's text content
(chat) or of each prompt (completions); completion tokens are the tokens of the answers sent.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["BadRequest", "Choice", "ParsedRequest", "Responder", "answer_text", "count_tokens",
           "expected_answers", "parse_chat", "parse_completion", "split_tokens"]

Responder = Callable[[dict[str, Any]], str | Sequence[str]]
# Builds a structured answer: (the request's JSON Schema, a per-choice digest) -> its text.
JsonAnswer = Callable[[dict[str, Any], bytes], str]
"""Scripts answers: gets the request body (one prompt at a time), returns one text for every
choice or a list with exactly one text per choice (``n`` of them)."""

MAX_N = 128  # OpenAI's own limit on ``n``
MAX_TOP_LOGPROBS = 20  # OpenAI allows 20 for chat; vLLM allows as many for completions

_TOKEN = re.compile(r"\s*\S+|\s+")

# Answer words are drawn from here by hash; short, distinct, and free of stop-like punctuation.
_WORDS = (
    "amber", "basil", "cedar", "delta", "ember", "fjord", "garnet", "harbor", "indigo",
    "juniper", "kelp", "lumen", "maple", "nectar", "onyx", "pepper", "quartz", "raven",
    "saffron", "tundra", "umber", "velvet", "willow", "xenon", "yarrow", "zephyr", "aspen",
    "birch", "cobalt", "dune", "echo", "flint", "glacier", "hazel", "iris", "jasper", "kiwi",
    "lotus", "meadow", "nimbus", "orchid", "pebble", "quill", "reef", "sierra", "thistle",
    "ultra", "violet", "walnut", "yonder", "zinc", "acorn", "brook", "canyon", "drift",
    "elm", "fern", "grove", "heron", "ivy", "jade", "kestrel", "lark", "moss",
)
_ECHO_WORDS = 12  # how many words of the last user message an answer repeats


class BadRequest(ValueError):
    """A request the server refuses with 400 and OpenAI's ``invalid_request_error`` body."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(slots=True)
class ParsedRequest:
    """What the server needs from a valid chat or completions request body."""

    body: dict[str, Any]
    model: str
    prompts: list[str]  # completions: each prompt; chat: one entry, the last user message
    conversation: list[list[str]] | None  # chat: [role, text] per message, the answer's key
    n: int
    max_tokens: int | None
    stop: list[str]
    seed: int | None
    temperature: float
    logprobs: int | None  # top alternatives per token; None: no logprobs at all
    echo: bool
    prompt_tokens: int
    # The JSON Schema a response_format asks for (json_object: any object); None: free text.
    schema: dict[str, Any] | None = None


@dataclass(slots=True)
class Choice:
    """One finished answer: its text after stop / max_tokens, and why it ended."""

    text: str
    tokens: list[str]
    finish_reason: str
    digest: bytes  # seeds the deterministic logprobs of this choice; empty without logprobs


def split_tokens(text: str) -> list[str]:
    """The tokens of ``text``: each word with the whitespace before it."""
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    """How many tokens ``text`` counts for in usage and rate limits: its words."""
    return len(text.split())


def _digest(*parts: object) -> bytes:
    # json + sha256 rather than hash(): the same across processes and Python versions.
    payload = json.dumps(parts, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).digest()


def answer_text(model: str, key: object, last_user: str, index: int, seed: int | None,
                temperature: float) -> str:
    """The built-in answer: three hashed words, then the start of ``last_user`` echoed.

    The hashed words come first so that choices differ even when ``max_tokens`` is small.
    """
    digest = _digest(model, key, index, seed, temperature)
    words = " ".join(_WORDS[b % len(_WORDS)] for b in digest[:3])
    echo = " ".join(last_user.split()[:_ECHO_WORDS]) or "nothing"
    return f"{words.capitalize()}. You said: {echo}"


def _finish(text: str, stop: list[str], max_tokens: int | None, digest: bytes) -> Choice:
    """Cut ``text`` at the first stop sequence, then at ``max_tokens`` tokens."""
    finish_reason = "stop"
    for sequence in stop:
        cut = text.find(sequence)
        if cut >= 0:
            text = text[:cut]
    tokens = split_tokens(text)
    if max_tokens is not None and len(tokens) > max_tokens:
        tokens = tokens[:max_tokens]
        text = "".join(tokens)
        finish_reason = "length"
    return Choice(text, tokens, finish_reason, digest)


def make_choices(request: ParsedRequest, responder: Responder | None,
                 json_answer: JsonAnswer | None = None) -> list[Choice]:
    """Every choice of ``request``: ``n`` per prompt, prompts in order.

    A request with a schema (``response_format``) and no responder is answered with JSON
    matching it (``json_answer``, default: ``testing.structured``'s, never spoiled).
    """
    choices: list[Choice] = []
    for prompt_index, prompt in enumerate(request.prompts):
        key: object = request.conversation if request.conversation is not None else prompt
        texts: Sequence[str] | None = None
        if responder is not None:
            body = request.body
            if request.conversation is None and len(request.prompts) > 1:
                body = {**body, "prompt": prompt}
            texts = _responder_texts(responder(body), request.n)
        for index in range(request.n):
            digest = b""
            if request.logprobs is not None:
                digest = _digest(request.model, key, index, request.seed, request.temperature,
                                 prompt_index)
            if texts is None and request.schema is not None:
                seed = _digest(request.model, key, index, request.seed, request.temperature)
                text = (json_answer or _valid_json)(request.schema, seed)
            elif texts is None:
                text = answer_text(request.model, key, prompt, index, request.seed,
                                   request.temperature)
            else:
                text = texts[index]
            choices.append(_finish(text, request.stop, request.max_tokens, digest))
    return choices


def _valid_json(schema: dict[str, Any], seed: bytes) -> str:
    from promptmill.testing.structured import instance_for

    return json.dumps(instance_for(schema, seed), ensure_ascii=False)


def expected_answers(body: Mapping[str, Any]) -> list[str]:
    """The texts the test server (without a responder) answers ``body`` with, one per choice.

    ``body`` is a chat (``messages``) or completions (``prompt``) request; stop, max_tokens
    and echo apply. An invalid body raises ``ValueError`` with the server's 400 message.
    """
    parse = parse_chat if "messages" in body else parse_completion
    request = parse(dict(body))
    choices = make_choices(request, None)
    return [(request.prompts[i // request.n] if request.echo else "") + choice.text
            for i, choice in enumerate(choices)]


def _responder_texts(result: str | Sequence[str], n: int) -> Sequence[str]:
    if isinstance(result, str):
        return [result] * n
    if len(result) != n or not all(isinstance(text, str) for text in result):
        raise TypeError(f"the responder must return a str or a list of {n} str (n={n}), "
                        f"got {result!r}")
    return result


# -- logprobs -------------------------------------------------------------------------------


def _token_logprobs(tokens: list[str], digest: bytes, top: int
                    ) -> list[tuple[float, list[tuple[str, float]]]]:
    """Per token: its logprob and ``top`` alternatives (itself first), most likely first.

    The chosen token has probability 0.5..1; alternatives share the rest, halving each time,
    so the probabilities are ordered and never sum past 1.
    """
    # Two streams, so that asking for more alternatives never changes a token's own logprob.
    chosen_rng = random.Random(int.from_bytes(digest[:8], "big"))
    alternative_rng = random.Random(int.from_bytes(digest[8:16], "big"))
    out: list[tuple[float, list[tuple[str, float]]]] = []
    for token in tokens:
        chosen = 0.5 + 0.5 * chosen_rng.random()
        alternatives = [(token, math.log(chosen))]
        prefix = token[: len(token) - len(token.lstrip())] or " "
        mass = 1.0 - chosen
        for word_index in alternative_rng.sample(range(len(_WORDS)), top):
            if len(alternatives) >= top:
                break
            alternative = prefix + _WORDS[word_index]
            if alternative != token:
                mass /= 2
                alternatives.append((alternative, math.log(mass)))
        out.append((alternatives[0][1], alternatives[:top]))
    return out


def chat_logprobs(choice: Choice, top: int) -> dict[str, Any]:
    """``choices[i].logprobs`` of a chat completion."""
    content = [
        {
            "token": token,
            "logprob": logprob,
            "bytes": list(token.encode()),
            "top_logprobs": [{"token": alt, "logprob": alt_logprob, "bytes": list(alt.encode())}
                             for alt, alt_logprob in alternatives],
        }
        for token, (logprob, alternatives) in zip(
            choice.tokens, _token_logprobs(choice.tokens, choice.digest, top), strict=True)
    ]
    return {"content": content, "refusal": None}


def completion_logprobs(choice: Choice, top: int, echoed: str) -> dict[str, Any]:
    """``choices[i].logprobs`` of a text completion; ``echoed`` is the prompt when ``echo``."""
    prompt_tokens = split_tokens(echoed)
    tokens = prompt_tokens + choice.tokens
    token_logprobs: list[float | None] = []
    top_logprobs: list[dict[str, float] | None] = []
    values = _token_logprobs(tokens, choice.digest, max(top, 1))
    for position, (logprob, alternatives) in enumerate(values):
        if position == 0 and prompt_tokens:
            # OpenAI gives the first prompt token no logprob: nothing came before it.
            token_logprobs.append(None)
            top_logprobs.append(None)
            continue
        token_logprobs.append(logprob)
        top_logprobs.append(dict(alternatives))
    offsets: list[int] = []
    offset = 0
    for token in tokens:
        offsets.append(offset)
        offset += len(token)
    return {"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": top_logprobs,
            "text_offset": offsets}


# -- request validation ---------------------------------------------------------------------


def parse_body(raw: bytes) -> dict[str, Any]:
    """The JSON object of a request body, or ``BadRequest``."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"We could not parse the JSON body of your request: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    return body


def _integer(body: dict[str, Any], name: str, low: int, high: int | None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{value!r} is not of type 'integer' - '{name}'", name)
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"between {low} and {high}"
        raise BadRequest(f"Invalid '{name}': {value}; it must be {bound}.", name)
    return value


def _parsed(body: dict[str, Any], prompts: list[str], conversation: list[list[str]] | None,
            logprobs: int | None, echo: bool, prompt_tokens: int) -> ParsedRequest:
    """The request, once the fields chat and completions share are checked too."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("You must provide a model parameter.", "model")
    if body.get("stream"):
        raise BadRequest("stream is not supported by the promptmill test server.", "stream")
    stop = body.get("stop")
    if stop is None:
        stops: list[str] = []
    elif isinstance(stop, str):
        stops = [stop]
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        stops = list(stop)
    else:
        raise BadRequest(f"{stop!r} is not valid under any of the given schemas - 'stop'", "stop")
    temperature = body.get("temperature")
    if temperature is None:
        temperature = 1.0  # OpenAI's default, so leaving it out answers as sending it does
    elif isinstance(temperature, bool) or not isinstance(temperature, int | float) or not (
            0 <= temperature <= 2):
        raise BadRequest(f"Invalid 'temperature': {temperature!r}; it must be a number "
                         "between 0 and 2.", "temperature")
    n = _integer(body, "n", 1, MAX_N)
    max_tokens = _integer(body, "max_completion_tokens", 1, None)
    if max_tokens is None:
        max_tokens = _integer(body, "max_tokens", 1, None)
    return ParsedRequest(
        body=body, model=model, prompts=prompts, conversation=conversation,
        n=1 if n is None else n, max_tokens=max_tokens, stop=[s for s in stops if s],
        seed=_integer(body, "seed", -(2**63), 2**64 - 1), temperature=float(temperature),
        logprobs=logprobs, echo=echo, prompt_tokens=prompt_tokens,
        schema=_response_schema(body.get("response_format")))


# What a json_object request gets: an object, as OpenAI's JSON mode promises.
_ANY_OBJECT = {"type": "object", "properties": {"answer": {"type": "string"}},
               "required": ["answer"]}


def _response_schema(value: object) -> dict[str, Any] | None:
    """The schema a ``response_format`` asks for, or ``BadRequest`` as OpenAI words it."""
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise BadRequest("Invalid 'response_format': expected an object with a 'type'.",
                         "response_format")
    kind = value["type"]
    if kind == "text":
        return None
    if kind == "json_object":
        return _ANY_OBJECT
    if kind != "json_schema":
        raise BadRequest(f"Invalid value: '{kind}'. Supported values are: 'json_object', "
                         "'json_schema', and 'text'.", "response_format.type")
    spec = value.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise BadRequest("Missing required parameter: 'response_format.json_schema.name'.",
                         "response_format.json_schema.name")
    schema = spec.get("schema", {})
    if not isinstance(schema, dict):
        raise BadRequest("Invalid 'response_format.json_schema.schema': expected an object.",
                         "response_format.json_schema.schema")
    return schema or _ANY_OBJECT


def _content_text(content: object, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise BadRequest(f"Invalid content part in '{where}': {part!r}.", where)
            if part["type"] == "text":
                if not isinstance(part.get("text"), str):
                    raise BadRequest(f"Missing 'text' in a text part of '{where}'.", where)
                texts.append(part["text"])
        return "\n".join(texts)
    raise BadRequest(f"Invalid type for '{where}': expected a string or an array of content "
                     "parts.", where)


def parse_chat(body: dict[str, Any]) -> ParsedRequest:
    """A valid ``/v1/chat/completions`` body, or ``BadRequest``."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("Missing required parameter: 'messages' (a non-empty array).",
                         "messages")
    conversation: list[list[str]] = []
    last_user = ""
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise BadRequest(f"Invalid '{where}': each message needs a string 'role'.", where)
        text = _content_text(message.get("content"), f"{where}.content")
        conversation.append([message["role"], text])
        if message["role"] == "user":
            last_user = text
    logprobs = body.get("logprobs")
    if logprobs is not None and not isinstance(logprobs, bool):
        raise BadRequest(f"{logprobs!r} is not of type 'boolean' - 'logprobs'", "logprobs")
    top = _integer(body, "top_logprobs", 0, MAX_TOP_LOGPROBS)
    if top is not None and not logprobs:
        raise BadRequest("'logprobs' must be set to true when 'top_logprobs' is used.",
                         "top_logprobs")
    return _parsed(body, [last_user], conversation, (top or 0) if logprobs else None, False,
                   sum(count_tokens(text) for _, text in conversation))


def parse_completion(body: dict[str, Any]) -> ParsedRequest:
    """A valid ``/v1/completions`` body, or ``BadRequest``."""
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        prompts = [prompt]
    elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        prompts = list(prompt)
    else:
        raise BadRequest("Missing required parameter: 'prompt' (a string or a non-empty array "
                         "of strings; token arrays are not supported).", "prompt")
    echo = body.get("echo", False)
    if not isinstance(echo, bool):
        raise BadRequest(f"{echo!r} is not of type 'boolean' - 'echo'", "echo")
    return _parsed(body, prompts, None, _integer(body, "logprobs", 0, MAX_TOP_LOGPROBS), echo,
                   sum(count_tokens(p) for p in prompts))


# -- response bodies ------------------------------------------------------------------------


def usage(request: ParsedRequest, choices: list[Choice]) -> dict[str, int]:
    """OpenAI's ``usage`` object for ``choices`` answering ``request``."""
    completion = sum(len(choice.tokens) for choice in choices)
    return {"prompt_tokens": request.prompt_tokens, "completion_tokens": completion,
            "total_tokens": request.prompt_tokens + completion}


def chat_body(request: ParsedRequest, choices: list[Choice], response_id: str,
              created: int) -> dict[str, Any]:
    """A ``chat.completion`` object."""
    top = request.logprobs
    return {
        "id": f"chatcmpl-{response_id}",
        "object": "chat.completion",
        "created": created,
        "model": request.model,
        "system_fingerprint": "fp_promptmill",
        "choices": [
            {
                "index": index,
                "message": {"role": "assistant", "content": choice.text, "refusal": None},
                "logprobs": None if top is None else chat_logprobs(choice, top),
                "finish_reason": choice.finish_reason,
            }
            for index, choice in enumerate(choices)
        ],
        "usage": usage(request, choices),
    }


def completion_body(request: ParsedRequest, choices: list[Choice], response_id: str,
                    created: int) -> dict[str, Any]:
    """A ``text_completion`` object: ``n`` choices per prompt, prompts in order."""
    top = request.logprobs
    out = []
    for index, choice in enumerate(choices):
        echoed = request.prompts[index // request.n] if request.echo else ""
        out.append({
            "index": index,
            "text": echoed + choice.text,
            "logprobs": None if top is None else completion_logprobs(choice, top, echoed),
            "finish_reason": choice.finish_reason,
        })
    return {
        "id": f"cmpl-{response_id}",
        "object": "text_completion",
        "created": created,
        "model": request.model,
        "system_fingerprint": "fp_promptmill",
        "choices": out,
        "usage": usage(request, choices),
    }
