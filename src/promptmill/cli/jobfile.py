"""Job files: ``run --config job.toml`` reads run options, ``--save-config`` writes them.

A job file holds any ``run`` option under its long name (``-`` or ``_`` alike) and the
input as ``input``; generation parameters go in a ``params`` table::

    input = "hf:cais/mmlu:all@test"
    model = "openai!gpt-4o-mini"
    k = 5
    limit = 100
    params = { temperature = 0.7, max_tokens = 512 }

Options given on the command line win over the file (``--param`` per parameter). Saved
files never hold a key: an identifier's ``api_key`` is written as ``***``, which means
"from the environment" when read back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from promptmill.errors import UsageError, did_you_mean

# Options that act once (or describe output), never saved; --config/--save-config themselves.
_NOT_SAVED = frozenset({"config", "save_config", "new_job", "retry_failed", "dry_run",
                        "verbose", "quiet"})


def file_name(param: click.Parameter) -> str:
    """An option's name in a job file: its long flag (``prompt``, ``max_prompt_tokens``),
    ``input`` for INPUT, ``params`` for --param."""
    if isinstance(param, click.Argument):
        return "input"
    if param.name == "param_items":
        return "params"
    flags = [o for o in param.opts if o.startswith("--")]
    return max(flags, key=len)[2:].replace("-", "_") if flags else str(param.name)


def apply_job_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> Any:
    """``--config`` callback: the file's options become the command's defaults."""
    if value is None:
        return None
    from promptmill.userconfig import read_toml

    options = read_toml(value, "job file")
    known = {file_name(p): p for p in ctx.command.params if p.name not in _NOT_SAVED}
    defaults: dict[str, Any] = {}
    for key, raw in options.items():
        target = known.get(key.replace("-", "_"))
        if target is None or target.name is None:
            raise UsageError(
                f"job file {value}: unknown option {key!r}{did_you_mean(key, known)}: a job "
                "file takes "
                f"{', '.join(sorted(known))}"
            )
        name = target.name
        if name == "param_items":
            ctx.meta["job_file_params"] = _params(value, raw)
            continue
        multiple = getattr(target, "multiple", False)
        if multiple and isinstance(raw, str):
            raw = [raw]
        if isinstance(raw, dict) or (isinstance(raw, list) and not multiple):
            raise UsageError(f"job file {value}: {key} must be a single value")
        defaults[name] = [str(v) for v in raw] if multiple else raw
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


def _params(path: Path, raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return dict(raw)
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        from promptmill.cli.jobs import parse_param

        return parse_param(tuple(raw))
    raise UsageError(f"job file {path}: params must be a table, e.g. "
                     "params = { temperature = 0.7 }")


def save_job_file(path: Path, command: click.Command, options: dict[str, Any],
                  params: dict[str, Any]) -> None:
    """Write the effective ``run`` options to ``path`` as a job file (no key, ever)."""
    from promptmill.identifiers import parse_identifier
    from promptmill.redaction import redact_secrets
    from promptmill.userconfig import format_toml_value, toml_key

    names = {p.name: file_name(p) for p in command.params}
    lines = ["# promptmill job file: promptmill run --config " + path.name]
    for name, value in options.items():
        if name in _NOT_SAVED or value is None or value == () or name == "param_items":
            continue
        if name == "model" and "api_key" in str(value):  # api_key=***
            value = tuple(parse_identifier(str(v)).format() for v in value) \
                if isinstance(value, tuple) else parse_identifier(str(value)).format()
        if isinstance(value, Path):
            value = str(value)
        if isinstance(value, tuple):
            value = [str(v) for v in value]
        lines.append(f"{toml_key(names.get(name, name))} = {format_toml_value(value)}")
    if params:
        lines.append(f"params = {format_toml_value(params)}")
    text = redact_secrets("\n".join(lines) + "\n")
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--save-config {path}: cannot write it ({exc.strerror})") from None
