"""A real headless Chromium for tests and benchmarks of promptmill's pages (report, view).

Debian's ``chromium`` package, driven by Playwright's Python package (its own browser
download cannot be used offline). The flags keep Chromium from reaching for the network on
its own (component updates, sync, safe browsing lists): on a closed network those
connections are refused and slow everything down. Each launch has a fresh profile.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

__all__ = ["CHROMIUM_ARGS", "chromium_path", "launch_chromium"]

CHROMIUM_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions",
)
_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def chromium_path() -> str | None:
    """The Chromium executable: ``PROMPTMILL_CHROMIUM``, else Debian's (None: not installed)."""
    given = os.environ.get("PROMPTMILL_CHROMIUM")
    if given:
        return given
    for candidate in _CANDIDATES:
        if os.path.exists(candidate):
            return candidate
    return shutil.which("chromium")


@contextlib.contextmanager
def launch_chromium(**context_options: Any) -> Iterator[Any]:
    """A Playwright browser context in a fresh headless Chromium; closed afterwards.

    Raises ``RuntimeError`` naming what to install when Playwright or Chromium is missing.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise RuntimeError("Playwright is not installed: pip install playwright") from None
    executable = chromium_path()
    if executable is None:
        raise RuntimeError("Chromium is not installed: apt-get install chromium "
                           "(or set PROMPTMILL_CHROMIUM to its path)")
    with tempfile.TemporaryDirectory(prefix="promptmill-chromium-") as profile, \
            sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=executable, headless=True, args=list(CHROMIUM_ARGS),
            **context_options)
        try:
            yield context
        finally:
            context.close()
