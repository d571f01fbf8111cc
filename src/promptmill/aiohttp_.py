"""aiohttp, imported so that its TLS contexts read the system's certificates when first used.

Importing aiohttp builds two SSL contexts (``aiohttp.connector``), and each reads and parses
every certificate authority the system has (``SSLContext.set_default_verify_paths``): about
27 ms each, a quarter of aiohttp's import, paid by every process, also one that only ever
speaks plain HTTP to a local server (vLLM, llama.cpp's server, ``promptmill serve``, the test
server). Imported through this module, a context made while aiohttp is imported reads them
right before it first wraps a connection instead: the same certificates, read before the first
handshake, so verification is as it was; a process that opens no TLS connection never reads
them. Where aiohttp was imported already (by the user's code, by the test server), or where
another package replaced the standard ``ssl.SSLContext``, it is imported as it is.
"""

from __future__ import annotations

import ssl
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["aiohttp"]

_read_verify_paths = ssl.SSLContext.set_default_verify_paths  # the C method contexts inherit
_reading = threading.Lock()


class _ReadsCertificatesWhenUsed(ssl.SSLContext):
    """An SSL context whose default certificate authorities are read when it is first used.

    A context becomes one while aiohttp is imported (its class is swapped in place), and a
    plain ``ssl.SSLContext`` again once it has read them.
    """

    def _read(self) -> None:
        with _reading:
            if type(self) is _ReadsCertificatesWhenUsed:
                _read_verify_paths(self)
                self.__class__ = ssl.SSLContext  # type: ignore[assignment]

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:  # asyncio's and uvloop's
        self._read()
        return ssl.SSLContext.wrap_bio(self, *args, **kwargs)

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        self._read()
        return ssl.SSLContext.wrap_socket(self, *args, **kwargs)

    def get_ca_certs(self, binary_form: bool = False) -> Any:
        self._read()
        return ssl.SSLContext.get_ca_certs(self, binary_form)

    def cert_store_stats(self) -> dict[str, int]:
        self._read()
        return ssl.SSLContext.cert_store_stats(self)


def _defer(context: ssl.SSLContext) -> None:
    """``set_default_verify_paths`` while aiohttp is imported: read on first use instead."""
    if type(context) is ssl.SSLContext:
        context.__class__ = _ReadsCertificatesWhenUsed  # type: ignore[assignment]
    else:  # a subclass of someone else's: read now, as it always was
        _read_verify_paths(context)


@contextmanager
def _certificates_read_when_used() -> Iterator[None]:
    ssl.SSLContext.set_default_verify_paths = _defer  # type: ignore[method-assign, assignment]
    try:
        yield
    finally:
        del ssl.SSLContext.set_default_verify_paths  # the inherited C method again


# Only over the standard library's own context class: one replaced or patched by another
# package (truststore's injection, for one) is left as it is.
if "aiohttp" in sys.modules or ssl.SSLContext.__module__ != "ssl" or (
        "set_default_verify_paths" in vars(ssl.SSLContext)):
    import aiohttp
else:
    with _certificates_read_when_used():
        import aiohttp
