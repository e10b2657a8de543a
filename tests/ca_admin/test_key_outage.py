"""The CA's keys on an HSM token that goes away (issue 18, "Names and outages"): OCSP answers
``tryLater`` with HTTP 200 (RFC 6960 §2.3), a revocation is still recorded and audited at once,
its CRL is owed (visible in ``ca crl-partitions``, and ``ca authorities`` for the full CRL) and
signed by the maintenance pass as soon as the key is back, and the pre-produced answers
follow."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from sqlalchemy import select
from starlette.testclient import TestClient

from ca_admin import maintenance, revocation
from ca_admin.models import Authority, PartitionCrl, PreproducedOcspResponse, PublishedCrl
from core.audit import AuditEntry
from core.db import transaction
from tests.ca_admin.conftest import People, issue_one
from tests.cli_runner import Cli
from tests.commune_sso.test_health_and_metrics import hsm_app

__all__ = ["hsm_app"]
OCSP_HEADERS = {"Content-Type": "application/ocsp-request"}


def ask(web: TestClient, certificate: x509.Certificate, issuer: x509.Certificate, *, nonce: bool):
    builder = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA1())
    if nonce:
        builder = builder.add_extension(x509.OCSPNonce(os.urandom(16)), critical=False)
    response = web.post(
        "/ca/ocsp", content=builder.build().public_bytes(Encoding.DER), headers=OCSP_HEADERS
    )
    assert response.status_code == 200, response.text  # an OCSP status, not an HTTP error
    return ocsp.load_der_ocsp_response(response.content)


def actions(web: TestClient, action: str) -> list[AuditEntry]:
    with transaction(web.app.state.ca.session_factory) as session:  # type: ignore[attr-defined]
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_revocations_go_on_while_the_key_is_away_and_their_crl_follows_its_return(
    hsm_app: tuple[TestClient, Path, str], people: People, tmp_path: Path, cli: Cli
) -> None:
    web, token_dir, issuing_name = hsm_app
    ca = web.app.state.ca  # type: ignore[attr-defined]
    first, second = issue_one(ca, people), issue_one(ca, people)
    with transaction(ca.session_factory) as session:
        issuing = session.scalars(select(Authority).where(Authority.name == issuing_name)).one()
        issuer = x509.load_der_x509_certificate(issuing.certificate_der)
        crl_before = session.get(PublishedCrl, issuing.id).crl_number
        number_before = issuing.crl_number  # the partition's CRL came after the full one
        [partition] = {c.crl_partition for c in (first, second)}
    certificates = [x509.load_der_x509_certificate(c.der) for c in (first, second)]
    assert ask(web, certificates[0], issuer, nonce=False).certificate_status.name == "GOOD"

    parked = tmp_path / "unplugged"
    shutil.move(token_dir, parked)
    try:
        # Asked live (a nonce), the responder cannot sign: tryLater, as RFC 6960 §2.3 says.
        answer = ask(web, certificates[0], issuer, nonce=True)
        assert answer.response_status == ocsp.OCSPResponseStatus.TRY_LATER
        for certificate in (first, second):
            with transaction(ca.session_factory) as session:
                revocation.revoke(
                    session=session,
                    runtime=ca,
                    actor="test",
                    serial=certificate.serial,
                    reason="keyCompromise",
                )
        # Recorded and audited at once; the partition's CRL (the one the certificates name) is
        # owed, once, since the first revocation; the full CRL is only behind, as with the key.
        assert len(actions(web, "ca.certificate.revoked")) == 2
        deferred = actions(web, "ca.crl.deferred")
        assert [json.loads(e.details)["partition"] for e in deferred] == [partition]
        assert {json.loads(e.details)["cause"] for e in deferred} == {"revocation"}
        with transaction(ca.session_factory) as session:
            authority = session.get(Authority, issuing.id)
            assert authority.crl_pending_since is None
            assert authority.full_crl_stale_since is not None
            assert session.get(PartitionCrl, (issuing.id, partition)).pending_since is not None
            assert session.get(PublishedCrl, issuing.id).crl_number == crl_before
            # The stored "good" answers went with the change: never served after it.
            stored = session.scalars(select(PreproducedOcspResponse.serial)).all()
            assert first.serial not in stored and second.serial not in stored
        for nonce in (False, True):
            answer = ask(web, certificates[0], issuer, nonce=nonce)
            assert answer.response_status == ocsp.OCSPResponseStatus.TRY_LATER
        # The operator sees the backlog.
        [owed] = cli.json("ca", "crl-partitions", "--json")
        assert owed["crl_owed_since"] is not None
        # The maintenance pass while the key is still away: nothing signed, nothing lost; the
        # full CRL it came to sign is owed from then on.
        maintenance.run_due(ca)
        deferred = [json.loads(e.details) for e in actions(web, "ca.crl.deferred")]
        assert [(d["partition"], d["cause"]) for d in deferred] == [
            (partition, "revocation"),
            (None, "catch_up"),
        ]
        listed = cli.json("ca", "authorities", "--json")
        owed = {row["name"]: row["crl_owed_since"] for row in listed}
        assert owed[issuing_name] is not None
        maintenance.run_due(ca)
        assert len(actions(web, "ca.crl.deferred")) == 2
    finally:
        shutil.move(parked, token_dir)

    crl_numbers, _ = maintenance.run_due(ca)
    assert crl_numbers == [number_before + 1, number_before + 2]
    with transaction(ca.session_factory) as session:
        authority = session.get(Authority, issuing.id)
        assert authority.crl_pending_since is None and authority.full_crl_stale_since is None
        partition_crl = session.get(PartitionCrl, (issuing.id, partition))
        assert partition_crl.pending_since is None
        crls = [
            x509.load_der_x509_crl(der)
            for der in (session.get(PublishedCrl, issuing.id).der, partition_crl.der)
        ]
    for crl in crls:
        assert crl.is_signature_valid(issuer.public_key())
        for certificate in certificates:
            entry = crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
            assert entry is not None
    published = [
        json.loads(e.details)
        for e in actions(web, "ca.crl.published")
        if json.loads(e.details)["cause"] == "backlog"
    ]
    assert [(p["partition"], p["crl_number"]) for p in published] == [
        (None, number_before + 1),
        (partition, number_before + 2),
    ]
    for nonce in (False, True):
        answer = ask(web, certificates[1], issuer, nonce=nonce)
        assert answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
        assert answer.certificate_status == ocsp.OCSPCertStatus.REVOKED
