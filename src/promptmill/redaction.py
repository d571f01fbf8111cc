"""Keeping API keys out of everything that leaves the process.

Redaction is by value first: every key this process holds (given in an identifier, read from
the environment or a ``.env`` file) is remembered here when it is read, and
:func:`redact_secrets` replaces it wherever it appears, whatever its shape, together with the
masked fragments providers quote back (``sk-ab...wxyz``, ``sk-proj-****wxyz``). Patterns of
well-known key shapes (``sk-``, ``gsk_``, ``hf_``, ``AIza``...) are a second net for keys this
process never held. Every place text leaves the process passes through it: error messages,
log records, the job store's error column, printed output.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

REDACTED = "***"
# Shorter values are not treated as secrets: replacing "EMPTY" (vLLM's conventional key) or
# a three-letter word everywhere would garble text and protect nothing.
MIN_SECRET_LENGTH = 6
# Environment variables whose values are secrets, by the ending of their name.
SECRET_ENV_ENDINGS = ("_API_KEY", "_TOKEN", "_SECRET", "_SECRET_KEY", "_ACCESS_KEY")

# A key given as an option or header (api_key=VALUE, api-key: VALUE, x-api-key, password...),
# VALUE quoted (an unclosed quote runs to the next comma or space, so that the rest of the
# message survives) or up to the next comma or space; and the password of a URL (://u:PASS@).
_SECRET_OPTION = re.compile(
    r"""((?<![A-Za-z0-9])(?:api[_-]?key|access[_-]?token|auth[_-]?token|password|secret)"""
    r"""\s*[=:]\s*)("(?:[^"\\]|\\.)*"|'[^']*'|["'][^\s,"']*|(?!\*\*\*)[^,\s"']+)""",
    re.IGNORECASE,
)
_URL_PASSWORD = re.compile(r"(://[^/\s:@]+:)[^/\s@]+(@)")
# Well-known key shapes, whole or masked: OpenAI/Anthropic/DeepSeek (sk-), Groq (gsk_),
# Hugging Face (hf_), Google (AIza), xAI (xai-), Replicate (r8_), Perplexity (pplx-),
# GitHub (ghp_/github_pat_), AWS access key ids (AKIA).
_SECRET_TOKEN = re.compile(
    r"\b(sk-|gsk_|hf_|AIza|xai-|r8_|pplx-|ghp_|github_pat_|AKIA)"
    r"(?:[A-Za-z0-9_\-]{6,}|[A-Za-z0-9_\-]*(?:\*{2,}|\.{3}|\u2026)+[A-Za-z0-9_\-]*)"
)
_BEARER = re.compile(r"(\bBearer\s+)[^\s\"',;]+", re.IGNORECASE)
# A masked token as providers print a key: some leading characters, a mask, maybe a tail.
_MASKED = re.compile(r"[A-Za-z0-9_\-]+(?:\*{2,}|\.{3}|\u2026)+[A-Za-z0-9_\-]*")

_known: set[str] = set()  # every secret value this process has held


def remember_secret(value: str | None) -> None:
    """Note a secret this process holds, so that it is redacted wherever it shows up."""
    if value and len(value.strip()) >= MIN_SECRET_LENGTH:
        _known.add(value.strip())


def known_secrets() -> frozenset[str]:
    """The secret values noted so far (for tests and reports that must check their own output)."""
    return frozenset(_known)


def _env_secrets() -> list[str]:
    return [
        value.strip() for name, value in os.environ.items()
        if name.upper().endswith(SECRET_ENV_ENDINGS) and len(value.strip()) >= MIN_SECRET_LENGTH
    ]


def _masked_fragment_of(token: str, secrets: list[str]) -> bool:
    """Whether ``token`` (``head<mask>tail``) shows the head and tail of one of ``secrets``."""
    pieces = re.split(r"(?:\*{2,}|\.{3}|\u2026)+", token)
    head, tail = pieces[0], pieces[-1]
    if len(head) + len(tail) < 4:
        return False
    return any(secret.startswith(head) and secret.endswith(tail) for secret in secrets)


def redact_secrets(text: str) -> str:
    """``text`` with every API key in it replaced by ``***``: by value, then by shape."""
    if not text:
        return text
    secrets = sorted(_known.union(_env_secrets()), key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if secrets and ("*" in text or "..." in text or "\u2026" in text):
        text = _MASKED.sub(
            lambda m: REDACTED if _masked_fragment_of(m.group(0), secrets) else m.group(0), text)
    text = _SECRET_OPTION.sub(r"\1***", text)
    text = _URL_PASSWORD.sub(r"\1***\2", text)
    text = _SECRET_TOKEN.sub(lambda m: m.group(1) + REDACTED, text)
    return _BEARER.sub(r"\1***", text)


class RedactingFilter(logging.Filter):
    """Rewrites log records with every key in them redacted (message, arguments, traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        redacted = redact_secrets(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_text:
            record.exc_text = redact_secrets(record.exc_text)
        return True


# promptmill's own records are redacted wherever the application sends them; the CLI puts
# the same filter on its handler, for records of the libraries it uses.
logging.getLogger("promptmill").addFilter(RedactingFilter())


class Secret:
    """A string that never shows itself in ``str``, ``repr`` or formatting."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value  # the secret itself; only reveal() hands it out
        remember_secret(value)

    def reveal(self) -> str:
        """The secret value, for the one place that must send it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return REDACTED

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:
        raise TypeError("a Secret cannot be pickled")


__all__ = [
    "REDACTED",
    "RedactingFilter",
    "Secret",
    "known_secrets",
    "redact_secrets",
    "remember_secret",
]
