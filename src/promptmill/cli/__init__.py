"""The command line: parse, call the library, print. Nothing heavy is imported at start.

One module per command group; importing them registers their commands on :data:`cli`.
"""

from promptmill.cli import (  # noqa: F401 - registers the commands
    batch,
    cache,
    formats,
    grading,
    jobs,
    models,
    prompts,
    report,
    serve,
    testing,
)
from promptmill.cli.app import cli, main

__all__ = ["cli", "main"]
