"""A software WebAuthn authenticator and client for tests: what a browser and a platform
authenticator would send, built from the specification (WebAuthn §6.1 authenticator data,
§6.5 attestation object with the "none" format, §7 client data) with `cryptography` keys and
CBOR. It is a test peer, not a mock of our code: the server checks its output with the
``webauthn`` library exactly as it checks a browser's.

Knobs for the negative tests: the origin and RP ID it claims, its signature counter, whether it
verified the user, and the BE (backup eligible) flag.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

FLAG_UP, FLAG_UV, FLAG_BE, FLAG_BS, FLAG_AT = 0x01, 0x04, 0x08, 0x10, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def from_b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class StoredCredential:
    credential_id: bytes
    private_key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    sign_count: int = 0


@dataclass
class SoftwareAuthenticator:
    origin: str
    rp_id: str
    user_verifying: bool = True
    backup_eligible: bool = False
    # 0 keeps the counter at zero (as synced passkeys do); otherwise it grows by this much.
    counter_step: int = 1
    credentials: dict[bytes, StoredCredential] = field(default_factory=dict)
    aaguid: bytes = bytes(16)

    def _flags(self, *, attested: bool) -> int:
        flags = FLAG_UP
        if self.user_verifying:
            flags |= FLAG_UV
        if self.backup_eligible:
            flags |= FLAG_BE
        if attested:
            flags |= FLAG_AT
        return flags

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps(
            {
                "type": kind,
                "challenge": challenge,
                "origin": origin or self.origin,
                "crossOrigin": False,
            },
            separators=(",", ":"),
        ).encode()

    def create(
        self, options: dict[str, Any], *, origin: str | None = None, rp_id: str | None = None
    ) -> dict[str, Any]:
        """navigator.credentials.create(): a new ES256 credential, "none" attestation."""
        rp = rp_id or options["rp"]["id"]
        private_key = ec.generate_private_key(ec.SECP256R1())
        numbers = private_key.public_key().public_numbers()
        cose_key = {
            1: 2,  # kty: EC2
            3: -7,  # alg: ES256
            -1: 1,  # crv: P-256
            -2: numbers.x.to_bytes(32, "big"),
            -3: numbers.y.to_bytes(32, "big"),
        }
        credential_id = secrets.token_bytes(32)
        stored = StoredCredential(
            credential_id=credential_id,
            private_key=private_key,
            rp_id=rp,
            user_handle=from_b64url(options["user"]["id"]),
        )
        self.credentials[credential_id] = stored
        attested = (
            self.aaguid
            + len(credential_id).to_bytes(2, "big")
            + credential_id
            + cbor2.dumps(cose_key)
        )
        auth_data = (
            hashlib.sha256(rp.encode()).digest()
            + bytes([self._flags(attested=True)])
            + stored.sign_count.to_bytes(4, "big")
            + attested
        )
        attestation_object = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        return {
            "id": b64url(credential_id),
            "rawId": b64url(credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation_object),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
        }

    def get(
        self,
        options: dict[str, Any],
        *,
        credential_id: bytes | None = None,
        origin: str | None = None,
        rp_id: str | None = None,
        sign_count: int | None = None,
    ) -> dict[str, Any]:
        """navigator.credentials.get(): an assertion by ``credential_id`` (default: the one
        the options allow, or the only credential for the RP ID: a discoverable one)."""
        stored = self._choose(options, credential_id)
        rp = rp_id or options.get("rpId") or stored.rp_id
        if sign_count is None:
            stored.sign_count += self.counter_step
            sign_count = stored.sign_count
        auth_data = (
            hashlib.sha256(rp.encode()).digest()
            + bytes([self._flags(attested=False)])
            + sign_count.to_bytes(4, "big")
        )
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        signature = stored.private_key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        return {
            "id": b64url(stored.credential_id),
            "rawId": b64url(stored.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": b64url(stored.user_handle),
            },
            "clientExtensionResults": {},
        }

    def _choose(self, options: dict[str, Any], credential_id: bytes | None) -> StoredCredential:
        if credential_id is not None:
            return self.credentials[credential_id]
        allowed = [from_b64url(d["id"]) for d in options.get("allowCredentials") or []]
        candidates = [
            c for c in self.credentials.values() if not allowed or c.credential_id in allowed
        ]
        assert candidates, "no credential for these options"
        return candidates[-1]
