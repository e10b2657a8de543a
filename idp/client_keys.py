"""A client's public keys: a JWK Set registered with it (``jwks``) or published at its
``jwks_uri`` (RFC 7591 §2, OIDC Core §10.1.1). They verify its private_key_jwt client
assertions (RFC 7523 §2.2) and its signed request objects (RFC 9101 §6.2).

Only public asymmetric keys are accepted at registration: a symmetric key ("oct") would make
the client's "signature" a shared secret, and a private member ("d") means the app's private
key left the app. A ``jwks_uri`` is fetched when first needed and kept per worker for
:data:`JWKS_URI_TTL`; a signature by a key the copy does not hold fetches it again (the app
rotated), at most once per :data:`REFETCH_AFTER`.
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from core.web.i18n import N_
from core.web.json_body import JsonBodyError, parse_json_body

if TYPE_CHECKING:
    from idp.clients import FieldProblem

ASYMMETRIC_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
MAX_KEYS = 20
MAX_JWKS_BYTES = 64 * 1024
JWKS_URI_TTL = 300.0
REFETCH_AFTER = 10.0
FETCH_TIMEOUT = httpx.Timeout(5.0, connect=3.0)

JWKS_NOT_A_SET = N_('The JWK Set must be a JSON object with a "keys" list of 1 to 20 keys.')
JWKS_PRIVATE = N_("The JWK Set must hold only public keys (RSA, EC or OKP), never private ones.")
JWKS_UNREADABLE = N_("A key of the JWK Set cannot be read: %(reason)s")


class ClientKeysUnavailable(Exception):
    """The client's jwks_uri did not give a usable JWK Set (the reason is for the log)."""


def jwks_problem(document: Any, field: str = "jwks") -> FieldProblem | None:
    """What is wrong with a JWK Set a client registers, or None."""
    from idp.clients import FieldProblem  # the registration rules import this module

    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        return FieldProblem(field, JWKS_NOT_A_SET)
    keys = document["keys"]
    if not 1 <= len(keys) <= MAX_KEYS or not all(isinstance(key, dict) for key in keys):
        return FieldProblem(field, JWKS_NOT_A_SET)
    for key in keys:
        if key.get("kty") not in ASYMMETRIC_KEY_TYPES or PRIVATE_MEMBERS & key.keys():
            return FieldProblem(field, JWKS_PRIVATE)
    try:
        KeySet.import_key_set(document)  # type: ignore[arg-type]  # checked just above
    except (JoseError, ValueError, TypeError) as error:
        return FieldProblem(field, JWKS_UNREADABLE, {"reason": str(error)[:200]})
    return None


def parse_jwks_text(text: str) -> Any:
    """The JSON document an administrator pasted or gave in a file (None when it is not JSON:
    :func:`jwks_problem` then says so)."""
    try:
        return parse_json_body(text.encode("utf-8"), max_bytes=MAX_JWKS_BYTES)
    except (JsonBodyError, UnicodeEncodeError):
        return None


def key_set_of(document: dict[str, Any]) -> KeySet:
    """The verification keys of a registered (already checked) JWK Set; keys marked for
    encryption only (``use: enc``) are left out."""
    keys = [key for key in document["keys"] if key.get("use", "sig") == "sig"]
    return KeySet.import_key_set({"keys": keys})


class ClientKeyCache:
    """Per worker: the JWK Sets fetched from clients' ``jwks_uri``s."""

    def __init__(self) -> None:
        self._sets: dict[str, tuple[float, KeySet]] = {}
        self._lock = threading.Lock()

    def key_set(
        self, *, jwks: dict[str, Any] | None, jwks_uri: str | None, refresh: bool = False
    ) -> KeySet:
        """The client's keys; ``refresh``: a signature named a key the copy does not hold."""
        if jwks is not None:
            return key_set_of(jwks)
        if jwks_uri is None:
            raise ClientKeysUnavailable("the client registered no keys")
        now = time.monotonic()
        cached = self._sets.get(jwks_uri)
        if cached is not None:
            age = now - cached[0]
            if age < JWKS_URI_TTL and not (refresh and age >= REFETCH_AFTER):
                return cached[1]
        fetched = fetch_jwks(jwks_uri)
        with self._lock:
            self._sets[jwks_uri] = (now, fetched)
        return fetched


def fetch_jwks(jwks_uri: str) -> KeySet:
    """GET the JWK Set (no redirects, bounded, timed out), checked like a registered one."""
    try:
        with httpx.Client(timeout=FETCH_TIMEOUT, follow_redirects=False) as http:
            response = http.get(jwks_uri, headers={"Accept": "application/json"})
    except httpx.HTTPError as error:
        raise ClientKeysUnavailable(f"{jwks_uri}: {type(error).__name__}") from None
    if response.status_code != 200:
        raise ClientKeysUnavailable(f"{jwks_uri}: HTTP {response.status_code}")
    try:
        document = parse_json_body(response.content, max_bytes=MAX_JWKS_BYTES)
    except JsonBodyError:
        raise ClientKeysUnavailable(f"{jwks_uri}: not JSON") from None
    problem = jwks_problem(document)
    if problem is not None:
        raise ClientKeysUnavailable(f"{jwks_uri}: {problem.text()}")
    return key_set_of(document)


def jwks_text(document: dict[str, Any] | None) -> str:
    """A registered JWK Set as the admin page shows it."""
    return json.dumps(document, indent=2, ensure_ascii=False) if document else ""
