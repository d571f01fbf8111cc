"""The API backends' HTTP/1.1 client against real sockets on loopback.

A scripted server (``asyncio.start_server``) answers each request it reads with the bytes a
test gives, so every way a server can answer (chunked, compressed, without a length, cut off,
late, not HTTP at all) is met on a real connection; the job-level paths (limits, faults,
TLS) are the robustness suites' and ``test_https.py``'s, against the test server.
"""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from promptmill.httpclient import HTTPClient, MalformedHTTP, ServerDisconnected, _Connection

Answer = Callable[[bytes], "bytes | None"]  # a request's bytes -> the reply (None: close)


class Closing(bytes):
    """A reply after which the server closes the connection."""


def reply(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    lines = [f"HTTP/1.1 {status}", *headers]
    if not any(h.lower().startswith(("content-length", "transfer-encoding")) for h in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class ScriptedServer:
    """Answers the n-th request with ``answers[n]`` (the last one again after the end)."""

    answers: list[Answer]
    url: str = ""
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    delay: float = 0.0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                answer = self.answers[min(len(self.requests), len(self.answers)) - 1](request)
                if self.delay:
                    await asyncio.sleep(self.delay)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if isinstance(answer, Closing):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., ScriptedServer]]:
    servers: list[asyncio.Server] = []

    async def start(*answers: Answer) -> ScriptedServer:
        scripted = ScriptedServer(list(answers))
        server = await asyncio.start_server(scripted.handle, "127.0.0.1", 0)
        servers.append(server)
        scripted.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/chat"
        return scripted

    yield start  # type: ignore[misc]
    for server in servers:
        server.close()


def echo(request: bytes) -> bytes:
    """The request's body as the answer's."""
    return reply(request.split(b"\r\n\r\n", 1)[1], "Content-Type: application/json")


async def test_requests_share_one_connection_and_carry_length_host_and_headers(serve) -> None:
    server = await serve(echo)
    client = HTTPClient({"Authorization": "Bearer k", "Content-Type": "application/json"}, 5)
    for index in range(5):
        status, body, headers = await client.request("POST", server.url, b'{"n": %d}' % index)
        assert (status, body) == (200, b'{"n": %d}' % index)
        assert headers["content-type"] == headers["Content-Type"] == "application/json"
    await client.close()
    assert server.connections == 1
    head = server.requests[0].split(b"\r\n\r\n")[0].split(b"\r\n")
    assert head[0] == b"POST /v1/chat HTTP/1.1"
    host = server.url.split("/")[2].encode()
    assert {b"Host: " + host, b"Authorization: Bearer k", b"Content-Length: 8"} <= set(head)


async def test_requests_in_flight_together_each_get_their_own_answer(serve) -> None:
    server = await serve(echo)
    server.delay = 0.01
    client = HTTPClient({}, 5)
    answers = await asyncio.gather(*(client.request("POST", server.url, b"%d" % index)
                                     for index in range(20)))
    assert [answer.body for answer in answers] == [b"%d" % index for index in range(20)]
    assert server.connections == 20  # one each, in flight together
    await asyncio.gather(*(client.request("POST", server.url, b"x") for _ in range(20)))
    assert server.connections == 20  # and kept for the next wave
    await client.close()


@pytest.mark.parametrize("encoded, encoding", [
    (gzip.compress(b'{"ok": true}'), "gzip"),
    (zlib.compress(b'{"ok": true}'), "deflate"),
    (zlib.compress(b'{"ok": true}')[2:-4], "deflate"),  # raw deflate, as some servers send
])
async def test_compressed_answers_are_decoded(serve, encoded: bytes, encoding: str) -> None:
    server = await serve(lambda _: reply(encoded, f"Content-Encoding: {encoding}"))
    client = HTTPClient({}, 5)
    assert (await client.request("POST", server.url, b"{}")).body == b'{"ok": true}'
    assert b"Accept-Encoding: gzip, deflate" in server.requests[0]
    await client.close()


async def test_a_chunked_answer_is_joined_and_the_connection_kept(serve) -> None:
    chunked = reply(b"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n", "Transfer-Encoding: chunked")
    server = await serve(lambda _: chunked)
    client = HTTPClient({}, 5)
    for _ in range(2):
        assert (await client.request("POST", server.url)).body == b"hello, world"
    assert server.connections == 1
    await client.close()


async def test_an_answer_without_a_length_ends_with_its_connection(serve) -> None:
    server = await serve(lambda _: Closing(b"HTTP/1.1 200 OK\r\n\r\nuntil the end"))
    client = HTTPClient({}, 5)
    assert (await client.request("POST", server.url)).body == b"until the end"
    server.answers = [echo]  # the next request must take a new connection
    assert (await client.request("POST", server.url, b"again")).body == b"again"
    assert server.connections == 2
    await client.close()


async def test_connection_close_is_honoured(serve) -> None:
    server = await serve(lambda _: Closing(reply(b"once", "Connection: close")))
    client = HTTPClient({}, 5)
    for _ in range(3):
        assert (await client.request("POST", server.url)).body == b"once"
    assert server.connections == 3
    await client.close()


async def test_an_interim_answer_is_skipped(serve) -> None:
    server = await serve(lambda _: b"HTTP/1.1 100 Continue\r\n\r\n" + reply(b"final"))
    client = HTTPClient({}, 5)
    status, body, headers = await client.request("POST", server.url)
    assert (status, body, dict(headers)) == (200, b"final", {"Content-Length": "5"})
    await client.close()


@pytest.mark.parametrize("answer", [
    lambda _: None,  # closed without a word
    lambda _: Closing(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"cut"),  # then closed
    lambda _: Closing(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"),
])
async def test_an_answer_cut_off_fails_as_disconnected_and_the_next_one_succeeds(
        serve, answer: Answer) -> None:
    server = await serve(answer, echo)
    client = HTTPClient({}, 5)
    with pytest.raises(ServerDisconnected, match="before answering in full"):
        await client.request("POST", server.url, b"first")
    assert (await client.request("POST", server.url, b"second")).body == b"second"
    await client.close()


async def test_bytes_that_are_not_http_fail_as_malformed(serve) -> None:
    server = await serve(lambda _: b"SSH-2.0-OpenSSH_9.6\r\n\r\n", echo)
    client = HTTPClient({}, 5)
    with pytest.raises(MalformedHTTP, match="not valid HTTP"):
        await client.request("POST", server.url, b"first")
    assert (await client.request("POST", server.url, b"second")).body == b"second"
    await client.close()


async def test_a_late_answer_times_out_and_never_answers_a_later_request(serve) -> None:
    server = await serve(lambda _: reply(b"late"), echo)
    server.delay = 0.5
    client = HTTPClient({}, 0.1)
    with pytest.raises(asyncio.TimeoutError, match="within 0.1s"):
        await client.request("POST", server.url, b"first")
    server.delay = 0
    assert (await client.request("POST", server.url, b"second")).body == b"second"
    assert server.connections == 2  # the late one's connection was dropped
    await client.close()


async def test_a_cancelled_request_drops_its_connection(serve) -> None:
    server = await serve(lambda _: reply(b"for the cancelled one"), echo)
    server.delay = 0.3
    client = HTTPClient({}, 5)
    task = asyncio.ensure_future(client.request("POST", server.url, b"first"))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    server.delay = 0
    assert (await client.request("POST", server.url, b"second")).body == b"second"
    await client.close()


async def test_a_refused_connection_is_an_os_error() -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    client = HTTPClient({}, 5)
    with pytest.raises(OSError):
        await client.request("POST", f"http://127.0.0.1:{port}/v1")
    await client.close()


@pytest.mark.parametrize("name, value", [("Authorization", "Bearer sk-secret\n"),
                                         ("X-Key", "sk-secret\r\nX-Other: 1"),
                                         ("Bad\nName", "v")])
def test_a_header_with_a_line_break_is_refused_without_its_value(name: str, value: str) -> None:
    with pytest.raises(ValueError, match="line break") as refused:
        HTTPClient({name: value}, 5)
    assert "sk-secret" not in str(refused.value)


def test_a_url_that_is_not_http_is_refused() -> None:
    async def send() -> None:
        await HTTPClient({}, 5).request("POST", "ftp://example.com/v1")
    with pytest.raises(ValueError, match="not an http"):
        asyncio.run(send())


async def test_a_closed_client_sends_nothing_more(serve) -> None:
    server = await serve(echo)
    client = HTTPClient({}, 5)
    assert (await client.request("POST", server.url, b"one")).body == b"one"
    await client.close()
    with pytest.raises(ServerDisconnected, match="closed"):
        await client.request("POST", server.url, b"two")
    assert len(server.requests) == 1



async def test_a_connection_closed_before_its_request_is_written_fails_as_disconnected(
        serve, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that closes a connection as it is made (one restarting, one at its limit):
    the close is seen before the request is written. The request fails at once as
    disconnected, which the engine retries: not with uvloop's error for a closed transport
    (that failed the job), nor by waiting out the timeout for an answer to bytes asyncio's
    transport dropped. The next connection is used as usual."""
    server = await serve(echo)
    made = _Connection.connection_made

    def made_then_closed(connection: _Connection, transport: asyncio.BaseTransport) -> None:
        made(connection, transport)
        transport.close()

    monkeypatch.setattr(_Connection, "connection_made", made_then_closed)
    client = HTTPClient({}, 2)
    with pytest.raises(ServerDisconnected, match="before the request was sent"):
        await client.request("POST", server.url, b"one")
    monkeypatch.undo()
    assert (await client.request("POST", server.url, b"two")).body == b"two"
    assert [request.split(b"\r\n\r\n")[1] for request in server.requests] == [b"two"]
    await client.close()
