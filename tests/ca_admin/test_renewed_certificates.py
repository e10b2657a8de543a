"""After a renewal (issue 18): the old certificate is shown "Đã gia hạn" without a renew button
once its successor is issued, and is revoked as superseded after the configured grace
(COMMUNE_SSO_CA_SUPERSEDE_AFTER_DAYS, default 7 days; 0: at once)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from ca_admin import certificate_requests, maintenance
from ca_admin.models import Authority, IssuedCertificate
from ca_admin.runtime import CaRuntime
from ca_admin.serials import openssl_serial
from core.clock import FixedClock
from core.db import transaction
from idp.runtime import IdpRuntime
from tests.ca_admin.conftest import People
from tests.ca_admin.pages_flow import sign_in
from tests.ca_admin.test_api import vi
from tests.ca_admin.test_pages import PAGES, _pending_renewal


@pytest.fixture
def ca_runtime(app: Starlette) -> CaRuntime:
    runtime: CaRuntime = app.state.ca
    return runtime


def state(ca_runtime: CaRuntime, certificate: IssuedCertificate) -> tuple[str, str | None]:
    with transaction(ca_runtime.session_factory) as session:
        row = session.get(IssuedCertificate, certificate.id)
        assert row is not None
        return row.status, row.revocation_reason


def approve(ca_runtime: CaRuntime, people: People, request_id: str) -> None:
    with transaction(ca_runtime.session_factory) as session:
        certificate_requests.approve(
            session=session,
            runtime=ca_runtime,
            actor=people.unit_admin.subject,
            request_id=request_id,
        )


def test_a_renewed_certificate_is_shown_renewed_then_superseded_after_the_grace(
    web: TestClient,
    runtime: IdpRuntime,
    clock: FixedClock,
    ca_runtime: CaRuntime,
    hierarchy: tuple[Authority, Authority],
    people: People,
) -> None:
    assert ca_runtime.supersede_after == timedelta(days=7)  # the documented default
    old, request_id = _pending_renewal(web, runtime, ca_runtime, people, "csr")
    serial = openssl_serial(old.serial)
    approve(ca_runtime, people, request_id)

    home = sign_in(web, runtime, people.official)
    card = home.text.split(f'id="cert-{serial}"', 1)[1].split("</li>", 1)[0]
    assert vi("Renewed") == "Đã gia hạn" and "Đã gia hạn" in card
    assert f"{PAGES}/renew/{serial}" not in card and vi("Valid") not in card
    closed = web.get(f"{PAGES}/renew/{serial}")
    assert 'id="renewal-closed"' in closed.text and 'name="form_token"' not in closed.text

    maintenance.run_due(ca_runtime)
    assert state(ca_runtime, old) == ("good", None)  # still valid during the grace
    clock.advance(days=7, minutes=1)
    maintenance.run_due(ca_runtime)
    assert state(ca_runtime, old) == ("revoked", "superseded")


def test_without_grace_the_old_certificate_is_superseded_when_the_new_one_is_collected(
    web: TestClient,
    runtime: IdpRuntime,
    ca_runtime: CaRuntime,
    hierarchy: tuple[Authority, Authority],
    people: People,
) -> None:
    ca_runtime.supersede_after = timedelta(0)
    old, request_id = _pending_renewal(web, runtime, ca_runtime, people, "server")
    approve(ca_runtime, people, request_id)
    assert state(ca_runtime, old) == ("good", None)  # approved, but nothing collected yet
    with transaction(ca_runtime.session_factory) as session:
        certificate_requests.collect_pkcs12(
            session=session,
            runtime=ca_runtime,
            actor=people.official.subject,
            request_id=request_id,
            password="một mật khẩu đủ dài 2026",
        )
    assert state(ca_runtime, old) == ("revoked", "superseded")
