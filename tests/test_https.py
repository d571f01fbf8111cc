"""HTTPS, with aiohttp imported through ``promptmill.aiohttp_``: its TLS contexts read the
system's certificate authorities when first used, not when aiohttp is imported.

Every client runs in a fresh interpreter (this one imported aiohttp already, for the test
server), with ``SSL_CERT_FILE`` naming a certificate authority of the test's own (trustme):
the system default OpenSSL reads. The test server serves HTTPS with a certificate it issued,
or one from another authority, which must be refused as before.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from promptmill.testing import TestServer, serve_in_thread

ROWS = 20


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, path


def https_server(ca: trustme.CA) -> Any:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return serve_in_thread(ssl_context=context)


@pytest.fixture(scope="module")
def trusted(authority: tuple[trustme.CA, Path]) -> Iterator[TestServer]:
    with https_server(authority[0]) as server:
        yield server


@pytest.fixture(scope="module")
def untrusted() -> Iterator[TestServer]:
    with https_server(trustme.CA()) as server:  # an authority SSL_CERT_FILE does not name
        yield server


def authority_only(ca_file: Path) -> dict[str, str]:
    """This environment with ``ca_file`` as the one certificate file OpenSSL reads."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SSL_CERT")}
    environ["SSL_CERT_FILE"] = str(ca_file)
    return environ


def promptmill_run(promptmill_cli: Callable[..., Any], server: TestServer, tmp_path: Path,
                   ca_file: Path, *options: str) -> subprocess.CompletedProcess[str]:
    source = tmp_path / "questions.jsonl"
    source.write_text("".join(json.dumps({"id": i, "prompt": f"What is {i} + {i}?"}) + "\n"
                              for i in range(ROWS)))
    done: subprocess.CompletedProcess[str] = promptmill_cli(
        "run", source, "-m", f"http!test-model,api_base={server.url}", "-o",
        tmp_path / "out.jsonl", "--param", "max_tokens=32", *options,
        env={"SSL_CERT_FILE": str(ca_file)})
    return done


def test_a_job_over_https_verifies_and_answers_every_row(
        trusted: TestServer, authority: tuple[trustme.CA, Path], tmp_path: Path,
        promptmill_cli: Callable[..., Any]) -> None:
    trusted.stats.reset()
    done = promptmill_run(promptmill_cli, trusted, tmp_path, authority[1])
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [row["status"] for row in rows] == ["done"] * ROWS
    assert all(f"What is {row['id']} + {row['id']}?" in row["responses"][0]["text"]
               for row in rows)
    assert trusted.stats.total_completed == ROWS


def test_a_job_refuses_a_certificate_no_trusted_authority_signed(
        untrusted: TestServer, authority: tuple[trustme.CA, Path], tmp_path: Path,
        promptmill_cli: Callable[..., Any]) -> None:
    untrusted.stats.reset()
    refused = promptmill_run(promptmill_cli, untrusted, tmp_path, authority[1],
                             "--max-attempts", "1")
    assert refused.returncode != 0
    assert "certificate" in refused.stderr.lower(), refused.stderr
    assert untrusted.stats.total_completed == 0  # no request got through


CLIENT = textwrap.dedent("""
    import asyncio, json, sys
    import promptmill.batch_api  # imports aiohttp through promptmill.aiohttp_
    import aiohttp, aiohttp.connector

    verified = aiohttp.connector._SSL_CONTEXT_VERIFIED
    report = {"read_at_import": verified.cert_store_stats()["x509_ca"] > 0
              if type(verified).__name__ == "SSLContext" else False}

    async def get(url):
        async with aiohttp.ClientSession() as session:
            try:
                async with session.get(url + "/models") as response:
                    return response.status
            except aiohttp.ClientConnectorCertificateError:
                return "certificate refused"

    def run(main):
        if sys.argv[1] == "uvloop":
            import uvloop
            return uvloop.run(main)
        return asyncio.run(main)

    report["trusted"] = run(get(sys.argv[2]))
    report["untrusted"] = run(get(sys.argv[3]))
    report["authorities_read"] = verified.cert_store_stats()["x509_ca"]
    print(json.dumps(report))
""")


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_certificates_are_read_before_the_first_handshake_not_at_import(
        loop: str, trusted: TestServer, untrusted: TestServer,
        authority: tuple[trustme.CA, Path]) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop")  # a plain dependency where it installs (not Windows)
    done = subprocess.run([sys.executable, "-c", CLIENT, loop, trusted.url, untrusted.url],
                          capture_output=True, text=True, timeout=120,
                          env=authority_only(authority[1]))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report == {"read_at_import": False, "trusted": 200,
                      "untrusted": "certificate refused", "authorities_read": 1}
