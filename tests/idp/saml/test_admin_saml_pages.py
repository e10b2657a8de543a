"""The admin page of SAML apps (/admin/saml): system administrators register an SP by pasting
its metadata, see it listed, remove it; a bad document is refused in Vietnamese on the same
page; every change is audited; other administrators cannot reach it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from core import audit
from core.db import transaction
from idp import accounts
from idp.authentication_levels import PHISHING_RESISTANT
from idp.runtime import IdpRuntime
from idp.saml import service_providers
from tests.idp.saml.pysaml2_sp import SP_ENTITY_ID, sp_config, sp_metadata_xml
from tests.idp.test_admin_pages import sign_in

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def signed_in_as(web: TestClient, runtime: IdpRuntime, official: Any, *, system: bool) -> None:
    with transaction(runtime.session_factory) as session:
        accounts.get_by_username(session, official.username).is_system_admin = system
    sign_in(web, runtime, official.username)


def csrf(web: TestClient) -> str:
    page = web.get("/admin/saml")
    assert page.status_code == 200, page.text[:300]
    return CSRF_FIELD.findall(page.text)[0]


def test_register_list_and_remove(
    web: TestClient, runtime: IdpRuntime, official: Any, sp_keys: tuple[Path, Path]
) -> None:
    signed_in_as(web, runtime, official, system=True)
    metadata = sp_metadata_xml(
        sp_config(key_path=sp_keys[0], cert_path=sp_keys[1], idp_metadata=None)
    ).decode()
    assert len(metadata) > 2000  # more than a plain form field would take
    page = web.get("/admin/saml")
    assert "Chưa có ứng dụng SAML nào được đăng ký." in page.text
    registered = web.post(
        "/admin/saml",
        data={
            "csrf_token": csrf(web),
            "metadata": metadata,
            "name": "Quản lý văn bản",
            "attributes": ["name", "position"],
            "minimum_acr": PHISHING_RESISTANT,
        },
    )
    assert registered.status_code == 303
    with transaction(runtime.session_factory) as session:
        [sp] = service_providers.REGISTRY.list_active(session)
        assert sp.minimum_acr == PHISHING_RESISTANT
    page = web.get(registered.headers["location"])
    assert "Đã đăng ký ứng dụng SAML." in page.text
    assert SP_ENTITY_ID in page.text and "Quản lý văn bản" in page.text
    removed = web.post(
        "/admin/saml/remove", data={"csrf_token": csrf(web), "entity_id": SP_ENTITY_ID}
    )
    assert removed.status_code == 303
    assert SP_ENTITY_ID not in web.get("/admin/saml").text
    with transaction(runtime.session_factory) as session:
        entries = [audit.entry_as_dict(e) for e in audit.tail(session, action_prefix="saml.")]
    assert [(e["action"], e["actor"]) for e in entries] == [
        ("saml.sp_registered", "user:nguyen.van.an"),
        ("saml.sp_removed", "user:nguyen.van.an"),
    ]


def test_bad_metadata_is_refused_on_the_page(
    web: TestClient, runtime: IdpRuntime, official: Any
) -> None:
    signed_in_as(web, runtime, official, system=True)
    refused = web.post(
        "/admin/saml",
        data={
            "csrf_token": csrf(web),
            "metadata": '<!DOCTYPE x [<!ENTITY a "b">]><x/>',
            "attributes": ["name"],
        },
    )
    assert refused.status_code == 400
    assert "Metadata không phải XML được chấp nhận" in refused.text
    assert "&lt;!DOCTYPE x" in refused.text  # the document stays in the form, escaped


def test_only_system_administrators(web: TestClient, runtime: IdpRuntime, official: Any) -> None:
    signed_in_as(web, runtime, official, system=False)
    assert web.get("/admin/saml").status_code == 403
