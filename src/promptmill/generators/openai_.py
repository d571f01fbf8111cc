"""OpenAI and any OpenAI-compatible server (vLLM, llama.cpp server, Ollama, Gemini), over HTTP.

The hot path speaks HTTP itself: one pool of keep-alive connections per job
(``promptmill.httpclient``), no SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from promptmill import fastjson
from promptmill.errors import (
    FatalRequestError,
    GenerationError,
    JobFatalError,
    MalformedResponse,
    ParamError,
    RateLimited,
    RetryableError,
    ServerError,
    Unavailable,
)
from promptmill.generators.base import (
    GenerationRequest,
    GenerationResult,
    RateLimitInfo,
    Response,
    Usage,
)
from promptmill.generators.httpapi import HTTPAPIGenerator
from promptmill.params import GenerateParams
from promptmill.redaction import redact_secrets

if TYPE_CHECKING:
    from promptmill.prompts.formats import ChatFormat

log = logging.getLogger(__name__)

OPENAI_API_BASE = "https://api.openai.com/v1"
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# ``owned_by`` in /v1/models of servers known to refuse every request naming a model they do
# not list: vLLM's ("vllm"), OpenAI's and LiteLLM's proxy ("openai", "system", ...), Ollama's
# OpenAI API ("library"). Others may answer any name with their one model (llama-cpp-python's
# says "me", llama.cpp's "llamacpp"): for those a name not listed is a warning, not a stop.
_REFUSING_OWNERS = frozenset({"vllm", "openai", "system", "openai-internal",
                              "organization-owner", "library"})


def parse_duration(text: str | None) -> float | None:
    """OpenAI's reset durations ("1s", "6m0s", "20ms", "1.5s") or plain seconds, in seconds."""
    if not text:
        return None
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not parts:
        return None
    return sum(float(value) * _UNIT_SECONDS[unit] for value, unit in parts)


def _int_header(headers: Any, name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None


def parse_rate_headers(headers: Any) -> RateLimitInfo | None:
    """The ``x-ratelimit-*`` and ``Retry-After`` headers of a response, if it sent any."""
    if not ("x-ratelimit-remaining-requests" in headers or "retry-after" in headers
            or "x-ratelimit-remaining-tokens" in headers or "retry-after-ms" in headers):
        return None  # the common case off rate limits: four lookups, nothing parsed
    retry_after = parse_duration(headers.get("retry-after"))
    retry_after_ms = headers.get("retry-after-ms")
    if retry_after_ms is not None:
        with contextlib.suppress(ValueError):
            retry_after = float(retry_after_ms) / 1000
    info = RateLimitInfo(
        limit_requests=_int_header(headers, "x-ratelimit-limit-requests"),
        limit_tokens=_int_header(headers, "x-ratelimit-limit-tokens"),
        remaining_requests=_int_header(headers, "x-ratelimit-remaining-requests"),
        remaining_tokens=_int_header(headers, "x-ratelimit-remaining-tokens"),
        reset_requests_s=parse_duration(headers.get("x-ratelimit-reset-requests")),
        reset_tokens_s=parse_duration(headers.get("x-ratelimit-reset-tokens")),
        retry_after_s=retry_after,
    )
    return None if info == RateLimitInfo() else info


class OpenAIGenerator(HTTPAPIGenerator):
    """OpenAI's chat and text completions API (``openai!gpt-4o-mini``)."""

    provider = "openai"
    supports_n = True
    supports_logprobs = True
    supports_batch = True
    supports_request_model = True
    # response_format goes in the body as it is (OpenAI, vLLM's and llama.cpp's servers).
    supported_params = HTTPAPIGenerator.supported_params | {"response_format"}
    needs_key = True
    key_env_var: ClassVar[str | None] = "OPENAI_API_KEY"
    config_fields = frozenset({"api_base", "timeout", "api_key_env", "chat", "max_model_len",
                               "supports_n"})
    default_api_base: ClassVar[str] = OPENAI_API_BASE

    def __init__(self, model: str, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        if self.config.get("supports_n") is False:
            # A server that ignores n (llama-cpp-python's): one request per sample instead.
            self.supports_n = False  # type: ignore[misc]
        # Body fields of a params object, by (id, chat); the object is kept so its id stays
        # its own. A job uses a handful of params objects for all its requests.
        self._fields: dict[tuple[int, bool], tuple[GenerateParams, dict[str, Any]]] = {}
        # Said once per endpoint: answers without the logprobs (or prompt_logprobs) asked.
        self._warned: set[str] = set()
        # One-sample params of a request's params, by (id, sample); the object kept (above).
        self._sample_params: dict[tuple[int, int], tuple[GenerateParams, GenerateParams]] = {}

    def context_length(self) -> int | None:
        """``max_model_len=`` from the identifier (the server is not asked)."""
        value = self.config.get("max_model_len")
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or value < 1):
            raise ParamError(f"{self.provider}! option max_model_len={value!r} must be a "
                             "positive integer (the model's context window in tokens)")
        return value

    def request_body(self, request: GenerationRequest) -> tuple[str, dict[str, Any]]:
        """The endpoint path and JSON body for one request."""
        chat = request.messages is not None
        body: dict[str, Any] = {"model": request.model or self.model}
        if chat:
            body["messages"] = request.messages
        else:
            body["prompt"] = request.prompt
        body.update(self._param_fields(request.params, chat))
        return ("/chat/completions" if chat else "/completions"), body

    def _param_fields(self, params: GenerateParams, chat: bool) -> dict[str, Any]:
        # Per request this was a pydantic dump: cached, it costs a dict lookup.
        cached = self._fields.get((id(params), chat))
        if cached is not None and cached[0] is params:
            return cached[1]
        fields = params.set_fields()
        logprobs = fields.pop("logprobs", None)
        top_logprobs = fields.pop("top_logprobs", None)
        head: dict[str, Any] = {}
        if logprobs or top_logprobs:
            if chat:
                head["logprobs"] = True
                if top_logprobs:
                    head["top_logprobs"] = top_logprobs
            else:
                head["logprobs"] = top_logprobs or 1
        if len(self._fields) >= 64:
            self._fields.clear()
        result = {**head, **fields}
        self._fields[(id(params), chat)] = (params, result)
        return result

    async def _complete(self, requests: Sequence[GenerationRequest],
                        results: list[GenerationResult]) -> list[GenerationResult]:
        """Send the samples a server that ignores ``n`` left out, each as its own request.

        Learned from the first answer with fewer choices than ``n`` (``_parse_success``):
        from then on every short answer is completed with one-sample requests (seed+i for
        sample i where a seed is set, as local engines seed the samples of one request). The
        result has every sample, so the job's store and fingerprint are those of a server
        that honours ``n``, and a resumed job learns the same from its first answer.
        """
        for index, (request, result) in enumerate(zip(requests, results, strict=True)):
            # n=1: an answer with no choice at all is left to the engine (a malformed one).
            if request.n > 1 and len(result.responses) < request.n:
                results[index] = await self._one_by_one(request, result)
        return results

    async def _one_by_one(self, request: GenerationRequest,
                          short: GenerationResult) -> GenerationResult:
        """``request``'s samples after those ``short`` has, each its own request."""
        responses = list(short.responses)
        usage = short.usage or Usage()
        prompt_tokens, completion_tokens = usage.prompt_tokens, usage.completion_tokens
        info = short.rate_limit
        for sample in range(len(responses), request.n):
            single = GenerationRequest(
                request.request_id, self._params_of_sample(request.params, sample),
                request.messages, request.prompt, request.adapter, request.model)
            (result,) = await self.generate([single])
            responses.extend(result.responses[:1])
            if result.usage is not None:
                # The prompt is the same each time: counted once, as one request of n would.
                prompt_tokens = prompt_tokens or result.usage.prompt_tokens
                completion_tokens += result.usage.completion_tokens
            info = result.rate_limit or info
        return GenerationResult(request.request_id, responses,
                                Usage(prompt_tokens, completion_tokens), rate_limit=info)

    def _params_of_sample(self, params: GenerateParams, sample: int) -> GenerateParams:
        cached = self._sample_params.get((id(params), sample))
        if cached is not None and cached[0] is params:
            return cached[1]
        updates: dict[str, Any] = {"n": 1}
        if params.seed is not None:
            updates["seed"] = params.seed + sample
        single = params.model_copy(update=updates)
        if len(self._sample_params) >= 256:
            self._sample_params.clear()
        self._sample_params[(id(params), sample)] = (params, single)
        return single

    def _result(self, request: GenerationRequest, status: int, raw: bytes, headers: Any,
                url: str) -> GenerationResult:
        """The result of one answered request, or the error that classifies its failure."""
        info = parse_rate_headers(headers)
        if status == 200:
            result = self._parse_success(request, raw, url, headers)
            result.rate_limit = info
            return result
        error = self._classify(status, raw, url, info)
        if isinstance(error, RetryableError):
            error.rate_limit = info
        raise error

    def _parse_success(
        self, request: GenerationRequest, raw: bytes, url: str, headers: Any
    ) -> GenerationResult:
        try:
            data = fastjson.loads(raw)
            choices = data["choices"]
            chat = request.messages is not None
            responses = [parse_choice(choice, chat) for choice in choices]
        except (ValueError, KeyError, TypeError, IndexError):
            kind = headers.get("content-type", "").split(";")[0] or "no content type"
            raise MalformedResponse(
                f"malformed response from {url} ({kind}, {len(raw)} bytes): not an "
                "OpenAI-shaped completion; check that api_base ends with /v1"
            ) from None
        if len(responses) != request.n:
            if len(responses) > request.n:
                raise MalformedResponse(
                    f"malformed response from {url}: {len(responses)} choices for n={request.n}")
            if not self._incomplete:
                self._incomplete = True
                log.warning(
                    "%s answered %d choice(s) for n=%d: it ignores n; each missing sample is "
                    "sent as a request of its own from now on (k requests per row)",
                    self.api_base, len(responses), request.n)
        params = request.params
        if params.prompt_logprobs is not None and data.get("prompt_logprobs"):
            # vLLM's chat gives the prompt's logprobs once, beside the choices.
            shared = _vllm_prompt_logprobs(data["prompt_logprobs"])
            for response in responses:
                response.prompt_logprobs = shared
        if (params.logprobs or params.top_logprobs) and any(
                response.logprobs is None for response in responses):
            self._no_logprobs(url, "logprobs")
        elif params.top_logprobs:
            for response in responses:
                _keep_best(response.logprobs, params.top_logprobs)
        if params.prompt_logprobs is not None and any(
                response.prompt_logprobs is None for response in responses):
            self._no_logprobs(url, "prompt_logprobs")
        usage_data = data.get("usage") or {}
        usage = Usage(int(usage_data.get("prompt_tokens") or 0),
                      int(usage_data.get("completion_tokens") or 0))
        return GenerationResult(request.request_id, responses, usage)

    def _no_logprobs(self, url: str, field: str) -> None:
        # The answer is kept: its text is what the job is for, and the missing logprobs show
        # as null in the output; the warning comes at the first answer, so the user can stop.
        if field not in self._warned:
            self._warned.add(field)
            log.warning("%s answered without the %s asked for: it ignores %s; the answers "
                        "are kept with %s null", url, field, field, field)

    def _classify(
        self, status: int, raw: bytes, url: str, info: RateLimitInfo | None
    ) -> GenerationError:
        message = _error_message(raw)
        if status == 429:
            if "insufficient_quota" in message or "quota" in message.lower():
                return JobFatalError(
                    f"HTTP 429 from {url}: {message}: add credit or use another key")
            retry_after = info.retry_after_s if info else None
            return RateLimited(f"HTTP 429 from {url}: {message}", retry_after=retry_after)
        if status in (502, 503, 504):
            return Unavailable(f"HTTP {status} from {url}: {message}")
        if status >= 500 or status == 408:
            return ServerError(f"HTTP {status} from {url}: {message}")
        if status in (401, 403):
            return self.auth_refused(status, url, message)
        if status == 404:
            return JobFatalError(
                f"HTTP 404 from {url}: {message}: check the model name and that api_base "
                "points at an OpenAI-compatible /v1"
            )
        return FatalRequestError(f"HTTP {status} from {url}: {message}")


class HTTPGenerator(OpenAIGenerator):
    """Any OpenAI-compatible server: ``http!MODEL,api_base=http://host:8000/v1``.

    With ``chat_format=NAME`` (or ``auto``: from the model's name) chats are rendered by
    promptmill and sent to the text-completion endpoint, for servers without the model's
    template or to control the exact prompt.
    """

    provider = "http"
    # vLLM's servers give prompt_logprobs; another server's answer without them is warned of.
    supports_prompt_logprobs = True
    supported_params = OpenAIGenerator.supported_params | {"prompt_logprobs"}
    needs_key = False
    key_env_var = None
    default_api_base = "http://127.0.0.1:8000/v1"
    config_fields = OpenAIGenerator.config_fields | {"chat_format"}

    def weights_stamp(self) -> dict[str, Any] | None:
        """A model named by its absolute path (``promptmill serve``'s identifiers): its files
        as they stand, so that a model retrained and served again is another model."""
        if not self.model.startswith("/"):
            return {}
        from pathlib import Path

        from promptmill.generators.local import files_stamp

        path = Path(self.model)
        return files_stamp(path) if path.exists() else {}

    async def start(self) -> None:
        """Open the session; the model is checked before the first request is sent."""
        await super().start()
        self._check_pending = True
        self._models_check: asyncio.Future[None] | None = None

    async def _check_before_sending(self) -> None:
        """``GET /models`` once, before anything is sent: the model must be one it serves.

        Not in start(): a job the response cache answers whole sends nothing at all. Calls
        that come while the check runs wait for it; a failed check fails each of them.
        """
        if self._models_check is None:
            self._models_check = asyncio.ensure_future(self._check_models())
        await asyncio.shield(self._models_check)
        self._check_pending = False

    async def _check_models(self) -> None:
        names = await self._offered_models()
        if names is not None:
            self._check_offered(*names)

    async def _offered_models(self) -> tuple[list[str], bool] | None:
        """The model names ``GET /models`` lists, and whether the server is one known to
        refuse other names (None: no usable list; the first request says what is wrong)."""
        assert self._client is not None
        try:
            status, raw, _ = await self._client.request(
                "GET", self.api_base + "/models", timeout=min(10.0, self.timeout))
            if status != 200:
                return None
            entries = fastjson.loads(raw)["data"]
            names = [str(entry["id"]) for entry in entries]
        except (asyncio.TimeoutError, OSError, ValueError, KeyError, TypeError):
            return None
        refuses = any(entry.get("owned_by") in _REFUSING_OWNERS for entry in entries)
        return names, refuses

    def _check_offered(self, names: list[str], refuses: bool) -> None:
        if not names or self.model in names:
            return
        offered = redact_secrets(", ".join(names[:10]) + (", ..." if len(names) > 10 else ""))
        if not refuses:
            log.warning("%s does not list model %r (it lists %s): it may answer with its own "
                        "model; name that model (http!%s,...) to say which model answers",
                        self.api_base, self.model, offered, redact_secrets(names[0]))
            return
        raise JobFatalError(
            f"{self.api_base} does not serve model {self.model!r}: it offers {offered}; "
            f"name one of them in the identifier (http!{redact_secrets(names[0])},...)")

    def chat_format(self) -> ChatFormat | None:
        """The format set with ``chat_format=`` (None: the server's chat endpoint)."""
        from promptmill.prompts.formats import resolve_format

        setting = self.config.get("chat_format")
        return resolve_format(self.model, None if setting is None else str(setting))


def parse_choice(choice: dict[str, Any], chat: bool) -> Response:
    """One ``choices[i]`` of a chat or text completion as a Response (also Batch API output).

    Logprobs come out in promptmill's one shape whatever the server and mode: a list of
    ``{token, logprob, bytes?, top_logprobs: [{token, logprob, bytes?}]}``; so do vLLM's
    ``prompt_logprobs`` (None for the first prompt token).
    """
    if chat:
        message = choice["message"]
        text = message.get("content") or ""
        raw = choice.get("logprobs")
        logprobs = _chat_logprobs(raw.get("content")) if isinstance(raw, dict) else None
    else:
        text = choice["text"]
        logprobs = _text_logprobs(choice.get("logprobs"))
    prompt_logprobs = choice.get("prompt_logprobs")
    return Response(text, choice.get("finish_reason"), logprobs,
                    _vllm_prompt_logprobs(prompt_logprobs) if prompt_logprobs else None)


def _entry(token: Any, logprob: Any, token_bytes: Any = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"token": str(token), "logprob": float(logprob)}
    if token_bytes is not None:
        entry["bytes"] = token_bytes
    return entry


def _chat_logprobs(content: Any) -> list[dict[str, Any]] | None:
    """Chat's ``logprobs.content``, each entry with its alternatives as a list (never null)."""
    if not isinstance(content, list):
        return None
    return [{**_entry(item["token"], item["logprob"], item.get("bytes")), "top_logprobs": [
        _entry(alt["token"], alt["logprob"], alt.get("bytes"))
        for alt in item.get("top_logprobs") or []]} for item in content]


def _keep_best(entries: list[dict[str, Any]] | None, top: int) -> None:
    """At most ``top`` alternatives per token, the likeliest: llama-cpp-python's server adds
    the sampled token to them when it is not among the best."""
    for entry in entries or ():
        alternatives = entry["top_logprobs"]
        if len(alternatives) > top:
            alternatives.sort(key=lambda alt: -alt["logprob"])
            del alternatives[top:]


def _text_logprobs(raw: Any) -> list[dict[str, Any]] | None:
    """A text completion's parallel lists, alternatives given as ``{token: logprob}``."""
    if not isinstance(raw, dict) or not raw.get("tokens"):
        return None
    tops = raw.get("top_logprobs") or [None] * len(raw["tokens"])
    return [
        {**_entry(token, logprob), "top_logprobs": [
            _entry(alt, alt_logprob) for alt, alt_logprob in (top or {}).items()]}
        for token, logprob, top in zip(raw["tokens"], raw["token_logprobs"], tops, strict=False)
        if logprob is not None  # an echoed prompt's first token has none
    ]


def _vllm_prompt_logprobs(raw: Any) -> list[dict[str, Any] | None] | None:
    """vLLM's ``prompt_logprobs`` (per position ``{token_id: {logprob, rank, decoded_token}}``,
    the prompt's own token first, then the most likely), in the shape of ``logprobs``: the
    alternatives by rank, the prompt's token among them where it ranks in the top ones (as
    ``vllm!`` gives them; a prompt token ranked just past them is counted in too)."""
    if not isinstance(raw, list):
        return None
    entries: list[dict[str, Any] | None] = []
    for position in raw:
        if not isinstance(position, dict) or not position:
            entries.append(None)
            continue
        ranked = [(alt.get("rank") or 0, _entry(alt.get("decoded_token", token_id),
                                                alt["logprob"]))
                  for token_id, alt in position.items()]
        chosen = ranked[0][1]
        best = sorted((item for item in ranked if item[0] <= len(position)),
                      key=lambda item: item[0])
        entries.append({**chosen, "top_logprobs": [entry for _, entry in best]})
    return entries


def _error_message(raw: bytes) -> str:
    """The provider's error message, shortened; bodies never echo our key back."""
    try:
        data = json.loads(raw)
        error = data.get("error", data)
        message = error.get("message") if isinstance(error, dict) else str(error)
    except (ValueError, AttributeError):
        message = raw[:200].decode("utf-8", "replace")
    message = redact_secrets(str(message or "no message"))
    return message.strip().replace("\n", " ")[:300]
