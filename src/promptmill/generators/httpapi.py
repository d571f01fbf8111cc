"""The part every HTTP API backend shares: one pooled HTTP client, the send loop, keys.

``openai!``/``http!``, ``anthropic!`` and ``ollama!`` differ only in the body they send
(``request_body``) and how they read the answer (``_result``); the session, the timeouts,
the classification of connection failures and where the key comes from are here, once.
"""

from __future__ import annotations

import abc
import asyncio
import ssl
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from promptmill.errors import GenerationError, JobFatalError, RequestTimeout, Unavailable
from promptmill.fastjson import dumps
from promptmill.generators.base import GenerationRequest, GenerationResult, Generator
from promptmill.httpclient import HTTPClient
from promptmill.params import GenerateParams


class HTTPAPIGenerator(Generator):
    """A backend that speaks JSON over HTTP to ``api_base``, one request per call."""

    default_api_base: ClassVar[str] = ""
    # Set (by start) where a check must pass before the first request is sent (http!'s model
    # check), cleared once it has; set (by _result) once an answer lacked what the server will
    # never give (http!: samples it left out), so that every call's results are completed
    # from then on. The common call pays two attribute checks, no extra await.
    _check_pending: bool = False
    _incomplete: bool = False

    def __init__(self, model: str, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.api_base = str(self.config.get("api_base") or self.default_api_base).rstrip("/")
        self.timeout = float(self.config.get("timeout", 600))
        self._client: HTTPClient | None = None
        # A job sends thousands of requests with the same few params objects: their body
        # fields are built once each (keyed by identity, the object kept so the id stays its).
        self._body_fields: dict[int, tuple[GenerateParams, dict[str, Any]]] = {}

    def _fields_for(self, params: GenerateParams,
                    build: Callable[[GenerateParams], dict[str, Any]]) -> dict[str, Any]:
        """The body fields of ``params`` as ``build`` makes them, built once per object."""
        cached = self._body_fields.get(id(params))
        if cached is not None and cached[0] is params:
            return cached[1]
        fields = build(params)
        if len(self._body_fields) >= 64:
            self._body_fields.clear()
        self._body_fields[id(params)] = (params, fields)
        return fields

    def key_source(self) -> str:
        """Where the key comes from, for messages (never the key itself)."""
        return self.key_env_name() or "api_key"

    def auth_headers(self, key: str | None) -> dict[str, str]:
        """The headers that carry the key (OpenAI's bearer token by default)."""
        return {"Authorization": f"Bearer {key}"} if key else {}

    async def start(self) -> None:
        """Open the job's pool of HTTP connections."""
        headers = {"Content-Type": "application/json", **self.auth_headers(self.api_key())}
        try:
            self._client = HTTPClient(headers, timeout=self.timeout, connect_timeout=30.0)
        except ValueError as exc:
            raise JobFatalError(f"{self.key_source()}: {exc}") from None

    async def close(self) -> None:
        """Close the HTTP connections."""
        if self._client is not None:
            await self._client.close()
            self._client = None

    @abc.abstractmethod
    def request_body(self, request: GenerationRequest) -> tuple[str, dict[str, Any]]:
        """The endpoint path (after ``api_base``) and JSON body for one request."""

    @abc.abstractmethod
    def _result(self, request: GenerationRequest, status: int, raw: bytes, headers: Any,
                url: str) -> GenerationResult:
        """The result of one answered request, or raise the error that classifies it."""

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Send each request; exceptions classify what went wrong for the engine."""
        client = self._client
        if client is None:
            raise RuntimeError("generator not started: call start() first")
        if self._check_pending:
            await self._check_before_sending()
        results = []
        # The exchange is inline, not a coroutine per request: one await layer less on the
        # hot path (each layer costs every time a request's task resumes).
        for request in requests:
            path, body = self.request_body(request)
            url = self.api_base + path
            try:
                status, raw, headers = await client.request("POST", url, dumps(body))
            except asyncio.TimeoutError:
                # Own kinds (timeout, malformed, server_error), not plain RetryableError: the
                # retry counters then say which fault caused each retry (robustness suite).
                raise RequestTimeout(f"no answer from {url} within {self.timeout:g}s") from None
            except ssl.SSLCertVerificationError as exc:  # waiting mends none: stop
                # Only a certificate refused: another TLS failure (a handshake cut short) may
                # pass on the next connection, and is an outage like a refused connection.
                raise JobFatalError(
                    f"{url}: the server's TLS certificate was refused ({exc.verify_message}); "
                    "it must be signed by an authority this machine trusts (SSL_CERT_FILE names "
                    "another bundle)") from None
            except OSError as exc:
                raise Unavailable(f"{type(exc).__name__} talking to {url}: {exc}") from None
            results.append(self._result(request, status, raw, headers, url))
        if self._incomplete:
            return await self._complete(requests, results)
        return results

    async def _check_before_sending(self) -> None:
        """What must hold before the job's first request is sent (nothing by default)."""
        self._check_pending = False

    async def _complete(self, requests: Sequence[GenerationRequest],
                        results: list[GenerationResult]) -> list[GenerationResult]:
        """Complete ``results`` the server answered short (as they are by default)."""
        return results

    def auth_refused(self, status: int, url: str, message: str) -> GenerationError:
        """A 401/403: the job stops, and the message says where the key came from and how
        to give one (a server that wants a key from a job that sent none included)."""
        if self._api_key is None and not self.api_key():
            source = self.key_env_name()
            how = (f"set {source} in the environment or .env" if source else
                   "this job sent no key: name the variable that holds it with "
                   "api_key_env=NAME in the model identifier")
            return JobFatalError(f"HTTP {status} from {url}: {message}: {how}")
        return JobFatalError(f"HTTP {status} from {url}: {message}: check the key in "
                             f"{self.key_source()}")
