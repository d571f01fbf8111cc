"""The HTTP/1.1 client of the API backends: keep-alive connections, one request at a time each.

aiohttp's ``ClientSession`` spends about 150 µs of the client's CPU on each request (request
and response objects, its connector, tracing and cookie hooks, timers); where a fast local
server answers in no time that CPU decides the job's rate. The API backends only ever POST a
JSON body to one server and read a JSON answer, so this client does that much and no more:
an ``asyncio.Protocol`` per connection, the head of each request made once per URL, the
answer parsed by ``httptools`` (llhttp, the parser of Node.js), about 40 µs a request.

What it does, as aiohttp did for the backends: keep-alive connections in a pool per server
(as many as there are requests in flight), TLS verified against the system's certificate
authorities (``SSL_CERT_FILE`` names another bundle), chunked and gzip/deflate-encoded
answers, a timeout for the whole exchange and one for connecting. What it does not: proxies
(the session never read them: ``trust_env`` was off), redirects (an API that redirects a POST
is misconfigured; the answer is returned as it is), cookies, HTTP/2.

Failures are ``OSError``s the backends classify: ``asyncio.TimeoutError``,
``ssl.SSLCertVerificationError`` (the certificate refused), ``ServerDisconnected`` (the
connection closed before a whole answer arrived), ``MalformedHTTP`` and the socket's own.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import urlsplit

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

__all__ = ["HTTPClient", "HTTPResponse", "MalformedHTTP", "ServerDisconnected"]

_CONTROL = {chr(code) for code in range(32)} - {"\t"} | {"\x7f"}


class ServerDisconnected(ConnectionError):
    """The connection closed before the whole answer arrived."""


class MalformedHTTP(ConnectionError):
    """The server's bytes were not an HTTP/1.1 answer."""


class HTTPResponse(NamedTuple):
    """One answer: its status, its body (decoded if it was gzip- or deflate-encoded), its
    headers (names in any case)."""

    status: int
    body: bytes
    headers: CIMultiDictProxy[str]


class _Connection(asyncio.Protocol):
    """One keep-alive connection: a request written, its answer parsed as it arrives."""

    __slots__ = ("_body", "_headers", "_in_body", "_parser", "_transport", "_waiter", "closed",
                 "keep_alive")

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[HTTPResponse] | None = None  # the answer awaited
        self._body: list[bytes] = []  # its body's parts so far
        self._headers: list[tuple[bytes, bytes]] = []  # its header lines so far
        self._in_body = False  # its headers have all arrived
        self.closed = False  # by either side: never used again
        self.keep_alive = True  # the last answer let the connection be used again

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # bytes nobody asked for: the connection is not to be trusted
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.fail(MalformedHTTP("the server switched protocols"))
        except httptools.HttpParserError as exc:
            self.fail(MalformedHTTP(f"the server's answer is not valid HTTP/1.1 ({exc})"))

    def eof_received(self) -> bool:
        self.closed = True  # the server is done with it (its connection_lost comes later)
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._reads_until_close():
            self.on_message_complete()  # an answer without a length ends with its connection
            return
        reason = f": {exc}" if exc else ""
        self._waiter = None
        waiter.set_exception(ServerDisconnected(
            f"the server closed the connection before answering in full{reason}"))

    # httptools' callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_body = True

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        waiter = self._waiter
        self._waiter = None
        self._in_body = False
        if waiter is None or waiter.done():
            return
        status = self._parser.get_status_code()
        if status < 200:  # 100 Continue and the like: the answer is still to come
            self._waiter = waiter
            self._headers = []
            self._body = []
            return
        self.keep_alive = self._parser.should_keep_alive()
        headers = CIMultiDict([(name.decode("latin-1"), value.decode("latin-1"))
                               for name, value in self._headers])
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self._headers = []
        self._body = []
        encoding = headers.get("Content-Encoding")
        if encoding is not None and body:
            try:
                body = _decoded(body, encoding.strip().lower())
            except (zlib.error, ValueError) as exc:
                waiter.set_exception(MalformedHTTP(f"the answer's body is not valid {encoding} "
                                                   f"({exc})"))
                self.close()
                return
        waiter.set_result(HTTPResponse(status, body, CIMultiDictProxy(headers)))

    # the client's side

    def send(self, data: bytes) -> asyncio.Future[HTTPResponse]:
        """Write one request; the future is its answer."""
        self._waiter = waiter = asyncio.get_running_loop().create_future()
        if not self.usable():  # closed since it was made or last used: asyncio's transport
            # would drop the bytes (the answer never coming), uvloop's refuse them
            self.fail(ServerDisconnected("the server closed the connection before the request "
                                         "was sent"))
        else:
            self._transport.write(data)  # type: ignore[union-attr]  # usable: it has one
        return waiter

    def usable(self) -> bool:
        """Whether a request may be written: neither side has closed or begun closing it."""
        transport = self._transport
        return not self.closed and transport is not None and not transport.is_closing()

    def time_out(self, limit: float) -> None:
        """The exchange took ``limit`` seconds: give up on it."""
        self.fail(asyncio.TimeoutError(f"no answer within {limit:g}s"))

    def close(self) -> None:
        """Close the connection (its awaited answer, if any, fails as the socket closes)."""
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    def fail(self, exc: BaseException) -> None:
        """Give up on the answer awaited, if any (with ``exc``): the connection goes."""
        waiter = self._waiter
        self._waiter = None
        self.closed = True
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if self._transport is not None:
            self._transport.abort()

    def _reads_until_close(self) -> bool:
        """Whether the answer begun is one whose body runs to the connection's end."""
        if not self._in_body:
            return False
        names = {name.lower() for name, _ in self._headers}
        return b"content-length" not in names and b"transfer-encoding" not in names


def _decoded(body: bytes, encoding: str) -> bytes:
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompress(body, 16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        try:
            return zlib.decompress(body)
        except zlib.error:  # raw deflate, as some servers send it
            return zlib.decompress(body, -zlib.MAX_WBITS)
    if encoding == "identity":
        return body
    raise ValueError(f"promptmill asked for gzip or deflate, not {encoding}")


class _Server(NamedTuple):
    scheme: str
    host: str
    port: int


class HTTPClient:
    """Keep-alive HTTP/1.1 connections, as many as requests in flight, to the servers asked.

    ``headers`` go with every request (``Host``, ``Content-Length``, ``User-Agent``,
    ``Accept`` and ``Accept-Encoding`` are the client's own); ``timeout`` bounds a whole
    exchange, connecting included, ``connect_timeout`` the connecting.
    """

    def __init__(self, headers: Mapping[str, str], timeout: float,
                 connect_timeout: float | None = None) -> None:
        for name, value in headers.items():
            if set(name) & _CONTROL or set(value) & _CONTROL or not name or ":" in name:
                # Never the value: it may be a key.
                raise ValueError(f"the HTTP header {name!r} holds a line break or another "
                                 "control character; remove it (a key copied with its newline?)")
        self._extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items()
                              if name.lower() not in ("host", "content-length"))
        self.timeout = timeout
        self.connect_timeout = min(timeout, connect_timeout or timeout)
        self._idle: dict[_Server, list[_Connection]] = {}  # connections free to take, per server
        self._busy: set[_Connection] = set()  # connections awaiting an answer
        self._heads: dict[tuple[str, str], tuple[_Server, bytes]] = {}  # per method and URL
        self._ssl: ssl.SSLContext | None = None  # made at the first https connection
        self._closed = False

    async def request(self, method: str, url: str, body: bytes = b"",
                      timeout: float | None = None) -> HTTPResponse:
        """Send one request and read its whole answer."""
        prepared = self._heads.get((method, url))
        if prepared is None:
            prepared = self._prepare(method, url)
        server, head = prepared
        loop = asyncio.get_running_loop()
        limit = self.timeout if timeout is None else timeout
        deadline = loop.time() + limit
        connection = self._take(server)
        if connection is None:
            connection = await self._connect(server, deadline)
        self._busy.add(connection)
        answer = connection.send(b"%s%d\r\n\r\n%s" % (head, len(body), body))
        timer = loop.call_at(deadline, connection.time_out, limit)
        try:
            response = await answer
        except BaseException:  # cancelled, timed out, cut off: the connection goes
            connection.fail(ServerDisconnected("the request was given up"))
            raise
        finally:
            timer.cancel()
            self._busy.discard(connection)
        if connection.keep_alive and connection.usable() and not self._closed:
            self._idle[server].append(connection)
        else:
            connection.close()
        return response

    async def close(self) -> None:
        """Close every connection; requests still in flight fail."""
        self._closed = True
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()
        for connection in list(self._busy):
            connection.fail(ServerDisconnected("the client was closed"))
        self._busy.clear()

    def _prepare(self, method: str, url: str) -> tuple[_Server, bytes]:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http:// or https:// URL")
        port = parts.port or (443 if scheme == "https" else 80)
        server = _Server(scheme, parts.hostname, port)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        if parts.port is not None:
            host += f":{parts.port}"
        head = (f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n"
                "User-Agent: promptmill\r\nAccept: */*\r\n"
                f"Accept-Encoding: gzip, deflate\r\n{self._extra}Content-Length: ")
        prepared = (server, head.encode("utf-8"))
        if len(self._heads) >= 64:
            self._heads.clear()
        self._heads[(method, url)] = prepared
        self._idle.setdefault(server, [])
        return prepared

    def _take(self, server: _Server) -> _Connection | None:
        idle = self._idle.get(server)  # none after close()
        while idle:
            connection = idle.pop()
            if connection.usable():
                return connection
            connection.close()
        return None

    async def _connect(self, server: _Server, deadline: float) -> _Connection:
        if self._closed:
            raise ServerDisconnected("the client was closed")
        loop = asyncio.get_running_loop()
        context = None
        if server.scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        wait = min(self.connect_timeout, max(0.0, deadline - loop.time()))
        try:
            _, connection = await asyncio.wait_for(loop.create_connection(
                _Connection, server.host, server.port, ssl=context,
                server_hostname=server.host if context else None), wait)
        except asyncio.TimeoutError:
            raise asyncio.TimeoutError(f"could not connect within {wait:g}s") from None
        return connection

