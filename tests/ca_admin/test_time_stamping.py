"""RFC 3161 time-stamping authority: ``POST /tsa`` through the real app, judged by
``openssl ts`` (query, reply, verify), pkilint on the TSA certificate, and every token recorded
and audited."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from asn1crypto import core as asn1_core
from asn1crypto import tsp as asn1_tsp
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID
from prometheus_client import REGISTRY
from sqlalchemy import delete, func, insert, select, update
from starlette.applications import Starlette
from starlette.testclient import TestClient

from ca_admin import der_encoding as der
from ca_admin import time_stamping
from ca_admin.models import Authority, IssuedCertificate, TimeStampingUnit, TimeStampToken
from ca_admin.runtime import CaRuntime
from ca_admin.serials import serial_hex
from ca_admin.tsa_certificate import issue_tsa_unit
from core.audit import AuditChainHead, AuditEntry, verify
from core.db import transaction
from tests.ca_admin.conftest import make_hierarchy
from tests.ca_admin.interop_support import errors_of, lint_report, openssl, pkilint, write_pem
from tests.softhsm import SoftHsmToken

QUERY = "application/timestamp-query"
REPLY = "application/timestamp-reply"


@pytest.fixture
def app_ca(app: Starlette) -> CaRuntime:
    runtime: CaRuntime = app.state.ca
    return runtime


@pytest.fixture
def tsa(app_ca: CaRuntime) -> dict[str, x509.Certificate]:
    root, issuing = make_hierarchy(app_ca)
    with transaction(app_ca.session_factory) as session:
        unit = issue_tsa_unit(session=session, runtime=app_ca, actor="test")
        certificate = x509.load_der_x509_certificate(unit.certificate_der)
    return {
        "root": x509.load_der_x509_certificate(root.certificate_der),
        "issuing": x509.load_der_x509_certificate(issuing.certificate_der),
        "tsa": certificate,
    }


def _post(web: TestClient, body: bytes, content_type: str = QUERY) -> bytes:
    reply = web.post("/tsa", content=body, headers={"Content-Type": content_type})
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == REPLY
    return reply.content


def _query(tmp_path: Path, *options: str) -> bytes:
    document = tmp_path / "document.txt"
    document.write_bytes("Quyết định số 12/QĐ-UBND".encode())
    query = tmp_path / "query.tsq"
    result = openssl("ts", "-query", "-data", document, "-out", query, *options)
    assert result.returncode == 0, result.stderr
    return query.read_bytes()


def _assert_verifies(what: list[str], response: Path, root: Path, untrusted: Path) -> None:
    """``openssl ts -verify`` of a reply against data, a digest or the query (nonce too)."""
    checked = openssl(
        "ts", "-verify", *what, "-in", response, "-CAfile", root, "-untrusted", untrusted
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Verification: OK" in checked.stdout, checked.stdout + checked.stderr


def _failure(response: bytes) -> tuple[str, set[str]]:
    """PKIStatusInfo of a TimeStampResp without token (asn1crypto's TimeStampResp wants one)."""
    status = asn1_tsp.PKIStatusInfo.load(asn1_core.Sequence.load(response)[0].dump())
    return status["status"].native, set(status["fail_info"].native)


def test_tsa_certificate_has_the_rfc_3161_profile_and_lints_clean(
    app_ca: CaRuntime, tsa: dict[str, x509.Certificate]
) -> None:
    certificate = tsa["tsa"]
    eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    key_usage = certificate.extensions.get_extension_for_class(x509.KeyUsage)
    assert key_usage.critical
    assert key_usage.value.digital_signature and key_usage.value.content_commitment
    assert not key_usage.value.key_cert_sign
    assert certificate.issuer == tsa["issuing"].subject
    findings = pkilint("certificate", certificate.public_bytes(Encoding.DER))
    assert not errors_of(findings), lint_report(findings)
    # In the issuing CA's revocation table: its CRL and OCSP answer for it.
    with transaction(app_ca.session_factory) as session:
        row = session.scalar(
            select(IssuedCertificate).where(
                IssuedCertificate.serial == serial_hex(certificate.serial_number)
            )
        )
        assert row is not None and row.profile == "time-stamping"
        issuer = session.scalar(select(Authority).where(Authority.id == row.authority_id))
        assert issuer is not None and issuer.role == "issuing"


@pytest.mark.parametrize(
    ("form", "nonce", "cert_req"),
    [
        ("data", True, True),
        ("data", False, False),
        ("digest", True, False),
        ("digest", False, True),
    ],
)
def test_openssl_verifies_our_time_stamps(
    web: TestClient,
    app_ca: CaRuntime,
    tsa: dict[str, x509.Certificate],
    tmp_path: Path,
    form: str,
    nonce: bool,
    cert_req: bool,
) -> None:
    document = tmp_path / "document.txt"
    document.write_bytes("Quyết định số 12/QĐ-UBND".encode())
    digest = hashlib.sha256(document.read_bytes()).hexdigest()
    query = tmp_path / "query.tsq"
    source = ["-data", str(document)] if form == "data" else ["-digest", digest, "-sha256"]
    made = openssl(
        "ts",
        "-query",
        *source,
        *([] if nonce else ["-no_nonce"]),
        *(["-cert"] if cert_req else []),
        "-out",
        query,
    )
    assert made.returncode == 0, made.stderr
    reply = web.post("/tsa", content=query.read_bytes(), headers={"Content-Type": QUERY})
    assert reply.status_code == 200 and reply.headers["content-type"] == REPLY
    response = tmp_path / "reply.tsr"
    response.write_bytes(reply.content)

    token = asn1_tsp.TimeStampResp.load(reply.content)
    assert token["status"]["status"].native == "granted"
    # Hand-written DER (ca_admin.der_encoding): asn1crypto re-encodes it to the same bytes.
    assert asn1_tsp.TimeStampResp.load(reply.content).dump(force=True) == reply.content
    signed_data = token["time_stamp_token"]["content"]
    assert (len(signed_data["certificates"]) if signed_data["certificates"] else 0) == int(cert_req)
    tst_info = signed_data["encap_content_info"]["content"].parsed
    assert tst_info["version"].native == "v1"
    assert tst_info["policy"].dotted == app_ca.tsa_policy
    assert tst_info["message_imprint"]["hashed_message"].native.hex() == digest
    assert tst_info["accuracy"].native == {"seconds": 1, "millis": None, "micros": None}
    request = asn1_tsp.TimeStampReq.load(query.read_bytes())
    assert tst_info["nonce"].native == request["nonce"].native
    attributes = {a["type"].native for a in signed_data["signer_infos"][0]["signed_attrs"]}
    assert "signing_certificate_v2" in attributes

    root = write_pem(tmp_path, "root.pem", tsa["root"])
    # Without certReq the token carries no certificate: the verifier is given the TSA's.
    untrusted = write_pem(tmp_path, "untrusted.pem", tsa["issuing"], tsa["tsa"])
    _assert_verifies(source[:2], response, root, untrusted)
    # The query form checks the nonce too.
    _assert_verifies(["-queryfile", str(query)], response, root, untrusted)

    # Recorded and audited: serial, imprint, client address.
    serial = serial_hex(tst_info["serial_number"].native)
    with transaction(app_ca.session_factory) as session:
        stored = session.get(TimeStampToken, serial)
        assert stored is not None
        assert stored.message_imprint == digest and stored.hash_algorithm == "sha256"
        assert stored.client_address == "testclient"
        entry = session.scalar(
            select(AuditEntry)
            .where(AuditEntry.action == "ca.timestamp.issued")
            .order_by(AuditEntry.seq.desc())
            .limit(1)
        )
        assert entry is not None and entry.client_address == "testclient"
        (audited,) = json.loads(entry.details)["tokens"]
        assert audited["serial"] == serial and audited["message_imprint"] == digest
        assert audited["client_address"] == "testclient"
        assert verify(session).ok


def test_serials_are_unique_and_each_token_is_audited(
    web: TestClient, app_ca: CaRuntime, tsa: dict[str, x509.Certificate], tmp_path: Path
) -> None:
    query = _query(tmp_path)
    serials = set()
    for _ in range(5):
        response = asn1_tsp.TimeStampResp.load(_post(web, query))
        tst_info = response["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed
        serials.add(tst_info["serial_number"].native)
    assert len(serials) == 5
    with transaction(app_ca.session_factory) as session:
        entries = session.scalars(
            select(AuditEntry.details).where(AuditEntry.action == "ca.timestamp.issued")
        ).all()
    audited = [token["serial"] for entry in entries for token in json.loads(entry)["tokens"]]
    assert sorted(audited) == sorted(serial_hex(serial) for serial in serials)


def _assert_committed_together(app_ca: CaRuntime, replies: list[time_stamping.Reply]) -> None:
    """24 granted tokens, each recorded once and audited, in fewer audit entries than tokens
    (the group commit), on an intact audit chain."""
    assert [reply.outcome for reply in replies] == ["granted"] * 24
    serials = {serial_hex(reply.serial) for reply in replies if reply.serial is not None}
    assert len(serials) == 24
    with transaction(app_ca.session_factory) as session:
        stored = set(session.scalars(select(TimeStampToken.serial)).all())
        entries = session.scalars(
            select(AuditEntry.details).where(AuditEntry.action == "ca.timestamp.issued")
        ).all()
        assert verify(session).ok
    assert stored == serials
    audited = [token["serial"] for entry in entries for token in json.loads(entry)["tokens"]]
    assert sorted(audited) == sorted(serials)
    assert len(entries) < 24


def test_tokens_signed_together_are_committed_together(
    app_ca: CaRuntime, tsa: dict[str, x509.Certificate], tmp_path: Path
) -> None:
    """Group commit: 24 requests at once from 8 threads, every token recorded once and audited
    in fewer entries than tokens; no reply before its record."""
    query = _query(tmp_path)
    replies: list[time_stamping.Reply] = []

    def ask() -> None:
        for _ in range(3):
            replies.append(
                time_stamping.stamp(runtime=app_ca, request_der=query, client_address="10.0.0.7")
            )

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _assert_committed_together(app_ca, replies)


def test_requests_on_the_event_loop_are_committed_together(
    app_ca: CaRuntime, tsa: dict[str, x509.Certificate], tmp_path: Path
) -> None:
    """The endpoint's path (stamp_on_loop): 24 requests at once on one event loop, no thread
    per request, every token recorded once and audited in fewer entries than tokens."""
    query = _query(tmp_path)

    async def ask_all() -> list[time_stamping.Reply]:
        return await asyncio.gather(
            *(
                time_stamping.stamp_on_loop(
                    runtime=app_ca, request_der=query, client_address="10.0.0.8"
                )
                for _ in range(24)
            )
        )

    replies = asyncio.run(ask_all())
    _assert_committed_together(app_ca, replies)


def test_a_failed_commit_answers_system_failure_and_the_next_request_is_served(
    web: TestClient, app_ca: CaRuntime, tsa: dict[str, x509.Certificate]
) -> None:
    """No token without its record: when the batch cannot commit (here the audit chain's head
    row is gone, so the entry cannot be chained), the reply is systemFailure, nothing is
    stored; once the head is back the ledger commits again."""
    with transaction(app_ca.session_factory) as session:
        head = session.execute(select(AuditChainHead.__table__)).one()._asdict()
        session.execute(delete(AuditChainHead))
    assert _failure(_post(web, _request())) == ("rejection", {"system_failure"})
    with transaction(app_ca.session_factory) as session:
        assert session.scalar(select(func.count()).select_from(TimeStampToken)) == 0
        session.execute(insert(AuditChainHead.__table__).values(head))
    granted = asn1_tsp.TimeStampResp.load(_post(web, _request()))
    assert granted["status"]["status"].native == "granted"
    with transaction(app_ca.session_factory) as session:
        assert session.scalar(select(func.count()).select_from(TimeStampToken)) == 1
        assert verify(session).ok


def test_tsa_is_matched_before_the_router_and_counted_under_its_route(
    web: TestClient, tsa: dict[str, x509.Certificate]
) -> None:
    labels = {"method": "POST", "route": "/tsa", "status": "2xx"}
    before = REGISTRY.get_sample_value("commune_sso_http_requests_total", labels) or 0.0
    _post(web, _request())
    assert REGISTRY.get_sample_value("commune_sso_http_requests_total", labels) == before + 1
    # Other methods still reach the router's route: 405 naming POST.
    refused = web.get("/tsa")
    assert refused.status_code == 405
    assert refused.headers["allow"] == "POST"


def test_sha1_is_refused_as_bad_alg(
    web: TestClient, tsa: dict[str, x509.Certificate], tmp_path: Path
) -> None:
    assert _failure(_post(web, _query(tmp_path, "-sha1"))) == ("rejection", {"bad_alg"})


def test_unknown_policy_is_refused(
    web: TestClient, tsa: dict[str, x509.Certificate], tmp_path: Path
) -> None:
    response = _post(web, _query(tmp_path, "-tspolicy", "1.2.3.4.5"))
    assert _failure(response) == ("rejection", {"unaccepted_policy"})


def test_our_policy_requested_is_granted(
    web: TestClient, app_ca: CaRuntime, tsa: dict[str, x509.Certificate], tmp_path: Path
) -> None:
    response = asn1_tsp.TimeStampResp.load(
        _post(web, _query(tmp_path, "-tspolicy", app_ca.tsa_policy))
    )
    assert response["status"]["status"].native == "granted"


@pytest.mark.parametrize(
    "body",
    [b"", b"not DER at all", b"\x30\x03\x02\x01", b"\x30" + b"\x84\xff\xff\xff\xff"],
    ids=["empty", "text", "truncated", "huge-length"],
)
def test_bad_der_is_bad_data_format(
    web: TestClient, tsa: dict[str, x509.Certificate], body: bytes
) -> None:
    assert _failure(_post(web, body)) == ("rejection", {"bad_data_format"})


def test_too_long_a_request_is_bad_data_format(
    web: TestClient, tsa: dict[str, x509.Certificate]
) -> None:
    assert _failure(_post(web, b"\x30" * 5000)) == ("rejection", {"bad_data_format"})


def test_wrong_content_type_is_415(web: TestClient, tsa: dict[str, x509.Certificate]) -> None:
    reply = web.post("/tsa", content=b"\x30\x00", headers={"Content-Type": "application/json"})
    assert reply.status_code == 415
    assert reply.headers["accept-post"] == QUERY


def test_without_a_tsa_unit_the_answer_is_system_failure(
    web: TestClient, app_ca: CaRuntime, tmp_path: Path
) -> None:
    make_hierarchy(app_ca)
    assert _failure(_post(web, _query(tmp_path))) == ("rejection", {"system_failure"})


@pytest.mark.parametrize("value", [0, 1, 127, 128, 255, 256, 2**63, 2**136 + 5])
def test_der_integers_are_minimal_and_positive(value: int) -> None:
    assert der.integer(value) == asn1_core.Integer(value).dump()


@pytest.mark.parametrize("microsecond", [0, 120000, 123000, 5])
def test_der_generalized_time_drops_trailing_zeros(microsecond: int) -> None:
    moment = datetime(2026, 12, 7, 19, 30, 1, microsecond, tzinfo=UTC)
    assert der.generalized_time(moment) == asn1_core.GeneralizedTime(moment).dump()


def test_der_lengths_in_long_form() -> None:
    for size in (0, 127, 128, 255, 256, 70_000):
        encoded = der.tlv(der.OCTET_STRING, bytes(size))
        assert asn1_core.OctetString.load(encoded).native == bytes(size)


def test_a_tsa_key_in_an_hsm_signs_tokens_openssl_verifies(
    web: TestClient, app_ca: CaRuntime, softhsm_token: SoftHsmToken, tmp_path: Path
) -> None:
    root, issuing = make_hierarchy(app_ca)
    token = f"tsa-{os.getpid()}-{secrets.token_hex(3)}"
    softhsm_token.add_token(token)
    with transaction(app_ca.session_factory) as session:
        unit = issue_tsa_unit(
            session=session,
            runtime=app_ca,
            actor="test",
            name="tsa-hsm",
            key_uri=softhsm_token.uri("tsa-signer", token=token),
        )
        assert unit.key_uri.startswith("pkcs11:")
    query = tmp_path / "query.tsq"
    query.write_bytes(_query(tmp_path, "-cert"))
    response = tmp_path / "reply.tsr"
    response.write_bytes(_post(web, query.read_bytes()))
    _assert_verifies(
        ["-queryfile", str(query)],
        response,
        write_pem(tmp_path, "root.pem", x509.load_der_x509_certificate(root.certificate_der)),
        write_pem(tmp_path, "issuing.pem", x509.load_der_x509_certificate(issuing.certificate_der)),
    )


def _request(**changes: object) -> bytes:
    fields: dict[str, object] = {
        "version": "v1",
        "message_imprint": {
            "hash_algorithm": {"algorithm": "sha256"},
            "hashed_message": bytes(32),
        },
        "cert_req": True,
    }
    fields.update(changes)
    return asn1_tsp.TimeStampReq(fields).dump()


@pytest.mark.parametrize(
    ("body", "failure"),
    [
        (_request(version=2), "bad_request"),
        (
            _request(
                message_imprint={
                    "hash_algorithm": {"algorithm": "sha256"},
                    "hashed_message": bytes(20),
                }
            ),
            "bad_request",
        ),
        (
            _request(
                message_imprint={
                    "hash_algorithm": {"algorithm": "md5"},
                    "hashed_message": bytes(16),
                }
            ),
            "bad_alg",
        ),
        (_request(nonce=-5), "bad_request"),
        (_request(nonce=2**600), "bad_request"),
        (
            _request(
                extensions=[{"extn_id": "1.2.3.4", "critical": False, "extn_value": b"\x05\x00"}]
            ),
            "unaccepted_extensions",
        ),
    ],
    ids=["version-2", "short-imprint", "md5", "negative-nonce", "huge-nonce", "extension"],
)
def test_malformed_requests_get_their_failure_info(
    web: TestClient, tsa: dict[str, x509.Certificate], body: bytes, failure: str
) -> None:
    assert _failure(_post(web, body)) == ("rejection", {failure})


def test_an_unavailable_tsa_key_is_system_failure_not_500(
    web: TestClient, app_ca: CaRuntime, tsa: dict[str, x509.Certificate], tmp_path: Path
) -> None:
    with transaction(app_ca.session_factory) as session:
        session.execute(
            update(TimeStampingUnit).values(key_uri=f"file:{tmp_path / 'gone.key.pem'}")
        )
    app_ca.tsa_signers.forget()
    assert _failure(_post(web, _request())) == ("rejection", {"system_failure"})
    with transaction(app_ca.session_factory) as session:
        assert session.scalar(select(func.count()).select_from(TimeStampToken)) == 0
