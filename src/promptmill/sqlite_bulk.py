"""Multi-row INSERTs: many rows a statement, where executemany binds, steps and resets each.

Used for the planned rows and requests, the attempt records, the id check's keys and the
response cache's entries.
"""

from __future__ import annotations

import functools
import itertools
import sqlite3
from collections.abc import Collection, Sequence
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
    if rows:
        insert_flat(db, head, row_sql, len(rows[0]),
                    list(itertools.chain.from_iterable(rows)), sizes)


def insert_columns(db: sqlite3.Connection, head: str, columns: Sequence[Sequence[Any]],
                   constant: Collection[int] = ()) -> None:
    """Insert rows given as ``columns`` (equal lengths, in the order ``head`` names them),
    many a statement. A column whose index is in ``constant`` (integers) and holds one value
    throughout is written into the statement instead of bound to every row (a bound value
    costs ~350 instructions); the rest are laid out by slice assignment, no tuple a row."""
    if not columns or not columns[0]:
        return
    count = len(columns[0])
    values, bound = [], []
    for at, column in enumerate(columns):
        first = column[0]
        if at in constant and type(first) is int and column.count(first) == count:
            values.append(str(first))
        else:
            values.append("?{}")
            bound.append(column)
    width = len(bound)
    insert_flat(db, head, ("(" + ", ".join(values) + ")", tuple(range(width))), width,
                interleave(bound))


def interleave(columns: Sequence[Sequence[Any]]) -> list[Any]:
    """The values of ``columns`` (equal lengths) one row after another: each column's first,
    then each one's second...; laid out by slice assignment, no tuple a row."""
    width = len(columns)
    flat: list[Any] = [None] * (width * len(columns[0]))
    for at, column in enumerate(columns):
        flat[at::width] = column
    return flat


def insert_flat(db: sqlite3.Connection, head: str, row_sql: tuple[str, tuple[int, ...]],
                width: int, flat: list[Any], sizes: Sequence[int] = ROWS_PER_INSERT) -> None:
    """Insert the rows of ``flat``, each row's ``width`` values one after the other, as
    ``insert_many`` does."""
    total, done = len(flat) // width, 0
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
    if slots == tuple(range(width)):
        # Each value once, in order: unnumbered ``?``, which bind by position. (The sqlite3
        # module asks each parameter's name as it binds it; for ``?NNN`` SQLite finds the
        # name in a list: 0.7k instructions a row of 8 values, 256 rows a statement.)
        return head + ",".join([text.replace("{}", "")] * rows)
    return head + ",".join(text.format(*(width * i + slot + 1 for slot in slots))
                           for i in range(rows))


__all__ = ["ROWS_PER_INSERT", "insert_columns", "insert_flat", "insert_many", "interleave",
           "values_sql"]
