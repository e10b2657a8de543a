"""The CA's REST API with real access tokens from our own token endpoint, on both databases."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from starlette.applications import Starlette
from starlette.testclient import TestClient

import ca_admin
import core
from ca_admin.models import Authority
from ca_admin.profiles import get_profile
from ca_admin.runtime import CaRuntime
from ca_admin.serials import openssl_serial
from core import audit
from core.db import transaction
from core.web.i18n import load_translations
from idp import accounts
from idp.models import Account
from idp.runtime import IdpRuntime
from tests.ca_admin.conftest import BA_DINH, HOAN_KIEM, People, issue_one, make_csr
from tests.ca_admin.interop_support import crldp_path
from tests.conftest import OFFICIAL_PASSWORD, register_client
from tests.idp.oidc_flow import authorize_params, exchange_code, log_in, pkce_pair, query_of

API = "/ca/api/v1"
VIETNAMESE = load_translations(
    [Path(core.__file__).parent / "web" / "locale", Path(ca_admin.__file__).parent / "locale"]
)["vi"]
ALL_CA_SCOPES = "openid ca:read ca:request ca:approve ca:revoke"


@pytest.fixture
def ca_runtime(app: Starlette) -> CaRuntime:
    runtime: CaRuntime = app.state.ca
    return runtime


@pytest.fixture
def shared_app(runtime: IdpRuntime) -> tuple[str, str]:
    """A first-party shared app allowed to ask for every CA scope."""
    client, secret = register_client(runtime, scope=f"{ALL_CA_SCOPES} profile")
    assert secret is not None
    return client.client_id, secret


def user_token(
    web: TestClient,
    runtime: IdpRuntime,
    shared_app: tuple[str, str],
    account: Account,
    scope: str = ALL_CA_SCOPES,
) -> str:
    """An official's access token through the real authorization code flow (with PKCE)."""
    with transaction(runtime.session_factory) as session:
        stored = session.get(Account, account.id)
        assert stored is not None
        accounts.set_password(
            session=session,
            clock=runtime.clock,
            passwords=runtime.passwords,
            actor="test",
            account=stored,
            password=OFFICIAL_PASSWORD,
        )
    web.cookies.clear()  # a new browser: no single sign-on into the previous user's session
    client_id, secret = shared_app
    verifier, challenge = pkce_pair()
    redirect = log_in(
        web,
        authorize_params(client_id, challenge, scope=scope),
        account.username,
        OFFICIAL_PASSWORD,
    )
    code = query_of(redirect.headers["location"])["code"]
    response = exchange_code(web, client_id, secret, code, verifier)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def service_token(web: TestClient, runtime: IdpRuntime, scope: str) -> tuple[str, str, str]:
    client, secret = register_client(
        runtime,
        name="Hệ thống một cửa",
        grant_types=["client_credentials"],
        redirect_uris=[],
        post_logout_redirect_uris=[],
        scope=scope,
    )
    assert secret is not None
    response = web.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, secret)
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"], client.client_id, secret


def vi(msgid: str) -> str:
    """The Vietnamese text of a msgid, as the ca_admin catalogue has it (never the English)."""
    text: str = VIETNAMESE.gettext(msgid)
    assert text != msgid, f"no Vietnamese translation for {msgid!r}"
    return text


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


def submit(web: TestClient, token: str, **fields: object) -> dict[str, object]:
    body = {"profile": "official-document-signing", "csr": make_csr()[0].decode(), **fields}
    response = web.post(f"{API}/requests", json=body, headers=bearer(token))
    assert response.status_code == 201, response.text
    data: dict[str, object] = response.json()
    return data


def test_tokens_are_required_and_scoped(
    web: TestClient,
    runtime: IdpRuntime,
    shared_app: tuple[str, str],
    hierarchy: tuple[Authority, Authority],
    people: People,
) -> None:
    missing = web.get(f"{API}/certificates")
    assert missing.status_code == 401
    # RFC 6750 §3.1: no error code when the request had no credentials at all.
    assert missing.headers["www-authenticate"] == 'Bearer realm="ca"'
    assert missing.json()["error"] == "invalid_token"
    # Vietnamese by default.
    assert missing.json()["message"] == vi("An access token is required (Authorization: Bearer).")

    forged = web.get(f"{API}/certificates", headers=bearer("a.b.c"))
    assert forged.status_code == 401
    assert forged.headers["www-authenticate"] == 'Bearer realm="ca", error="invalid_token"'

    token, client_id, secret = service_token(web, runtime, "ca:read")
    listed = web.get(f"{API}/certificates", headers=bearer(token))
    assert listed.status_code == 200
    assert listed.json() == {"items": [], "next_cursor": None}  # a client administers nothing

    refused = web.post(
        f"{API}/requests",
        json={"profile": "official-document-signing", "csr": make_csr()[0].decode()},
        headers=bearer(token, **{"Accept-Language": "en-GB,en;q=0.9"}),
    )
    assert refused.status_code == 403
    assert refused.json() == {
        "error": "insufficient_scope",
        "message": "The access token does not carry the ca:request scope.",
    }
    assert refused.headers["www-authenticate"] == (
        'Bearer realm="ca", error="insufficient_scope", scope="ca:request"'
    )

    # A token revoked at our RFC 7009 endpoint stops working at once (the jti denylist).
    revoked = web.post("/oauth2/revoke", data={"token": token}, auth=(client_id, secret))
    assert revoked.status_code == 200
    after = web.get(f"{API}/certificates", headers=bearer(token))
    assert after.status_code == 401
    assert after.json()["error"] == "invalid_token"

    # An official's token without ca:approve cannot approve anything.
    official = user_token(web, runtime, shared_app, people.official, "openid ca:read")
    denied = web.post(f"{API}/requests/0123/approve", headers=bearer(official))
    assert denied.status_code == 403
    assert denied.json()["error"] == "insufficient_scope"


def test_request_approve_download_revoke(
    web: TestClient,
    runtime: IdpRuntime,
    shared_app: tuple[str, str],
    hierarchy: tuple[Authority, Authority],
    people: People,
) -> None:
    official = user_token(web, runtime, shared_app, people.official)
    outsider = user_token(web, runtime, shared_app, people.other_unit_admin)
    admin = user_token(web, runtime, shared_app, people.unit_admin)

    request = submit(web, official, idempotency_key="req-1")
    assert request["status"] == "pending"
    assert request["subject_ref"] == people.official.subject
    assert request["unit_code"] == HOAN_KIEM
    # A double submit with the same key returns the first request, not a second one.
    again = web.post(
        f"{API}/requests",
        json={"profile": "official-document-signing", "csr": make_csr()[0].decode()},
        headers=bearer(official, **{"Idempotency-Key": "req-1"}),
    )
    assert again.status_code == 200
    assert again.json()["id"] == request["id"]

    # The admin of another ward neither sees nor approves it.
    outsider_list = web.get(
        f"{API}/requests", params={"status": "pending"}, headers=bearer(outsider)
    )
    assert outsider_list.status_code == 200
    assert outsider_list.json()["items"] == []
    other_unit = web.get(f"{API}/requests", params={"unit": HOAN_KIEM}, headers=bearer(outsider))
    assert other_unit.status_code == 403
    refused = web.post(f"{API}/requests/{request['id']}/approve", headers=bearer(outsider))
    assert refused.status_code == 403
    assert refused.json()["error"] == "approval_refused"
    assert refused.json()["message"] == vi("You do not administer this official's unit.")

    # The official cannot approve their own request.
    own = web.post(f"{API}/requests/{request['id']}/approve", headers=bearer(official))
    assert own.status_code == 403

    pending = web.get(f"{API}/requests", params={"status": "pending"}, headers=bearer(admin))
    assert [item["id"] for item in pending.json()["items"]] == [request["id"]]
    approved = web.post(f"{API}/requests/{request['id']}/approve", headers=bearer(admin))
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "issued"
    assert approved.json()["approved_by"] == [people.unit_admin.username]
    assert approved.json()["requested_by"] == people.official.username
    serial = approved.json()["certificate_serial"]
    assert serial
    decided_again = web.post(f"{API}/requests/{request['id']}/approve", headers=bearer(admin))
    assert decided_again.status_code == 409

    # Download: the official reads their own certificate and its chain.
    chain_response = web.get(f"{API}/certificates/{serial}/chain", headers=bearer(official))
    assert chain_response.status_code == 200
    assert chain_response.headers["content-type"].startswith("application/x-pem-file")
    leaf, issuing, root = x509.load_pem_x509_certificates(chain_response.content)
    assert openssl_serial(leaf.serial_number) == serial
    leaf.verify_directly_issued_by(issuing)
    issuing.verify_directly_issued_by(root)
    root.verify_directly_issued_by(root)
    single = web.get(
        f"{API}/certificates/{serial}", params={"format": "pem"}, headers=bearer(official)
    )
    assert x509.load_pem_x509_certificate(single.content) == leaf

    # Listing is limited by the caller's delegated scope.
    def listed(token: str, **params: str) -> list[str]:
        response = web.get(f"{API}/certificates", params=params, headers=bearer(token))
        assert response.status_code == 200, response.text
        return [item["serial"] for item in response.json()["items"]]

    assert listed(admin) == [serial]
    assert listed(admin, unit=HOAN_KIEM, status="good", q="nguyen van") == [serial]
    assert listed(admin, q="Trần") == []
    assert listed(official) == [serial]
    assert listed(outsider) == []
    assert (
        web.get(
            f"{API}/certificates", params={"unit": HOAN_KIEM}, headers=bearer(outsider)
        ).status_code
        == 403
    )
    assert listed(outsider, unit=BA_DINH) == []
    assert web.get(f"{API}/certificates/{serial}", headers=bearer(outsider)).status_code == 403

    # Revoke: the OCSP responder says revoked; revoking twice is a conflict.
    revoked = web.post(
        f"{API}/certificates/{serial}/revoke",
        json={"reason": "keyCompromise"},
        headers=bearer(admin),
    )
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked"
    assert revoked.json()["revocation_reason"] == "keyCompromise"
    request_der = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(leaf, issuing, hashes.SHA1())
        .add_extension(x509.OCSPNonce(os.urandom(16)), critical=False)
        .build()
        .public_bytes(Encoding.DER)
    )
    answer = ocsp.load_der_ocsp_response(
        web.post(
            "/ca/ocsp", content=request_der, headers={"Content-Type": "application/ocsp-request"}
        ).content
    )
    assert answer.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert answer.revocation_reason == x509.ReasonFlags.key_compromise
    twice = web.post(
        f"{API}/certificates/{serial}/revoke",
        json={"reason": "keyCompromise"},
        headers=bearer(admin),
    )
    assert twice.status_code == 409
    assert twice.json()["error"] == "already_revoked"


def test_hold_release_and_who_may(
    web: TestClient,
    runtime: IdpRuntime,
    shared_app: tuple[str, str],
    hierarchy: tuple[Authority, Authority],
    people: People,
) -> None:
    official = user_token(web, runtime, shared_app, people.official)
    province = user_token(web, runtime, shared_app, people.province_admin)
    outsider = user_token(web, runtime, shared_app, people.other_province_admin)
    request = submit(web, official)
    approved = web.post(f"{API}/requests/{request['id']}/approve", headers=bearer(province))
    assert approved.status_code == 200, approved.text
    serial = approved.json()["certificate_serial"]

    assert (
        web.post(f"{API}/certificates/{serial}/hold", headers=bearer(official)).status_code == 403
    )
    assert (
        web.post(f"{API}/certificates/{serial}/hold", headers=bearer(outsider)).status_code == 403
    )
    held = web.post(f"{API}/certificates/{serial}/hold", headers=bearer(province))
    assert held.status_code == 200
    assert (held.json()["status"], held.json()["revocation_reason"]) == ("hold", "certificateHold")
    assert (
        web.get(f"{API}/certificates", params={"status": "hold"}, headers=bearer(province)).json()[
            "items"
        ][0]["serial"]
        == serial
    )
    released = web.post(f"{API}/certificates/{serial}/release", headers=bearer(province))
    assert released.status_code == 200
    assert released.json()["status"] == "good"
    assert (
        web.post(f"{API}/certificates/{serial}/release", headers=bearer(province)).status_code
        == 409
    )

    # An official may revoke their own certificate (a lost token, say), with an invalidity date.
    own = web.post(
        f"{API}/certificates/{serial}/revoke",
        json={"reason": "keyCompromise", "invalidity_date": "2020-01-01T00:00:00+07:00"},
        headers=bearer(official),
    )
    assert own.status_code == 200, own.text
    assert own.json()["invalidity_date"] == "2019-12-31T17:00:00Z"

    # Rejection by an admin; the reason is required.
    second = submit(web, official)
    no_reason = web.post(f"{API}/requests/{second['id']}/reject", json={}, headers=bearer(province))
    assert no_reason.status_code == 400
    assert no_reason.json()["field"] == "reason"
    rejected = web.post(
        f"{API}/requests/{second['id']}/reject",
        json={"reason": "Sai đơn vị"},
        headers=bearer(province),
    )
    assert rejected.status_code == 200
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["decision_reason"] == "Sai đơn vị"


def test_bad_input_is_4xx_with_translated_messages(
    web: TestClient,
    runtime: IdpRuntime,
    shared_app: tuple[str, str],
    hierarchy: tuple[Authority, Authority],
    people: People,
) -> None:
    official = user_token(web, runtime, shared_app, people.official)
    headers = bearer(official)

    bad_csr = web.post(
        f"{API}/requests",
        json={
            "profile": "official-document-signing",
            "csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n",
        },
        headers=headers,
    )
    assert bad_csr.status_code == 400
    assert bad_csr.json() == {
        "error": "bad_certificate_request",
        "message": vi("This is not a valid PKCS#10 certificate request (CSR)."),
        "field": "csr",
    }
    english = web.post(
        f"{API}/requests",
        json={"profile": "official-document-signing", "csr": "garbage"},
        headers=bearer(official, **{"Accept-Language": "en-US,en;q=0.9,vi;q=0.5"}),
    )
    assert english.status_code == 400
    assert english.json()["message"] == "This is not a valid PKCS#10 certificate request (CSR)."

    for body, content_type, status in (
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b'{"profile": 5, "csr": "x"}', "application/json", 400),
        (b"profile=x", "application/x-www-form-urlencoded", 415),
        (b'{"csr": "' + b"A" * 70_000 + b'"}', "application/json", 413),
        (b"\xff\xfe{}", "application/json", 400),
    ):
        response = web.post(
            f"{API}/requests", content=body, headers={**headers, "Content-Type": content_type}
        )
        assert response.status_code == status, (body[:20], response.text)
        assert response.json()["error"] and response.json()["message"]
        assert "%(" not in response.json()["message"], response.json()

    # The field's name fills its placeholder (it travels apart from the other parameters).
    for language, text in (("vi", vi("The field %(field)s must be a short text.")), ("en", None)):
        refused = web.post(
            f"{API}/requests",
            json={"profile": 5, "csr": "x"},
            headers=bearer(official, **{"Accept-Language": language}),
        )
        assert refused.json() == {
            "error": "invalid_request",
            "message": (text or "The field %(field)s must be a short text.") % {"field": "profile"},
            "field": "profile",
        }, refused.text

    # Provisioning accepts partial records; the request names what the certificate lacks.
    incomplete_token = user_token(web, runtime, shared_app, people.no_citizen_id)
    body = {"profile": "official-document-signing", "csr": make_csr()[0].decode()}
    incomplete = web.post(f"{API}/requests", json=body, headers=bearer(incomplete_token))
    assert incomplete.status_code == 400, incomplete.text
    message = (
        "The official's profile is incomplete for this certificate; missing: %(missing)s. "
        "Ask the unit's administrator to complete it, then request again."
    )
    assert incomplete.json() == {
        "error": "profile_incomplete",
        "message": vi(message) % {"missing": vi("citizen ID (CCCD)")},
        "field": "profile",
    }
    in_english = web.post(
        f"{API}/requests",
        json=body,
        headers=bearer(incomplete_token, **{"Accept-Language": "en"}),
    )
    assert in_english.json()["message"] == message % {"missing": "citizen ID (CCCD)"}

    unknown_profile = web.post(
        f"{API}/requests", json={"profile": "nope", "csr": make_csr()[0].decode()}, headers=headers
    )
    assert unknown_profile.status_code in (400, 404)
    too_long = web.post(
        f"{API}/requests",
        json={
            "profile": "official-document-signing",
            "csr": make_csr()[0].decode(),
            "validity_days": 10_000,
        },
        headers=headers,
    )
    assert too_long.status_code == 400
    assert too_long.json()["message"] == vi(
        "The validity must be between 1 and %(limit)s days for this certificate."
    ) % {"limit": get_profile("official-document-signing").max_validity_days}

    for path in ("/certificates/not-a-serial", "/certificates/abcdef", "/requests/nope"):
        response = web.get(API + path, headers=headers)
        assert response.status_code == 404, (path, response.text)
    bad_revoke = web.post(
        f"{API}/certificates/zz/revoke",
        json={"reason": "keyCompromise"},
        headers=bearer(user_token(web, runtime, shared_app, people.unit_admin)),
    )
    assert bad_revoke.status_code == 404
    for params in ({"limit": "0"}, {"limit": "x"}, {"status": "lost"}, {"expiring_before": "soon"}):
        response = web.get(f"{API}/certificates", params=params, headers=headers)
        assert response.status_code == 400, params


def test_a_revocation_reason_may_later_become_key_compromise(
    web: TestClient,
    runtime: IdpRuntime,
    ca_runtime: CaRuntime,
    shared_app: tuple[str, str],
    hierarchy: tuple[Authority, Authority],
    people: People,
) -> None:
    """RFC 5280 §5.3.1: a certificate revoked as superseded whose key then turns out to be
    compromised must say so (with the invalidity date); it used to answer 409."""
    certificate = issue_one(ca_runtime, people)
    admin = bearer(user_token(web, runtime, shared_app, people.unit_admin))
    serial = openssl_serial(certificate.serial)
    first = web.post(
        f"{API}/certificates/{serial}/revoke", json={"reason": "superseded"}, headers=admin
    )
    assert first.status_code == 200, first.text
    revoked_at = first.json()["revoked_at"]
    changed = web.post(
        f"{API}/certificates/{serial}/revoke",
        json={"reason": "keyCompromise", "invalidity_date": "2026-01-01T00:00:00Z"},
        headers=admin,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["revocation_reason"] == "keyCompromise"
    assert changed.json()["invalidity_date"] == "2026-01-01T00:00:00Z"
    assert changed.json()["revoked_at"] == revoked_at  # the revocation date stays

    # The CRL the certificate names (its partition's), signed again by the change itself.
    crl_der = web.get(crldp_path(ca_runtime, x509.load_der_x509_certificate(certificate.der)))
    entry = x509.load_der_x509_crl(crl_der.content).get_revoked_certificate_by_serial_number(
        int(certificate.serial, 16)
    )
    assert entry is not None
    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason == x509.ReasonFlags.key_compromise
    assert entry.extensions.get_extension_for_class(x509.InvalidityDate).value.invalidity_date_utc

    with transaction(ca_runtime.session_factory) as session:
        recorded = audit.tail(session, limit=1, action_prefix="ca.certificate.reason_changed")[0]
        assert json.loads(recorded.details)["from"] == "superseded"
        assert recorded.actor == people.unit_admin.subject

    # keyCompromise is the only later reason, and only once.
    for reason_text in ("keyCompromise", "cessationOfOperation"):
        again = web.post(
            f"{API}/certificates/{serial}/revoke", json={"reason": reason_text}, headers=admin
        )
        assert again.status_code == 409, (reason_text, again.text)
        assert again.json()["error"] == "already_revoked"
