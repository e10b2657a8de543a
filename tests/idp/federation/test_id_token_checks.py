"""The upstream ID token checks (OIDC Core §3.1.3.7) on tokens the upstream's own key ring
signs, verified against the JWK Set it serves: what a real upstream cannot be made to send
through the flow (another issuer, another audience, an algorithm we do not allow)."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from idp.federation.id_tokens import IdTokenRejected, verify_id_token
from tests.idp.federation.conftest import Upstream

CLIENT_ID = "our-client"
NONCE = "the-nonce"


def claims(upstream: Upstream, **changes: Any) -> dict[str, Any]:
    now = int(upstream.clock.now().timestamp())
    base: dict[str, Any] = {
        "iss": upstream.issuer,
        "sub": "upstream-subject",
        "aud": CLIENT_ID,
        "iat": now,
        "exp": now + 300,
        "nonce": NONCE,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def sign(upstream: Upstream, payload: dict[str, Any], alg: str = "RS256") -> str:
    return upstream.runtime.keyring.sign_jwt(payload, alg=alg, now=upstream.clock.now())


def verify(upstream: Upstream, token: str, algorithms: tuple[str, ...] = ("RS256",)) -> dict:
    jwks = httpx.get(jwks_uri(upstream)).json()
    return verify_id_token(
        token,
        jwks=jwks,
        algorithms=algorithms,
        issuer=upstream.issuer,
        client_id=CLIENT_ID,
        nonce=NONCE,
        now=upstream.clock.now(),
    )


def jwks_uri(upstream: Upstream) -> str:
    return str(httpx.get(upstream.url("/.well-known/openid-configuration")).json()["jwks_uri"])


def test_a_good_token_passes(upstream: Upstream) -> None:
    assert verify(upstream, sign(upstream, claims(upstream)))["sub"] == "upstream-subject"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"iss": "http://localhost:1"}, "iss"),
        ({"aud": "another-client"}, "aud"),
        ({"aud": [CLIENT_ID, "another-client"]}, "azp"),
        ({"nonce": "another-nonce"}, "nonce"),
        ({"nonce": None}, "nonce"),
        ({"exp": None}, "exp"),
        ({"sub": None}, "sub"),
    ],
)
def test_claims_that_are_not_ours_are_refused(
    upstream: Upstream, changes: dict[str, Any], reason: str
) -> None:
    with pytest.raises(IdTokenRejected, match=reason):
        verify(upstream, sign(upstream, claims(upstream, **changes)))


def test_an_expired_token_is_refused(upstream: Upstream) -> None:
    now = int(upstream.clock.now().timestamp())
    with pytest.raises(IdTokenRejected, match="expired"):
        verify(upstream, sign(upstream, claims(upstream, iat=now - 900, exp=now - 120)))


def test_an_algorithm_the_upstream_may_not_use_is_refused(upstream: Upstream) -> None:
    """Signed by the upstream with ES256, but only RS256 is allowed for this provider."""
    token = sign(upstream, claims(upstream), alg="ES256")
    with pytest.raises(IdTokenRejected, match="signature"):
        verify(upstream, token, algorithms=("RS256",))


def test_an_unsigned_token_is_refused(upstream: Upstream) -> None:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    token = f"{part({'alg': 'none'})}.{part(claims(upstream))}."
    with pytest.raises(IdTokenRejected, match="signature"):
        verify(upstream, token)


def test_a_tampered_token_is_refused(upstream: Upstream) -> None:
    header, _, signature = sign(upstream, claims(upstream)).split(".")
    forged = base64.urlsafe_b64encode(
        json.dumps(claims(upstream, sub="someone-else")).encode()
    ).rstrip(b"=")
    with pytest.raises(IdTokenRejected, match="signature"):
        verify(upstream, f"{header}.{forged.decode()}.{signature}")
