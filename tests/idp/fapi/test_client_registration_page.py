"""The admin page registers an app that authenticates with its key (private_key_jwt) and
switches its FAPI 2.0 requirements on, with the same rules as ``client add``; every change is
audited."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from core.db import transaction
from idp.models import Client
from idp.runtime import IdpRuntime
from idp.web.admin_pages.clients import client_path
from tests.idp.fapi.client_keys import AppKey
from tests.idp.test_admin_pages import World, audit_actions, post, sign_in


def test_register_a_private_key_jwt_app_and_require_par_and_dpop(
    web: TestClient, runtime: IdpRuntime, world: World
) -> None:
    sign_in(web, runtime, world.system)
    key = AppKey()
    form = {
        "name": "Cổng FAPI",
        "token_endpoint_auth_method": "private_key_jwt",
        "grant_types": "authorization_code",
        "redirect_uris": "https://fapi.laocai.gov.vn/cb",
        "scope": "openid profile",
        "jwks": json.dumps({"keys": [key.key.as_dict(private=True)]}),
    }
    refused = post(web, "/admin/clients/new", form, form_page="/admin/clients/new")
    assert refused.status_code == 400
    assert 'id="jwks-error"' in refused.text  # a private key is refused, next to its field
    created = post(
        web,
        "/admin/clients/new",
        {**form, "jwks": json.dumps(key.jwks)},
        form_page="/admin/clients/new",
    )
    assert created.status_code == 200, created.text
    client_id = re.search(r'id="client-id">([^<]+)<', created.text).group(1)  # type: ignore[union-attr]
    assert 'id="client-secret"' not in created.text
    page = client_path(client_id)
    changed = post(
        web,
        page,
        {
            "name": "Cổng FAPI",
            "grant_types": "authorization_code",
            "redirect_uris": "https://fapi.laocai.gov.vn/cb",
            "scope": "openid profile",
            "jwks": json.dumps(key.jwks),
            "require_pushed_authorization_requests": "on",
            "require_signed_request_object": "on",
            "dpop_bound_access_tokens": "on",
            "fapi2_profile": "on",
        },
        form_page=page,
    )
    assert changed.status_code == 303, changed.text
    with transaction(runtime.session_factory) as session:
        client = session.scalars(select(Client).where(Client.client_id == client_id)).one()
        assert client.token_endpoint_auth_method == "private_key_jwt"
        assert client.secret_digest is None
        assert client.jwks == key.jwks
        assert client.require_pushed_authorization_requests and client.dpop_bound_access_tokens
        assert client.fapi2_profile and client.require_signed_request_object
    (update,) = audit_actions(runtime, "client.update")
    assert update.details is not None and "fapi2_profile" in update.details
    shown = web.get(page).text
    assert "private_key_jwt" in shown and "rotate" not in shown


@pytest.mark.parametrize(
    "flag",
    [
        "fapi2_profile",  # a FAPI 2.0 app authenticates by key, never with a shared secret
        "require_signed_request_object",  # its request objects are checked with its keys
    ],
)
def test_a_flag_that_needs_the_apps_keys_is_refused_without_them(
    web: TestClient, runtime: IdpRuntime, world: World, flag: str
) -> None:
    sign_in(web, runtime, world.system)
    refused = post(
        web,
        "/admin/clients/new",
        {
            "name": "Bí mật",
            "grant_types": "authorization_code",
            "redirect_uris": "https://fapi.laocai.gov.vn/cb",
            "scope": "openid",
            flag: "on",
        },
        form_page="/admin/clients/new",
    )
    assert refused.status_code == 400
    assert f'id="{flag}-error"' in refused.text


def test_register_a_tls_client_auth_app_named_by_its_certificate(
    web: TestClient, runtime: IdpRuntime, world: World
) -> None:
    """RFC 8705 §2.1.2 on the page: exactly one certificate name, next to its field when not."""
    sign_in(web, runtime, world.system)
    form = {
        "name": "Cổng liên thông",
        "token_endpoint_auth_method": "tls_client_auth",
        "grant_types": "client_credentials",
        "scope": "profile",
    }
    missing = post(web, "/admin/clients/new", form, form_page="/admin/clients/new")
    assert missing.status_code == 400
    assert 'id="tls_client_auth_subject_dn-error"' in missing.text
    two = post(
        web,
        "/admin/clients/new",
        {
            **form,
            "tls_client_auth_subject_dn": "CN=app.laocai.gov.vn,C=VN",
            "tls_client_auth_san_dns": "app.laocai.gov.vn",
        },
        form_page="/admin/clients/new",
    )
    assert two.status_code == 400 and 'id="tls_client_auth_san_dns-error"' in two.text
    created = post(
        web,
        "/admin/clients/new",
        {
            **form,
            "tls_client_auth_san_dns": "app.laocai.gov.vn",
            "tls_client_certificate_bound_access_tokens": "on",
            "fapi2_profile": "on",
        },
        form_page="/admin/clients/new",
    )
    assert created.status_code == 200, created.text
    client_id = re.search(r'id="client-id">([^<]+)<', created.text).group(1)  # type: ignore[union-attr]
    assert 'id="client-secret"' not in created.text
    with transaction(runtime.session_factory) as session:
        client = session.scalars(select(Client).where(Client.client_id == client_id)).one()
        assert client.token_endpoint_auth_method == "tls_client_auth"
        assert client.tls_client_auth_san_dns == "app.laocai.gov.vn"
        assert client.tls_client_certificate_bound_access_tokens and client.fapi2_profile
    shown = web.get(client_path(client_id)).text
    assert 'value="app.laocai.gov.vn"' in shown
