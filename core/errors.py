"""Typed domain errors, rendered in one place (CONVENTIONS §3).

``message`` is what the user may read (translatable msgid); the internal cause goes to the log.
"""

from __future__ import annotations

from collections.abc import Callable


class DomainError(Exception):
    """A refused request that is the caller's fault, never a 500."""

    status_code = 400
    code = "invalid_input"

    def __init__(self, message: str, *, field: str | None = None, **params: object) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.params = params

    def text(self, translate: Callable[[str], str] = str) -> str:
        """The message, translated, with its ``%(name)s`` parameters filled in.

        Translate first, then fill: the catalogues hold the msgid with its placeholders.
        """
        translated = translate(self.message)
        try:
            return translated % self.params if self.params else translated
        except (KeyError, ValueError, TypeError):
            return translated


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class Conflict(DomainError):
    status_code = 409
    code = "conflict"


class PermissionDenied(DomainError):
    status_code = 403
    code = "forbidden"


class ConfigurationError(Exception):
    """The service cannot start with these settings; the message says what to change."""
