"""The prompt library: named task prompts shipped with promptmill, and the user's own.

Sources, later ones winning on a name: ``library.toml`` beside this module, ``prompts.toml``
in the user config directory, then each ``--prompts-file``. A table with ``text`` (the task
text, followed by the row's prompt field) or ``template`` (Jinja2 over the row's fields) is a
prompt; nested tables name prompts by path (``bookMIA/instruct-autoregressive/lightest``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from promptmill.errors import UsageError, did_you_mean
from promptmill.userconfig import config_dir, parse_toml, read_toml

BUILTIN = "built-in"
_FIELDS = frozenset({"text", "template", "system", "description", "source"})


@dataclass(frozen=True, slots=True)
class NamedPrompt:
    """One prompt of the library: a task text or a template, with an optional system prompt."""

    name: str
    text: str | None = None
    template: str | None = None
    system: str | None = None
    description: str = ""
    # Where it was defined: "built-in" or the file's path.
    origin: str = BUILTIN

    def fingerprint(self) -> dict[str, Any]:
        """What of the prompt decides a job's identity: its name and its texts."""
        return {"name": self.name, "text": self.text, "template": self.template,
                "system": self.system}

    def summary(self) -> str:
        """One line: the description, else the start of the text."""
        if self.description:
            return self.description
        body = self.text if self.text is not None else self.template or ""
        body = " ".join(body.split())
        return body if len(body) <= 70 else body[:67] + "..."


def user_prompts_file() -> Path:
    """The user's prompt library file (it may not exist)."""
    return config_dir() / "prompts.toml"


def _walk(table: dict[str, Any], prefix: str, origin: str) -> Iterator[NamedPrompt]:
    if "text" in table or "template" in table:
        name = prefix
        unknown = sorted(
            k for k, v in table.items() if k not in _FIELDS and not isinstance(v, dict)
        )
        if unknown:
            raise UsageError(f"{origin}: prompt {name!r} has unknown key {unknown[0]!r}: "
                             f"a prompt takes {', '.join(sorted(_FIELDS))}")
        if "text" in table and "template" in table:
            raise UsageError(f"{origin}: prompt {name!r} has both text and template: keep one")
        values = {k: table.get(k) for k in _FIELDS}
        for key, value in values.items():
            if value is not None and not isinstance(value, str):
                raise UsageError(f"{origin}: prompt {name!r}: {key} must be a string")
        yield NamedPrompt(name, values["text"], values["template"], values["system"],
                          values["description"] or "", origin)
    for key, value in table.items():
        if isinstance(value, dict):
            yield from _walk(value, f"{prefix}/{key}" if prefix else key, origin)
        elif key not in _FIELDS:
            raise UsageError(f"{origin}: {prefix + '/' if prefix else ''}{key} is neither a "
                             "prompt (a table with text or template) nor a group of prompts")


def load_library(files: Sequence[Path | str] = ()) -> dict[str, NamedPrompt]:
    """Every prompt by name: built-in, then the user's file, then ``files`` (later wins)."""
    text = resources.files("promptmill.prompts").joinpath("library.toml").read_text("utf-8")
    prompts = {p.name: p for p in _walk(parse_toml(text), "", BUILTIN)}
    user = user_prompts_file()
    sources = ([user] if user.is_file() else []) + [Path(f) for f in files]
    for path in sources:
        for prompt in _walk(read_toml(path, "prompts file"), "", str(path)):
            prompts[prompt.name] = prompt
    return prompts


def get_prompt(name: str, files: Sequence[Path | str] = ()) -> NamedPrompt:
    """The prompt called ``name``; UsageError naming the closest ones if there is none."""
    library = load_library(files)
    found = library.get(name.strip().strip("/"))
    if found is not None:
        return found
    hint = did_you_mean(name, library, n=3, cutoff=0.5)
    raise UsageError(f"no prompt named {name!r} in the library{hint}: "
                     "`promptmill prompts list` shows them; add your own with --prompts-file")


__all__ = ["NamedPrompt", "get_prompt", "load_library", "user_prompts_file"]
