"""A responder that answers promptmill's judge prompts (``extract --judge``) on cue.

``judge_responder(decide)`` reads the response quoted in a judge prompt (between ``<<<`` and
``>>>``) and replies ``ANSWER: <decide(response)>``, so a test decides exactly what the
judge says about each response, over real HTTP, through the whole judge job.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from promptmill.testing.answers import Responder

_QUOTED = re.compile(r"<<<\n(.*)\n>>>", re.DOTALL)


def judged_response(body: dict[str, Any]) -> str | None:
    """The response a judge request quotes, or None if ``body`` is not a judge prompt."""
    messages = body.get("messages")
    text: Any = messages[-1].get("content") if isinstance(messages, list) and messages else None
    if not isinstance(text, str):
        text = body.get("prompt")
    match = _QUOTED.search(text) if isinstance(text, str) else None
    return match.group(1) if match else None


def judge_responder(decide: Callable[[str], str]) -> Responder:
    """A responder replying ``ANSWER: decide(response)`` to each judge prompt (and
    ``ANSWER: NONE`` to anything else)."""

    def respond(body: dict[str, Any]) -> str:
        response = judged_response(body)
        return f"ANSWER: {decide(response) if response is not None else 'NONE'}"

    return respond


__all__ = ["judge_responder", "judged_response"]
