"""Custom generators the seed's way: ``generate_messages`` / ``generate_texts`` handlers.

A subclass of :class:`~promptmill.generators.base.Generator` may implement rigging's two
handlers instead of ``generate``: they take a batch of chats (or texts) and one params per
entry, and return one answer per entry. The engine drives such a generator like any remote
backend: one request per call, as many calls in flight as the job's concurrency allows,
each under the rate limiter, retried by kind, recorded exactly once. A handler that fails
one entry returns the exception in its place; one that raises fails the whole call. A
promptmill error raised keeps its kind (``ServerError``, ``RateLimited`` are retried); a
connection or timeout error of Python's is retried too; any other exception fails the
request with its message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from promptmill.errors import (
    FatalRequestError,
    GenerationError,
    JobFatalError,
    MalformedResponse,
    RequestTimeout,
    Unavailable,
    UsageError,
)
from promptmill.generators import base
from promptmill.redaction import redact_secrets

if TYPE_CHECKING:
    from promptmill.generators.base import GenerationRequest, GenerationResult, Generator


@dataclass
class GeneratedMessage:
    """A handler's answer to one chat: the message (a dict or its text), why it stopped,
    and the tokens it used (``{"input_tokens", "output_tokens"}`` or OpenAI's names)."""

    message: Mapping[str, Any] | str
    stop_reason: str | None = None
    usage: Mapping[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class GeneratedText:
    """A handler's answer to one text prompt (see :class:`GeneratedMessage`)."""

    text: str
    stop_reason: str | None = None
    usage: Mapping[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _overrides(cls: type, name: str) -> bool:
    return getattr(cls, name) is not getattr(base.Generator, name)


def declare_capabilities(cls: type[Generator]) -> None:
    """A class answering through handlers says which kinds of request it takes, so that a job
    it cannot run is refused before it starts."""
    if _overrides(cls, "generate"):
        return
    chats, texts = _overrides(cls, "generate_messages"), _overrides(cls, "generate_texts")
    if chats or texts:
        cls.supports_chat = chats
        cls.supports_text = texts


def check_implemented(generator: Generator) -> None:
    """Refuse a generator class that implements neither ``generate`` nor a handler."""
    cls = type(generator)
    if not any(_overrides(cls, name) for name in
               ("generate", "generate_messages", "generate_texts")):
        raise TypeError(f"{cls.__name__} answers nothing: implement generate_messages(), "
                        "generate_texts() or generate()")


def set_attributes(generator: Generator) -> None:
    """Set the declared attributes (``custom_field: bool``) from the options given."""
    for name in sorted(generator.attribute_fields):
        if name in generator.config:
            setattr(generator, name, generator.config[name])
        elif not hasattr(type(generator), name):
            raise UsageError(f"{type(generator).__name__} needs {name}: pass {name}=VALUE "
                             f"(in an identifier: {generator.provider or 'PROVIDER'}!"
                             f"{generator.model},{name}=VALUE)")


async def generate_with_handlers(generator: Generator,
                                 requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
    """Answer ``requests`` through the generator's handlers: chats in one call, texts in
    another; results in the order of ``requests``."""
    chats = [r for r in requests if r.messages is not None]
    texts = [r for r in requests if r.messages is None]
    answers: dict[str, Any] = {}
    if chats:
        got = await _call(generator, generator.generate_messages,
                          [r.messages or [] for r in chats], [r.params for r in chats], "chats")
        answers.update(zip([r.request_id for r in chats], got, strict=True))
    if texts:
        got = await _call(generator, generator.generate_texts, [r.prompt or "" for r in texts],
                          [r.params for r in texts], "texts")
        answers.update(zip([r.request_id for r in texts], got, strict=True))
    return [_result(generator, r, answers[r.request_id]) for r in requests]


async def _call(generator: Generator, handler: Any, inputs: list[Any],
                params: list[Any], kind: str) -> list[Any]:
    try:
        answers = list(await handler(inputs, params))
    except NotImplementedError:
        raise JobFatalError(f"{name_of(generator)} does not answer {kind}: implement "
                            f"generate_{'messages' if kind == 'chats' else 'texts'}() or send "
                            f"{'text prompts (--text)' if kind == 'chats' else 'chats'}") from None
    except Exception as exc:
        raise as_generation_error(generator, exc) from None
    if len(answers) != len(inputs):
        raise JobFatalError(f"{name_of(generator)} returned {len(answers)} answers for "
                            f"{len(inputs)} {kind}: return one per entry, in order")
    return answers


def name_of(generator: Generator) -> str:
    """``provider!model`` for messages; a class not registered under a name gives its own."""
    return f"{generator.provider or type(generator).__name__}!{generator.model}"


def as_generation_error(generator: Generator, exc: BaseException) -> GenerationError:
    """An exception of a handler as promptmill's error kind, its message redacted."""
    if isinstance(exc, GenerationError):
        return exc
    text = f"{name_of(generator)}: {type(exc).__name__}: {redact_secrets(str(exc))}"[:400]
    if isinstance(exc, TimeoutError):
        return RequestTimeout(text)
    if isinstance(exc, ConnectionError):
        return Unavailable(text)
    return FatalRequestError(text)


def _result(generator: Generator, request: GenerationRequest, answer: Any) -> GenerationResult:
    if isinstance(answer, BaseException):
        return base.GenerationResult(request.request_id,
                                     error=as_generation_error(generator, answer))
    usage: Any = None
    if isinstance(answer, base.GenerationResult):
        answer.request_id = request.request_id
        return answer
    if isinstance(answer, base.Response):
        response = answer
    elif isinstance(answer, str):
        response = base.Response(answer, "stop")
    elif isinstance(answer, GeneratedText):
        response, usage = base.Response(answer.text, answer.stop_reason), answer.usage
    elif isinstance(answer, GeneratedMessage):
        response = base.Response(_content(generator, answer.message), answer.stop_reason)
        usage = answer.usage
    elif isinstance(answer, Mapping):
        response = base.Response(_content(generator, answer), "stop")
    else:
        raise MalformedResponse(f"{name_of(generator)} answered a {type(answer).__name__}: return "
                                "a GeneratedMessage, a GeneratedText or a str")
    return base.GenerationResult(request.request_id, [response], _usage(usage))


def _content(generator: Generator, message: Mapping[str, Any] | str) -> str:
    if isinstance(message, str):
        return message
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: the text ones, joined
        return "".join(str(part.get("text", "")) for part in content
                       if isinstance(part, Mapping) and part.get("type", "text") == "text")
    if content is None:
        return ""
    raise MalformedResponse(f"{name_of(generator)} answered a message whose content is a "
                            f"{type(content).__name__}: make it a str")


def _usage(usage: Any) -> base.Usage | None:
    if usage is None:
        return None
    if isinstance(usage, base.Usage):
        return usage
    prompt = usage.get("prompt_tokens", usage.get("input_tokens", 0))
    completion = usage.get("completion_tokens", usage.get("output_tokens", 0))
    return base.Usage(int(prompt or 0), int(completion or 0))
