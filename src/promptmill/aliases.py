"""Model aliases: short names for full identifiers (``-m beluga7b``, the built-in ``smollm2``).

The user's aliases live in ``models.toml`` in the user config directory::

    [aliases]
    beluga7b = "vllm!stabilityai/StableBeluga-7B,max_model_len=2048"

An alias may be followed by options that override its own (``-m beluga7b,temperature=0.5``).
Aliases never hold keys: keys come from the environment or ``.env`` (``api_key_env=NAME``
chooses the variable).
"""

from __future__ import annotations

import re
from pathlib import Path

from promptmill.errors import IdentifierError, UsageError
from promptmill.identifiers import Identifier, parse_identifier
from promptmill.userconfig import config_dir, format_toml_value, read_toml, toml_key

# Aliases promptmill ships; a user's alias cannot take these names.
BUILTIN_ALIASES = {"smollm2": "llamacpp!smollm2"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def aliases_file() -> Path:
    """The user's alias file (it may not exist)."""
    return config_dir() / "models.toml"


def user_aliases() -> dict[str, str]:
    """The user's aliases, name -> identifier; UsageError naming the file for a bad one."""
    path = aliases_file()
    if not path.is_file():
        return {}
    table = read_toml(path, "alias file").get("aliases", {})
    if not isinstance(table, dict):
        raise UsageError(f"alias file {path}: [aliases] must be a table of NAME = \"IDENT\"")
    aliases: dict[str, str] = {}
    for name, target in table.items():
        if not isinstance(target, str):
            raise UsageError(f"alias file {path}: alias {name!r} must be an identifier string")
        _check(name, target, str(path))
        aliases[name] = target
    return aliases


def _check(name: str, target: str, where: str) -> Identifier:
    if not _NAME.fullmatch(name):
        raise UsageError(f"{where}: alias name {name!r} must be letters, digits, '.', '_' or "
                         "'-' (no '!' or ',')")
    if name in BUILTIN_ALIASES:
        raise UsageError(f"{where}: {name!r} is a built-in alias: choose another name")
    ident = parse_identifier(target)
    if ident.api_key is not None or re.search(r"(^|,)\s*api_key\s*=", target):
        raise UsageError(f"{where}: alias {name!r} holds a key: aliases never do; set the key "
                         "in the environment (or .env), naming the variable with api_key_env=")
    return ident


def resolve_identifier(text: str) -> Identifier:
    """Parse ``text``, expanding a leading alias (its options overridden by those given)."""
    head, sep, rest = text.strip().partition(",")
    name = head.strip()
    if "!" in name or not name:
        return parse_identifier(text)
    target = BUILTIN_ALIASES.get(name)
    if target is None:
        target = user_aliases().get(name)
    if target is None:
        return parse_identifier(text)
    base = parse_identifier(target)
    given = parse_identifier(f"{base.provider}!{base.model},{rest}") if sep else base
    return Identifier(base.provider, base.model, {**base.options, **given.options},
                      given.api_key if sep else None)


def add_alias(name: str, target: str) -> Path:
    """Add (or replace) an alias in the user's file; the file's path."""
    path = aliases_file()
    try:
        _check(name, target, "alias")
    except IdentifierError as exc:
        raise UsageError(f"alias {name!r}: {exc}") from None
    aliases = user_aliases()
    aliases[name] = target
    _write(path, aliases)
    return path


def remove_alias(name: str) -> Path:
    """Remove an alias from the user's file; UsageError if it has none of that name."""
    path = aliases_file()
    aliases = user_aliases()
    if name not in aliases:
        raise UsageError(f"no alias {name!r} in {path}: `promptmill models list` shows them")
    del aliases[name]
    _write(path, aliases)
    return path


def _write(path: Path, aliases: dict[str, str]) -> None:
    lines = ["# promptmill model aliases (`promptmill models alias NAME IDENT` writes this file)",
             "[aliases]"]
    lines += [f"{toml_key(k)} = {format_toml_value(v)}" for k, v in sorted(aliases.items())]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(path.name + ".tmp")
        temp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        temp.replace(path)
    except OSError as exc:
        raise UsageError(f"cannot write alias file {path} ({exc.strerror})") from None


__all__ = [
    "BUILTIN_ALIASES",
    "add_alias",
    "aliases_file",
    "remove_alias",
    "resolve_identifier",
    "user_aliases",
]
