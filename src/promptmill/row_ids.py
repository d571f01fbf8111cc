"""The duplicate-id check of planning: two rows with one id are refused, naming both."""

from __future__ import annotations

import json
import operator
import sqlite3
from itertools import repeat
from pathlib import Path
from typing import Any

import orjson

from promptmill import data
from promptmill.errors import InputError
from promptmill.sqlite_bulk import insert_many, values_sql

# Fields taken as a row's id when the job names none: two rows with one id are refused.
ID_FIELDS = ("id", "unique_id")
# Ids are checked a chunk at a time.
_CHUNK = 5000
_dumps = orjson.dumps
_key_to_json = json.JSONEncoder(sort_keys=True, ensure_ascii=False, default=str).encode


class UniqueIds:
    """Refuses a second row with an id already seen, naming both rows.

    The ids seen are kept in a private temporary SQLite file, not a Python set, so memory
    stays flat however long the input; they are checked a chunk at a time.
    """

    def __init__(self, source: Path, field: str | None = None,
                 names: tuple[str, ...] = ID_FIELDS, fix: str | None = None) -> None:
        self.source = source
        self.field = field  # the field the job names (--id-field), else one of ``names``
        self.names = names  # fields taken as the id when the job names none
        self.fix = fix  # what to do about a duplicate (None: the --id-field advice)
        self._db = sqlite3.connect("", isolation_level=None)  # "": deleted when closed
        self._db.execute(
            "CREATE TABLE ids (key TEXT PRIMARY KEY, row_index INTEGER NOT NULL) WITHOUT ROWID"
        )
        self._chunk: dict[str, int] = {}  # ids of rows not yet flushed -> their row index
        # While every row's id is an integer in its first id field, each above the one before
        # (ids 0, 1, 2...: most datasets), no id can repeat: none is stored, only the last.
        # The first row that breaks the run stores the ids before it (read again from the
        # input) and is checked as usual, as is every row after it.
        self._run = True
        self._run_field = field or names[0]
        self._run_last: int | None = None

    def add(self, index: int, row: dict[str, Any]) -> None:
        """Take one row's id; InputError if an earlier row has it."""
        if self._run:
            value = row.get(self._run_field)
            if type(value) is int and (self._run_last is None or value > self._run_last):
                self._run_last = value
                return
            self._end_run(index)
        name = self.field
        if name is None:
            for name in self.names:
                value = row.get(name)
                if value is not None and value != "":
                    break
            else:
                return
        else:
            value = row.get(name)
            if value is None or value == "":
                raise InputError(
                    f"{data.row_place(self.source, index)}: no field {name!r} (--id-field "
                    f"{name}): add it to every row, or pass --id-field none to skip the id check"
                )
        # Strings and integers (most ids) encoded as json.dumps would, without its overhead.
        kind = type(value)
        key = name + "\0" + (_dumps(value).decode() if kind is str else str(value)
                             if kind is int else _key_to_json(value))
        if key in self._chunk:
            self._refuse(key, self._chunk[key], index)
        self._chunk[key] = index
        if len(self._chunk) >= _CHUNK:
            self.flush()

    def add_many(self, first: int, rows: list[dict[str, Any]]) -> None:
        """Take the ids of rows ``first``, ``first + 1``...: ``add`` for each, at once where
        every row has an id of one field, all strings or all integers, none repeated."""
        if not rows:
            return
        if self._run:
            values: list[Any] = list(map(dict.get, rows, repeat(self._run_field)))
            if set(map(type, values)) == {int} and (
                    self._run_last is None or values[0] > self._run_last) and all(
                    map(operator.lt, values, values[1:])):
                self._run_last = values[-1]
                return
            self._end_run(first)
        keys = self._keys(rows)
        if keys is None or len(set(keys)) < len(keys) or not self._chunk.keys().isdisjoint(keys):
            for index, row in enumerate(rows, first):  # names the row at fault, if any
                self.add(index, row)
            return
        if keys:
            self._chunk.update(zip(keys, range(first, first + len(rows)), strict=True))
        if len(self._chunk) >= _CHUNK:
            self.flush()

    def _end_run(self, index: int) -> None:
        """Row ``index`` breaks the run of rising integer ids: store the ids of the rows
        before it, read again from the input (once per job at most)."""
        self._run = False
        if self._run_last is None:
            return
        for earlier, row in data.read_rows(self.source):
            if earlier >= index:
                break
            self.add(earlier, row)

    def _keys(self, rows: list[dict[str, Any]]) -> list[str] | None:
        """The id keys ``add`` makes for ``rows``, or None where a row needs ``add`` (no id,
        ids of several fields or of other types)."""
        # Without --id-field a row's id is its first default field set: only the first
        # default name is sure to be every row's choice.
        name = self.field or self.names[0]
        values = [row.get(name) for row in rows]
        kinds = set(map(type, values))
        prefix = name + "\0"
        if kinds == {int}:
            return [prefix + str(value) for value in values]
        if kinds == {str} and "" not in values:
            return [prefix + text.decode() for text in map(_dumps, values)]
        if kinds == {type(None)} and self.field is None and not any(
                name in row for row in rows for name in self.names[1:]):
            return []  # rows without ids
        return None

    def flush(self) -> None:
        """Check the ids taken since the last flush against all earlier ones."""
        if not self._chunk:
            return
        db = self._db
        db.execute("BEGIN")
        try:
            insert_many(db, "INSERT INTO ids (key, row_index) VALUES ", values_sql(2),
                        list(self._chunk.items()))
        except sqlite3.IntegrityError:
            db.execute("ROLLBACK")
            for key, index in self._chunk.items():  # in row order: the first repeat is named
                first = db.execute("SELECT row_index FROM ids WHERE key = ?", (key,)).fetchone()
                if first is not None:
                    self._refuse(key, first[0], index)
            raise
        db.execute("COMMIT")
        self._chunk.clear()

    def _refuse(self, key: str, first: int, index: int) -> None:
        name, _, value = key.partition("\0")
        fix = self.fix or ("make the ids unique, name another field with --id-field NAME, or "
                           "pass --id-field none to allow duplicates")
        raise InputError(
            f"{data.row_place(self.source, index)}: duplicate {name} {value} (first on "
            f"{data.row_place(self.source, first, short=True)}): {fix}"
        )

    def close(self) -> None:
        """Delete the temporary file."""
        self._db.close()
