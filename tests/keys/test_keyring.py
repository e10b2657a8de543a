"""Key ring: real keys on a real directory, checked by independent JOSE libraries."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import multiprocessing
import os
import shutil
import stat
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jose import jwt as jose_jwt

from keys.errors import InvalidToken, KeyRingError, NoSigningKey, WrongPassphrase
from keys.keyring import SUPPORTED_ALGORITHMS, KeyInfo, KeyRing
from keys.passphrase import load_or_create_secret_file

NOW = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
PASSPHRASE = b"correct horse battery staple"
CLAIMS = {
    "iss": "https://sso.example.vn",
    "sub": "officer-42",
    "aud": "ho-tich",
    "iat": int(NOW.timestamp()),
    "exp": int(NOW.timestamp()) + 600,
}
PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(value: object) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def header_of(token: str) -> dict:
    return json.loads(b64url_decode(token.split(".")[0]))


def rfc7638_thumbprint(jwk: dict) -> str:
    """Computed here from the RFC text, independently of joserfc (RFC 7638 §3.2, §3.3)."""
    required = {
        "RSA": ("e", "kty", "n"),
        "EC": ("crv", "kty", "x", "y"),
        "OKP": ("crv", "kty", "x"),
    }
    members = {name: jwk[name] for name in required[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return b64url(hashlib.sha256(canonical).digest())


def jwk_by_kid(ring: KeyRing, kid: str, now: datetime = NOW) -> dict:
    return next(k for k in ring.public_jwks(now=now)["keys"] if k["kid"] == kid)


def infos(ring: KeyRing) -> list[KeyInfo]:
    # ruff's SIM118 mistakes KeyRing.keys() for dict.keys() inside comprehensions
    return ring.keys()


def kids_of(ring: KeyRing, alg: str) -> list[str]:
    return [k.kid for k in infos(ring) if k.alg == alg]


def published_kids(ring: KeyRing, now: datetime) -> set[str]:
    return {k["kid"] for k in ring.public_jwks(now=now)["keys"]}


def es256_private_key(ring: KeyRing, kid: str) -> ec.EllipticCurvePrivateKey:
    """Read straight from the key ring's file, to sign tokens with another library."""
    pem = (ring.directory / f"{kid}.pem").read_bytes()
    key = serialization.load_pem_private_key(pem, password=PASSPHRASE)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def ring_dir(tmp_path: Path) -> Path:
    return tmp_path / "keyring"


@pytest.fixture
def ring(ring_dir: Path) -> KeyRing:
    return KeyRing.load_or_create(ring_dir, PASSPHRASE, now=NOW)


# --- creation and storage ------------------------------------------------------------------


def test_first_start_creates_one_active_key_per_algorithm(ring: KeyRing) -> None:
    infos = ring.keys()
    assert [k.alg for k in infos] == list(SUPPORTED_ALGORITHMS)
    for info in infos:
        assert info.created_at == NOW
        assert info.active_from == NOW
        assert info.retire_at is None
        assert info.unpublish_at is None
        assert info.state(NOW) == "active"


def test_kids_are_rfc7638_thumbprints_of_the_published_keys(ring: KeyRing) -> None:
    jwks = ring.public_jwks(now=NOW)["keys"]
    assert {k["kid"] for k in jwks} == {k.kid for k in infos(ring)}
    for jwk in jwks:
        assert jwk["kid"] == rfc7638_thumbprint(jwk)


def test_public_jwks_members(ring: KeyRing) -> None:
    jwks = {k["alg"]: k for k in ring.public_jwks(now=NOW)["keys"]}
    assert set(jwks) == set(SUPPORTED_ALGORITHMS)
    assert jwks["RS256"]["kty"] == "RSA"
    assert len(b64url_decode(jwks["RS256"]["n"])) == 256  # RSA-2048
    assert (jwks["ES256"]["kty"], jwks["ES256"]["crv"]) == ("EC", "P-256")
    assert (jwks["EdDSA"]["kty"], jwks["EdDSA"]["crv"]) == ("OKP", "Ed25519")
    for jwk in jwks.values():
        assert jwk["use"] == "sig"
        assert not PRIVATE_JWK_MEMBERS & set(jwk)


def test_public_jwks_returns_copies(ring: KeyRing) -> None:
    ring.public_jwks(now=NOW)["keys"][0]["kid"] = "changed"
    assert "changed" not in published_kids(ring, NOW)


def test_reopening_gives_the_same_keys(ring: KeyRing, ring_dir: Path) -> None:
    again = KeyRing.load_or_create(ring_dir, PASSPHRASE, now=NOW + timedelta(days=3))
    assert again.keys() == ring.keys()
    token = again.sign_jwt(CLAIMS, alg="ES256", now=NOW)
    assert ring.verify_jwt(token, now=NOW).claims == CLAIMS


def test_private_keys_are_encrypted_pkcs8_with_private_modes(ring: KeyRing, ring_dir: Path) -> None:
    assert mode_of(ring_dir) == 0o700
    pem_files = sorted(ring_dir.glob("*.pem"))
    assert {p.stem for p in pem_files} == {k.kid for k in infos(ring)}
    for pem in pem_files:
        data = pem.read_bytes()
        assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        assert mode_of(pem) == 0o600
        with pytest.raises(TypeError):  # cryptography: "password was not given"
            serialization.load_pem_private_key(data, password=None)
        serialization.load_pem_private_key(data, password=PASSPHRASE)
    manifest = ring_dir / "manifest.json"
    assert mode_of(manifest) == 0o600
    text = manifest.read_text()
    assert "PRIVATE" not in text
    assert not PRIVATE_JWK_MEMBERS & {k for entry in json.loads(text)["keys"] for k in entry}
    # no temporary files left behind by the atomic writes
    assert not list(ring_dir.glob("*.tmp"))


def test_existing_directory_is_tightened(tmp_path: Path) -> None:
    directory = tmp_path / "loose"
    directory.mkdir(mode=0o755)
    os.chmod(directory, 0o755)
    KeyRing.load_or_create(directory, PASSPHRASE, now=NOW)
    assert mode_of(directory) == 0o700


def test_wrong_passphrase_is_refused(ring: KeyRing, ring_dir: Path) -> None:
    with pytest.raises(WrongPassphrase):
        KeyRing.load_or_create(ring_dir, b"not the passphrase", now=NOW)
    # refusing must not have touched the ring
    assert KeyRing.load_or_create(ring_dir, PASSPHRASE, now=NOW).keys() == ring.keys()


def test_a_missing_algorithm_is_added_on_open(ring: KeyRing, ring_dir: Path) -> None:
    manifest = ring_dir / "manifest.json"
    data = json.loads(manifest.read_text())
    eddsa = data["keys"].pop()
    assert eddsa["alg"] == "EdDSA"
    (ring_dir / f"{eddsa['kid']}.pem").unlink()
    manifest.write_text(json.dumps(data))
    trimmed = manifest.read_text()

    with pytest.raises(WrongPassphrase):
        KeyRing.load_or_create(ring_dir, b"not the passphrase", now=ROTATED_AT)
    assert manifest.read_text() == trimmed  # nothing added under the wrong passphrase
    assert len(list(ring_dir.glob("*.pem"))) == 2

    reopened = KeyRing.load_or_create(ring_dir, PASSPHRASE, now=ROTATED_AT)
    assert [k.alg for k in infos(reopened)] == list(SUPPORTED_ALGORITHMS)
    added = reopened.keys()[2]
    assert (added.created_at, added.active_from) == (ROTATED_AT, ROTATED_AT)
    assert reopened.keys()[:2] == ring.keys()[:2]


def test_empty_passphrase_is_refused(ring_dir: Path) -> None:
    with pytest.raises(ValueError):
        KeyRing.load_or_create(ring_dir, b"", now=NOW)


def test_unencrypted_key_file_is_refused(ring: KeyRing, ring_dir: Path) -> None:
    pem = ring_dir / f"{kids_of(ring, 'ES256')[0]}.pem"
    key = serialization.load_pem_private_key(pem.read_bytes(), password=PASSPHRASE)
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(KeyRingError, match="not an encrypted"):
        KeyRing.load_or_create(ring_dir, PASSPHRASE, now=NOW)


def test_swapped_key_file_is_refused(tmp_path: Path, ring: KeyRing, ring_dir: Path) -> None:
    # An ES256 key from another ring, encrypted with the right passphrase, under our ES256 kid.
    other = KeyRing.load_or_create(tmp_path / "other", PASSPHRASE, now=NOW)
    other_pem = tmp_path / "other" / f"{kids_of(other, 'ES256')[0]}.pem"
    shutil.copyfile(other_pem, ring_dir / f"{kids_of(ring, 'ES256')[0]}.pem")
    with pytest.raises(KeyRingError, match="different key"):
        KeyRing.load_or_create(ring_dir, PASSPHRASE, now=NOW)


def test_missing_key_file_is_refused(ring: KeyRing, ring_dir: Path) -> None:
    (ring_dir / f"{kids_of(ring, 'RS256')[0]}.pem").unlink()
    with pytest.raises(KeyRingError, match="missing"):
        KeyRing.load_or_create(ring_dir, PASSPHRASE, now=NOW)


def test_manifest_cannot_name_files_outside_the_directory(ring: KeyRing, ring_dir: Path) -> None:
    manifest = ring_dir / "manifest.json"
    data = json.loads(manifest.read_text())
    data["keys"][0]["kid"] = "../../etc/passwd"
    manifest.write_text(json.dumps(data))
    with pytest.raises(KeyRingError, match="invalid kid"):
        KeyRing.load_or_create(ring_dir, PASSPHRASE, now=NOW)


def test_naive_datetimes_are_refused(ring: KeyRing, ring_dir: Path) -> None:
    naive = datetime(2026, 1, 1, 8, 0)
    with pytest.raises(ValueError):
        KeyRing.load_or_create(ring_dir, PASSPHRASE, now=naive)
    with pytest.raises(ValueError):
        ring.sign_jwt(CLAIMS, alg="RS256", now=naive)
    with pytest.raises(ValueError):
        ring.rotate(now=naive, publish_ahead=timedelta(hours=1), keep_published=timedelta(hours=1))


# --- signing -------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", SUPPORTED_ALGORITHMS)
def test_sign_jwt_header(ring: KeyRing, alg: str) -> None:
    token = ring.sign_jwt(CLAIMS, alg=alg, now=NOW, typ="at+jwt")
    assert header_of(token) == {"alg": alg, "kid": kids_of(ring, alg)[0], "typ": "at+jwt"}
    assert json.loads(b64url_decode(token.split(".")[1])) == CLAIMS


def test_sign_jwt_without_typ_has_no_typ(ring: KeyRing) -> None:
    token = ring.sign_jwt(CLAIMS, alg="RS256", now=NOW)
    assert set(header_of(token)) == {"alg", "kid"}


def test_sign_jwt_leaves_the_callers_claims_alone(ring: KeyRing) -> None:
    claims = {"sub": "x", "exp": NOW + timedelta(minutes=5)}
    token = ring.sign_jwt(claims, alg="ES256", now=NOW)
    assert claims["exp"] == NOW + timedelta(minutes=5)
    assert ring.verify_jwt(token, now=NOW).claims["exp"] == int(NOW.timestamp()) + 300


def test_sign_jwt_without_an_active_key(ring: KeyRing) -> None:
    with pytest.raises(NoSigningKey):
        ring.sign_jwt(CLAIMS, alg="RS256", now=NOW - timedelta(seconds=1))  # before creation
    with pytest.raises(NoSigningKey):
        ring.sign_jwt(CLAIMS, alg="HS256", now=NOW)


def test_signing_and_verifying_never_touch_the_disk(ring: KeyRing, ring_dir: Path) -> None:
    shutil.rmtree(ring_dir)
    for alg in SUPPORTED_ALGORITHMS:
        token = ring.sign_jwt(CLAIMS, alg=alg, now=NOW)
        assert ring.verify_jwt(token, now=NOW).claims == CLAIMS


@pytest.mark.parametrize("alg", SUPPORTED_ALGORITHMS)
def test_tokens_verify_with_pyjwt(ring: KeyRing, alg: str) -> None:
    token = ring.sign_jwt(CLAIMS, alg=alg, now=NOW, typ="at+jwt")
    key = pyjwt.PyJWK(jwk_by_kid(ring, header_of(token)["kid"]))
    claims = pyjwt.decode(
        token, key=key, algorithms=[alg], audience="ho-tich", options={"verify_exp": False}
    )
    assert claims == CLAIMS


@pytest.mark.parametrize("alg", ["RS256", "ES256"])  # python-jose has no EdDSA
def test_tokens_verify_with_python_jose(ring: KeyRing, alg: str) -> None:
    token = ring.sign_jwt(CLAIMS, alg=alg, now=NOW)
    jwk = jwk_by_kid(ring, header_of(token)["kid"])
    claims = jose_jwt.decode(
        token, jwk, algorithms=[alg], audience="ho-tich", options={"verify_exp": False}
    )
    assert claims == CLAIMS


# --- verification --------------------------------------------------------------------------


@pytest.mark.parametrize("alg", SUPPORTED_ALGORITHMS)
def test_verify_jwt_round_trip(ring: KeyRing, alg: str) -> None:
    token = ring.sign_jwt(CLAIMS, alg=alg, now=NOW, typ="logout+jwt")
    verified = ring.verify_jwt(token, now=NOW)
    assert verified.claims == CLAIMS
    assert verified.header == {"alg": alg, "kid": kids_of(ring, alg)[0], "typ": "logout+jwt"}


def test_verify_jwt_does_not_check_claims(ring: KeyRing) -> None:
    expired = {**CLAIMS, "exp": int(NOW.timestamp()) - 3600}
    token = ring.sign_jwt(expired, alg="ES256", now=NOW)
    assert ring.verify_jwt(token, now=NOW).claims == expired


def test_verify_jwt_accepts_tokens_signed_by_pyjwt_with_our_key(ring: KeyRing) -> None:
    # Proves verify_jwt checks real signatures, not just its own output: sign with the PEM.
    kid = kids_of(ring, "ES256")[0]
    key = es256_private_key(ring, kid)
    token = pyjwt.encode(CLAIMS, key, algorithm="ES256", headers={"kid": kid})
    assert ring.verify_jwt(token, now=NOW).claims == CLAIMS


@pytest.mark.parametrize("alg", SUPPORTED_ALGORITHMS)
def test_verify_jwt_rejects_a_tampered_payload(ring: KeyRing, alg: str) -> None:
    header, _, signature = ring.sign_jwt(CLAIMS, alg=alg, now=NOW).split(".")
    forged = b64url_json({**CLAIMS, "sub": "chu-tich"})
    with pytest.raises(InvalidToken, match="bad signature"):
        ring.verify_jwt(f"{header}.{forged}.{signature}", now=NOW)


def test_verify_jwt_rejects_a_tampered_signature(ring: KeyRing) -> None:
    header, payload, signature = ring.sign_jwt(CLAIMS, alg="EdDSA", now=NOW).split(".")
    flipped = bytearray(b64url_decode(signature))
    flipped[0] ^= 1
    with pytest.raises(InvalidToken, match="bad signature"):
        ring.verify_jwt(f"{header}.{payload}.{b64url(bytes(flipped))}", now=NOW)
    with pytest.raises(InvalidToken, match="bad signature"):
        ring.verify_jwt(f"{header}.{payload}.", now=NOW)


def test_verify_jwt_rejects_an_unknown_kid(tmp_path: Path, ring: KeyRing) -> None:
    other = KeyRing.load_or_create(tmp_path / "other", PASSPHRASE, now=NOW)
    token = other.sign_jwt(CLAIMS, alg="RS256", now=NOW)
    with pytest.raises(InvalidToken, match="unknown kid"):
        ring.verify_jwt(token, now=NOW)


def test_verify_jwt_rejects_a_kid_pointing_at_another_of_our_keys(ring: KeyRing) -> None:
    _, payload, signature = ring.sign_jwt(CLAIMS, alg="ES256", now=NOW).split(".")
    other_kid = kids_of(ring, "EdDSA")[0]
    # same alg claimed, other kid: the EdDSA key's alg does not match
    swapped = b64url_json({"alg": "ES256", "kid": other_kid})
    with pytest.raises(InvalidToken, match="alg does not match"):
        ring.verify_jwt(f"{swapped}.{payload}.{signature}", now=NOW)


def test_verify_jwt_rejects_a_missing_kid(ring: KeyRing) -> None:
    _, payload, signature = ring.sign_jwt(CLAIMS, alg="RS256", now=NOW).split(".")
    with pytest.raises(InvalidToken, match="missing kid"):
        ring.verify_jwt(f"{b64url_json({'alg': 'RS256'})}.{payload}.{signature}", now=NOW)


def test_alg_confusion_hs256_with_the_rsa_public_key_fails(ring: KeyRing) -> None:
    """RFC 8725 §2.1: HMAC keyed with our public key, which anyone can fetch from the JWKS."""
    kid = kids_of(ring, "RS256")[0]
    public = pyjwt.PyJWK(jwk_by_kid(ring, kid)).key
    for secret in (
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        json.dumps(jwk_by_kid(ring, kid)).encode(),
    ):
        signing_input = f"{b64url_json({'alg': 'HS256', 'kid': kid})}.{b64url_json(CLAIMS)}"
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        with pytest.raises(InvalidToken, match="alg does not match"):
            ring.verify_jwt(f"{signing_input}.{b64url(mac)}", now=NOW)
        # and it stays refused even if the caller allows every algorithm name it can think of
        with pytest.raises(InvalidToken):
            ring.verify_jwt(f"{signing_input}.{b64url(mac)}", now=NOW, algorithms=["HS256"])


def test_alg_none_fails(ring: KeyRing) -> None:
    kid = kids_of(ring, "RS256")[0]
    token = f"{b64url_json({'alg': 'none', 'kid': kid})}.{b64url_json(CLAIMS)}."
    with pytest.raises(InvalidToken):
        ring.verify_jwt(token, now=NOW)


def test_verify_jwt_honours_the_allowed_algorithms(ring: KeyRing) -> None:
    token = ring.sign_jwt(CLAIMS, alg="EdDSA", now=NOW)
    with pytest.raises(InvalidToken, match="alg not allowed"):
        ring.verify_jwt(token, now=NOW, algorithms=["RS256", "ES256"])


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("jku", "https://attacker.example/jwks"),
        ("x5u", "https://attacker.example/cert.pem"),
        ("jwk", {"kty": "oct", "k": "c2VjcmV0"}),
        ("crit", ["exp"]),
        ("b64", False),
        ("cty", "JWT"),
    ],
)
def test_verify_jwt_rejects_header_parameters_we_never_send(
    ring: KeyRing, parameter: str, value: object
) -> None:
    kid = kids_of(ring, "RS256")[0]
    header = {"alg": "RS256", "kid": kid, parameter: value}
    token = f"{b64url_json(header)}.{b64url_json(CLAIMS)}.{b64url(b'x' * 256)}"
    # joserfc already refuses a malformed b64 (RFC 7797) token while parsing it
    with pytest.raises(InvalidToken, match=r"unexpected header parameter|malformed token"):
        ring.verify_jwt(token, now=NOW)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not-a-token",
        "a.b",
        "a.b.c.d",
        "!!!.???.***",
        "eyJhbGciOiJSUzI1NiJ9",
        "ñ.ñ.ñ",
        f"{b64url(b'[1,2]')}.{b64url_json({})}.",
        f"{b64url(b'not json')}.{b64url_json({})}.",
    ],
)
def test_verify_jwt_rejects_malformed_tokens(ring: KeyRing, token: str) -> None:
    with pytest.raises(InvalidToken):
        ring.verify_jwt(token, now=NOW)


def test_verify_jwt_rejects_a_payload_that_is_not_an_object(ring: KeyRing) -> None:
    kid = kids_of(ring, "ES256")[0]
    key = es256_private_key(ring, kid)
    token = pyjwt.api_jws.encode(b"[1, 2, 3]", key, algorithm="ES256", headers={"kid": kid})
    with pytest.raises(InvalidToken, match="not a JSON object"):
        ring.verify_jwt(token, now=NOW)


# --- key states and rotation ---------------------------------------------------------------


def test_key_info_state_boundaries() -> None:
    info = KeyInfo(
        kid="k",
        alg="ES256",
        created_at=NOW,
        active_from=NOW + timedelta(hours=1),
        retire_at=NOW + timedelta(hours=2),
        unpublish_at=NOW + timedelta(hours=3),
    )
    assert info.state(NOW) == "pending"
    assert info.state(NOW + timedelta(hours=1)) == "active"
    assert info.state(NOW + timedelta(hours=2)) == "retired"
    assert info.state(NOW + timedelta(hours=3)) == "expired"
    current = KeyInfo("k", "ES256", NOW, NOW, None, None)
    assert current.state(NOW + timedelta(days=10_000)) == "active"
    with pytest.raises(ValueError):
        KeyInfo("k", "ES256", datetime(2026, 1, 1), NOW, None, None)


ROTATED_AT = NOW + timedelta(days=90)
PUBLISH_AHEAD = timedelta(hours=24)
KEEP_PUBLISHED = timedelta(hours=2)
NEW_ACTIVE_FROM = ROTATED_AT + PUBLISH_AHEAD
OLD_UNPUBLISH_AT = NEW_ACTIVE_FROM + KEEP_PUBLISHED


def rotate(ring: KeyRing, **kwargs) -> list[KeyInfo]:
    return ring.rotate(
        now=ROTATED_AT, publish_ahead=PUBLISH_AHEAD, keep_published=KEEP_PUBLISHED, **kwargs
    )


def test_rotate_returns_pending_keys_and_schedules_the_old_ones(ring: KeyRing) -> None:
    old = {k.alg: k for k in infos(ring)}
    new = rotate(ring)
    assert [k.alg for k in new] == list(SUPPORTED_ALGORITHMS)
    for info in new:
        assert info.kid not in {k.kid for k in old.values()}
        assert info.created_at == ROTATED_AT
        assert info.active_from == NEW_ACTIVE_FROM
        assert (info.retire_at, info.unpublish_at) == (None, None)
        assert info.state(ROTATED_AT) == "pending"
    assert ring.keys()[3:] == new
    for before in old.values():
        after = next(k for k in infos(ring) if k.kid == before.kid)
        assert after.retire_at == NEW_ACTIVE_FROM
        assert after.unpublish_at == OLD_UNPUBLISH_AT
        assert after.state(ROTATED_AT) == "active"


@pytest.mark.parametrize("alg", SUPPORTED_ALGORITHMS)
def test_rotation_timeline(ring: KeyRing, alg: str) -> None:
    (old_kid,) = kids_of(ring, alg)
    before_rotation = ring.sign_jwt(CLAIMS, alg=alg, now=ROTATED_AT)
    new_kid = next(k.kid for k in rotate(ring) if k.alg == alg)

    # Right after rotation: both published, the old key still signs.
    assert {old_kid, new_kid} <= published_kids(ring, ROTATED_AT)
    assert header_of(ring.sign_jwt(CLAIMS, alg=alg, now=ROTATED_AT))["kid"] == old_kid
    just_before = NEW_ACTIVE_FROM - timedelta(microseconds=1)
    assert header_of(ring.sign_jwt(CLAIMS, alg=alg, now=just_before))["kid"] == old_kid
    last_old_token = ring.sign_jwt(CLAIMS, alg=alg, now=just_before)

    # From active_from the new key signs; the old one is retired but still published.
    token = ring.sign_jwt(CLAIMS, alg=alg, now=NEW_ACTIVE_FROM)
    assert header_of(token)["kid"] == new_kid
    assert ring.verify_jwt(token, now=NEW_ACTIVE_FROM).claims == CLAIMS
    assert {old_kid, new_kid} <= published_kids(ring, NEW_ACTIVE_FROM)

    # Tokens of the old key verify until unpublish_at, and not from then on.
    until = OLD_UNPUBLISH_AT - timedelta(microseconds=1)
    for old_token in (before_rotation, last_old_token):
        assert ring.verify_jwt(old_token, now=until).claims == CLAIMS
        with pytest.raises(InvalidToken, match="unknown kid"):
            ring.verify_jwt(old_token, now=OLD_UNPUBLISH_AT)
    assert old_kid in published_kids(ring, until)
    assert old_kid not in published_kids(ring, OLD_UNPUBLISH_AT)
    assert new_kid in published_kids(ring, OLD_UNPUBLISH_AT)
    old_info = next(k for k in infos(ring) if k.kid == old_kid)
    assert old_info.state(OLD_UNPUBLISH_AT) == "expired"


def test_rotate_only_the_given_algorithms(ring: KeyRing) -> None:
    new = rotate(ring, algorithms=["ES256"])
    assert [k.alg for k in new] == ["ES256"]
    assert len(kids_of(ring, "ES256")) == 2
    for alg in ("RS256", "EdDSA"):
        (info,) = (k for k in infos(ring) if k.alg == alg)
        assert (info.retire_at, info.unpublish_at) == (None, None)


def test_rotate_refuses_unknown_algorithms_and_negative_durations(ring: KeyRing) -> None:
    with pytest.raises(ValueError):
        rotate(ring, algorithms=["HS256"])
    with pytest.raises(ValueError):
        ring.rotate(now=NOW, publish_ahead=timedelta(hours=-1), keep_published=KEEP_PUBLISHED)
    assert len(ring.keys()) == 3


def test_rotate_is_persisted(ring: KeyRing, ring_dir: Path) -> None:
    rotate(ring)
    reopened = KeyRing.load_or_create(ring_dir, PASSPHRASE, now=ROTATED_AT)
    assert reopened.keys() == ring.keys()
    assert len(list(ring_dir.glob("*.pem"))) == 6
    token = reopened.sign_jwt(CLAIMS, alg="RS256", now=NEW_ACTIVE_FROM)
    assert header_of(token)["kid"] == kids_of(ring, "RS256")[1]


def test_second_rotation_before_the_first_takes_effect(ring: KeyRing) -> None:
    (first,) = ring.rotate(
        now=ROTATED_AT,
        publish_ahead=PUBLISH_AHEAD,
        keep_published=KEEP_PUBLISHED,
        algorithms=["ES256"],
    )
    later = ROTATED_AT + timedelta(hours=1)
    (second,) = ring.rotate(
        now=later, publish_ahead=timedelta(0), keep_published=KEEP_PUBLISHED, algorithms=["ES256"]
    )
    # The overtaken pending key never signs; the newest rotation wins at once.
    first_now = next(k for k in infos(ring) if k.kid == first.kid)
    assert first_now.retire_at == later
    assert header_of(ring.sign_jwt(CLAIMS, alg="ES256", now=later))["kid"] == second.kid
    for moment in (NEW_ACTIVE_FROM, NEW_ACTIVE_FROM + timedelta(days=30)):
        assert first_now.state(moment) != "active"
        assert header_of(ring.sign_jwt(CLAIMS, alg="ES256", now=moment))["kid"] == second.kid
    original = ring.keys()[1]
    assert original.alg == "ES256"
    assert original.retire_at == later  # brought forward to the newest rotation


def test_a_later_second_rotation_does_not_extend_the_current_key(ring: KeyRing) -> None:
    (original,) = kids_of(ring, "ES256")
    (first,) = rotate(ring, algorithms=["ES256"])
    later = ROTATED_AT + timedelta(hours=1)
    (second,) = ring.rotate(
        now=later, publish_ahead=PUBLISH_AHEAD, keep_published=KEEP_PUBLISHED, algorithms=["ES256"]
    )
    by_kid = {k.kid: k for k in infos(ring)}
    assert by_kid[original].retire_at == NEW_ACTIVE_FROM
    assert by_kid[first.kid].retire_at == second.active_from == later + PUBLISH_AHEAD

    def signer(moment: datetime) -> str:
        return header_of(ring.sign_jwt(CLAIMS, alg="ES256", now=moment))["kid"]

    assert signer(later) == original
    assert signer(NEW_ACTIVE_FROM) == first.kid
    assert signer(second.active_from) == second.kid


def test_rotate_drops_expired_keys_and_their_files(ring: KeyRing, ring_dir: Path) -> None:
    old_kids = {k.kid for k in infos(ring)}
    first = rotate(ring)
    ring.rotate(now=OLD_UNPUBLISH_AT, publish_ahead=PUBLISH_AHEAD, keep_published=KEEP_PUBLISHED)
    remaining = {k.kid for k in infos(ring)}
    assert not old_kids & remaining
    assert {k.kid for k in first} <= remaining
    assert len(remaining) == 6
    assert {p.stem for p in ring_dir.glob("*.pem")} == remaining


# --- several instances and processes -------------------------------------------------------


def test_refresh_picks_up_a_rotation_by_another_instance(ring: KeyRing, ring_dir: Path) -> None:
    other = KeyRing.load_or_create(ring_dir, PASSPHRASE, now=NOW)
    other.refresh()  # nothing changed: a no-op
    assert other.keys() == ring.keys()

    new = rotate(ring)
    assert len(other.keys()) == 3  # not before refresh
    other.refresh()
    assert other.keys() == ring.keys()
    assert published_kids(other, ROTATED_AT) == published_kids(ring, ROTATED_AT)
    token = other.sign_jwt(CLAIMS, alg="EdDSA", now=NEW_ACTIVE_FROM)
    assert header_of(token)["kid"] == next(k.kid for k in new if k.alg == "EdDSA")
    assert ring.verify_jwt(token, now=NEW_ACTIVE_FROM).claims == CLAIMS


def test_refresh_sees_consecutive_rewrites(ring: KeyRing, ring_dir: Path) -> None:
    other = KeyRing.load_or_create(ring_dir, PASSPHRASE, now=NOW)
    for step in range(3):
        ring.rotate(
            now=ROTATED_AT + timedelta(seconds=step),
            publish_ahead=PUBLISH_AHEAD,
            keep_published=KEEP_PUBLISHED,
            algorithms=["EdDSA"],
        )
        other.refresh()
        assert other.keys() == ring.keys()


def test_rotate_builds_on_the_manifest_on_disk(ring: KeyRing, ring_dir: Path) -> None:
    other = KeyRing.load_or_create(ring_dir, PASSPHRASE, now=NOW)
    by_other = rotate(other, algorithms=["RS256"])
    by_ring = rotate(ring, algorithms=["ES256"])  # ring has not refreshed: must not lose RS256
    kids = {k.kid for k in infos(ring)}
    assert {by_other[0].kid, by_ring[0].kid} <= kids
    assert len(kids) == 5


def _open_in_subprocess(directory: str) -> list[str]:
    return [k.kid for k in infos(KeyRing.load_or_create(Path(directory), PASSPHRASE, now=NOW))]


def _rotate_in_subprocess(directory: str) -> str:
    ring = KeyRing.load_or_create(Path(directory), PASSPHRASE, now=NOW)
    return rotate(ring, algorithms=["ES256"])[0].kid


def _pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


def test_processes_starting_together_create_one_key_ring(ring_dir: Path) -> None:
    with _pool(4) as pool:
        results = list(pool.map(_open_in_subprocess, [str(ring_dir)] * 4))
    assert len(results[0]) == 3
    assert all(r == results[0] for r in results)
    assert len(list(ring_dir.glob("*.pem"))) == 3


def test_concurrent_rotations_in_processes_lose_nothing(ring: KeyRing, ring_dir: Path) -> None:
    with _pool(3) as pool:
        new_kids = list(pool.map(_rotate_in_subprocess, [str(ring_dir)] * 3))
    ring.refresh()
    assert set(new_kids) <= {k.kid for k in infos(ring)}
    assert len(ring.keys()) == 6
    assert {p.stem for p in ring_dir.glob("*.pem")} == {k.kid for k in infos(ring)}
    # exactly one ES256 key signs once the rotations take effect
    active = [k for k in infos(ring) if k.state(NEW_ACTIVE_FROM) == "active"]
    assert sorted(k.alg for k in active) == sorted(SUPPORTED_ALGORITHMS)


# --- secret files --------------------------------------------------------------------------


def test_secret_file_is_created_once(tmp_path: Path) -> None:
    path = tmp_path / "var" / "secrets" / "keyring-passphrase"
    secret = load_or_create_secret_file(path)
    assert len(secret) >= 43  # 32 random bytes, base64url
    assert mode_of(path) == 0o600
    assert mode_of(path.parent) == 0o700
    assert mode_of(path.parent.parent) == 0o700
    assert load_or_create_secret_file(path) == secret
    assert load_or_create_secret_file(path, nbytes=64) == secret  # never replaced
    assert [p.name for p in path.parent.iterdir()] == ["keyring-passphrase"]


def test_secret_file_keeps_an_existing_value(tmp_path: Path) -> None:
    path = tmp_path / "server-secret"
    path.write_text("set-by-the-operator\n")
    assert load_or_create_secret_file(path) == "set-by-the-operator"


def test_secret_files_differ(tmp_path: Path) -> None:
    assert load_or_create_secret_file(tmp_path / "a") != load_or_create_secret_file(tmp_path / "b")


def test_secret_passphrase_opens_the_key_ring(tmp_path: Path) -> None:
    passphrase = load_or_create_secret_file(tmp_path / "secrets" / "passphrase").encode()
    first = KeyRing.load_or_create(tmp_path / "keyring", passphrase, now=NOW)
    again = load_or_create_secret_file(tmp_path / "secrets" / "passphrase").encode()
    assert KeyRing.load_or_create(tmp_path / "keyring", again, now=NOW).keys() == first.keys()
