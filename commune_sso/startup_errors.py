"""Start-up failures as one line naming the cause and the setting to change, exit code 2.

An operator reads ``docker logs`` or the journal: the cause must be on the line they see, not
at the bottom of a 300-line traceback (issue 14).
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import ValidationError

from commune_sso.cli_output import fail
from commune_sso.server_errors import database_cause
from core.db import is_database_unavailable
from core.errors import ConfigurationError, DomainError
from core.settings import Settings
from keys.errors import KeyRingError, SigningKeyError, WrongPassphrase

STARTUP_FAILURE = 2
_WRITE_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT})


def settings_error_line(error: ValidationError) -> str:
    """pydantic's multi-line report as one line, with the environment variable of each field."""
    parts = []
    for problem in error.errors():
        location = problem.get("loc") or ()
        message = problem.get("msg", "invalid")
        if location:
            parts.append(f"COMMUNE_SSO_{str(location[0]).upper()}: {message}")
        else:
            parts.append(message)
    return "invalid settings: " + "; ".join(parts)


def _within(path: Path, directory: Path) -> bool:
    try:
        path.absolute().relative_to(directory.absolute())
    except ValueError:
        return False
    return True


def os_error_line(error: OSError, settings: Settings) -> str:
    """``cannot write to key dir /x (COMMUNE_SSO_KEY_DIR): Permission denied: /x/.lock``."""
    filename = Path(str(error.filename)) if error.filename is not None else None
    places = [
        ("key dir", settings.resolved_key_dir, "COMMUNE_SSO_KEY_DIR"),
        ("CA key dir", settings.resolved_ca_key_dir, "COMMUNE_SSO_CA_KEY_DIR"),
        ("var dir", settings.var_dir, "COMMUNE_SSO_VAR_DIR"),
    ]
    verb = "write to" if error.errno in _WRITE_ERRNOS else "use"
    reason = error.strerror or type(error).__name__
    for name, directory, setting in places:
        if filename is not None and _within(filename, directory):
            where = f": {filename}" if filename.absolute() != directory.absolute() else ""
            return f"cannot {verb} {name} {directory} ({setting}): {reason}{where}"
    return f"cannot {verb} {filename or 'a file'}: {reason}"


@contextmanager
def startup_errors(settings: Settings) -> Iterator[None]:
    """What start-up raises for reasons outside the code becomes one line and exit code 2."""
    try:
        yield
    except WrongPassphrase as error:
        fail(f"{error} (COMMUNE_SSO_KEY_PASSPHRASE)", STARTUP_FAILURE)
    except (ConfigurationError, KeyRingError, SigningKeyError) as error:
        fail(str(error), STARTUP_FAILURE)
    except DomainError as error:
        fail(error.text(), STARTUP_FAILURE)
    except OSError as error:
        fail(os_error_line(error, settings), STARTUP_FAILURE)
    except Exception as error:
        if not is_database_unavailable(error):
            raise
        fail(
            f"cannot reach the database (COMMUNE_SSO_DATABASE_URL): {database_cause(error)}",
            STARTUP_FAILURE,
        )
