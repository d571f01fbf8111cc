"""``prompts list|show``: the prompt library (built-in, the user's file, --prompts-file)."""

from __future__ import annotations

from pathlib import Path

import click

from promptmill.cli.app import cli

_FILES = click.option("--prompts-file", "prompts_files", multiple=True,
                      type=click.Path(dir_okay=False, path_type=Path),
                      help="A TOML file of your own prompts (as for run --prompts-file).")


@cli.group("prompts")
def prompts() -> None:
    """The prompt library for `run --prompt NAME`."""


@prompts.command("list")
@_FILES
def list_prompts(prompts_files: tuple[Path, ...]) -> None:
    """List every prompt with where it comes from."""
    from promptmill.prompts.library import load_library, user_prompts_file

    library = load_library(prompts_files)
    width = max(map(len, library))
    for name, prompt in sorted(library.items()):
        origin = "" if prompt.origin == "built-in" else f"  [{prompt.origin}]"
        click.echo(f"{name:<{width}}  {prompt.summary()}{origin}")
    click.echo(f"\nyour own prompts: {user_prompts_file()} or --prompts-file FILE", err=True)


@prompts.command("show")
@click.argument("name")
@_FILES
def show_prompt(name: str, prompts_files: tuple[Path, ...]) -> None:
    """Print prompt NAME in full."""
    from promptmill.prompts.library import get_prompt

    prompt = get_prompt(name, prompts_files)
    click.echo(f"name        {prompt.name}")
    click.echo(f"from        {prompt.origin}")
    if prompt.description:
        click.echo(f"about       {prompt.description}")
    if prompt.system is not None:
        click.echo(f"system      {prompt.system!r}")
    if prompt.text is not None:
        click.echo(f"text        {prompt.text!r} (then the row's prompt field)")
    else:
        click.echo("template    (Jinja2 over the row's fields)")
        click.echo(prompt.template or "")
