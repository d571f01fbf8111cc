"""One-off calls for notebooks: ``await generator.chat(messages)``, ``generator.complete(text)``.

No job store: the answer comes back to the caller, nothing is kept. What a job checks before
sending is checked (the key, parameters the backend cannot honour), and failures are retried
by the job's policy and kinds (429 after its ``Retry-After``, 5xx with backoff), except that
a server that cannot be reached fails the call after a few tries instead of pausing as a
job does. Concurrent calls on one generator share its connection pool (or loaded model);
a local engine loads its model on the first call and keeps it until ``unload()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from promptmill.engine.retry import RetryPolicy
from promptmill.errors import GenerationError, UsageError
from promptmill.generators.custom import name_of
from promptmill.params import GenerateParams, make_params, translate

if TYPE_CHECKING:
    from promptmill.generators.base import (
        GenerationRequest,
        GenerationResult,
        Generator,
        Message,
        Response,
        Usage,
    )

# A job's retry policy, but an unreachable server fails the call after three tries.
ONE_OFF_RETRY = RetryPolicy(max_unavailable=3)
_ids = itertools.count()


@dataclass
class Reply:
    """The answer to a one-off call: its text, why it stopped, the tokens it used, and every
    sample where ``n`` asked for more than one."""

    text: str
    finish_reason: str | None = None
    usage: Usage | None = None
    responses: list[Response] = field(default_factory=list)

    @property
    def texts(self) -> list[str]:
        """Every sample's text."""
        return [response.text for response in self.responses]


def as_messages(messages: str | Sequence[Any]) -> list[Message]:
    """A chat as message dicts: a string is one user message; objects with ``role`` and
    ``content`` attributes (rigging's ``Message``) are read as such."""
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    chat: list[Message] = []
    for i, message in enumerate(messages):
        if isinstance(message, Mapping):
            chat.append(dict(message))
        elif hasattr(message, "role") and hasattr(message, "content"):
            chat.append({"role": message.role, "content": message.content})
        else:
            raise UsageError(f"chat message {i} is a {type(message).__name__}: pass "
                             '{"role": "user", "content": "..."} dicts or one string')
        if "role" not in chat[-1] or "content" not in chat[-1]:
            raise UsageError(f"chat message {i} lacks role or content: write "
                             '{"role": "user", "content": "..."}')
    if not chat:
        raise UsageError("chat() needs at least one message")
    return chat


async def call(generator: Generator, messages: list[Message] | None, prompt: str | None,
               params: GenerateParams | None, overrides: Mapping[str, Any]) -> Reply:
    """One chat (``messages``) or text ``prompt`` answered now, with retries."""
    from promptmill.generators.base import GenerationRequest

    if params is not None and not isinstance(params, GenerateParams):
        raise UsageError(f"params must be a GenerateParams, not a {type(params).__name__}: "
                         "pass overrides as keywords (temperature=0.5)")
    merged = generator.params.merge(params).merge(make_params(overrides) if overrides else None)
    kind = "chats" if messages is not None else "text prompts"
    if not (generator.supports_chat if messages is not None else generator.supports_text):
        other = "complete(text)" if messages is not None else "chat(messages)"
        raise UsageError(f"{name_of(generator)} does not take {kind}: use {other}")
    generator.check_ready()
    generator.check_params(merged)
    sent = translate(merged, generator.provider, generator.supported_params)
    samples = sent.n or 1
    if samples > 1 and not generator.supports_n:  # k requests of one sample, as a job does
        sent = sent.with_(n=1)
    else:
        samples = 1
    requests = [GenerationRequest(f"oneoff-{next(_ids)}", sent, messages=messages,
                                  prompt=prompt) for _ in range(samples)]
    async with _started(generator):
        results = await asyncio.gather(*(_with_retries(generator, r) for r in requests))
    responses = [response for result in results for response in result.responses]
    if not responses:
        raise GenerationError(f"{name_of(generator)} answered no choice")
    usages = [result.usage for result in results if result.usage is not None]
    usage = None
    if usages:
        from promptmill.generators.base import Usage

        usage = Usage(sum(u.prompt_tokens for u in usages),
                      sum(u.completion_tokens for u in usages))
    return Reply(responses[0].text, responses[0].finish_reason, usage, responses)


async def _with_retries(generator: Generator, request: GenerationRequest) -> GenerationResult:
    rng = random.Random()
    attempts = unavailable = 0
    while True:
        try:
            result = (await generator.generate([request]))[0]
            error = result.error
        except GenerationError as exc:
            error = exc
        if error is None:
            return result
        if ONE_OFF_RETRY.counts_as_attempt(error):
            attempts += 1
        else:
            unavailable += 1
        if ONE_OFF_RETRY.gives_up(error, attempts, unavailable):
            raise error
        await asyncio.sleep(ONE_OFF_RETRY.delay(error, max(attempts, unavailable), rng))


class _Users:
    """The one-off calls in flight on one generator, in one event loop."""

    __slots__ = ("count", "lock", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.count = 0  # calls in flight; the generator is started while any is
        self.lock = asyncio.Lock()  # start and close one at a time
        self.loop = loop  # sessions belong to the loop they were opened in


_USERS: weakref.WeakKeyDictionary[Generator, _Users] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def _started(generator: Generator) -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    users = _USERS.get(generator)
    if users is None or users.loop is not loop:
        users = _USERS[generator] = _Users(loop)
    async with users.lock:
        if users.count == 0:
            if generator.is_local and not _loaded(generator):
                await asyncio.to_thread(generator.load)  # kept until unload(), as documented
            await generator.start()
        users.count += 1
    try:
        yield
    finally:
        async with users.lock:
            users.count -= 1
            if users.count == 0:
                await generator.close()


def _loaded(generator: Generator) -> bool:
    try:
        return bool(getattr(generator, "loaded", True))
    except NotImplementedError:
        return True
