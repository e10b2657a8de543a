"""Certificates of the key ring's keys for XML signatures (SAML): the same bytes from every
process that loads the ring, published ahead of use after a rotation, and only for the key
types SAML software verifies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from keys.errors import NoSigningKey
from keys.keyring import KeyRing

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
PASSPHRASE = b"xml-signing-passphrase-0123456789"


def test_same_certificate_in_every_process(tmp_path: Path) -> None:
    first = KeyRing.load_or_create(tmp_path, PASSPHRASE, now=NOW)
    second = KeyRing.load_or_create(tmp_path, PASSPHRASE, now=NOW)
    for alg in ("RS256", "ES256"):
        one = first.certified_signing_key(alg=alg, now=NOW)
        other = second.certified_signing_key(alg=alg, now=NOW)
        assert one.certificate == other.certificate
        assert one.certificate.public_key() == one.private_key.public_key()
    key = first.certified_signing_key(alg="RS256", now=NOW)
    certificate = key.certificate
    certificate.public_key().verify(
        certificate.signature,
        certificate.tbs_certificate_bytes,
        padding.PKCS1v15(),
        hashes.SHA256(),
    )
    assert key.kid in certificate.subject.rfc4514_string()


def test_rotation_is_announced_before_the_new_key_signs(tmp_path: Path) -> None:
    ring = KeyRing.load_or_create(tmp_path, PASSPHRASE, now=NOW)
    old = ring.certified_signing_key(alg="RS256", now=NOW)
    ring.rotate(
        now=NOW,
        publish_ahead=timedelta(days=2),
        keep_published=timedelta(days=1),
        algorithms=["RS256"],
    )
    published = ring.published_certificates(alg="RS256", now=NOW)
    assert len(published) == 2 and published[1] == old.certificate
    assert ring.certified_signing_key(alg="RS256", now=NOW).certificate == old.certificate
    later = NOW + timedelta(days=2, seconds=1)
    assert ring.certified_signing_key(alg="RS256", now=later).certificate == published[0]
    assert ring.published_certificates(alg="RS256", now=NOW + timedelta(days=4)) == [published[0]]


def test_eddsa_keys_have_no_xml_certificate(tmp_path: Path) -> None:
    ring = KeyRing.load_or_create(tmp_path, PASSPHRASE, now=NOW)
    with pytest.raises(NoSigningKey):
        ring.certified_signing_key(alg="EdDSA", now=NOW)
    assert ring.published_certificates(alg="EdDSA", now=NOW) == []
