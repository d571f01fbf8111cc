"""``cache``: the response cache shared by every job (stats, prune, clear)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from promptmill.cli.app import cli

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 86400.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_age(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``2w`` or a number of days, in seconds."""
    match = _AGE.match(text)
    if match is None:
        raise click.BadParameter(f"{text!r} is not an age: use e.g. 30d, 12h, 90m or 2w")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _open(path: Path | None) -> Any:
    from promptmill.cache import CacheUnusable, ResponseCache, default_cache_path
    from promptmill.errors import UsageError

    shown = path or default_cache_path()
    if not shown.exists():
        return None
    try:
        return ResponseCache(shown)
    except CacheUnusable as exc:
        raise UsageError(f"response cache {shown}: {exc}: `promptmill cache clear` "
                         "starts a new one") from None


@cli.group()
def cache() -> None:
    """The response cache that jobs share (user cache directory, or --cache PATH)."""


_PATH = click.option("--path", type=click.Path(dir_okay=False, path_type=Path),
                     help="The cache file (default: responses.sqlite in the user cache "
                     "directory, $XDG_CACHE_HOME/promptmill).")


@cache.command()
@_PATH
def stats(path: Path | None) -> None:
    """Entries, size on disk, age and entries per model."""
    import time

    from promptmill.cache import default_cache_path

    opened = _open(path)
    if opened is None:
        click.echo(f"cache    {path or default_cache_path()} (empty: not created yet)")
        return
    with opened:
        st = opened.stats()
    click.echo(f"cache    {st.path}")
    click.echo(f"entries  {st.entries:,} responses, {st.bytes / 1e6:,.1f} MB on disk")
    if st.oldest is not None and st.newest is not None:
        def ago(stamp: float) -> str:
            return f"{(time.time() - stamp) / 86400:,.1f} days ago"

        click.echo(f"stored   oldest {ago(st.oldest)}, newest {ago(st.newest)}")
    for model, count in st.models:
        click.echo(f"  {count:>10,}  {model}")


@cache.command()
@click.option("--older-than", required=True, metavar="AGE",
              help="Delete entries stored longer ago than AGE (30d, 12h, 90m, 2w).")
@_PATH
def prune(older_than: str, path: Path | None) -> None:
    """Delete the entries stored longer ago than --older-than."""
    seconds = parse_age(older_than)
    opened = _open(path)
    removed = 0
    if opened is not None:
        with opened:
            removed = opened.prune(seconds)
    click.echo(f"removed {removed:,} entries stored more than {older_than} ago")


@cache.command()
@_PATH
def clear(path: Path | None) -> None:
    """Delete every entry (a damaged cache file is replaced by an empty one)."""
    from promptmill.cache import CacheUnusable, ResponseCache, default_cache_path

    target = path or default_cache_path()
    removed = 0
    if target.exists():
        try:
            with ResponseCache(target) as opened:
                removed = opened.clear()
        except CacheUnusable as exc:
            from promptmill.cache import is_cache_file
            from promptmill.errors import UsageError

            if not is_cache_file(target):  # never delete a file that is not ours
                raise UsageError(f"{target} is not a promptmill response cache ({exc}): "
                                 "left as it is") from None
            for part in (target, target.with_name(target.name + "-wal"),
                         target.with_name(target.name + "-shm")):
                part.unlink(missing_ok=True)
            click.echo(f"removed the damaged cache file {target}")
            return
    click.echo(f"removed {removed:,} entries from {target}")
