"""An app's key pair and the JWTs it signs with it, for the FAPI 2.0 tests."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey

from tests.conftest import ISSUER

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class AppKey:
    """A private key of the app, its public JWK Set, and signing."""

    def __init__(self, alg: str = "ES256") -> None:
        self.alg = alg
        key: ECKey | RSAKey | OKPKey
        if alg == "ES256":
            key = ECKey.generate_key("P-256", auto_kid=True)
        elif alg == "EdDSA":
            key = OKPKey.generate_key("Ed25519", auto_kid=True)
        else:
            key = RSAKey.generate_key(2048, auto_kid=True)
        self.key = key

    @property
    def jwks(self) -> dict[str, Any]:
        return {"keys": [{**self.key.as_dict(private=False), "alg": self.alg, "use": "sig"}]}

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(
            {"alg": self.alg, "kid": self.key.kid, **header},
            claims,
            self.key,
            algorithms=[self.alg],
        )

    def assertion(self, client_id: str, **overrides: Any) -> str:
        """A private_key_jwt client assertion (RFC 7523 §3) for our issuer."""
        now = int(time.time())
        claims = {
            "iss": client_id,
            "sub": client_id,
            "aud": ISSUER,
            "jti": secrets.token_urlsafe(16),
            "iat": now,
            "exp": now + 60,
            **overrides,
        }
        return self.sign({k: v for k, v in claims.items() if v is not None})

    def assertion_fields(self, client_id: str, **overrides: Any) -> dict[str, str]:
        return {
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.assertion(client_id, **overrides),
        }


class DpopKey(AppKey):
    """A key the app holds for DPoP (RFC 9449) and the proofs it signs with it."""

    @property
    def jkt(self) -> str:
        return self.key.thumbprint()

    def proof(
        self,
        method: str,
        url: str,
        *,
        nonce: str | None = None,
        access_token: str | None = None,
        **overrides: Any,
    ) -> str:
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method,
            "htu": url,
            "iat": int(time.time()),
        }
        if nonce is not None:
            claims["nonce"] = nonce
        if access_token is not None:
            digest = hashlib.sha256(access_token.encode("ascii")).digest()
            claims["ath"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
        claims.update(overrides)
        header = {"alg": self.alg, "typ": "dpop+jwt", "jwk": self.key.as_dict(private=False)}
        return jwt.encode(
            header,
            {k: v for k, v in claims.items() if v is not None},
            self.key,
            algorithms=[self.alg],
        )
