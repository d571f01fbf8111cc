"""The user's config directory and the TOML files promptmill reads from it.

``$XDG_CONFIG_HOME/promptmill`` (else ``~/.config/promptmill``) holds ``prompts.toml`` (the
user's prompt library) and ``models.toml`` (model aliases). Read on use, never cached, so a
test (or a user) pointing ``XDG_CONFIG_HOME`` elsewhere is obeyed at once.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from promptmill.errors import UsageError


def _tomllib() -> Any:
    """tomllib (tomli on Python 3.10), imported when a file is read: most runs read none."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    return tomllib


def config_dir() -> Path:
    """promptmill's folder in the user config directory (it may not exist yet)."""
    base = os.environ.get("XDG_CONFIG_HOME") or ""
    root = Path(base) if base.strip() else Path.home() / ".config"
    return root / "promptmill"


def read_text(path: Path, what: str) -> str:
    """A UTF-8 file's text; UsageError naming the file and the fix if it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{what} {path}: no such file") from None
    except OSError as exc:
        raise UsageError(f"{what} {path}: cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise UsageError(f"{what} {path}: not UTF-8: re-encode it as UTF-8") from None


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """A TOML file's tables; UsageError naming the file, line and fix if it cannot be read."""
    text = read_text(path, what)
    tomllib = _tomllib()
    try:
        result: dict[str, Any] = tomllib.loads(text)
        return result
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{what} {path}: not valid TOML ({exc}): fix that line") from None


def parse_toml(text: str) -> dict[str, Any]:
    """Parse TOML text (tomllib, or tomli on Python 3.10)."""
    result: dict[str, Any] = _tomllib().loads(text)
    return result


def format_toml_value(value: Any) -> str:
    """A value as TOML text: strings, numbers, booleans, lists and inline tables."""
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        # A JSON string is a valid TOML basic string (the same escapes).
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{toml_key(k)} = {format_toml_value(v)}" for k, v in value.items())
        return "{" + items + "}"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def toml_key(key: str) -> str:
    """A key bare where TOML allows it, quoted otherwise."""
    import json
    import re

    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


__all__ = ["config_dir", "format_toml_value", "parse_toml", "read_toml", "toml_key"]
