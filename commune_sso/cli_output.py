"""How the ``commune-sso`` commands talk to the operator: the consoles, the ``--json`` option,
JSON on stdout, and refusals as one line on stderr with an exit code (never a traceback).

Shared by ``commune_sso.cli`` and the ``ca`` group in ``commune_sso.ca_cli``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from core.errors import ConfigurationError, DomainError
from keys.errors import KeyRingError, SigningKeyError

console = Console()
err_console = Console(stderr=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
# The actor the audit log records for what an operator does on the command line.
CLI_ACTOR = "cli"


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
