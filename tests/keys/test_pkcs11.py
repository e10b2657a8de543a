"""CA signing keys on a real SoftHSM2 token: certificates, CRLs and OCSP responses signed in the
HSM and verified by cryptography, non-extractability, concurrency, token removal and return."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pkcs11
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from keys import pkcs11_keys
from keys.errors import KeyUnavailable, KeyUriError
from keys.pkcs11_keys import Pkcs11EcPrivateKey, Pkcs11RsaPrivateKey, parse_uri
from keys.signing_keys import (
    SigningKey,
    describe_key_uri,
    export_private_key_pem,
    generate_signing_key,
    key_algorithm,
    load_or_generate_signing_key,
    load_signing_key,
)
from tests.softhsm import SoftHsmToken

NOW = datetime(2026, 1, 1, tzinfo=UTC)
HSM_ALGORITHMS = ["rsa-2048", "rsa-3072", "ec-p256", "ec-p384"]


def name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def certificate_builder(key: SigningKey, subject: str = "HSM Root") -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(name("HSM Root"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )


def verify_signature(
    public: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
    signature: bytes,
    data: bytes,
    hash_algorithm: hashes.HashAlgorithm,
) -> None:
    if isinstance(public, rsa.RSAPublicKey):
        public.verify(signature, data, padding.PKCS1v15(), hash_algorithm)
    else:
        public.verify(signature, data, ec.ECDSA(hash_algorithm))


@pytest.fixture(scope="module")
def hsm_keys(softhsm_token: SoftHsmToken) -> dict[str, SigningKey]:
    """One key per algorithm, generated on the token once for this module."""
    return {
        algorithm: generate_signing_key(
            softhsm_token.uri(f"ca-{algorithm}"), algorithm=algorithm, passphrase=None
        )
        for algorithm in HSM_ALGORITHMS
    }


@pytest.mark.parametrize("algorithm", HSM_ALGORITHMS)
def test_generated_key_loads_by_uri_and_is_the_same_key(
    softhsm_token: SoftHsmToken, hsm_keys: dict[str, SigningKey], algorithm: str
) -> None:
    generated = hsm_keys[algorithm]
    loaded = load_signing_key(softhsm_token.uri(f"ca-{algorithm}"), passphrase=None)

    assert key_algorithm(generated) == key_algorithm(loaded) == algorithm
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    assert loaded.public_key().public_bytes(der, spki) == generated.public_key().public_bytes(
        der, spki
    )
    if algorithm.startswith("rsa"):
        assert isinstance(loaded, Pkcs11RsaPrivateKey)
        assert isinstance(loaded, rsa.RSAPrivateKey)
        assert loaded.key_size == int(algorithm[4:])
    else:
        assert isinstance(loaded, Pkcs11EcPrivateKey)
        assert isinstance(loaded, ec.EllipticCurvePrivateKey)
        assert loaded.curve.name == {"ec-p256": "secp256r1", "ec-p384": "secp384r1"}[algorithm]


@pytest.mark.parametrize("algorithm", HSM_ALGORITHMS)
def test_certificate_crl_and_ocsp_signed_in_the_hsm_verify(
    hsm_keys: dict[str, SigningKey], algorithm: str
) -> None:
    key = hsm_keys[algorithm]
    root = certificate_builder(key).sign(key, hashes.SHA256())
    root.verify_directly_issued_by(root)

    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = certificate_builder(leaf_key, "UBND xã A").sign(key, hashes.SHA384())
    leaf.verify_directly_issued_by(root)

    crl = (
        x509.CertificateRevocationListBuilder(
            revoked_certificates=[
                x509.RevokedCertificateBuilder()
                .serial_number(leaf.serial_number)
                .revocation_date(NOW)
                .build()
            ]
        )
        .issuer_name(root.subject)
        .last_update(NOW)
        .next_update(NOW + timedelta(days=1))
        .add_extension(x509.CRLNumber(1), critical=False)
        .sign(key, hashes.SHA512())
    )
    root_public = root.public_key()
    assert isinstance(root_public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    assert crl.is_signature_valid(root_public)
    assert not crl.is_signature_valid(leaf_key.public_key())

    response = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=leaf,
            issuer=root,
            algorithm=hashes.SHA256(),
            cert_status=ocsp.OCSPCertStatus.REVOKED,
            this_update=NOW,
            next_update=NOW + timedelta(hours=1),
            revocation_time=NOW,
            revocation_reason=x509.ReasonFlags.key_compromise,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, root)
        .sign(key, hashes.SHA256())
    )
    parsed = ocsp.load_der_ocsp_response(response.public_bytes(serialization.Encoding.DER))
    assert parsed.signature_hash_algorithm is not None
    public = root.public_key()
    assert isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    verify_signature(
        public, parsed.signature, parsed.tbs_response_bytes, parsed.signature_hash_algorithm
    )
    with pytest.raises(InvalidSignature):
        verify_signature(
            public,
            parsed.signature,
            parsed.tbs_response_bytes + b"\x00",
            parsed.signature_hash_algorithm,
        )


@pytest.mark.parametrize(
    "salt_length",
    [padding.PSS.DIGEST_LENGTH, padding.PSS.MAX_LENGTH, 20],
    ids=["digest-length", "max-length", "20"],
)
@pytest.mark.parametrize("algorithm", ["rsa-2048", "rsa-3072"])
def test_rsassa_pss_certificate_verifies(
    hsm_keys: dict[str, SigningKey], algorithm: str, salt_length: object
) -> None:
    key = hsm_keys[algorithm]
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt_length)
    cert = certificate_builder(key).sign(key, hashes.SHA256(), rsa_padding=pss)
    cert.verify_directly_issued_by(cert)
    assert cert.signature_algorithm_oid == x509.oid.SignatureAlgorithmOID.RSASSA_PSS


def test_direct_sign_matches_cryptography_verification(hsm_keys: dict[str, SigningKey]) -> None:
    rsa_key = hsm_keys["rsa-2048"]
    assert isinstance(rsa_key, rsa.RSAPrivateKey)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA512()), salt_length=32)
    signature = rsa_key.sign(b"data", pss, hashes.SHA512())
    rsa_key.public_key().verify(signature, b"data", pss, hashes.SHA512())
    signature = rsa_key.sign(b"data", padding.PKCS1v15(), hashes.SHA384())
    rsa_key.public_key().verify(signature, b"data", padding.PKCS1v15(), hashes.SHA384())
    with pytest.raises(InvalidSignature):
        rsa_key.public_key().verify(signature, b"datb", padding.PKCS1v15(), hashes.SHA384())

    ec_key = hsm_keys["ec-p384"]
    assert isinstance(ec_key, ec.EllipticCurvePrivateKey)
    signature = ec_key.sign(b"data", ec.ECDSA(hashes.SHA384()))
    ec_key.public_key().verify(signature, b"data", ec.ECDSA(hashes.SHA384()))


def test_private_key_is_not_extractable(
    softhsm_token: SoftHsmToken, hsm_keys: dict[str, SigningKey]
) -> None:
    uri = softhsm_token.uri("ca-rsa-2048")
    with pytest.raises(KeyUriError, match="non-extractable"):
        export_private_key_pem(uri, passphrase=None, export_passphrase="offline")
    rsa_key = hsm_keys["rsa-2048"]
    assert isinstance(rsa_key, rsa.RSAPrivateKey)
    with pytest.raises(KeyUriError, match="exporting the private key"):
        rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"x"),
        )
    with pytest.raises(KeyUriError, match="private numbers"):
        rsa_key.private_numbers()
    with pytest.raises(KeyUriError, match="decryption"):
        rsa_key.decrypt(b"x", padding.PKCS1v15())
    ec_key = hsm_keys["ec-p256"]
    assert isinstance(ec_key, ec.EllipticCurvePrivateKey)
    with pytest.raises(KeyUriError, match="key exchange"):
        ec_key.exchange(ec.ECDH(), ec.generate_private_key(ec.SECP256R1()).public_key())

    # And the token itself says so: sensitive, never extractable, signing only.
    token = pkcs11.lib(softhsm_token.module_path).get_token(token_label=softhsm_token.token_label)
    with token.open() as session:  # the process is logged in already; login is per token
        stored = session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, label="ca-rsa-2048")
        assert stored[pkcs11.Attribute.SENSITIVE] is True
        assert stored[pkcs11.Attribute.EXTRACTABLE] is False
        assert stored[pkcs11.Attribute.NEVER_EXTRACTABLE] is True
        assert stored[pkcs11.Attribute.SIGN] is True
        assert stored[pkcs11.Attribute.DECRYPT] is False
        with pytest.raises(pkcs11.AttributeSensitive):
            stored[pkcs11.Attribute.PRIVATE_EXPONENT]


def test_generate_refuses_an_existing_label(
    softhsm_token: SoftHsmToken, hsm_keys: dict[str, SigningKey]
) -> None:
    with pytest.raises(KeyUriError, match="already exists"):
        generate_signing_key(softhsm_token.uri("ca-ec-p256"), algorithm="ec-p256", passphrase=None)


def test_load_or_generate_on_the_token(softhsm_token: SoftHsmToken) -> None:
    uri = softhsm_token.uri("load-or-generate")
    made = load_or_generate_signing_key(uri, algorithm="ec-p256", passphrase=None)
    again = load_or_generate_signing_key(uri, algorithm="ec-p256", passphrase=None)
    assert made.public_key() == again.public_key()
    with pytest.raises(KeyUriError, match="holds an ec-p256 key, but rsa-2048 is configured"):
        load_or_generate_signing_key(uri, algorithm="rsa-2048", passphrase=None)


def test_unknown_object_is_a_key_uri_error(softhsm_token: SoftHsmToken) -> None:
    with pytest.raises(KeyUriError, match="no private key with that label"):
        load_signing_key(softhsm_token.uri("no-such-key"), passphrase=None)


def test_unknown_token_is_unavailable(softhsm_token: SoftHsmToken) -> None:
    with pytest.raises(KeyUnavailable, match="no token labelled 'no-such-token'"):
        load_signing_key(softhsm_token.uri("x", token="no-such-token"), passphrase=None)


def test_wrong_pin(softhsm_token: SoftHsmToken, hsm_keys: dict[str, SigningKey]) -> None:
    # A token this process is not logged in to: C_Login itself refuses the PIN.
    softhsm_token.add_token("wrong-pin-test")
    uri = softhsm_token.uri("k", token="wrong-pin-test", pin="9999")
    with pytest.raises(KeyUriError, match="wrong PIN") as caught:
        load_signing_key(uri, passphrase=None)
    assert "9999" not in str(caught.value)
    # The session token is logged in already: a different PIN is refused all the same.
    with pytest.raises(KeyUriError, match="wrong PIN"):
        load_signing_key(softhsm_token.uri("ca-ec-p256", pin="9999"), passphrase=None)


def test_pin_source_file(
    softhsm_token: SoftHsmToken, hsm_keys: dict[str, SigningKey], tmp_path: Path
) -> None:
    pin_file = tmp_path / "pin dir" / "pin"
    pin_file.parent.mkdir()
    pin_file.write_text(softhsm_token.pin + "\n")
    uri = (
        f"pkcs11:token={softhsm_token.token_label};object=ca-ec-p256"
        f"?module-path={softhsm_token.module_path}&pin-source=file:{tmp_path}/pin%20dir/pin"
    )
    key = load_signing_key(uri, passphrase=None)
    assert key.public_key() == hsm_keys["ec-p256"].public_key()


def test_describe_never_shows_the_pin(softhsm_token: SoftHsmToken) -> None:
    uri = softhsm_token.uri("ca-ec-p256", pin="s3cret-pin")
    description = describe_key_uri(uri)
    assert "s3cret-pin" not in description
    assert "'ca-ec-p256'" in description and "'commune-sso-test'" in description
    assert "s3cret-pin" not in repr(parse_uri(uri))


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("pkcs11:object=k?module-path=/m.so&pin-value=1", "needs both token= and object="),
        ("pkcs11:token=t;object=k?pin-value=1", "needs module-path"),
        ("pkcs11:token=t;object=k?module-path=libsofthsm2.so", "absolute path"),
        ("pkcs11:token=t;object=k;model=x?module-path=/m.so", "not supported here: model"),
        ("pkcs11:token=t;token=u;object=k?module-path=/m.so", "given twice"),
        ("pkcs11:token=t;object=k;type=cert?module-path=/m.so", "type=private"),
        ("pkcs11:token=t;object=k?module-path=/m.so&pin-value=1&pin-source=file:/p", "not both"),
    ],
)
def test_bad_pkcs11_uris(uri: str, message: str) -> None:
    with pytest.raises(KeyUriError, match=message):
        parse_uri(uri)


def test_uri_percent_decoding() -> None:
    parsed = parse_uri(
        "pkcs11:token=S%E1%BB%9F%20N%E1%BB%99i%20v%E1%BB%A5;object=ca%3Broot;id=%01%ff"
        "?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=12%2634"
    )
    assert parsed.token == "Sở Nội vụ"
    assert parsed.object == "ca;root"
    assert parsed.key_id == b"\x01\xff"
    assert parsed.pin() == "12&34"


def test_missing_module_is_a_key_uri_error() -> None:
    with pytest.raises(KeyUriError, match=r"cannot load PKCS#11 module /nonexistent/lib\.so"):
        load_signing_key(
            "pkcs11:token=t;object=k?module-path=/nonexistent/lib.so&pin-value=1234",
            passphrase=None,
        )


def test_concurrent_signing_from_eight_threads(hsm_keys: dict[str, SigningKey]) -> None:
    keys = [hsm_keys["rsa-2048"], hsm_keys["ec-p256"]]
    start = threading.Barrier(8)

    def work(n: int) -> list[x509.Certificate]:
        key = keys[n % 2]
        start.wait()
        return [certificate_builder(key).sign(key, hashes.SHA256()) for _ in range(10)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(8)))
    assert sum(len(r) for r in results) == 80
    for certificates in results:
        for cert in certificates:
            cert.verify_directly_issued_by(cert)


def test_token_goes_away_and_comes_back(
    softhsm_token: SoftHsmToken, hsm_keys: dict[str, SigningKey], tmp_path: Path
) -> None:
    """SoftHSM2 keeps each token in a directory of its tokendir. Moving that directory out is
    the token being pulled: the open session's object handles die (CKR_OBJECT_HANDLE_INVALID),
    C_GetSlotList fails, and a reinitialised library no longer lists the token. Moving it back
    is the token returning: only a new C_Initialize sees it."""
    token_dir = softhsm_token.add_token("removable")
    key = generate_signing_key(
        softhsm_token.uri("removable-key", token="removable"), algorithm="ec-p256", passphrase=None
    )
    other = hsm_keys["rsa-2048"]  # a key on another token of the same module
    certificate_builder(key).sign(key, hashes.SHA256()).verify_directly_issued_by(
        certificate_builder(key).sign(key, hashes.SHA256())
    )

    parked = tmp_path / "unplugged"
    shutil.move(token_dir, parked)
    try:
        for _ in range(2):  # fails every time while absent, and quickly
            started = time.monotonic()
            with pytest.raises(KeyUnavailable, match="'removable-key' on token 'removable'"):
                key.sign(b"payload", ec.ECDSA(hashes.SHA256()))
            assert time.monotonic() - started < 10
        # The library was reinitialised under it: the other token's key carries on.
        other_cert = certificate_builder(other).sign(other, hashes.SHA256())
        other_cert.verify_directly_issued_by(other_cert)
    finally:
        shutil.move(parked, token_dir)

    # Back: the SAME key object signs again, no new load_signing_key.
    cert = certificate_builder(key).sign(key, hashes.SHA256())
    cert.verify_directly_issued_by(cert)
    signature = key.sign(b"payload", ec.ECDSA(hashes.SHA256()))
    public = key.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(signature, b"payload", ec.ECDSA(hashes.SHA256()))


def test_signing_recovers_after_the_library_was_finalised(
    softhsm_token: SoftHsmToken, hsm_keys: dict[str, SigningKey]
) -> None:
    """Another component of the process calls C_Finalize: every session is gone
    (CKR_CRYPTOKI_NOT_INITIALIZED); the next sign reinitialises and logs in again."""
    key = hsm_keys["ec-p384"]
    pkcs11.lib(softhsm_token.module_path).finalize()
    cert = certificate_builder(key).sign(key, hashes.SHA384())
    cert.verify_directly_issued_by(cert)


def test_signing_recovers_after_all_sessions_were_closed(
    softhsm_token: SoftHsmToken, hsm_keys: dict[str, SigningKey]
) -> None:
    """C_CloseAllSessions on the slot (what a token reset or another library user may do): the
    session handle is invalid and the login gone; the next sign opens and logs in again."""
    key = hsm_keys["rsa-3072"]
    certificate_builder(key).sign(key, hashes.SHA256())  # the key has a live session now
    # python-pkcs11 has no C_CloseAllSessions; closing the module's sessions through their own
    # handles (C_Logout + C_CloseSession) behind the key's back has the same effect on it.
    module = pkcs11_keys._modules[softhsm_token.module_path]
    assert module._sessions
    for token_session in module._sessions.values():
        token_session.session.close()
    cert = certificate_builder(key).sign(key, hashes.SHA256())
    cert.verify_directly_issued_by(cert)


def test_sign_does_not_wait_forever_for_a_stuck_module(
    softhsm_token: SoftHsmToken, hsm_keys: dict[str, SigningKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another thread stuck inside the module (a hung HSM call) holds the module lock: a sign
    gives up with KeyUnavailable after LOCK_TIMEOUT instead of hanging the request."""
    monkeypatch.setattr(pkcs11_keys, "LOCK_TIMEOUT", 0.2)
    key = hsm_keys["ec-p256"]
    module = pkcs11_keys._modules[softhsm_token.module_path]
    held, release = threading.Event(), threading.Event()

    def stuck() -> None:
        with module.lock:
            held.set()
            release.wait(10)

    thread = threading.Thread(target=stuck)
    thread.start()
    try:
        assert held.wait(10)
        started = time.monotonic()
        with pytest.raises(KeyUnavailable, match="stayed busy"):
            key.sign(b"payload", ec.ECDSA(hashes.SHA256()))
        assert time.monotonic() - started < 5
    finally:
        release.set()
        thread.join()
    key.sign(b"payload", ec.ECDSA(hashes.SHA256()))  # free again: signs


def test_throwaway_script_refuses_to_overwrite_and_prints_only_the_conf(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[2] / "scripts" / "softhsm-throwaway"
    first = subprocess.run(
        [str(script), "init", str(tmp_path), "t", "1234", "5678"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"SOFTHSM2_CONF={tmp_path}/softhsm2.conf\n"
    conf = (tmp_path / "softhsm2.conf").read_text()
    assert f"directories.tokendir = {tmp_path}/tokens" in conf
    assert "objectstore.backend = file" in conf and "log.level = ERROR" in conf
    assert len(list((tmp_path / "tokens").iterdir())) == 1
    again = subprocess.run(
        [str(script), "init", str(tmp_path), "t", "1234", "5678"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 1 and again.stdout == ""
    assert "already holds a softhsm2.conf" in again.stderr
