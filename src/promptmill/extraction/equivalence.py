"""Whether two math answers are equal: plain numbers exactly and at once, the rest with
math-verify, bounded in time in any thread (a comparison that hangs in sympy costs a killed
worker process, not a hung grade)."""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from functools import lru_cache
from typing import IO, Any

from promptmill.extraction.mathnorm import exact_number

DEFAULT_TIMEOUT = 5
"""Seconds math-verify may spend on one parse or one comparison."""


def _as_latex(answer: str) -> str:
    """An answer wrapped so math-verify reads the whole of it as one LaTeX expression."""
    balanced = answer.count("{") == answer.count("}")
    return f"\\boxed{{{answer}}}" if balanced else f"${answer}$"


@lru_cache(maxsize=4096)
def _parsed(answer: str, timeout: int | None) -> list[Any]:
    """math-verify's parse of one answer (cached: gold answers are parsed once per row)."""
    from math_verify import parse

    return list(parse(_as_latex(answer), parsing_timeout=timeout))


@contextmanager
def _outer_alarm_kept() -> Iterator[None]:
    """Re-arm a caller's SIGALRM timer (pytest-timeout, say) that math-verify's alarm cancels."""
    if not hasattr(signal, "setitimer"):
        yield  # no interval timers here, so none to keep
        return
    remaining, interval = signal.getitimer(signal.ITIMER_REAL)
    started = time.monotonic()
    try:
        yield
    finally:
        if remaining > 0:
            left = remaining - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001), interval)


def _drop_timeout_warning(record: logging.LogRecord) -> bool:
    """False for math-verify's timeout warnings, which quote the whole (maybe huge) input."""
    return not str(record.msg).startswith("Timeout during")


def _verify_here(pred: str, gold: str, timeout: int | None) -> bool:
    """math-verify on this thread, with its own SIGALRM timeouts (main thread only)."""
    from math_verify import verify
    from math_verify.errors import TimeoutException

    # a timeout is graded as a wrong answer; the warning would only flood stderr
    for name in ("math_verify.parser", "math_verify.grader"):
        logger = logging.getLogger(name)
        if _drop_timeout_warning not in logger.filters:
            logger.addFilter(_drop_timeout_warning)

    with _outer_alarm_kept():
        try:
            gold_parsed = _parsed(gold, timeout)
            pred_parsed = _parsed(pred, timeout)
            if not gold_parsed or not pred_parsed:
                return False
            return bool(verify(gold_parsed, pred_parsed, timeout_seconds=timeout))
        except (Exception, TimeoutException):
            return False  # pathological input is a wrong answer, never a crash


_SERVE = "from promptmill.extraction.equivalence import _serve_verify; _serve_verify()"


class _VerifyWorker:
    """A child Python that runs math-verify in its own main thread, where its alarms work.

    math-verify's timeouts use ``signal.alarm``, which only the main thread may set; off it,
    parse and verify raise. So other threads send their comparisons here, and a comparison
    that outlives its deadline (sympy stuck in C) costs a killed child, not a hung grade.
    """

    __slots__ = ("_code", "_lock", "_process", "_slack", "_warned")

    def __init__(self, code: str = _SERVE, slack: float = 5.0) -> None:
        self._code = code  # what the child runs: _serve_verify, or a fake in tests
        self._slack = slack  # seconds allowed beyond the child's own timeouts
        self._lock = threading.Lock()  # one comparison in flight: the pipe is a single channel
        self._process: subprocess.Popen[str] | None = None  # started on first use
        self._warned = False  # whether the "no child, no timeout" warning was given
        atexit.register(self.close)

    def verify(self, pred: str, gold: str, timeout: int) -> bool:
        """Whether pred matches gold; False when the child fails or overruns."""
        with self._lock:
            process = self._process or self._start()
            if process is None:
                return self._verify_unbounded(pred, gold)
            try:
                assert process.stdin is not None
                process.stdin.write(json.dumps([pred, gold, timeout]) + "\n")
                process.stdin.flush()
            except OSError:
                self.close(kill=True)
                return False
            reply = self._read_line(process, 3 * timeout + self._slack)  # 2 parses, 1 verify
            if reply is None:
                self.close(kill=True)  # overran or died: the next comparison gets a new child
            return reply == "1"

    def _start(self) -> subprocess.Popen[str] | None:
        """Start the child and wait until math-verify is imported there."""
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", self._code],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,  # math-verify logs every timeout
                text=True,
                env=env,
            )
        except OSError:
            return None
        self._process = process
        if self._read_line(process, 60 + self._slack) != "ready":
            self.close(kill=True)
            return None
        return process

    def _verify_unbounded(self, pred: str, gold: str) -> bool:
        """math-verify here without timeouts: the last resort where no child can start."""
        if not self._warned:
            self._warned = True
            warnings.warn(
                "promptmill.grading: cannot start a math-verify worker process; comparing "
                "off the main thread without a timeout",
                RuntimeWarning,
                stacklevel=3,
            )
        return _verify_here(pred, gold, None)

    @staticmethod
    def _read_line(process: subprocess.Popen[str], seconds: float) -> str | None:
        """One reply line from the child, or None if none comes within ``seconds``."""
        stdout: IO[str] | None = process.stdout
        if stdout is None:
            return None
        ready, _, _ = select.select([stdout], [], [], seconds)
        line = stdout.readline() if ready else ""
        return line.strip() if line else None

    def close(self, *, kill: bool = False) -> None:
        """Stop the child, if running: politely, or at once if it may be stuck."""
        process, self._process = self._process, None
        if process is None:
            return
        if kill:
            process.kill()
        elif process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()  # the child's loop ends at end of input
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):  # unsent input to a dead child
                    stream.close()


def _serve_verify() -> None:
    """The worker child's loop: one JSON request per stdin line, one 1/0 per stdout line."""
    import math_verify  # noqa: F401  # import before saying ready, so the parent's deadline is fair

    print("ready", flush=True)
    for line in sys.stdin:
        try:
            pred, gold, timeout = json.loads(line)
            same = _verify_here(str(pred), str(gold), int(timeout))
        except Exception:
            same = False
        print("1" if same else "0", flush=True)


_WORKER = _VerifyWorker()


def math_equal(pred: str, gold: str, *, timeout: int = DEFAULT_TIMEOUT) -> bool:
    """Whether two normalised answers are equal: plain numbers exactly, here; anything else
    by math-verify, bounded in time in any thread."""
    if not pred or not gold:
        return False
    if pred == gold:
        return True
    quick = _numbers_equal(pred, gold)
    if quick is not None:
        return quick
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGALRM"):
        return _verify_here(pred, gold, timeout)
    if os.name != "posix":
        return _verify_here(pred, gold, timeout)  # math-verify times out with processes there
    return _WORKER.verify(pred, gold, timeout)


def _readings(answer: str) -> set[Fraction] | None:
    """The values a plain number may stand for ("25%": 25 or 0.25, as math-verify reads it)."""
    if answer.endswith("%"):
        value = exact_number(answer[:-1])
        return None if value is None else {value, value / 100}
    value = exact_number(answer)
    return None if value is None else {value}


def _numbers_equal(pred: str, gold: str) -> bool | None:
    """Equal or not, for two plain numbers; None where math-verify must judge (anything
    else, and long decimals, which it compares rounded)."""
    left, right = _readings(pred), _readings(gold)
    if left is None or right is None:
        return None
    if left & right:
        return True
    if _LONG_DECIMAL.search(pred) or _LONG_DECIMAL.search(gold):
        return None
    return False


_LONG_DECIMAL = re.compile(r"\.\d{5,}")


__all__ = ["DEFAULT_TIMEOUT", "math_equal"]
