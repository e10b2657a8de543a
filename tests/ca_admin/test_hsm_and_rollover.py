"""A CA whose keys live in an HSM (SoftHSM2 over PKCS#11) works exactly like one with file keys;
a rollover adds an issuing CA while the old one keeps publishing status for its certificates."""

from __future__ import annotations

import itertools
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509 import ocsp

from ca_admin import revocation
from ca_admin.hierarchy import CaSetup, add_issuing_ca, init_hierarchy
from ca_admin.models import Authority
from ca_admin.runtime import CaRuntime
from core.db import transaction
from tests.ca_admin.conftest import ORGANISATION, People, issue_one
from tests.ca_admin.interop_support import crl_named_by
from tests.ca_admin.test_revocation import ask_ocsp
from tests.softhsm import SoftHsmToken

_labels = itertools.count()


def test_hsm_keys_sign_certificates_crls_and_ocsp_like_file_keys(
    ca_runtime: CaRuntime, people: People, softhsm_token: SoftHsmToken
) -> None:
    run = f"{os.getpid()}-{next(_labels)}"
    # A token of its own: the key tests count on what is on the session's main token.
    token = f"ca-{run}"
    softhsm_token.add_token(token)
    with transaction(ca_runtime.session_factory) as session:
        _root, issuing = init_hierarchy(
            session=session,
            runtime=ca_runtime,
            actor="test",
            setup=CaSetup(
                organisation=ORGANISATION,
                root_algorithm="ec-p256",  # the root stays a file key: it is kept offline
                issuing_algorithm="rsa-2048",
                ocsp_algorithm="ec-p256",
                signature_scheme="pss",
                issuing_key_uri=softhsm_token.uri("issuing-ca", token=token),
                ocsp_key_uri=softhsm_token.uri("ocsp-signer", token=token),
            ),
        )
    assert issuing.key_uri.startswith("pkcs11:")
    issued = issue_one(ca_runtime, people)
    certificate = x509.load_der_x509_certificate(issued.der)
    issuer_certificate = x509.load_der_x509_certificate(issuing.certificate_der)
    public_key = issuer_certificate.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    # RSASSA-PSS (RFC 4055) made inside the token, verified outside it.
    public_key.verify(
        certificate.signature,
        certificate.tbs_certificate_bytes,
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
        hashes.SHA256(),
    )
    with transaction(ca_runtime.session_factory) as session:
        revocation.revoke(
            session=session,
            runtime=ca_runtime,
            actor="test",
            serial=issued.serial,
            reason="keyCompromise",
        )
    crl = crl_named_by(ca_runtime, certificate)
    assert crl.is_signature_valid(public_key)
    assert crl.get_revoked_certificate_by_serial_number(certificate.serial_number) is not None
    answer = ask_ocsp(ca_runtime, issuing, certificate.serial_number, nonce=os.urandom(16))
    assert answer.certificate_status == ocsp.OCSPCertStatus.REVOKED


def test_rollover_new_certificates_come_from_the_new_issuing_ca(
    ca_runtime: CaRuntime, hierarchy: tuple[Authority, Authority], people: People
) -> None:
    root, old_issuing = hierarchy
    before = issue_one(ca_runtime, people)
    with transaction(ca_runtime.session_factory) as session:
        root_row = session.get(Authority, root.id)
        assert root_row is not None
        new_issuing = add_issuing_ca(
            session=session,
            runtime=ca_runtime,
            actor="test",
            root=root_row,
            name="issuing-ca-2",
            organisation=ORGANISATION,
            algorithm="ec-p256",
            ocsp_algorithm="ec-p256",
        )
    after = issue_one(ca_runtime, people)
    assert before.authority_id == old_issuing.id
    assert after.authority_id == new_issuing.id
    x509.load_der_x509_certificate(after.der).verify_directly_issued_by(
        x509.load_der_x509_certificate(new_issuing.certificate_der)
    )
    # The old CA still answers for its own certificates, the new one for its own.
    assert ask_ocsp(ca_runtime, old_issuing, int(before.serial, 16)).certificate_status == (
        ocsp.OCSPCertStatus.GOOD
    )
    assert ask_ocsp(ca_runtime, new_issuing, int(after.serial, 16)).certificate_status == (
        ocsp.OCSPCertStatus.GOOD
    )
    assert ask_ocsp(ca_runtime, new_issuing, int(before.serial, 16)).certificate_status == (
        ocsp.OCSPCertStatus.UNKNOWN
    )
