"""Hugging Face datasets as input: ``hf:NAME[:CONFIG][@SPLIT]`` (the ``datasets`` extra).

NAME is a hub dataset (``cais/mmlu``) or a local folder: one written by
``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``, or a dataset repository laid out on
disk (``data/train-00000-of-00001.parquet`` ...), loaded with ``datasets.load_dataset``.
Rows are read from the memory-mapped Arrow files a thousand at a time, never all at once. The
job's fingerprint uses the dataset's own fingerprint (``Dataset._fingerprint``), which
changes when its content does.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptmill.errors import InputError, MissingDependency

HF_PREFIX = "hf:"
_BATCH = 1000


@dataclass(frozen=True, slots=True)
class HFSource:
    """A parsed ``hf:NAME[:CONFIG][@SPLIT]``."""

    name: str
    config: str | None = None
    split: str | None = None

    def __str__(self) -> str:
        text = HF_PREFIX + self.name
        if self.config:
            text += f":{self.config}"
        return text + (f"@{self.split}" if self.split else "")

    @property
    def label(self) -> str:
        """A filesystem-safe name for result files: ``cais_mmlu-all-test``."""
        name = self.name.rstrip("/")
        if Path(name).expanduser().is_dir():
            name = Path(name).name
        parts = [name, self.config or "", self.split or ""]
        return safe_name("-".join(p for p in parts if p))


def safe_name(text: str) -> str:
    """``text`` with every character outside letters, digits, ``.``, ``-``, ``_`` as ``_``."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return cleaned or "dataset"


def is_hf_source(path: Path | str) -> bool:
    """Whether an input names a Hugging Face dataset (``hf:...``)."""
    return str(path).startswith(HF_PREFIX)


def parse_hf_source(text: Path | str) -> HFSource:
    """``hf:NAME[:CONFIG][@SPLIT]`` parsed; InputError naming the fix if it is malformed."""
    body = str(text)[len(HF_PREFIX):]
    body, _, split = body.partition("@")
    name, _, config = body.partition(":")
    if not name.strip():
        raise InputError(f"{text}: no dataset name: write hf:NAME[:CONFIG][@SPLIT], "
                         "e.g. hf:cais/mmlu:all@test or hf:./my_saved_dataset")
    return HFSource(name.strip(), config.strip() or None, split.strip() or None)


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise MissingDependency(
            'hf: inputs need Hugging Face datasets, which is not installed: '
            'pip install "promptmill[datasets]"'
        ) from None
    return datasets


def load(source: HFSource) -> Any:
    """The ``datasets.Dataset`` a source names (loaded once per process, again if a local
    folder's files change)."""
    return _load(source, _stamp(Path(source.name).expanduser()))


def _stamp(folder: Path) -> tuple[int, int] | None:
    """The newest modification time and the file count of a local dataset folder."""
    if not folder.is_dir():
        return None
    times = [p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()]
    return (max(times, default=0), len(times))


@functools.lru_cache(maxsize=8)
def _load(source: HFSource, stamp: tuple[int, int] | None) -> Any:
    datasets = _datasets()
    folder = Path(source.name).expanduser()
    saved = folder.is_dir() and any(
        (folder / marker).is_file()
        for marker in ("dataset_dict.json", "state.json", "dataset_info.json")
    ) and not (folder / "data").is_dir()
    try:
        if saved:
            loaded = datasets.load_from_disk(str(folder))
        else:
            loaded = datasets.load_dataset(
                str(folder) if folder.is_dir() else source.name, source.config,
                split=source.split,
            )
    except MissingDependency:
        raise
    except Exception as exc:  # datasets raises many types (FileNotFound, hub, offline...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"{source}: cannot load this dataset ({first}): check the name, config and split, "
            "or pass a local folder (save_to_disk output or a Parquet repository layout)"
        ) from None
    if isinstance(loaded, datasets.DatasetDict):
        return _pick_split(source, loaded)
    return loaded


def _pick_split(source: HFSource, splits: Any) -> Any:
    names = list(splits)
    if source.split is not None:
        if source.split not in splits:
            raise InputError(f"{source}: no split {source.split!r}: it has "
                             f"{', '.join(names)}; write hf:{source.name}@SPLIT")
        return splits[source.split]
    if len(names) == 1:
        return splits[names[0]]
    if "train" in splits:
        return splits["train"]
    raise InputError(f"{source}: several splits ({', '.join(names)}): choose one with "
                     f"hf:{source.name}@SPLIT")


def fingerprint(source: HFSource) -> str:
    """The dataset's own fingerprint (``datasets`` changes it when the content changes)."""
    dataset = load(source)
    value = getattr(dataset, "_fingerprint", None)
    if not value:
        raise InputError(f"{source}: the dataset has no fingerprint to resume a job by")
    return f"hf:{value}"


def read_rows(source: HFSource, start: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(row_index, row)`` from ``start``, a batch at a time."""
    dataset = load(source)
    total = len(dataset)
    for first in range(start, total, _BATCH):
        batch = dataset[first:first + _BATCH]
        columns = list(batch)
        for offset, values in enumerate(zip(*(batch[c] for c in columns), strict=True)):
            yield first + offset, dict(zip(columns, values, strict=True))


__all__ = [
    "HFSource",
    "fingerprint",
    "is_hf_source",
    "load",
    "parse_hf_source",
    "read_rows",
    "safe_name",
]
