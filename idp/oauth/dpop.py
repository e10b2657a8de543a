"""DPoP proofs, RFC 9449: checked at the token endpoint (§5) and at the resource endpoints
that accept our access tokens (§7), with server nonces (§8, §9).

A proof is a JWT the client signs with the key it holds: we check (§4.3) that there is one
``DPoP`` header, ``typ`` is ``dpop+jwt``, ``alg`` is in :data:`DPOP_ALGORITHMS` (asymmetric
only), ``jwk`` is a public key (no private members) that verifies the signature, ``htm`` is the
request's method, ``htu`` the endpoint's URL as we publish it (scheme and host compared without
case, the default port dropped, no query or fragment), ``iat`` within :data:`IAT_WINDOW`
seconds of now, ``ath`` the hash of the access token when one is presented, the ``nonce`` one
we issued recently (when :attr:`Settings.dpop_nonce_required`), and its ``jti`` used once per
key, in the database replay cache shared by every worker and host (:mod:`idp.replay_cache`).

Nonces are stateless: an HMAC, under the server secret, of a window number; a nonce is good
for its window and the next (:data:`NONCE_WINDOW` seconds each), on every host.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry
from sqlalchemy.orm import Session

from idp import replay_cache
from idp.runtime import IdpRuntime

DPOP_ALGORITHMS = ("ES256", "PS256", "EdDSA", "RS256")
IAT_WINDOW = 60
NONCE_WINDOW = 120
MAX_PROOF_LENGTH = 8192
MAX_JTI_LENGTH = 256
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
DEFAULT_PORTS = {"http": 80, "https": 443}


class DpopError(Exception):
    """A proof refused: ``error`` is ``invalid_dpop_proof`` or ``use_dpop_nonce`` (§12.2)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def invalid(description: str) -> DpopError:
    return DpopError("invalid_dpop_proof", description)


@dataclass(frozen=True)
class DpopProof:
    jkt: str  # RFC 7638 SHA-256 thumbprint of the proof's key (the token's cnf.jkt, §6.1)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def access_token_hash(token: str) -> str:
    """``ath`` (§4.2): base64url of the SHA-256 of the access token's ASCII bytes."""
    return b64url(hashlib.sha256(token.encode("ascii", "replace")).digest())


def normalised_uri(uri: str) -> str | None:
    """§4.3 item 9, RFC 3986 §6.2.2-6.2.3: scheme and host lowercased, default port dropped,
    without query and fragment."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in DEFAULT_PORTS or not parts.hostname:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path or '/'}"


def _nonce_mac(secret: bytes, window: int) -> bytes:
    return hmac.new(secret, b"dpop-nonce:" + window.to_bytes(8, "big"), hashlib.sha256).digest()


def new_nonce(runtime: IdpRuntime) -> str:
    """A nonce for the DPoP-Nonce header (§8.1, §9.1)."""
    window = int(runtime.clock.now().timestamp()) // NONCE_WINDOW
    return b64url(window.to_bytes(8, "big") + _nonce_mac(runtime.server_secret, window)[:16])


def nonce_header(runtime: IdpRuntime) -> dict[str, str]:
    return {"DPoP-Nonce": new_nonce(runtime)}


def is_current_nonce(runtime: IdpRuntime, nonce: Any) -> bool:
    if not isinstance(nonce, str) or len(nonce) > 64:
        return False
    try:
        raw = _b64decode(nonce)
    except ValueError:
        return False
    if len(raw) != 24:
        return False
    window = int.from_bytes(raw[:8], "big")
    current = int(runtime.clock.now().timestamp()) // NONCE_WINDOW
    if window not in (current, current - 1):
        return False
    return hmac.compare_digest(raw[8:], _nonce_mac(runtime.server_secret, window)[:16])


def _header(proof: str) -> dict[str, Any]:
    if len(proof) > MAX_PROOF_LENGTH or proof.count(".") != 2:
        raise invalid("The DPoP proof is not a compact JWS.")
    try:
        header = json.loads(_b64decode(proof.split(".")[0]))
    except (ValueError, UnicodeError, RecursionError):  # json.loads recurses (PITFALLS)
        raise invalid("The DPoP proof's header cannot be read.") from None
    if not isinstance(header, dict):
        raise invalid("The DPoP proof's header is not an object.")
    return header


def verify_bound_request(
    runtime: IdpRuntime,
    session: Session,
    *,
    token_claims: dict[str, Any],
    access_token: str,
    proofs: list[str],
    method: str,
    url: str,
) -> None:
    """RFC 9449 §7.1 at a protected resource (userinfo, the CA API): a proof for this request,
    with ``ath`` of the token, made with the key the token is bound to; else DpopError."""
    proof = verify_proof(
        runtime, session, proofs=proofs, method=method, url=url, access_token=access_token
    )
    confirmation = token_claims.get("cnf")
    if not isinstance(confirmation, dict) or confirmation.get("jkt") != proof.jkt:
        raise DpopError("invalid_token", "The access token is not bound to this DPoP key.")


def verify_proof(
    runtime: IdpRuntime,
    session: Session,
    *,
    proofs: list[str],
    method: str,
    url: str,
    access_token: str | None = None,
) -> DpopProof:
    """The proof's key thumbprint, or :class:`DpopError`. ``url``: the endpoint's URL as we
    publish it (``settings.endpoint(path)``), not the one the proxy forwarded."""
    if len(proofs) != 1:
        raise invalid("Send exactly one DPoP header.")
    proof = proofs[0].strip()
    header = _header(proof)
    if header.get("typ") != "dpop+jwt":
        raise invalid("The DPoP proof's typ must be dpop+jwt.")
    alg = header.get("alg")
    if alg not in DPOP_ALGORITHMS:
        raise invalid(f"The DPoP proof must be signed with one of {', '.join(DPOP_ALGORITHMS)}.")
    jwk = header.get("jwk")
    if not isinstance(jwk, dict) or PRIVATE_MEMBERS & jwk.keys():
        raise invalid("The DPoP proof's jwk must be a public key.")
    if jwk.get("kty") not in ("RSA", "EC", "OKP"):
        raise invalid("The DPoP proof's jwk must be an asymmetric key.")
    try:
        key = JWKRegistry.import_key(jwk)
        verified = jws.deserialize_compact(proof, key, algorithms=[alg])
        claims = json.loads(verified.payload)
        jkt = key.thumbprint()
    except (JoseError, ValueError, TypeError, RecursionError):
        raise invalid("The DPoP proof's signature does not verify with its jwk.") from None
    if not isinstance(claims, dict):
        raise invalid("The DPoP proof's payload is not an object.")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_LENGTH:
        raise invalid("The DPoP proof has no usable jti.")
    if claims.get("htm") != method:
        raise invalid("The DPoP proof's htm is not this request's method.")
    htu = claims.get("htu")
    if not isinstance(htu, str) or normalised_uri(htu) != normalised_uri(url):
        raise invalid("The DPoP proof's htu is not this endpoint's URL.")
    now = runtime.clock.now()
    iat = claims.get("iat")
    if isinstance(iat, bool) or not isinstance(iat, int | float):
        raise invalid("The DPoP proof has no iat.")
    if abs(now.timestamp() - iat) > IAT_WINDOW:
        raise invalid("The DPoP proof's iat is too far from the server's time.")
    if access_token is not None and not hmac.compare_digest(
        str(claims.get("ath", "")).encode("utf-8"), access_token_hash(access_token).encode("ascii")
    ):
        raise invalid("The DPoP proof's ath is not the hash of the access token.")
    if runtime.settings.dpop_nonce_required and not is_current_nonce(runtime, claims.get("nonce")):
        raise DpopError("use_dpop_nonce", "Use the nonce of the DPoP-Nonce header.")
    keep_until = datetime.fromtimestamp(iat, UTC) + timedelta(seconds=IAT_WINDOW + 1)
    if not replay_cache.use_once(
        session,
        kind=replay_cache.DPOP_PROOF,
        issuer=jkt,
        jti=jti,
        keep_until=max(keep_until, now),
        now=now,
    ):
        raise invalid("The DPoP proof was already used (its jti).")
    return DpopProof(jkt=jkt)
