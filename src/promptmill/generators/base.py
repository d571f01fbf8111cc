"""The Generator contract every backend implements, and the plain data it exchanges."""

from __future__ import annotations

import abc
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from promptmill.errors import GenerationError, MissingKeyError, ParamError, did_you_mean
from promptmill.generators import custom, oneoff
from promptmill.generators.attributes import check_limits, map_attributes
from promptmill.identifiers import Identifier
from promptmill.params import FIELDS, GenerateParams, make_params
from promptmill.redaction import Secret, remember_secret

if TYPE_CHECKING:
    from promptmill.generators.oneoff import Reply
    from promptmill.prompts.formats import ChatFormat

Message = dict[str, Any]
# Identifier options every backend takes: its prices in USD per million prompt and completion
# tokens (for --max-cost and --dry-run where promptmill's price table does not know the model).
PRICE_OPTIONS = ("price_in", "price_out")


def env_value(name: str, dotenv: Path = Path(".env")) -> str | None:
    """A variable from the environment, else from a ``.env`` file in the working directory."""
    value = os.environ.get(name)
    if value:
        return value
    try:
        lines = dotenv.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    for line in lines:
        key, sep, raw = line.strip().removeprefix("export ").partition("=")
        if sep and key.strip() == name:
            return raw.strip().strip("'\"") or None
    return None


# Not frozen: a frozen dataclass costs about four times as much to build, once per request.
@dataclass(slots=True)
class GenerationRequest:
    """One request: a chat (``messages``) or a raw completion (``prompt``), with its params.

    ``model`` names another model than the generator's, on the same endpoint (a request
    file's line); None: the generator's own.
    """

    request_id: str
    params: GenerateParams
    messages: list[Message] | None = None
    prompt: str | None = None
    # The LoRA adapter (by name, see Generator.adapters) to answer with; None: the base model.
    adapter: str | None = None
    model: str | None = None

    @property
    def n(self) -> int:
        """How many samples this request asks for."""
        return self.params.n or 1


@dataclass(slots=True)
class Response:
    """One sampled answer."""

    text: str
    finish_reason: str | None = None
    logprobs: list[dict[str, Any]] | None = None
    # One entry per prompt token (None for the first), when prompt_logprobs was asked.
    prompt_logprobs: list[dict[str, Any] | None] | None = None


@dataclass(slots=True)
class Usage:
    """Tokens a request consumed, as the backend reported them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt and completion tokens together."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """What a response's headers said about the provider's limits (None: not said)."""

    limit_requests: int | None = None
    limit_tokens: int | None = None
    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    reset_requests_s: float | None = None
    reset_tokens_s: float | None = None
    retry_after_s: float | None = None
    # The resets are durations the provider measured (OpenAI's), not instants on its clock
    # read against ours (Anthropic's: whole seconds, and any skew between the clocks).
    reset_exact: bool = True


@dataclass(slots=True)
class GenerationResult:
    """The outcome of one request: responses and usage, or the error that ended it."""

    request_id: str
    responses: list[Response] = field(default_factory=list)
    usage: Usage | None = None
    error: GenerationError | None = None
    rate_limit: RateLimitInfo | None = None
    # The fleet endpoint that answered (its redacted identifier); None for one endpoint.
    endpoint: str | None = None


# An ABC with no abstract method: backends may implement generate() or the seed's handlers
# (generate_messages/generate_texts); abstract subclasses (HTTPAPIGenerator) use ABCMeta.
class Generator(abc.ABC):  # noqa: B024
    """A backend: takes a batch of requests, returns one result per request.

    ``generate`` returns results in the order of ``requests``. A failure of one request is
    a result with ``error`` set; a failure of the whole call (server unreachable) is raised
    as a :class:`~promptmill.errors.GenerationError` and applies to every request in it.
    """

    provider: ClassVar[str] = ""
    supports_n: ClassVar[bool] = False
    supports_logprobs: ClassVar[bool] = False
    supports_prompt_logprobs: ClassVar[bool] = False
    supports_chat: ClassVar[bool] = True
    supports_text: ClassVar[bool] = True
    is_local: ClassVar[bool] = False
    needs_key: ClassVar[bool] = False
    key_env_var: ClassVar[str | None] = None
    # Parameters the backend takes; others are dropped with a warning or refused (params.translate).
    # (response_format, structured output, only where the backend constrains its output.)
    supported_params: ClassVar[frozenset[str]] = FIELDS - {"prompt_logprobs", "response_format"}
    # Identifier options that configure the generator itself rather than sampling.
    config_fields: ClassVar[frozenset[str]] = frozenset()
    # How many requests one generate() call may take; local engines schedule batches themselves.
    max_batch: ClassVar[int] = 1
    # Whether the backend's server offers OpenAI's Batch API (/files, /batches: --mode batch).
    supports_batch: ClassVar[bool] = False
    # How many generate()/stream() calls a local engine takes at once (remote ones: the job's
    # concurrency). Two keep an engine's scheduler fed while one batch drains.
    concurrent_batches: ClassVar[int] = 1
    # Whether a request may name its own model (``GenerationRequest.model``), served by the
    # same endpoint; backends running one model refuse request-file lines naming another.
    supports_request_model: ClassVar[bool] = False

    # Options a subclass declares as annotated class attributes (``custom_field: bool``, the
    # seed's way): taken as identifier options and set on the instance.
    attribute_fields: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Not the base's own class attributes (``provider: str = "mine"`` stays a ClassVar).
        declared = {name for name, kind in vars(cls).get("__annotations__", {}).items()
                    if not name.startswith("_") and "ClassVar" not in str(kind)
                    and name not in Generator.__annotations__}
        if declared:
            cls.attribute_fields = cls.attribute_fields | declared
            cls.config_fields = cls.config_fields | declared
        custom.declare_capabilities(cls)

    def __init__(
        self,
        model: str,
        *,
        params: GenerateParams | None = None,
        api_key: Secret | str | None = None,
        **config: Any,
    ) -> None:
        custom.check_implemented(self)
        config = map_attributes(self.provider, self.config_fields, config)
        # Limits bound the job, not the answers: like prices, not in the fingerprint.
        self.limit_options = check_limits(self.provider, config)
        # api_key_env is every backend's: the variable a key is read from (see api_key()).
        unknown = sorted(set(config) - self.config_fields - set(PRICE_OPTIONS) - {"api_key_env"})
        if unknown:
            known = sorted(self.config_fields | FIELDS | {"api_key_env"})
            raise ParamError(
                f"unknown option {unknown[0]!r} for {self.provider}!"
                f"{did_you_mean(unknown[0], known)}: known are {', '.join(known)}; pass a "
                f"backend-specific parameter as extra.{unknown[0]}=VALUE"
            )
        self.model = model
        self.params = params or GenerateParams()
        # Prices are not configuration: they change no answer (nor the job's fingerprint).
        self.price_options: dict[str, float] = {}
        for name in PRICE_OPTIONS:
            if name in config:
                value = config.pop(name)
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise ParamError(f"{self.provider}! option {name}={value!r} must be a "
                                     "number >= 0 (USD per million tokens)")
                self.price_options[name] = value
        self.config = config
        custom.set_attributes(self)
        self._api_key = Secret(api_key) if isinstance(api_key, str) else api_key
        self._key_given = self._api_key is not None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.to_identifier()}>"

    def __setattr__(self, name: str, value: Any) -> None:
        # rigging's way, ``generator.api_key = "sk-..."``, sets the key (held as a Secret, shown
        # as api_key=***) instead of hiding the api_key() method.
        if name == "api_key" and (value is None or isinstance(value, (str, Secret))):
            key = Secret(value) if isinstance(value, str) else value
            super().__setattr__("_api_key", key)
            super().__setattr__("_key_given", key is not None)
            return
        super().__setattr__(name, value)

    @classmethod
    def from_identifier(cls, ident: Identifier) -> Generator:
        """Build from a parsed identifier: params fields to ``params``, the rest to config."""
        param_values = {
            k: v for k, v in ident.options.items() if k in FIELDS or k.startswith("extra.")
        }
        config = {k: v for k, v in ident.options.items() if k not in param_values}
        return cls(ident.model, params=make_params(param_values), api_key=ident.api_key, **config)

    def identifier(self) -> Identifier:
        """This generator as an :class:`Identifier` (the key kept as a Secret)."""
        options: dict[str, Any] = {**self.config, **self.limit_options, **self.price_options}
        for key, value in self.params.model_dump(exclude_unset=True, exclude_none=True).items():
            if key == "response_format":
                continue  # a whole schema: the job's, shown by `status`, not in every row
            if key == "extra":
                options.update({f"extra.{k}": v for k, v in value.items()})
            else:
                options[key] = value
        secret = self._api_key if self._key_given else None
        return Identifier(self.provider, self.model, options, secret)

    def to_identifier(self) -> str:
        """The identifier string this generator was made from, secrets redacted."""
        return self.identifier().format()

    def with_(self, params: GenerateParams | None = None, /, **overrides: Any) -> Generator:
        """A new generator of the same backend with parameters overridden, given as keywords
        (``with_(temperature=0.1)``) or as ``GenerateParams`` (the keywords win)."""
        merged = (params or GenerateParams()).merge(make_params(overrides) if overrides else None)
        return self.with_params(merged)

    def with_params(self, params: GenerateParams) -> Generator:
        """A new generator of the same backend with ``params`` merged over its own."""
        merged = self.params.merge(params)
        return type(self)(self.model, params=merged, api_key=self._api_key, **self.config,
                          **self.limit_options, **self.price_options)

    def with_config(self, **config: Any) -> Generator:
        """A new generator of the same backend with generator options overridden."""
        merged = {**self.config, **self.limit_options, **self.price_options, **config}
        return type(self)(self.model, params=self.params, api_key=self._api_key, **merged)

    def key_env_name(self) -> str | None:
        """The environment variable (or ``.env`` entry) the key is read from: the one named
        by ``api_key_env=``, else the backend's own."""
        return str(self.config.get("api_key_env") or "") or self.key_env_var

    def api_key(self) -> str | None:
        """The key to send: given in the identifier, else from the environment (or .env).

        The value is remembered for redaction, so that no message can carry it out.
        """
        if self._api_key is not None:
            return self._api_key.reveal()
        name = self.key_env_name()
        value = env_value(name) if name else None
        remember_secret(value)
        return value

    def check_ready(self) -> None:
        """Raise before the job starts if the backend cannot run (missing key, missing file)."""
        named = self.config.get("api_key_env")
        if (self.needs_key or named) and not self.api_key():
            why = (f"api_key_env={named} names a key that is not set" if named
                   else "needs an API key")
            raise MissingKeyError(
                f"{self.provider}! {why}: set {self.key_env_name()} in the environment or in a "
                ".env file in the working directory"
            )

    def check_params(self, params: GenerateParams) -> None:  # noqa: B027 - optional hook
        """Raise ParamError before the job starts if the job's merged ``params`` cannot be
        sent (Anthropic's required max_tokens); nothing to check by default."""

    def count_prompt_tokens(self, request: GenerationRequest) -> int:
        """An estimate of the prompt's tokens, for the rate limiter and --dry-run."""
        from promptmill.generators.tokens import estimate_prompt_tokens

        return estimate_prompt_tokens(request, request.model or self.model)

    def params_problem(self, params: GenerateParams) -> str | None:
        """Why this backend cannot send a request with ``params`` (None: it can).

        Checked for every line of a request file before anything is sent; a backend that
        passes unknown fields through (``extra``) to its server returns None.
        """
        return None

    def chat_format(self) -> ChatFormat | None:
        """The format chats are rendered with before they are sent, as one text prompt.

        None (the default): chats go to the backend as messages, and it (or its server)
        applies the model's own template. Backends fed text return a format: the one set
        with ``chat_format=``, else none where the model has its own template, else the one
        its name implies (``prompts.formats.detect_format``), else ``PLAIN`` for base models.
        """
        return None

    def context_length(self) -> int | None:
        """The model's context window in tokens where known (None: unknown), for checks and
        truncation before anything is sent."""
        return None

    def adapters(self) -> dict[str, Path]:
        """The LoRA adapters this generator can answer with, by name (none by default)."""
        return {}

    def content_fingerprint(self) -> dict[str, Any]:
        """What of the files the generator reads decides its answers beyond its identifier
        (an adapter's weights), for the job's fingerprint; empty by default."""
        return {}

    def weights_stamp(self) -> dict[str, Any] | None:
        """What tells the model's weights apart beyond its name, for the response cache's
        key: empty where the name says it all (a remote API's model); a local model's files
        as they stand on disk; None where nothing can (a model object built or changed in
        memory), so the cache is used for it only when asked."""
        return {}

    def load(self) -> None:  # noqa: B027 - optional hook
        """Load the model now, so that it stays loaded across jobs until :meth:`unload`
        (local engines; nothing to do for remote APIs)."""

    def unload(self) -> None:  # noqa: B027 - optional hook
        """Free what :meth:`load` took (a notebook's GPU memory between jobs)."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open connections or load the model; called once per job."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release what ``start`` took."""

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Run a batch of requests; one result per request, in order.

        The default hands chats to :meth:`generate_messages` and text prompts to
        :meth:`generate_texts` (a custom generator implements one or both, or this).
        """
        return await custom.generate_with_handlers(self, requests)

    async def generate_messages(
        self, messages: Sequence[Sequence[Message]], params: Sequence[GenerateParams]
    ) -> Sequence[Any]:
        """Answer chats, one per entry of ``messages`` with its ``params`` (rigging's
        contract): each answer a ``GeneratedMessage``, a ``str``, a message dict, or the
        exception that ended that one. Not implemented by default."""
        raise NotImplementedError(f"{type(self).__name__} does not answer chats")

    async def generate_texts(
        self, texts: Sequence[str], params: Sequence[GenerateParams]
    ) -> Sequence[Any]:
        """Complete text prompts, one per entry of ``texts`` (see :meth:`generate_messages`);
        each answer a ``GeneratedText`` or a ``str``. Not implemented by default."""
        raise NotImplementedError(f"{type(self).__name__} does not complete texts")

    async def chat(self, messages: str | Sequence[Message], params: GenerateParams | None = None,
                   /, **overrides: Any) -> Reply:
        """Answer one chat now, without a job store (a notebook's call); ``params`` and
        keyword ``overrides`` over the generator's own. Retried as a job retries."""
        return await oneoff.call(self, oneoff.as_messages(messages), None, params, overrides)

    async def complete(self, text: str, params: GenerateParams | None = None, /,
                       **overrides: Any) -> Reply:
        """Complete one text prompt now, without a job store (see :meth:`chat`)."""
        return await oneoff.call(self, None, text, params, overrides)

    def chat_sync(self, messages: str | Sequence[Message], params: GenerateParams | None = None,
                  /, **overrides: Any) -> Reply:
        """:meth:`chat`, blocking; inside a running event loop (a notebook) it runs on a
        helper thread with its own loop and blocks until answered (``await chat`` there)."""
        from promptmill.eventloop import run_async

        reply: Reply = run_async(self.chat(messages, params, **overrides))
        return reply

    def complete_sync(self, text: str, params: GenerateParams | None = None, /,
                      **overrides: Any) -> Reply:
        """:meth:`complete`, blocking (see :meth:`chat_sync`)."""
        from promptmill.eventloop import run_async

        reply: Reply = run_async(self.complete(text, params, **overrides))
        return reply

    async def stream(
        self, requests: Sequence[GenerationRequest]
    ) -> AsyncIterator[GenerationResult]:
        """Run a batch of requests; each result as soon as it is ready, in any order.

        The engine records each result as it comes, so a kill loses only unfinished ones.
        The default waits for :meth:`generate`; engines that finish requests one by one
        (vLLM's scheduler, micro-batches) override it. A failure of the whole call is raised
        as in ``generate`` and applies to every request not yet yielded.
        """
        for result in await self.generate(requests):
            yield result
