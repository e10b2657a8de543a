"""Device cookies (OWASP "Slow Down Online Guessing Attacks with Device Cookies"): a browser
that signed in to an account gets a cookie naming that account and a random device id, sealed
under the server secret (AES-GCM: nobody can forge one or read which accounts it names). With
it, that browser's failed attempts at that account are counted on a budget of its own
(:mod:`idp.login_throttle`), so a stranger guessing from elsewhere never stops the official.

One cookie per browser holds the last few accounts signed in on it: a commune office often
shares one computer.
"""

from __future__ import annotations

import json
import secrets

from core.sealed_values import SealError, open_sealed, seal
from core.settings import Settings
from idp.login_throttle import normalised_name

PURPOSE = b"commune-sso device cookie v1"
BOUND_TO = b"device"
MAX_ACCOUNTS = 5
MAX_COOKIE_LENGTH = 2048


def cookie_name(settings: Settings) -> str:
    # The __Host- prefix pins the cookie to this host, https and path "/" (RFC 6265bis).
    return "__Host-sso_device" if settings.issuer_is_https else "sso_device"


def devices_in(cookie_value: str | None, *, server_secret: bytes) -> list[tuple[str, str]]:
    """(account name, device id) pairs of a cookie we sealed, most recent first; [] for a
    missing, forged or unreadable one."""
    if not cookie_value or len(cookie_value) > MAX_COOKIE_LENGTH:
        return []
    try:
        plain = open_sealed(
            cookie_value, server_secret=server_secret, purpose=PURPOSE, bound_to=BOUND_TO
        )
        entries = json.loads(plain)
    except (SealError, ValueError):
        return []
    if not isinstance(entries, list):
        return []
    return [
        (str(entry[0]), str(entry[1]))
        for entry in entries
        if isinstance(entry, list) and len(entry) == 2
    ]


def device_for(cookie_value: str | None, *, server_secret: bytes, username: str) -> str | None:
    """The device id this browser holds for ``username``, if it signed in to it before."""
    name = normalised_name(username)
    return next(
        (
            device
            for owner, device in devices_in(cookie_value, server_secret=server_secret)
            if owner == name
        ),
        None,
    )


def remembered(cookie_value: str | None, *, server_secret: bytes, username: str) -> str:
    """The cookie after a successful sign-in to ``username``: its device id kept (or a new
    one), moved first; the oldest accounts beyond :data:`MAX_ACCOUNTS` dropped."""
    name = normalised_name(username)
    entries = devices_in(cookie_value, server_secret=server_secret)
    device = next((d for owner, d in entries if owner == name), None) or secrets.token_urlsafe(16)
    others = [[o, d] for o, d in entries if o != name][: MAX_ACCOUNTS - 1]
    kept = [[name, device], *others]
    return seal(
        json.dumps(kept, separators=(",", ":")).encode("utf-8"),
        server_secret=server_secret,
        purpose=PURPOSE,
        bound_to=BOUND_TO,
    )
