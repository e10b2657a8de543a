"""Typed domain errors, rendered in one place (CONVENTIONS §3).

``message`` is what the user may read (translatable msgid); the internal cause goes to the log.
"""

from __future__ import annotations

from collections.abc import Callable


class Phrase(str):
    """A parameter that is itself a msgid, e.g. a status's label (``idp.labels``): translated
    with the message it fills, so a stored code never reaches the reader untranslated."""

    __slots__ = ()


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
        :class:`Phrase` parameters are translated too. ``field`` fills ``%(field)s`` as well
        ("The field %(field)s is required."): it is a parameter the renderers also show apart.
        """
        translated = translate(self.message)
        given = self.params if self.field is None else {"field": self.field, **self.params}
        params = {
            name: translate(value) if isinstance(value, Phrase) else value
            for name, value in given.items()
        }
        try:
            return translated % params if params else translated
        except (KeyError, ValueError, TypeError):
            return translated

    def __str__(self) -> str:
        # Logs, tracebacks and pytest.raises(match=...) read the English with its values filled.
        return self.text()


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
