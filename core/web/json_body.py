"""One bounded reader for every JSON request body (RFC 8259), and the text check shared with
query strings, paths and forms.

``json.loads`` recurses once per nesting level: ``[[[[...`` a few thousand deep raises
``RecursionError`` (a 500) before any validation runs. Size and depth are therefore checked on
the raw bytes first, without recursion and in C-speed passes, and only then is the body parsed.
After parsing, strings must be text a database can store and a serialiser can write: a lone
surrogate (``"\\ud800"``, a valid JSON escape) cannot be encoded as UTF-8, and PostgreSQL
refuses NUL (``"\\u0000"``) in ``text``; both are refused here, so a caller gets its endpoint's
400 instead of a 500 deep inside a store.
"""

from __future__ import annotations

import json
import re
from typing import Any

DEFAULT_MAX_DEPTH = 32

# A JSON string, escapes included (the unrolled form: linear, no backtracking).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# Every byte that is not a bracket, for bytes.translate(delete=...).
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_CURLY_TO_SQUARE = bytes.maketrans(b"{}", b"[]")
# Escapes that can produce NUL or half of a surrogate pair; without them no walk is needed.
_SUSPICIOUS_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class JsonBodyError(ValueError):
    """Why a body was refused; ``reason`` is one of the class constants."""

    TOO_LARGE = "too_large"
    TOO_DEEP = "too_deep"
    SYNTAX = "syntax"
    UNSTORABLE_TEXT = "unstorable_text"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def is_storable_text(text: str) -> bool:
    """False for text holding NUL or a lone surrogate: PostgreSQL refuses the first, UTF-8
    cannot encode the second (a well-formed pair is one code point in a Python str)."""
    return _UNSTORABLE.search(text) is None


def nesting_problem(raw: bytes, max_depth: int) -> str | None:
    """``TOO_DEEP`` if arrays and objects nest deeper than ``max_depth`` outside strings,
    ``SYNTAX`` if their brackets do not balance, else None.

    Each pass removes every innermost ``[]`` pair, so a document of depth d vanishes after d
    passes. Unbalanced input never reaches the parser either: ``[[[[...`` recurses in it
    before it notices the missing ``]``.
    """
    brackets = _STRING.sub(b"", raw).translate(_CURLY_TO_SQUARE, _NOT_BRACKETS)
    for _ in range(max_depth):
        if not brackets:
            return None
        reduced = brackets.replace(b"[]", b"")
        if reduced == brackets:
            return JsonBodyError.SYNTAX
        brackets = reduced
    if not brackets:
        return None
    # Deeper than allowed, or unbalanced: either way refused before parsing.
    return JsonBodyError.TOO_DEEP if b"[]" in brackets else JsonBodyError.SYNTAX


def _refuse_constant(name: str) -> Any:
    # NaN and Infinity are not JSON (RFC 8259 §6) and cannot be stored or signed back.
    raise ValueError(f"{name} is not a JSON number")


def _first_unstorable(document: Any) -> bool:
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not is_storable_text(item):
                return True
        elif isinstance(item, dict):
            for key, value in item.items():
                if not is_storable_text(key):
                    return True
                stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    return False


def parse_json_body(raw: bytes, *, max_bytes: int, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """The document in ``raw``, or :class:`JsonBodyError` (never ``RecursionError``).

    UTF-8 only (RFC 8259 §8.1): undecodable bytes, and with them raw surrogate bytes, are a
    syntax error.
    """
    if len(raw) > max_bytes:
        raise JsonBodyError(JsonBodyError.TOO_LARGE, "The request body is too large.")
    problem = nesting_problem(raw, max_depth)
    if problem == JsonBodyError.TOO_DEEP:
        raise JsonBodyError(problem, f"The JSON body nests deeper than {max_depth} levels.")
    if problem is not None:
        raise JsonBodyError(problem, "The request body is not valid JSON.")
    try:
        document = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError included
        raise JsonBodyError(JsonBodyError.SYNTAX, "The request body is not valid JSON.") from None
    if _SUSPICIOUS_ESCAPE.search(raw) and _first_unstorable(document):
        raise JsonBodyError(
            JsonBodyError.UNSTORABLE_TEXT,
            "The request body holds a NUL character or a lone surrogate.",
        )
    return document
