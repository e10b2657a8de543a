"""How the ``commune-sso`` commands talk to the operator: the consoles and their width, the
``--json`` option, JSON on stdout, and refusals as one line on stderr with an exit code (never a
traceback).

Shared by ``commune_sso.cli`` and the ``ca`` group in ``commune_sso.ca_cli``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import typer
import typer.rich_utils
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from core.errors import ConfigurationError, DomainError
from keys.errors import KeyRingError, SigningKeyError

console = Console()
err_console = Console(stderr=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
# The actor the audit log records for what an operator does on the command line.
CLI_ACTOR = "cli"
# Columns of help and tables when stdout is no terminal (a pipe, a file, CI): rich would fall
# back to 80 and wrap every description over several lines. On a terminal rich measures it.
PIPED_WIDTH = 200


def fit_width_to_stdout() -> None:
    """Help (typer's rich console, built per help page from ``MAX_WIDTH``) and our tables at the
    terminal's width, or at :data:`PIPED_WIDTH` when stdout is no terminal; decided when a run
    starts, for the stdout of that run."""
    if sys.stdout.isatty():
        typer.rich_utils.MAX_WIDTH = None
        return
    typer.rich_utils.MAX_WIDTH = PIPED_WIDTH
    console.width = PIPED_WIDTH


class CommandLine(TyperGroup):
    """The ``commune-sso`` group: the output width is fitted before anything is printed, help
    included (``--help`` is answered while the arguments are parsed, before any callback)."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        fit_width_to_stdout()
        return super().main(*args, **kwargs)


def fail(message: str, code: int = 1) -> NoReturn:
    # Messages can quote settings values; "[...]" in them is text, not rich markup.
    # soft_wrap: one line whatever the width, as a log collector shows it.
    err_console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def emit(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


@contextmanager
def clean_errors() -> Iterator[None]:
    """Refusals and key problems become a message and exit code 1, never a traceback."""
    try:
        yield
    except DomainError as error:
        fail(error.text())
    except (ConfigurationError, SigningKeyError, KeyRingError) as error:
        fail(str(error))
