"""The ``service`` parameter (CAS 3.0 §2.2.1): normalised once, then compared exactly with a
registered URL or matched by a registered anchored regular expression.

Normalisation is RFC 3986 §6.2.2 syntax-based normalisation and nothing more: scheme and host
lower-cased, the scheme's default port dropped, an empty path made "/", percent-encodings of
unreserved characters decoded and the others upper-cased. Whatever could make one URL look like
another is refused instead of repaired, so a look-alike never reaches a comparison: userinfo
(``https://app.example.vn@evil.example``), a backslash, whitespace or control characters,
non-ASCII text, a fragment, dot segments (also encoded ones), an encoded "/" or "\\" or NUL,
a host that is no DNS name or bracketed IP address (a trailing dot included).

Because the normalised URL always has a path, a host is always followed by ":", "/" or the
end: ``^https://app\\.example\\.vn/.*$`` cannot match ``https://app.example.vn.evil.com/``.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from core.errors import DomainError
from core.web.i18n import N_

MAX_SERVICE_URL_LENGTH = 2048
MAX_PATTERN_LENGTH = 1000
DEFAULT_PORTS = {"http": 80, "https": 443}
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Escapes that would change how a path is split or read once a service decodes it; in the
# query only NUL (an encoded "/" is common there: ?next=%2Fdocs).
REFUSED_IN_PATH = frozenset({"%2F", "%5C", "%00"})
REFUSED_IN_QUERY = frozenset({"%00"})
URL = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<authority>[^/?#]*)(?P<path>[^?#]*)"
    r"(?:\?(?P<query>[^#]*))?"
)
AUTHORITY = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^:\[\]]+)(?::(?P<port>[0-9]{1,5}))?")
DNS_NAME = re.compile(
    r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
)
IP_LITERAL = re.compile(r"\[[0-9a-f:.]+\]")
ESCAPE_OR_PERCENT = re.compile(r"%(?:[0-9A-Fa-f]{2})?")
# A registered pattern must pin the scheme (https, or http on the loopback address only).
PATTERN_START = re.compile(r"\^(?:https://|http://(?:127\\\.0\\\.0\\\.1|localhost)[:/])")
# Patterns that match these serve every site: refused as too broad.
FOREIGN_PROBES = (
    "https://evil.invalid/",
    "http://evil.invalid/",
    "https://127.0.0.1.evil.invalid/",
    "http://127.0.0.1.evil.invalid/",
    "http://localhost.evil.invalid/",
)


class InvalidServiceUrl(ValueError):
    """Not a service URL we would ever compare (the reason is for the log, not the user)."""


def _normalise_escapes(text: str, refused: frozenset[str]) -> str:
    def replace(match: re.Match[str]) -> str:
        escape = match.group(0)
        if len(escape) != 3:
            raise InvalidServiceUrl("a % that is no percent-encoding")
        upper = escape.upper()
        if upper in refused:
            raise InvalidServiceUrl(f"an encoded {upper}")
        character = chr(int(upper[1:], 16))
        return character if character in UNRESERVED else upper

    return ESCAPE_OR_PERCENT.sub(replace, text)


def normalise(url: str) -> str:
    """The canonical form of a service URL, or :class:`InvalidServiceUrl`."""
    if not url or len(url) > MAX_SERVICE_URL_LENGTH or not url.isascii():
        raise InvalidServiceUrl("empty, too long or not ASCII")
    if any(c <= " " or c == "\x7f" for c in url) or "\\" in url or "#" in url:
        raise InvalidServiceUrl("whitespace, a control character, a backslash or a fragment")
    parts = URL.fullmatch(url)
    if parts is None:
        raise InvalidServiceUrl("not an absolute URL")
    scheme = parts["scheme"].lower()
    if scheme not in DEFAULT_PORTS:
        raise InvalidServiceUrl("not http or https")
    if "@" in parts["authority"]:
        raise InvalidServiceUrl("userinfo")
    authority = AUTHORITY.fullmatch(parts["authority"])
    if authority is None:
        raise InvalidServiceUrl("a malformed host and port")
    host = authority["host"].lower()
    if not (DNS_NAME.fullmatch(host) or IP_LITERAL.fullmatch(host)):
        raise InvalidServiceUrl("not a host name")
    port_text = authority["port"]
    port = int(port_text) if port_text else DEFAULT_PORTS[scheme]
    if not 0 < port < 65536:
        raise InvalidServiceUrl("port out of range")
    path = _normalise_escapes(parts["path"], REFUSED_IN_PATH) or "/"
    if any(segment in (".", "..") for segment in path.split("/")):
        raise InvalidServiceUrl("dot segments")
    query = parts["query"]
    port_part = "" if port == DEFAULT_PORTS[scheme] else f":{port}"
    normalised = f"{scheme}://{host}{port_part}{path}"
    return f"{normalised}?{_normalise_escapes(query, REFUSED_IN_QUERY)}" if query else normalised


def is_loopback(normalised_url: str) -> bool:
    return urlsplit(normalised_url).hostname in LOOPBACK_HOSTS


def registrable_url(url: str) -> str:
    """An exact service URL for registration: normalised, https except on loopback."""
    try:
        normalised = normalise(url)
    except InvalidServiceUrl as error:
        raise DomainError(
            N_("The service URL is not valid (%(reason)s)."), field="url", reason=str(error)
        ) from error
    if normalised.startswith("http://") and not is_loopback(normalised):
        raise DomainError(
            N_("A service URL must use https (plain http only on the loopback address)."),
            field="url",
        )
    return normalised


def registrable_pattern(pattern: str) -> re.Pattern[str]:
    """A service pattern for registration: a valid regular expression anchored at both ends
    (``^...$``) that pins the scheme and does not match any site."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise DomainError(N_("The service pattern is too long."), field="pattern")
    if not (pattern.startswith("^") and pattern.endswith("$") and not pattern.endswith("\\$")):
        raise DomainError(
            N_("A service pattern must be anchored: start with ^ and end with $."), field="pattern"
        )
    if not PATTERN_START.match(pattern):
        raise DomainError(
            N_(
                "A service pattern must start with ^https:// (or ^http:// on the loopback address)."
            ),
            field="pattern",
        )
    try:
        compiled = re.compile(pattern)
    except re.error as error:
        raise DomainError(
            N_("The service pattern is not a valid regular expression (%(reason)s)."),
            field="pattern",
            reason=str(error),
        ) from error
    if any(compiled.fullmatch(probe) for probe in FOREIGN_PROBES):
        raise DomainError(N_("The service pattern matches any site."), field="pattern")
    return compiled


def with_ticket(service_url: str, ticket: str) -> str:
    """§2.2.4: the service URL with ``ticket`` appended to its query."""
    separator = "&" if "?" in service_url else "?"
    return f"{service_url}{separator}ticket={ticket}"
