"""``models list|alias``: the providers this installation knows and the user's aliases."""

from __future__ import annotations

import click

from promptmill.cli.app import cli


@cli.group("models")
def models() -> None:
    """Providers and model aliases (-m NAME)."""


@models.command("list")
def list_models() -> None:
    """List the built-in providers, the built-in aliases and yours."""
    from promptmill.aliases import BUILTIN_ALIASES, aliases_file, user_aliases
    from promptmill.generators import known_providers

    click.echo("providers: " + ", ".join(f"{p}!" for p in sorted(known_providers())))
    click.echo("built-in aliases:")
    for name, target in BUILTIN_ALIASES.items():
        click.echo(f"  {name:<14} {target}  (the embedded SmolLM2-135M-Instruct, the default)")
    mine = user_aliases()
    click.echo(f"your aliases ({aliases_file()}):" + ("" if mine else " none yet"))
    for name, target in sorted(mine.items()):
        click.echo(f"  {name:<14} {target}")


@models.command("alias")
@click.argument("name")
@click.argument("identifier", required=False)
@click.option("--remove", is_flag=True, help="Remove alias NAME instead.")
def alias(name: str, identifier: str | None, remove: bool) -> None:
    """Make NAME stand for IDENTIFIER (e.g. beluga7b
    "vllm!stabilityai/StableBeluga-7B,max_model_len=2048"); never give it a key."""
    from promptmill.aliases import add_alias, remove_alias
    from promptmill.errors import UsageError

    if remove:
        click.echo(f"removed {name} from {remove_alias(name)}", err=True)
        return
    if identifier is None:
        raise UsageError("models alias NAME IDENTIFIER: give the identifier NAME stands for")
    path = add_alias(name, identifier)
    click.echo(f"{name} = {identifier} (in {path})", err=True)
