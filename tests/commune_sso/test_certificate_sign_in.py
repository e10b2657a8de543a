"""Certificate sign-in (issue 16): an official signs in with a certificate our CA issued under
the official-authentication profile, forwarded by the trusted proxy; every other certificate is
refused with its own message. Real app, real CA hierarchy, real certificates."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import jwt as pyjwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import select
from starlette.testclient import TestClient

from core import audit
from core.db import transaction
from core.web.client_address import parse_networks
from idp import certificate_sign_in
from idp.authentication_levels import PHISHING_RESISTANT
from idp.models import Account, AccountProfile
from tests.commune_sso.our_ca import ca_runtime, hierarchy, our_ca_fixture, people  # noqa: F401
from tests.conftest import ISSUER
from tests.idp.oidc_flow import (
    authorize_params,
    exchange_code,
    follow_to_client,
    hidden_inputs,
    open_login_form,
    pkce_pair,
    query_of,
)

HEADER = "x-ssl-client-cert"
FORM_ERROR = re.compile(
    r'<div class="alert alert--error" role="alert" id="form-error">\s*<p>(.*?)</p>'
)


@pytest.fixture
def proxied(app, runtime) -> Iterator[TestClient]:
    """The app as nginx reaches it (TCP peer 127.0.0.1, trusted), forwarding certificates."""
    runtime.settings.trusted_proxies = parse_networks(["127.0.0.1"])
    runtime.settings.client_certificate_header = HEADER
    runtime.settings.login_max_delay = 0
    with TestClient(
        app, base_url=ISSUER, follow_redirects=False, client=("127.0.0.1", 40123)
    ) as client:
        yield client


def forwarded(certificate: x509.Certificate) -> dict[str, str]:
    # nginx: proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;
    return {HEADER: quote(certificate.public_bytes(Encoding.PEM).decode(), safe="")}


def sign_in(web: TestClient, client_id: str, headers: dict[str, str]):
    verifier, challenge = pkce_pair()
    page = open_login_form(web, authorize_params(client_id, challenge))
    assert "certificate-sign-in" in page.text
    response = web.post("/login/certificate", data=hidden_inputs(page.text), headers=headers)
    return response, verifier


def error_of(response) -> str:
    found = FORM_ERROR.search(response.text)
    assert found, response.text
    return html.unescape(found.group(1))


def vietnamese(runtime, msgid: str) -> str:
    return runtime.pages.gettext("vi", msgid)


def last_audit(runtime, action: str) -> tuple[audit.AuditEntry, dict]:
    with transaction(runtime.session_factory) as session:
        entry = audit.tail(session, limit=1, action_prefix=action)[-1]
    return entry, json.loads(entry.details)


def test_an_official_signs_in_with_an_authentication_certificate(proxied, runtime, rp, ca):
    certificate = ca.issue()
    usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    key_usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert key_usage.digital_signature and not key_usage.content_commitment
    response, verifier = sign_in(proxied, rp[0].client_id, forwarded(certificate))
    assert response.status_code == 303, response.text
    done = follow_to_client(proxied, response)
    tokens = exchange_code(
        proxied, rp[0].client_id, rp[1], query_of(done.headers["location"])["code"], verifier
    )
    assert tokens.status_code == 200, tokens.text
    claims = pyjwt.decode(tokens.json()["id_token"], options={"verify_signature": False})
    assert claims["sub"] == ca.people.official.subject
    assert claims["amr"] == ["pop"] and claims["acr"] == PHISHING_RESISTANT
    entry, details = last_audit(runtime, "login.success")
    assert entry.actor == f"user:{ca.people.official.username}"
    assert details["method"] == "certificate" and details["amr"] == ["pop"]
    assert details["serial"] == format(certificate.serial_number, "x")


def refused(proxied, runtime, rp, headers, msgid: str, reason: str, status: int = 401) -> None:
    response, _ = sign_in(proxied, rp[0].client_id, headers)
    assert response.status_code == status, response.text
    assert error_of(response) == vietnamese(runtime, msgid)
    assert "sso_session" not in response.headers.get("set-cookie", "")
    assert last_audit(runtime, "login.certificate_failure")[1]["reason"] == reason


def test_an_expired_certificate_is_refused(proxied, runtime, clock, rp, ca):
    certificate = ca.issue(validity_days=1)
    clock.advance(days=2)
    refused(
        proxied,
        runtime,
        rp,
        forwarded(certificate),
        certificate_sign_in.REFUSALS["expired"],
        "expired",
    )


def test_a_revoked_or_held_certificate_is_refused(proxied, runtime, rp, ca):
    for reason in ("certificateHold", "keyCompromise"):
        certificate = ca.issue()
        ca.revoke(certificate, reason)
        refused(
            proxied,
            runtime,
            rp,
            forwarded(certificate),
            certificate_sign_in.REFUSALS["revoked"],
            "revoked",
        )


def _foreign_certificate(
    subject: x509.Name, issuer_name: x509.Name, *, key: ec.EllipticCurvePrivateKey | None = None
) -> x509.Certificate:
    """A clientAuth certificate with our official's subject, from a CA that is not ours (with
    the very name of our issuing CA, even)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    key = key or ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def test_a_certificate_of_another_ca_is_refused(proxied, runtime, rp, ca):
    ours = ca.issue()
    foreign = _foreign_certificate(ours.subject, ours.issuer)
    refused(
        proxied,
        runtime,
        rp,
        forwarded(foreign),
        certificate_sign_in.REFUSALS["unknown_issuer"],
        "unknown_issuer",
    )
    stranger = _foreign_certificate(
        ours.subject, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Other CA")])
    )
    refused(
        proxied,
        runtime,
        rp,
        forwarded(stranger),
        certificate_sign_in.REFUSALS["unknown_issuer"],
        "unknown_issuer",
    )


def test_a_document_signing_certificate_is_refused(proxied, runtime, rp, ca):
    signing = ca.issue(profile="official-document-signing")
    refused(
        proxied, runtime, rp, forwarded(signing),
        certificate_sign_in.REFUSALS["not_for_client_auth"], "not_for_client_auth",
    )  # fmt: skip


def test_an_unknown_citizen_id_or_a_disabled_official_is_refused(proxied, runtime, rp, ca):
    certificate = ca.issue()
    with transaction(runtime.session_factory) as session:
        profile = session.get(AccountProfile, ca.people.official.id)
        profile.citizen_id = "001090099999"  # corrected in the directory after issuance
    refused(
        proxied,
        runtime,
        rp,
        forwarded(certificate),
        certificate_sign_in.UNKNOWN_ACCOUNT,
        "unknown_citizen_id",
    )
    with transaction(runtime.session_factory) as session:
        session.get(AccountProfile, ca.people.official.id).citizen_id = "001090012345"
        session.get(Account, ca.people.official.id).status = "disabled"
    refused(
        proxied, runtime, rp, forwarded(certificate), certificate_sign_in.ACCOUNT_DISABLED,
        "account_disabled", status=403,
    )  # fmt: skip


def test_no_certificate_or_garbage_is_refused_with_what_to_do(proxied, runtime, rp):
    refused(proxied, runtime, rp, {}, certificate_sign_in.NO_CERTIFICATE, "no_certificate", 400)
    refused(
        proxied, runtime, rp, {HEADER: "garbage"}, certificate_sign_in.UNREADABLE, "malformed", 400
    )


def test_a_certificate_header_from_an_untrusted_peer_is_ignored(app, runtime, rp, ca):
    certificate = ca.issue()
    runtime.settings.trusted_proxies = parse_networks(["127.0.0.1"])
    runtime.settings.client_certificate_header = HEADER
    # A client reaching the service directly writes the header itself.
    with TestClient(
        app, base_url=ISSUER, follow_redirects=False, client=("203.0.113.9", 40000)
    ) as direct:
        refused(
            direct,
            runtime,
            rp,
            forwarded(certificate),
            certificate_sign_in.NO_CERTIFICATE,
            "no_certificate",
            400,
        )
    with transaction(runtime.session_factory) as session:
        assert not session.scalars(
            select(audit.AuditEntry).where(audit.AuditEntry.action == "login.success")
        ).first()


def test_without_the_setting_there_is_no_button_and_no_sign_in(web, runtime, rp):
    _, challenge = pkce_pair()
    page = open_login_form(web, authorize_params(rp[0].client_id, challenge))
    assert "certificate-sign-in" not in page.text
    response = web.post("/login/certificate", data=hidden_inputs(page.text))
    assert response.status_code == 404
    assert error_of(response) == vietnamese(runtime, certificate_sign_in.NOT_AVAILABLE)
