"""CA signing keys in files: real keys on a real directory, real X.509 signatures."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from keys.errors import KeyUriError
from keys.signing_keys import (
    KEY_ALGORITHMS,
    SigningKey,
    describe_key_uri,
    export_private_key_pem,
    generate_signing_key,
    key_algorithm,
    load_or_generate_signing_key,
    load_signing_key,
)

PASSPHRASE = "mật khẩu khoá CA 2026"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def public_der(key: SigningKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def self_signed(key: SigningKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Root")])
    hash_algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
        .sign(key, hash_algorithm)
    )


@pytest.mark.parametrize("algorithm", KEY_ALGORITHMS)
def test_generate_then_load_round_trip(tmp_path: Path, algorithm: str) -> None:
    uri = f"file:{tmp_path}/ca.pem"
    key = generate_signing_key(uri, algorithm=algorithm, passphrase=PASSPHRASE)
    loaded = load_signing_key(uri, passphrase=PASSPHRASE)

    assert key_algorithm(key) == key_algorithm(loaded) == algorithm
    assert public_der(loaded) == public_der(key)
    pem = (tmp_path / "ca.pem").read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    # The loaded key really signs: a certificate it signs verifies with the generated public key.
    cert = self_signed(loaded)
    cert.verify_directly_issued_by(cert)
    assert public_der(key) == cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_key_types_and_sizes(tmp_path: Path) -> None:
    rsa_key = generate_signing_key(
        f"file:{tmp_path}/r.pem", algorithm="rsa-3072", passphrase=PASSPHRASE
    )
    ec_key = generate_signing_key(f"file:{tmp_path}/e.pem", algorithm="ec-p384", passphrase="x")
    assert isinstance(rsa_key, rsa.RSAPrivateKey) and rsa_key.key_size == 3072
    assert isinstance(ec_key, ec.EllipticCurvePrivateKey)
    assert isinstance(ec_key.curve, ec.SECP384R1)


def test_file_mode_is_0600_and_no_temporary_left(tmp_path: Path) -> None:
    old_umask = os.umask(0)  # a careless umask must not widen the key file's mode
    try:
        generate_signing_key(f"file:{tmp_path}/k.pem", algorithm="ec-p256", passphrase=PASSPHRASE)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "k.pem").stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["k.pem"]


def test_wrong_passphrase_is_a_clear_key_uri_error(tmp_path: Path) -> None:
    uri = f"file:{tmp_path}/k.pem"
    generate_signing_key(uri, algorithm="ec-p256", passphrase=PASSPHRASE)
    with pytest.raises(KeyUriError, match="wrong passphrase") as caught:
        load_signing_key(uri, passphrase="not the passphrase")
    assert str(tmp_path / "k.pem") in str(caught.value)
    assert "not the passphrase" not in str(caught.value)


@pytest.mark.parametrize("passphrase", [None, ""])
def test_missing_passphrase_is_refused(tmp_path: Path, passphrase: str | None) -> None:
    uri = f"file:{tmp_path}/k.pem"
    with pytest.raises(KeyUriError, match="needs a passphrase"):
        generate_signing_key(uri, algorithm="ec-p256", passphrase=passphrase)
    assert not (tmp_path / "k.pem").exists()
    generate_signing_key(uri, algorithm="ec-p256", passphrase=PASSPHRASE)
    with pytest.raises(KeyUriError, match="needs a passphrase"):
        load_signing_key(uri, passphrase=passphrase)


def test_generate_refuses_an_existing_key(tmp_path: Path) -> None:
    uri = f"file:{tmp_path}/k.pem"
    first = generate_signing_key(uri, algorithm="ec-p256", passphrase=PASSPHRASE)
    before = (tmp_path / "k.pem").read_bytes()
    with pytest.raises(KeyUriError, match="already exists"):
        generate_signing_key(uri, algorithm="ec-p256", passphrase=PASSPHRASE)
    assert (tmp_path / "k.pem").read_bytes() == before
    assert public_der(load_signing_key(uri, passphrase=PASSPHRASE)) == public_der(first)


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeyUriError, match="does not exist"):
        load_signing_key(f"file:{tmp_path}/nope.pem", passphrase=PASSPHRASE)


def test_unencrypted_key_file_is_refused(tmp_path: Path) -> None:
    plain = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (tmp_path / "k.pem").write_bytes(plain)
    with pytest.raises(KeyUriError, match="not an encrypted PKCS#8"):
        load_signing_key(f"file:{tmp_path}/k.pem", passphrase=PASSPHRASE)


def test_load_or_generate(tmp_path: Path) -> None:
    uri = f"file:{tmp_path}/k.pem"
    made = load_or_generate_signing_key(uri, algorithm="rsa-2048", passphrase=PASSPHRASE)
    again = load_or_generate_signing_key(uri, algorithm="rsa-2048", passphrase=PASSPHRASE)
    assert public_der(again) == public_der(made)
    with pytest.raises(KeyUriError, match="holds an rsa-2048 key, but ec-p256 is configured"):
        load_or_generate_signing_key(uri, algorithm="ec-p256", passphrase=PASSPHRASE)


def test_relative_and_rfc8089_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ca dir").mkdir()
    key = generate_signing_key("file:ca%20dir/k.pem", algorithm="ed25519", passphrase=PASSPHRASE)
    assert (tmp_path / "ca dir" / "k.pem").exists()
    for uri in (
        f"file:{tmp_path}/ca%20dir/k.pem",
        f"file://{tmp_path}/ca%20dir/k.pem",
        f"file://localhost{tmp_path}/ca%20dir/k.pem",
    ):
        assert public_der(load_signing_key(uri, passphrase=PASSPHRASE)) == public_der(key)
    assert describe_key_uri("file:ca%20dir/k.pem") == f"key file {tmp_path}/ca dir/k.pem"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("/etc/ca.pem", "starts with file: or pkcs11:"),
        ("http://example.vn/k.pem", "unsupported key URI scheme"),
        ("file://evil.example/k.pem", "local file"),
        ("file:", "no path"),
        ("file:/k.pem?x=1", "no query"),
    ],
)
def test_bad_uris(uri: str, message: str) -> None:
    with pytest.raises(KeyUriError, match=message):
        load_signing_key(uri, passphrase=PASSPHRASE)


def test_unknown_algorithm(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsupported key algorithm 'dsa-1024'"):
        generate_signing_key(f"file:{tmp_path}/k.pem", algorithm="dsa-1024", passphrase="x")


def test_export_decrypts_with_the_export_passphrase_only(tmp_path: Path) -> None:
    uri = f"file:{tmp_path}/root.pem"
    key = generate_signing_key(uri, algorithm="ec-p384", passphrase=PASSPHRASE)
    exported = export_private_key_pem(uri, passphrase=PASSPHRASE, export_passphrase="offline-2026")

    assert exported.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    restored = serialization.load_pem_private_key(exported, password=b"offline-2026")
    assert isinstance(restored, ec.EllipticCurvePrivateKey)
    assert public_der(restored) == public_der(key)
    with pytest.raises(ValueError):
        serialization.load_pem_private_key(exported, password=PASSPHRASE.encode())
    with pytest.raises(KeyUriError, match="wrong passphrase"):
        export_private_key_pem(uri, passphrase="wrong", export_passphrase="offline-2026")
    with pytest.raises(KeyUriError, match="export passphrase is required"):
        export_private_key_pem(uri, passphrase=PASSPHRASE, export_passphrase="")
