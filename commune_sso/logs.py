"""Log records as text or as one JSON object per line (``COMMUNE_SSO_LOG_FORMAT``), each with
the id of the request it belongs to.

The request id lives in a context variable set by the request middleware
(:mod:`commune_sso.observability`); asyncio tasks and the worker threads that
``asyncio.to_thread``/anyio start copy the context, so a record logged in a request's thread
carries its id too. :class:`RequestIdFilter` copies it onto each record on the handler, where
every logger's records pass (a filter on a logger would not see its children's records).

No secrets: what is logged is chosen where it is logged (the access line has the path without
its query string, which carries codes and tokens); nothing here adds request data.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

request_id: ContextVar[str | None] = ContextVar("commune_sso_request_id", default=None)

ACCESS_LOGGER = "commune_sso.access"
# The access line's own fields (logger.info(..., extra={...})), written as JSON members.
ACCESS_FIELDS = ("method", "path", "route", "status", "duration_ms", "client")


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on the record (``None`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (RFC 3339, UTC), level, logger, message, request_id, the
    access line's fields when present, and the exception's traceback as ``exc_info``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id.get(),
        }
        for name in ACCESS_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        # default=str: a record's argument of an odd type must not lose the line.
        return json.dumps(entry, ensure_ascii=False, default=str)


# Loggers that write secrets below INFO: Authlib's grants log every issued token at DEBUG
# ("Issue token %r to %r", authlib/oauth2/rfc6749/grants/*.py). Held at INFO whatever level
# the operator sets, so turning on DEBUG never puts bearer tokens in the log.
SECRET_BEARING_LOGGERS = ("authlib",)


def hold_secret_bearing_loggers() -> None:
    for name in SECRET_BEARING_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.INFO:  # NOTSET (0) too: it would inherit DEBUG from root
            logger.setLevel(logging.INFO)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def make_formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def logging_config(log_format: str, *, level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for a serving process, uvicorn's loggers included
    (uvicorn applies it in each worker as its ``log_config``). uvicorn's own access logger is
    left without a handler: our middleware writes the access line (uvicorn's has the query
    string, and is not JSON)."""
    formatter = "json" if log_format == "json" else "text"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {
            "json": {"()": JsonFormatter},
            "text": {"format": TEXT_FORMAT},
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": formatter,
                "filters": ["request_id"],
            }
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            # httpx logs every outgoing request's full URL at INFO (back-channel logout, the CA
            # pages' OIDC client): URLs are no place for secrets, but no line is cheaper.
            "httpx": {"handlers": [], "level": "WARNING", "propagate": True},
            "httpcore": {"handlers": [], "level": "WARNING", "propagate": True},
            **{name: {"level": "INFO"} for name in SECRET_BEARING_LOGGERS},
        },
    }
