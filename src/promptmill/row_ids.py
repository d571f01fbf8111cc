"""The duplicate-id check of planning: two rows with one id are refused, naming both."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import orjson

from promptmill import data
from promptmill.errors import InputError

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

    def add(self, index: int, row: dict[str, Any]) -> None:
        """Take one row's id; InputError if an earlier row has it."""
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

    def flush(self) -> None:
        """Check the ids taken since the last flush against all earlier ones."""
        if not self._chunk:
            return
        db = self._db
        db.execute("BEGIN")
        try:
            db.executemany("INSERT INTO ids (key, row_index) VALUES (?, ?)", self._chunk.items())
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
