"""Fixtures of the SAML tests: a registered pysaml2 SP and an official at work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from core.db import transaction
from idp import mfa, totp
from idp.runtime import IdpRuntime
from idp.saml import service_providers
from tests.conftest import ISSUER
from tests.idp.cas.cas_flow import hidden_inputs, place_at_work
from tests.idp.saml.pysaml2_sp import (
    ServiceProvider,
    sp_config,
    sp_metadata_xml,
    write_key_and_certificate,
)

IDP_ENTITY_ID = f"{ISSUER}/saml/metadata"
ALL_ATTRIBUTES = ["name", "email", "unit", "province", "agency", "position"]


@pytest.fixture
def official_at_work(runtime: IdpRuntime, official: Any) -> Any:
    """The conftest official, Phó Chủ tịch of a ward of Lào Cai (as for CAS)."""
    place_at_work(runtime, official)
    return official


@pytest.fixture
def sp_keys(tmp_path: Path) -> tuple[Path, Path]:
    return write_key_and_certificate(tmp_path, "vanban-sp")


def register_sp(runtime: IdpRuntime, metadata_xml: bytes, **options: Any) -> None:
    with transaction(runtime.session_factory) as session:
        service_providers.register(
            session=session, clock=runtime.clock, actor="test", metadata_xml=metadata_xml, **options
        )


@pytest.fixture
def sp(
    runtime: IdpRuntime, web: TestClient, sp_keys: tuple[Path, Path], official_at_work: Any
) -> ServiceProvider:
    """The document-management app: signs its requests, gets every attribute."""
    key_path, cert_path = sp_keys
    metadata = sp_metadata_xml(sp_config(key_path=key_path, cert_path=cert_path, idp_metadata=None))
    register_sp(runtime, metadata, attributes=ALL_ATTRIBUTES)
    idp_metadata = web.get("/saml/metadata").text
    config = sp_config(key_path=key_path, cert_path=cert_path, idp_metadata=idp_metadata)
    return ServiceProvider(config, IDP_ENTITY_ID)


def enrol_totp(runtime: IdpRuntime, official: Any) -> bytes:
    """TOTP enrolled for the official a minute ago (so the next sign-in's code is of a later
    time step); returns the secret."""
    runtime.clock.advance(-60)
    with transaction(runtime.session_factory) as session:
        account = session.merge(official)
        mfa.start_enrolment(
            session=session,
            clock=runtime.clock,
            server_secret=runtime.server_secret,
            account=account,
        )
        pending = mfa.pending_enrolment(
            session=session, server_secret=runtime.server_secret, account=account, issuer_name="x"
        )
        assert pending is not None
        secret = pending.secret
        assert mfa.confirm_enrolment(
            session=session,
            clock=runtime.clock,
            server_secret=runtime.server_secret,
            account=account,
            code=totp.totp(secret, runtime.clock.now()),
        )
    runtime.clock.advance(60)
    return secret


def submit_code(web: TestClient, runtime: IdpRuntime, otp_page: Any, secret: bytes) -> Any:
    """The second step of the login form: the current TOTP code."""
    assert 'name="code"' in otp_page.text
    return web.post(
        "/login/otp",
        data={**hidden_inputs(otp_page.text), "code": totp.totp(secret, runtime.clock.now())},
    )
