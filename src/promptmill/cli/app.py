"""The command group and the entry point; the commands live in the modules beside this one."""

from __future__ import annotations

import sys
from typing import Any

import click

from promptmill.errors import PromptmillError
from promptmill.redaction import redact_secrets as redact

# Arguments of this invocation (main's argv), for the resume hint.
ARGV: list[str] = []


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="promptmill")
def cli() -> None:
    """Run LLM generation jobs over datasets: rate-limited, resumable, exactly once."""


def main(argv: list[str] | None = None) -> Any:
    """Entry point: user errors become one line on stderr and a non-zero exit."""
    ARGV[:] = sys.argv[1:] if argv is None else list(argv)
    try:
        return cli.main(args=argv, prog_name="promptmill", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        message = exc.format_message()
        if redact(message) != message:  # a key echoed back in an option's value
            click.echo(f"Error: {redact(message)}", err=True)
        else:
            exc.show()
        sys.exit(exc.exit_code)
    except PromptmillError as exc:
        click.echo(redact(f"error: {exc}"), err=True)
        sys.exit(exc.exit_code)
    except Exception:
        # A bug: the traceback is what a report needs, but it may quote a key (a request's
        # headers, a local variable in a message): print it redacted.
        import traceback

        click.echo(redact(traceback.format_exc()), err=True)
        sys.exit(1)

