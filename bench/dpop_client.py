"""A service app that authenticates with private_key_jwt (RFC 7523) and proves a DPoP key
(RFC 9449) at the token endpoint, cheaply enough to sign both JWTs per request in the load
generator.

Each request needs a fresh client assertion (its ``jti`` is used once) and a fresh DPoP proof
carrying the server's current nonce, which changes every few minutes: pre-generated requests
would go stale (a proof's ``iat`` must be within a minute of the server's clock), so both are
signed when the request is sent. To keep the client's share small on a 2-core machine, the
JOSE headers are encoded once, claims are built by hand and signed with ``cryptography``
directly (no JOSE library in the hot loop): two P-256 signatures, a few tens of µs each.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 60  # seconds: the assertion is used at once


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _compact_json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


@dataclass
class Es256Key:
    """A P-256 key: its public JWK, RFC 7638 thumbprint, and compact JWS signing."""

    private_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    @property
    def public_jwk(self) -> dict[str, str]:
        numbers = self.private_key.public_key().public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url(numbers.x.to_bytes(32, "big")),
            "y": b64url(numbers.y.to_bytes(32, "big")),
        }

    @property
    def thumbprint(self) -> str:
        # RFC 7638 §3.2: the required members in lexicographic order, no whitespace.
        jwk = self.public_jwk
        canonical = _compact_json({name: jwk[name] for name in ("crv", "kty", "x", "y")})
        return b64url(hashlib.sha256(canonical).digest())

    def sign(self, encoded_header: str, claims: dict[str, Any]) -> str:
        signing_input = f"{encoded_header}.{b64url(_compact_json(claims))}"
        der = self.private_key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)  # JWS (RFC 7518 §3.4) wants R ‖ S, 32 bytes each
        return f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


class DpopServiceApp:
    """A client_credentials client with an assertion key (registered as its JWK Set) and a
    separate DPoP key, remembering the server's latest DPoP nonce for all its connections."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer
        self.token_url = f"{issuer}/oauth2/token"
        self.client_id = ""  # known once registered
        self.assertion_key = Es256Key()
        self.dpop_key = Es256Key()
        self.nonce: str | None = None
        self._assertion_header = b64url(
            _compact_json({"alg": "ES256", "kid": self.assertion_key.thumbprint})
        )
        self._proof_header = b64url(
            _compact_json({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.dpop_key.public_jwk})
        )
        # Unique jti values without a random draw per request: a random prefix and a counter.
        self._jti_prefix = secrets.token_urlsafe(12)
        self._jti_counter = 0

    @property
    def jwks(self) -> dict[str, Any]:
        """The public JWK Set registered with the client (private_key_jwt)."""
        jwk = {
            **self.assertion_key.public_jwk,
            "kid": self.assertion_key.thumbprint,
            "alg": "ES256",
            "use": "sig",
        }
        return {"keys": [jwk]}

    def _next_jti(self) -> str:
        self._jti_counter += 1
        return f"{self._jti_prefix}.{self._jti_counter}"

    def token_request_body(self) -> bytes:
        """grant_type=client_credentials with a fresh client assertion (RFC 7523 §2.2)."""
        now = int(time.time())
        assertion = self.assertion_key.sign(
            self._assertion_header,
            {
                "iss": self.client_id,
                "sub": self.client_id,
                "aud": self.issuer,
                "jti": self._next_jti(),
                "iat": now,
                "exp": now + ASSERTION_LIFETIME,
            },
        )
        return (
            "grant_type=client_credentials&client_assertion_type="
            "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
            f"&client_assertion={assertion}"  # base64url and dots: nothing to escape
        ).encode("ascii")

    def token_proof(self) -> str:
        """A DPoP proof for POST to the token endpoint with the latest nonce (RFC 9449 §4.2)."""
        claims: dict[str, Any] = {
            "jti": self._next_jti(),
            "htm": "POST",
            "htu": self.token_url,
            "iat": int(time.time()),
        }
        if self.nonce is not None:
            claims["nonce"] = self.nonce
        return self.dpop_key.sign(self._proof_header, claims)

    def signing_cost_us(self, samples: int = 200) -> float:
        """The client's CPU µs to make one request's assertion and proof (measured, not run)."""
        start = time.process_time()
        for _ in range(samples):
            self.token_request_body()
            self.token_proof()
        return 1e6 * (time.process_time() - start) / samples
