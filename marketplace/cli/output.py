"""Where the commands print, and how a command's failure becomes one line and an exit code."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer
from rich.console import Console
from rich.text import Text

console = Console()
err_console = Console(stderr=True)


class CliError(Exception):
    """A failure to report in one line and exit with ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@contextlib.contextmanager
def reported() -> Iterator[None]:
    """Turn a CliError into a message on stderr and an exit code."""
    try:
        yield
    except CliError as exc:
        # The message is plain text (it may quote paths like "[/tmp/x]"), never rich markup.
        err_console.print(
            Text.assemble(("error: ", "bold red"), exc.message), soft_wrap=True, highlight=False
        )
        raise typer.Exit(exc.code) from None
