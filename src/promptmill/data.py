"""Reading input rows (JSONL, CSV, Parquet; streamed) and writing results (JSONL, Parquet, CSV)."""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from promptmill import datasets_, fastjson
from promptmill.datasets_ import is_hf_source
from promptmill.errors import InputError, OutputError, UsageError

INPUT_FORMATS = ("jsonl", "csv", "parquet")
# The Batch API's output lines (promptmill.batch_export), failed requests in NAME.errors.jsonl.
BATCH_OUTPUT_FORMAT = "openai-batch"
OUTPUT_FORMATS = ("jsonl", "parquet", "csv", "arrow", BATCH_OUTPUT_FORMAT)
# Formats written through the fixed Arrow schema (promptmill.arrow).
ARROW_FORMATS = ("parquet", "arrow")


def input_format(path: Path) -> str:
    """The format of an input file, by its extension."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffixes and suffixes[-1] in (".csv", ".tsv"):
        return "csv"
    if suffixes and suffixes[-1] in (".parquet", ".pq"):
        return "parquet"
    raise InputError(
        f"{path}: unknown input format {path.suffix or '(no extension)'}: "
        "use .jsonl, .csv or .parquet"
    )


def check_input(path: Path) -> None:
    """Raise InputError unless ``path`` is a readable input file (or a loadable ``hf:``)."""
    if is_hf_source(path):
        datasets_.load(datasets_.parse_hf_source(path))
        return
    if not path.exists():
        raise InputError(f"{path}: no such input file")
    if path.is_dir():
        raise InputError(f"{path} is a folder: pass an input file (.jsonl, .csv or .parquet)")
    if input_format(path) == "jsonl" and _starts_an_array(path):
        raise InputError(
            f"{path}: a JSON array, not JSON Lines (one object a line): convert it, e.g. "
            f"jq -c '.[]' {path} > {path.with_suffix('.jsonl').name}"
        )


def _starts_an_array(path: Path) -> bool:
    """Whether a file's first character past whitespace (and a byte order mark) is ``[``."""
    with open(path, "rb") as handle:
        head = without_bom(handle.read(4096)).lstrip()
    return head.startswith(b"[")


def input_digest(path: Path) -> str:
    """What identifies an input's content: a file's SHA-256, a dataset's own fingerprint."""
    if is_hf_source(path):
        return datasets_.fingerprint(datasets_.parse_hf_source(path))
    return file_sha256(path)


def file_sha256(path: Path) -> str:
    """The content hash of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_rows(path: Path, *, start: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
    """Stream ``(row_index, row)`` from an input file, beginning at ``start``.

    Errors name the file and line (JSONL, CSV) or row (Parquet) and say how to fix them.
    """
    if is_hf_source(path):
        yield from datasets_.read_rows(datasets_.parse_hf_source(path), start)
        return
    fmt = input_format(path)
    if fmt == "jsonl":
        for index, row, _ in _read_jsonl(path, start):
            yield index, row
    elif fmt == "csv":
        yield from _read_csv(path, start)
    else:
        yield from _read_parquet(path, start)


def row_place(path: Path, index: int, *, short: bool = False) -> str:
    """Where row ``index`` is, for messages: ``in.jsonl:7`` (``line 7`` when ``short``).

    Reads the file again to count lines (blank JSONL lines, multi-line CSV values): only for
    errors, never on the hot path. Parquet rows are named by number.
    """
    line: int | None = None
    if is_hf_source(path):
        return f"row {index + 1}" if short else f"{path} row {index + 1}"
    try:
        fmt = input_format(path)
        if fmt == "jsonl":
            with open(path, "rb") as handle:
                rows = 0
                for number, raw in enumerate(handle, 1):
                    if raw.strip():
                        if rows == index:
                            line = number
                            break
                        rows += 1
        elif fmt == "csv":
            delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
            with open(path, newline="", encoding="utf-8-sig", errors="replace") as text:
                reader = csv.DictReader(text, delimiter=delimiter)
                for number, _ in enumerate(reader):
                    if number == index:
                        line = reader.line_num
                        break
    except (OSError, InputError):
        line = None
    if line is None:
        return f"row {index + 1}" if short else f"{path} row {index + 1}"
    return f"line {line}" if short else f"{path}:{line}"


def read_records(path: Path, *, start: int = 0) -> Iterator[tuple[int, dict[str, Any], str | None]]:
    """``read_rows`` with each row's JSON as the store keeps it where the input gave it:
    a JSONL line's own text (stripped); None for other formats (encode the row)."""
    if not is_hf_source(path) and input_format(path) == "jsonl":
        return _read_jsonl(path, start)
    return ((index, row, None) for index, row in read_rows(path, start=start))


_BOM = b"\xef\xbb\xbf"


def without_bom(line: bytes) -> bytes:
    """A file's first line without the UTF-8 byte order mark some editors write (Excel,
    Notepad): JSON parsers refuse it, and CSV would read it into the first column's name."""
    return line[3:] if line.startswith(_BOM) else line


def _read_jsonl(path: Path, start: int) -> Iterator[tuple[int, dict[str, Any], str | None]]:
    index = 0
    with open(path, "rb") as handle:
        for line_number, line in enumerate(handle, 1):
            if line_number == 1:
                line = without_bom(line)
            raw = line.strip()
            if not raw:
                continue
            if index >= start:
                yield index, *_jsonl_row(path, line_number, raw, line)
            index += 1


def jsonl_lines(path: Path, first_line: int, lines: list[bytes],
                rows: int | None = None) -> tuple[list[dict[str, Any]], list[str | None]]:
    """The rows of JSONL ``lines`` (as read; the first is line ``first_line`` of ``path``)
    and their text as the store keeps it (None: encode the row), at most ``rows`` of them;
    an InputError names the line that is not a JSON object."""
    parsed: list[dict[str, Any]] = []
    texts: list[str | None] = []
    for line_number, line in enumerate(lines, first_line):
        raw = line.strip()
        if not raw:
            continue
        if rows is not None and len(parsed) >= rows:
            break
        row, text = _jsonl_row(path, line_number, raw, line)
        parsed.append(row)
        texts.append(text)
    return parsed, texts


def _jsonl_row(path: Path, line_number: int, raw: bytes,
               line: bytes) -> tuple[dict[str, Any], str | None]:
    """The row of a JSONL ``line`` (``raw``: stripped) and its text as the store keeps it
    (None where json read it: encode the row), or the InputError naming the line."""
    try:
        row = orjson.loads(raw)
        text: str | None = raw.decode("utf-8")
    except orjson.JSONDecodeError:
        row, text = _parse_line(path, line_number, line), None
    else:
        if fastjson.inexact(row):
            row, text = _parse_line(path, line_number, line), None
    if type(row) is not dict:
        raise InputError(
            f"{path}:{line_number}: a line must be a JSON object, "
            f"not {type(row).__name__}: wrap it as {{\"prompt\": ...}}"
        )
    return row, text


def _parse_line(path: Path, line_number: int, raw: bytes) -> Any:
    """A JSONL line the standard library's way, or the InputError naming the line."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}:{line_number}: not UTF-8 (byte {exc.start}): re-encode the file as UTF-8"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{path}:{line_number}: malformed JSON ({exc.msg} at column {exc.colno}): "
            "fix or remove that line"
        ) from None


def _read_csv(path: Path, start: int) -> Iterator[tuple[int, dict[str, Any]]]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    # Strict: a quote left open would otherwise take every line after it into one value,
    # silently (three rows read as one), and text after a closing quote would be glued on.
    row_start = 1
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle, delimiter=delimiter, strict=True)
            reader.fieldnames  # noqa: B018 (reads the header: rows are numbered after it)
            index = 0
            while True:
                row_start = reader.line_num + 1
                row = next(reader, None)
                if row is None:
                    break
                if None in row:
                    raise InputError(
                        f"{path}:{reader.line_num}: more values than header columns: "
                        "quote values that contain the delimiter"
                    )
                if index >= start:
                    yield index, dict(row)
                index += 1
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}: not UTF-8 (byte {exc.start}): re-encode the file as UTF-8"
        ) from None
    except csv.Error as exc:
        raise InputError(
            f"{path}:{row_start}: malformed CSV ({exc}): close each quoted value with a "
            'quote right before the delimiter or the line\'s end (a quote inside one is "")'
        ) from None


def _read_parquet(path: Path, start: int) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise InputError(f"{path}: not a readable Parquet file ({exc}): check the file") from None
    index = 0
    # No reader threads: rows are taken one at a time anyway, and each thread's allocator
    # heap kept its own freed batches, so RSS crept up with the file (+80 MB over 1M rows).
    for batch in parquet.iter_batches(batch_size=4096, use_threads=False):
        if index + batch.num_rows <= start:
            index += batch.num_rows
            continue
        for row in batch.to_pylist():
            if index >= start:
                yield index, row
            index += 1


# -- writers -----------------------------------------------------------------------------


def output_format(path: Path, fmt: str | None = None) -> str:
    """The format to write, from ``fmt`` or the output path's extension (default JSONL)."""
    if fmt:
        fmt = fmt.lower()
        if fmt not in OUTPUT_FORMATS:
            raise UsageError(f"unknown --format {fmt!r}: use one of {', '.join(OUTPUT_FORMATS)}")
        return fmt
    suffix = path.suffix.lower().lstrip(".")
    if suffix in _NOT_WRITTEN:  # JSON Lines under such a name would surprise whoever opens it
        raise UsageError(
            f"output {path}: promptmill does not write .{suffix} files: name it .jsonl, "
            ".parquet, .csv or .arrow (or pass --format)"
        )
    return {"pq": "parquet", "parquet": "parquet", "csv": "csv", "arrow": "arrow",
            "feather": "arrow"}.get(suffix, "jsonl")


# Extensions of formats other tools write that the output is not (any other extension, or
# none, gets JSON Lines).
_NOT_WRITTEN = frozenset({"xlsx", "xls", "ods", "tsv", "sqlite", "db", "orc", "avro",
                          "gz", "zip"})


def check_output_path(path: Path) -> None:
    """Raise UsageError if ``path`` cannot be an output file."""
    if path.is_dir():
        raise UsageError(
            f"output {path} is a folder: pass a file path such as {path}/answers.jsonl"
        )
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(f"output folder {folder} does not exist: create it first")
    try:
        # A real write, not os.access: root passes access() on read-only mounts and
        # immutable folders, where writing the results would fail only at the end.
        with tempfile.TemporaryFile(dir=folder, prefix=f".{path.name}.", suffix=".probe"):
            pass
    except OSError as exc:
        raise UsageError(
            f"output folder {folder} is not writable ({exc.strerror}): choose another -o location"
        ) from None


def write_rows(rows: Iterable[dict[str, Any]] | Iterable[str], path: Path, fmt: str, *,
               schema: Any = None) -> int:
    """Write rows atomically (a temporary file renamed into place); how many.

    Parquet and Arrow files take ``schema`` (``promptmill.arrow.result_schema``) so that they
    stream; without one, the rows are read whole to infer it. JSONL rows may be given as
    lines already encoded (``str``, without the newline).
    """
    if fmt == "jsonl":
        return _write_atomically(path, lambda handle: _write_jsonl(rows, handle))
    dicts: Any = rows  # the other formats take rows as dicts
    if fmt == "csv":
        return _write_atomically(path, lambda handle: _write_csv(dicts, handle))
    if schema is None:
        from promptmill import arrow

        dicts = list(dicts)
        schema = arrow.result_schema(arrow.infer_row_types(enumerate(dicts)))
    return write_batches(_batches_of(dicts, schema), path, fmt, schema)


def _batches_of(rows: Iterable[dict[str, Any]], schema: Any) -> Iterator[Any]:
    from promptmill import arrow

    return arrow.record_batches(rows, schema)


def write_batches(batches: Iterable[Any], path: Path, fmt: str, schema: Any) -> int:
    """Write Arrow record batches of ``schema`` as Parquet or Arrow IPC (``fmt``), atomically;
    how many rows."""
    return _write_atomically(path, lambda handle: _write_arrow(batches, handle, fmt, schema))


def _write_atomically(path: Path, write: Callable[[Any], int]) -> int:
    """``write(handle)`` into a temporary file beside ``path``, renamed into place; its count."""
    path = Path(path)
    try:
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - renamed into place below
            "wb", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
        )
    except OSError as exc:
        raise _output_error(path, exc) from None
    temp = Path(handle.name)
    try:
        # NamedTemporaryFile is private (0600); results get the mode any new file would get.
        os.chmod(temp, _new_file_mode())
        with handle:
            count = write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException as exc:
        temp.unlink(missing_ok=True)
        if isinstance(exc, OSError):  # a full disk, a folder gone read-only: one line
            raise _output_error(path, exc) from None
        raise
    return count


def _output_error(path: Path, exc: OSError) -> OutputError:
    return OutputError(
        f"cannot write {path} ({exc.strerror or exc}): free space or choose another location, "
        "then rerun; every result is kept in the job store and none is asked for again"
    )


def temp_files_of(path: Path) -> list[Path]:
    """Temporary files ``write_rows`` leaves beside ``path`` when it is killed mid-write."""
    path = Path(path)
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))


def _new_file_mode() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _write_jsonl(rows: Iterable[dict[str, Any]] | Iterable[str], handle: Any) -> int:
    count = 0
    buffer: list[str] = []
    lines = FIRST_BLOCK_LINES  # lines a write, sized by block_lines()
    for row in rows:
        buffer.append(row if type(row) is str else _to_json_text(row))
        count += 1
        if len(buffer) >= lines:
            buffer.append("")  # the last line's newline
            text = "\n".join(buffer)
            handle.write(text.encode("utf-8"))
            lines = block_lines(lines, len(text))
            buffer.clear()
    if buffer:
        buffer.append("")
        handle.write("\n".join(buffer).encode("utf-8"))
    return count


# JSONL is read and written in blocks of about this many characters, not of a fixed count
# of rows: blocks of thousands of rows (megabytes) were each handed back to the system when
# freed and asked for again by the next (a page fault every 4 KB: a 1,000,000-row export
# spent a third of its time there).
BLOCK_CHARS = 64 * 1024
FIRST_BLOCK_LINES = 100


def block_lines(lines: int, chars: int) -> int:
    """Lines for the next block, where ``lines`` lines made ``chars`` characters: about
    ``BLOCK_CHARS`` at that length (16 to 5,000)."""
    return max(16, min(5000, lines * BLOCK_CHARS // max(chars, 1)))


# json.dumps with options builds a new encoder per call: one, built once.
_to_json_text = json.JSONEncoder(ensure_ascii=False).encode


def _flat(value: Any) -> Any:
    return value if value is None or isinstance(value, (str, int, float, bool)) else json.dumps(
        value, ensure_ascii=False
    )


def _write_csv(rows: Iterable[dict[str, Any]], handle: Any) -> int:
    import io

    text = io.TextIOWrapper(handle, encoding="utf-8", newline="", write_through=True)
    writer: csv.DictWriter[str] | None = None
    count = 0
    for row in rows:
        if writer is None:
            writer = csv.DictWriter(text, fieldnames=list(row), extrasaction="ignore")
            writer.writeheader()
        writer.writerow({key: _flat(value) for key, value in row.items()})
        count += 1
    text.flush()
    text.detach()
    return count


def _write_arrow(batches: Iterable[Any], handle: Any, fmt: str, schema: Any) -> int:
    import queue
    import threading

    import pyarrow as pa
    import pyarrow.parquet as pq

    writer: Any = (pq.ParquetWriter(handle, schema) if fmt == "parquet"
                   else pa.ipc.new_file(handle, schema))
    # The batches are encoded and written on a thread of their own while the next one is read
    # (pyarrow lets go of the GIL for both): two cores where there are two. At most one batch
    # waits for it, so memory stays that of a few batches.
    handoff: queue.Queue[Any] = queue.Queue(maxsize=1)
    failed: list[BaseException] = []

    def write_all() -> None:
        while (batch := handoff.get()) is not None:
            if not failed:  # after a failure, only drained: the caller raises it
                try:
                    writer.write_batch(batch)
                except BaseException as exc:  # raised again on the caller's thread
                    failed.append(exc)

    count = 0
    with writer:
        writing = threading.Thread(target=write_all, name="promptmill-write", daemon=True)
        writing.start()
        try:
            for batch in batches:
                if failed:
                    break
                handoff.put(batch)
                count += batch.num_rows
        finally:
            handoff.put(None)
            writing.join()  # every batch handed over written before the file is closed
        if failed:
            raise failed[0]
    return count
