"""CAS and SAML held to the sign-in level OIDC clients get (issue 16): a CAS service or a SAML
SP with a minimum level, or an official whose unit requires passkeys, gets a login stepped up
from a password session to the passkey, or refused with the passkey page when the official has
none, exactly as the authorization endpoint does; the SAML AuthnContextClassRef states it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from saml2.response import StatusNoPassive
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from core.db import transaction
from core.settings import Settings
from idp import authentication_levels as levels
from idp.authentication_levels import PHISHING_RESISTANT
from idp.cas import services as cas_services
from idp.models import Account, SamlServiceProvider, Unit
from idp.runtime import IdpRuntime
from tests.conftest import OFFICIAL_PASSWORD
from tests.idp.cas.cas_flow import place_at_work
from tests.idp.oidc_flow import follow_to_client, submit_login
from tests.idp.saml.conftest import register_sp
from tests.idp.saml.pysaml2_sp import (
    ServiceProvider,
    follow_to_sp,
    posted_form,
    send_to_idp,
    sp_config,
    sp_metadata_xml,
    write_key_and_certificate,
)
from tests.idp.test_passkeys import (
    ISSUER,
    RP_ID,
    add_passkey,
    passkey_ceremony,
    sign_in_directly,
)
from tests.idp.webauthn_authenticator import SoftwareAuthenticator

SERVICE = "https://vanban.laocai.gov.vn/cas"


@pytest.fixture(name="settings")
def host_name_settings(settings: Settings) -> Settings:
    """A host name, not an IP address, as the issuer: browsers refuse an IP address as the
    passkeys' RP ID (as in tests/idp/test_passkeys.py)."""
    return Settings(**{**settings.model_dump(), "issuer": ISSUER})


@pytest.fixture(name="web")
def browser_at_host_name(app: Starlette) -> Iterator[TestClient]:
    with TestClient(app, base_url=ISSUER, follow_redirects=False) as client:
        yield client


@pytest.fixture(name="authenticator")
def software_authenticator() -> SoftwareAuthenticator:
    return SoftwareAuthenticator(origin=ISSUER, rp_id=RP_ID)


def register_cas_service(runtime: IdpRuntime, minimum_acr: str | None = None) -> None:
    with transaction(runtime.session_factory) as session:
        cas_services.register(
            session=session,
            clock=runtime.clock,
            actor="test",
            service_id="vanban",
            name="Quản lý văn bản",
            url=SERVICE,
            minimum_acr=minimum_acr,
        )


def password_session_then_passkey(web: TestClient, official: Account, authenticator: Any) -> None:
    """A session signed in with the password alone; the official adds a passkey in it."""
    assert sign_in_directly(web, official.username, OFFICIAL_PASSWORD).status_code == 303
    assert add_passkey(web, authenticator, "Máy tính văn phòng").status_code == 303


def step_up_with_the_passkey(
    web: TestClient, page: httpx.Response, official: Account, authenticator: Any
) -> httpx.Response:
    """The login form shown instead of an answer: password, then the passkey."""
    assert page.status_code == 200 and 'name="password"' in page.text, page.text[:300]
    after_password = submit_login(web, page, official.username, OFFICIAL_PASSWORD)
    assert after_password.headers["location"].startswith("/login/passkey?interaction=")
    second = web.get(after_password.headers["location"])
    signed = passkey_ceremony(web, second, authenticator, mode="second-factor")
    return follow_to_client(web, signed, leaving_for=SERVICE)


def require_passkeys_in_the_officials_unit(runtime: IdpRuntime, official: Account) -> None:
    place_at_work(runtime, official)
    with transaction(runtime.session_factory) as session:
        ward = session.scalars(select(Unit).where(Unit.code == "02647")).one()
        levels.set_unit_requirement(
            session=session, clock=runtime.clock, actor="test", unit=ward, required=True
        )


# --- CAS ------------------------------------------------------------------------------------


@pytest.mark.parametrize("required_by", ["service", "unit"])
def test_cas_steps_a_password_session_up_to_the_passkey(
    web: TestClient,
    runtime: IdpRuntime,
    official: Account,
    authenticator: SoftwareAuthenticator,
    required_by: str,
) -> None:
    password_session_then_passkey(web, official, authenticator)
    if required_by == "service":
        register_cas_service(runtime, minimum_acr=PHISHING_RESISTANT)
    else:
        register_cas_service(runtime)  # no minimum of its own
        require_passkeys_in_the_officials_unit(runtime, official)
    page = web.get("/cas/login", params={"service": SERVICE})
    back = step_up_with_the_passkey(web, page, official, authenticator)
    assert back.headers["location"].startswith(f"{SERVICE}?ticket=ST-"), back.headers
    # Now the session is at the level: the next ticket comes at once.
    again = web.get("/cas/login", params={"service": SERVICE})
    assert again.headers["location"].startswith(f"{SERVICE}?ticket=ST-")


def test_cas_without_a_passkey_is_refused_as_oidc_refuses(
    web: TestClient, runtime: IdpRuntime, official: Account
) -> None:
    register_cas_service(runtime, minimum_acr=PHISHING_RESISTANT)
    page = web.get("/cas/login", params={"service": SERVICE})
    assert page.status_code == 200
    signed = follow_to_client(
        web, submit_login(web, page, official.username, OFFICIAL_PASSWORD), leaving_for=SERVICE
    )
    assert signed.status_code == 403
    assert "ticket=" not in signed.headers.get("location", "")
    # gateway never shows a form: below the level, the service gets no ticket.
    gateway = web.get("/cas/login", params={"service": SERVICE, "gateway": "true"})
    assert gateway.headers["location"] == SERVICE


def test_cas_minimum_level_is_checked_at_registration(runtime: IdpRuntime) -> None:
    from core.errors import DomainError

    with pytest.raises(DomainError):
        register_cas_service(runtime, minimum_acr="urn:example:gold")


# --- SAML -----------------------------------------------------------------------------------


@pytest.fixture
def sp(runtime: IdpRuntime, web: TestClient, tmp_path: Path) -> ServiceProvider:
    key_path, cert_path = write_key_and_certificate(tmp_path, "vanban-sp")
    metadata = sp_metadata_xml(sp_config(key_path=key_path, cert_path=cert_path, idp_metadata=None))
    register_sp(runtime, metadata, attributes=["name"])
    idp_metadata = web.get("/saml/metadata").text
    config = sp_config(key_path=key_path, cert_path=cert_path, idp_metadata=idp_metadata)
    return ServiceProvider(config, f"{ISSUER}/saml/metadata")


def require_of_every_sp(runtime: IdpRuntime, level: str) -> None:
    with transaction(runtime.session_factory) as session:
        for row in session.scalars(select(SamlServiceProvider)):
            row.minimum_acr = level


@pytest.mark.parametrize("required_by", ["sp", "unit"])
def test_saml_steps_a_password_session_up_and_states_the_class(
    web: TestClient,
    runtime: IdpRuntime,
    official: Account,
    authenticator: SoftwareAuthenticator,
    sp: ServiceProvider,
    required_by: str,
) -> None:
    password_session_then_passkey(web, official, authenticator)
    if required_by == "sp":
        require_of_every_sp(runtime, PHISHING_RESISTANT)
    else:
        require_passkeys_in_the_officials_unit(runtime, official)
    request_id, info = sp.authn_request()
    page = follow_to_sp(web, send_to_idp(web, info))
    answered = step_up_with_the_passkey(web, page, official, authenticator)
    response = sp.parse_response(posted_form(answered), request_id)
    assert str(response.authn_info()[0][0]) == PHISHING_RESISTANT


def test_saml_without_a_passkey_is_refused_and_is_passive_gets_no_passive(
    web: TestClient, runtime: IdpRuntime, official: Account, sp: ServiceProvider
) -> None:
    require_of_every_sp(runtime, PHISHING_RESISTANT)
    _request_id, info = sp.authn_request()
    page = follow_to_sp(web, send_to_idp(web, info))
    signed = follow_to_client(
        web, submit_login(web, page, official.username, OFFICIAL_PASSWORD), leaving_for=SERVICE
    )
    assert signed.status_code == 403
    assert "SAMLResponse" not in signed.text
    # Signed in now with the password alone: a passive request cannot step it up.
    request_id, info = sp.authn_request(is_passive="true")
    answered = posted_form(follow_to_sp(web, send_to_idp(web, info)))
    with pytest.raises(StatusNoPassive):
        sp.parse_response(answered, request_id)
