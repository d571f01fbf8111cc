"""Multi-row INSERTs: many rows a statement, where executemany binds, steps and resets each.

Used for the planned rows and requests, the attempt records, the id check's keys and the
response cache's entries.
"""

from __future__ import annotations

import functools
import itertools
import sqlite3
from collections.abc import Sequence
from typing import Any

# Rows a statement, largest first; within the variables a statement may have (999 before
# SQLite 3.32, 32766 since).
ROWS_PER_INSERT = (256, 64, 16, 4, 1)
_MAX_VARIABLES = 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999


def values_sql(width: int) -> tuple[str, tuple[int, ...]]:
    """A plain ``(?, ?, ...)`` row of ``width`` values, for ``insert_many``."""
    return "(" + ", ".join(["?{}"] * width) + ")", tuple(range(width))


def insert_many(db: sqlite3.Connection, head: str, row_sql: tuple[str, tuple[int, ...]],
                 rows: Sequence[Sequence[Any]],
                 sizes: Sequence[int] = ROWS_PER_INSERT) -> None:
    """Insert ``rows``, many a statement: executemany's bind, step and reset per row cost
    more than the insert (8.0k instructions an attempt record, 4.9k 64 at a time; a planned
    row and its request 2.3 us, 1.1 us 256 at a time). ``row_sql`` is one row's values as a
    format string and which of the row's values fills each ``{}``; ``sizes``: the rows a
    statement, largest first, ending with 1."""
    if not rows:
        return
    width = len(rows[0])
    flat = list(itertools.chain.from_iterable(rows))
    total, done = len(rows), 0
    for size in sizes:  # a few statement shapes, each prepared once
        if total - done < size or size * width > _MAX_VARIABLES:
            continue
        sql = _insert_sql(head, row_sql, width, size)
        while total - done >= size:
            db.execute(sql, flat[width * done:width * (done + size)])
            done += size


@functools.lru_cache(maxsize=32)
def _insert_sql(head: str, row_sql: tuple[str, tuple[int, ...]], width: int, rows: int) -> str:
    """``head`` and ``rows`` rows of ``row_sql``, each row's values numbered after the last's."""
    text, slots = row_sql
    if row_sql == values_sql(width):
        # Plain values in order: unnumbered ``?``, which bind by position. (The sqlite3
        # module asks each parameter's name as it binds it; for ``?NNN`` SQLite finds the
        # name in a list: 0.7k instructions a row of 8 values, 256 rows a statement.)
        return head + ",".join([text.replace("{}", "")] * rows)
    return head + ",".join(text.format(*(width * i + slot + 1 for slot in slots))
                           for i in range(rows))


__all__ = ["ROWS_PER_INSERT", "insert_many", "values_sql"]
