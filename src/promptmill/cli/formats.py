"""``formats list|show``: the chat formats promptmill renders for models fed raw text."""

from __future__ import annotations

import click

from promptmill.cli.app import cli


@cli.group("formats")
def formats() -> None:
    """Chat formats (chat_format=NAME, or detected from the model name)."""


@formats.command("list")
def list_formats() -> None:
    """List the chat formats."""
    from promptmill.prompts.formats import FORMATS

    width = max(map(len, FORMATS))
    for name, chat_format in FORMATS.items():
        click.echo(f"{name:<{width}}  {chat_format.description}")


@formats.command("show")
@click.argument("name")
@click.option("--system", default="You are a helpful assistant.", show_default=True,
              help="The system prompt of the example.")
@click.option("--user", default="What is 2+2?", show_default=True,
              help="The user message of the example.")
def show_format(name: str, system: str, user: str) -> None:
    """Describe format NAME and print an example prompt exactly as it is written."""
    from promptmill.prompts.formats import get_format

    chat_format = get_format(name, where="format")
    messages = [{"role": "user", "content": user}]
    if system:
        messages.insert(0, {"role": "system", "content": system})
    click.echo(f"name     {chat_format.name}")
    click.echo(f"about    {chat_format.description}")
    click.echo(f"source   {chat_format.source}")
    click.echo(f"bos      {chat_format.bos!r} (left to the engine, which adds it as a token)")
    click.echo(f"stop     {', '.join(map(repr, chat_format.stop)) or '-'}")
    click.echo("example (repr, so that every space and newline shows):")
    click.echo(repr(chat_format.render(messages)))
