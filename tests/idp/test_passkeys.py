"""Passkeys (WebAuthn) through the real ASGI app, with a software authenticator as the browser
(tests/idp/webauthn_authenticator.py): registration on /account/passkeys, sign-in with the
passkey alone and as the second factor, amr/acr in the ID token, acr_values, a client's
minimum level, a unit's requirement, and the negative cases of WebAuthn §7 (origin, RP ID,
replayed challenge, counter going back, credential of another account)."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import httpx
import jwt as pyjwt
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.testclient import TestClient

from core import audit
from core.db import transaction
from core.settings import Settings
from idp import accounts, admin_scope, authentication_levels, login_throttle
from idp.models import Account, AccountProfile, Client, LoginThrottle, Passkey, Unit
from idp.runtime import IdpRuntime
from tests.conftest import OFFICIAL_PASSWORD, RP_REDIRECT, register_client
from tests.idp.oidc_flow import (
    HIDDEN_INPUT,
    authorize_params,
    exchange_code,
    follow_to_client,
    pkce_pair,
    query_of,
    submit_login,
)
from tests.idp.webauthn_authenticator import SoftwareAuthenticator

ISSUER = "http://localhost:8000"
RP_ID = "localhost"
PHISHING_RESISTANT = authentication_levels.PHISHING_RESISTANT


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A host name, not an IP address: browsers refuse an IP address as RP ID."""
    return Settings(**{**settings.model_dump(), "issuer": ISSUER})


@pytest.fixture
def web(app: Starlette):
    with TestClient(app, base_url=ISSUER, follow_redirects=False) as client:
        yield client


@pytest.fixture
def authenticator() -> SoftwareAuthenticator:
    return SoftwareAuthenticator(origin=ISSUER, rp_id=RP_ID)


def fields_of(page: httpx.Response) -> dict[str, str]:
    return dict(HIDDEN_INPUT.findall(page.text))


def sign_in_directly(web: TestClient, username: str, password: str) -> httpx.Response:
    login = web.get("/login?next=/account")
    form_page = web.get(login.headers["location"])
    fields = fields_of(form_page)
    action = html.unescape(re.findall(r'<form[^>]* action="([^"]*)"', form_page.text)[0])
    return web.post(action, data={**fields, "username": username, "password": password})


def registration_options(web: TestClient) -> tuple[str, dict[str, Any]]:
    page = web.get("/account/passkeys")
    assert page.status_code == 200, page.text
    csrf = fields_of(page)["csrf_token"]
    options = web.post("/account/passkeys/options", data={"csrf_token": csrf})
    assert options.status_code == 200, options.text
    return csrf, options.json()


def add_passkey(
    web: TestClient, authenticator: SoftwareAuthenticator, name: str, **overrides: str
) -> httpx.Response:
    csrf, options = registration_options(web)
    credential = authenticator.create(options, **overrides)
    return web.post(
        "/account/passkeys/add",
        data={"csrf_token": csrf, "name": name, "credential": json.dumps(credential)},
    )


def passkeys_of(runtime: IdpRuntime, username: str) -> list[Passkey]:
    with transaction(runtime.session_factory) as session:
        account = accounts.get_by_username(session, username)
        rows = list(session.scalars(select(Passkey).where(Passkey.account_id == account.id)))
        session.expunge_all()
        return rows


def audit_actions(runtime: IdpRuntime) -> list[str]:
    with transaction(runtime.session_factory) as session:
        return [entry.action for entry in audit.tail(session, limit=200)]


def with_passkey(web: TestClient, official: Account, authenticator: SoftwareAuthenticator) -> None:
    assert sign_in_directly(web, official.username, OFFICIAL_PASSWORD).status_code == 303
    added = add_passkey(web, authenticator, "Máy tính văn phòng")
    assert added.status_code == 303, added.text
    web.cookies.clear()


def passkey_ceremony(
    web: TestClient,
    page: httpx.Response,
    authenticator: SoftwareAuthenticator,
    *,
    mode: str,
    **overrides: Any,
) -> httpx.Response:
    fields = fields_of(page)
    base = {"csrf_token": fields["csrf_token"], "interaction": fields["interaction"], "mode": mode}
    options = web.post("/login/passkey/options", data=base)
    assert options.status_code == 200, options.text
    credential = authenticator.get(options.json(), **overrides)
    return web.post("/login/passkey", data={**base, "credential": json.dumps(credential)})


def id_token_claims(web: TestClient, rp: tuple[Client, str], response, verifier) -> dict:
    client, secret = rp
    code = query_of(response.headers["location"])["code"]
    tokens = exchange_code(web, client.client_id, secret, code, verifier)
    assert tokens.status_code == 200, tokens.text
    return pyjwt.decode(tokens.json()["id_token"], options={"verify_signature": False})


def login_form(web: TestClient, params: dict[str, str]) -> httpx.Response:
    page = web.get("/oauth2/authorize", params=params)
    if page.status_code == 303:
        page = web.get(page.headers["location"])
    assert page.status_code == 200, page.text
    return page


# --- registration ---------------------------------------------------------------------------


def test_an_official_registers_several_named_passkeys_sees_them_and_removes_one(
    web, official, runtime, authenticator
):
    assert sign_in_directly(web, official.username, OFFICIAL_PASSWORD).status_code == 303
    csrf, options = registration_options(web)
    assert options["rp"]["id"] == RP_ID
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    assert options["attestation"] == "none"
    added = add_passkey(web, authenticator, "Máy tính văn phòng")
    assert added.headers["location"] == "/account/passkeys?done=passkey-added"
    # Signed in with the password: a second passkey needs a session signed in with the first.
    refused = web.post("/account/passkeys/options", data={"csrf_token": csrf})
    assert refused.status_code == 403
    web.cookies.clear()
    login = web.get("/login?next=/account")
    page = web.get(login.headers["location"])
    signed = passkey_ceremony(web, page, authenticator, mode="alone")
    assert signed.status_code == 303 and signed.headers["location"] == "/account"
    second_key = SoftwareAuthenticator(origin=ISSUER, rp_id=RP_ID, backup_eligible=True)
    _, options = registration_options(web)
    assert len(options["excludeCredentials"]) == 1
    assert add_passkey(web, second_key, "Khóa USB màu xanh").status_code == 303
    listing = web.get("/account/passkeys")
    assert "Máy tính văn phòng" in listing.text and "Khóa USB màu xanh" in listing.text
    assert "Đồng bộ giữa các thiết bị" in listing.text  # the synced one
    rows = passkeys_of(runtime, official.username)
    assert [r.backup_eligible for r in rows] == [False, True]
    assert rows[0].last_used_at is not None and rows[1].last_used_at is None

    confirm = web.get(f"/account/passkeys/remove?id={rows[1].id}")
    assert confirm.status_code == 200 and "Khóa USB màu xanh" in confirm.text
    removed = web.post(
        "/account/passkeys/remove",
        data={"csrf_token": fields_of(confirm)["csrf_token"], "id": str(rows[1].id)},
    )
    assert removed.headers["location"] == "/account/passkeys?done=passkey-removed"
    assert [r.name for r in passkeys_of(runtime, official.username)] == ["Máy tính văn phòng"]
    actions = audit_actions(runtime)
    assert actions.count("account.passkey_added") == 2
    assert "account.passkey_removed" in actions


def test_registration_from_another_origin_or_for_another_rp_id_is_refused(
    web, official, runtime, authenticator
):
    assert sign_in_directly(web, official.username, OFFICIAL_PASSWORD).status_code == 303
    wrong_origin = add_passkey(web, authenticator, "A", origin="https://phishing.example")
    assert wrong_origin.status_code == 400
    assert "Không thêm được khóa truy cập" in wrong_origin.text
    wrong_rp = add_passkey(web, authenticator, "B", rp_id="phishing.example")
    assert wrong_rp.status_code == 400
    assert passkeys_of(runtime, official.username) == []
    assert audit_actions(runtime).count("account.passkey_refused") == 2


def test_a_registration_challenge_is_single_use(web, official, runtime, authenticator):
    assert sign_in_directly(web, official.username, OFFICIAL_PASSWORD).status_code == 303
    csrf, options = registration_options(web)
    credential = json.dumps(authenticator.create(options))
    data = {"csrf_token": csrf, "name": "A", "credential": credential}
    assert web.post("/account/passkeys/add", data=data).status_code == 303
    # Replayed (the same response again): refused, one passkey only.
    assert web.post("/account/passkeys/add", data=data).status_code in (400, 403)
    assert len(passkeys_of(runtime, official.username)) == 1


# --- sign-in --------------------------------------------------------------------------------


def test_sign_in_with_the_passkey_alone_without_a_username(
    web, official, runtime, rp, authenticator
):
    with_passkey(web, official, authenticator)
    verifier, challenge = pkce_pair()
    page = login_form(web, authorize_params(rp[0].client_id, challenge))
    assert "Đăng nhập bằng khóa truy cập" in page.text
    fields = fields_of(page)
    options = web.post(
        "/login/passkey/options",
        data={"csrf_token": fields["csrf_token"], "interaction": fields["interaction"]},
    ).json()
    assert options["allowCredentials"] == [] and options["userVerification"] == "required"
    signed = web.post(
        "/login/passkey",
        data={
            "csrf_token": fields["csrf_token"],
            "interaction": fields["interaction"],
            "credential": json.dumps(authenticator.get(options)),
        },
    )
    done = follow_to_client(web, signed)
    assert done.headers["location"].startswith(RP_REDIRECT)
    claims = id_token_claims(web, rp, done, verifier)
    assert claims["amr"] == ["hwk", "user", "mfa"]
    assert claims["acr"] == PHISHING_RESISTANT
    assert claims["sub"] == official.subject


def test_a_passkey_without_user_verification_cannot_sign_in_alone(
    web, official, runtime, rp, authenticator
):
    with_passkey(web, official, authenticator)
    authenticator.user_verifying = False
    _, challenge = pkce_pair()
    page = login_form(web, authorize_params(rp[0].client_id, challenge))
    refused = passkey_ceremony(web, page, authenticator, mode="alone")
    assert refused.status_code == 401
    assert "Không dùng được khóa truy cập" in refused.text


def test_password_then_passkey_as_the_second_factor(web, official, runtime, rp, authenticator):
    with_passkey(web, official, authenticator)
    authenticator.user_verifying = False  # presence is enough after the password
    verifier, challenge = pkce_pair()
    page = login_form(web, authorize_params(rp[0].client_id, challenge))
    after_password = submit_login(web, page, official.username, OFFICIAL_PASSWORD)
    assert after_password.status_code == 303
    assert after_password.headers["location"].startswith("/login/passkey?interaction=")
    second = web.get(after_password.headers["location"])
    assert second.status_code == 200 and "Dùng khóa truy cập của tôi" in second.text
    signed = passkey_ceremony(web, second, authenticator, mode="second-factor")
    done = follow_to_client(web, signed)
    claims = id_token_claims(web, rp, done, verifier)
    assert claims["amr"] == ["pwd", "hwk", "user", "mfa"]
    assert claims["acr"] == PHISHING_RESISTANT


def test_a_credential_of_another_account_is_refused_as_second_factor(
    web, official, runtime, rp, app, authenticator
):
    with_passkey(web, official, authenticator)
    with transaction(runtime.session_factory) as session:
        accounts.create(
            session=session,
            clock=runtime.clock,
            passwords=runtime.passwords,
            actor="test",
            username="le.thi.hoa",
            full_name="Lê Thị Hoa",
            password=OFFICIAL_PASSWORD,
        )
    other_key = SoftwareAuthenticator(origin=ISSUER, rp_id=RP_ID)
    with_passkey(web, accounts_named(runtime, "le.thi.hoa"), other_key)
    _, challenge = pkce_pair()
    page = login_form(web, authorize_params(rp[0].client_id, challenge))
    after_password = submit_login(web, page, official.username, OFFICIAL_PASSWORD)
    second = web.get(after_password.headers["location"])
    # The other official's key, answering the challenge of this official's second step.
    other_key_credential = next(iter(other_key.credentials))
    fields = fields_of(second)
    base = {"csrf_token": fields["csrf_token"], "interaction": fields["interaction"]}
    base["mode"] = "second-factor"
    options = web.post("/login/passkey/options", data=base).json()
    credential = other_key.get(options, credential_id=other_key_credential)
    refused = web.post("/login/passkey", data={**base, "credential": json.dumps(credential)})
    assert refused.status_code == 401
    assert refused.headers.get("location") is None
    reasons = passkey_failure_reasons(runtime)
    assert "credential_of_another_account" in reasons


def accounts_named(runtime: IdpRuntime, username: str) -> Account:
    with transaction(runtime.session_factory) as session:
        account = accounts.get_by_username(session, username)
        session.expunge(account)
        return account


def passkey_failure_reasons(runtime: IdpRuntime) -> list[str]:
    with transaction(runtime.session_factory) as session:
        return [
            json.loads(entry.details or "{}").get("reason", "")
            for entry in audit.tail(session, limit=200)
            if entry.action == "login.passkey_failure"
        ]


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"origin": "https://localhost.phishing.example"}, "Unexpected client data origin"),
        ({"rp_id": "phishing.example"}, "Unexpected RP ID hash"),
    ],
)
def test_an_assertion_for_another_origin_or_rp_id_is_refused(
    web, official, runtime, rp, authenticator, overrides, reason
):
    with_passkey(web, official, authenticator)
    _, challenge = pkce_pair()
    page = login_form(web, authorize_params(rp[0].client_id, challenge))
    refused = passkey_ceremony(web, page, authenticator, mode="alone", **overrides)
    assert refused.status_code == 401
    assert any(reason in r for r in passkey_failure_reasons(runtime))


def test_a_replayed_assertion_is_refused(web, official, runtime, rp, authenticator):
    with_passkey(web, official, authenticator)
    _, challenge = pkce_pair()
    page = login_form(web, authorize_params(rp[0].client_id, challenge))
    fields = fields_of(page)
    base = {"csrf_token": fields["csrf_token"], "interaction": fields["interaction"]}
    options = web.post("/login/passkey/options", data=base).json()
    data = {**base, "credential": json.dumps(authenticator.get(options))}
    first = web.post("/login/passkey", data=data)
    assert first.status_code in (302, 303)
    # The same signed response again, in a new sign-in of the same browser's interaction.
    web.cookies.clear()
    page = login_form(web, authorize_params(rp[0].client_id, challenge))
    again = web.post(
        "/login/passkey",
        data={
            **data,
            "interaction": fields_of(page)["interaction"],
            "csrf_token": fields_of(page)["csrf_token"],
        },
    )
    assert again.status_code == 401
    assert "replayed_challenge" in passkey_failure_reasons(runtime)


def test_a_signature_counter_going_back_marks_the_passkey_and_refuses(
    web, official, runtime, rp, authenticator
):
    with_passkey(web, official, authenticator)
    _, challenge = pkce_pair()
    page = login_form(web, authorize_params(rp[0].client_id, challenge))
    assert passkey_ceremony(web, page, authenticator, mode="alone").status_code in (302, 303)
    web.cookies.clear()
    page = login_form(web, authorize_params(rp[0].client_id, challenge))
    # A clone still at the count the original had before its last use.
    cloned = passkey_ceremony(web, page, authenticator, mode="alone", sign_count=1)
    assert cloned.status_code == 401
    (row,) = passkeys_of(runtime, official.username)
    assert row.clone_suspected_at is not None and row.sign_count == 1
    assert "account.passkey_clone_suspected" in audit_actions(runtime)
    assert "sign_count_not_increasing" in passkey_failure_reasons(runtime)


def test_an_authenticator_that_keeps_its_counter_at_zero_signs_in_again(
    web, official, runtime, rp, authenticator
):
    authenticator.counter_step = 0
    authenticator.backup_eligible = True
    with_passkey(web, official, authenticator)
    for _ in range(2):
        verifier, challenge = pkce_pair()
        page = login_form(web, authorize_params(rp[0].client_id, challenge))
        done = follow_to_client(web, passkey_ceremony(web, page, authenticator, mode="alone"))
        assert id_token_claims(web, rp, done, verifier)["amr"] == ["swk", "user", "mfa"]
        web.cookies.clear()


# --- required levels ------------------------------------------------------------------------


def test_discovery_lists_the_acr_values(web):
    metadata = web.get("/.well-known/openid-configuration").json()
    assert metadata["acr_values_supported"] == list(authentication_levels.LEVELS)
    assert "acr" in metadata["claims_supported"]


def test_password_login_has_the_password_acr(web, official, rp):
    verifier, challenge = pkce_pair()
    page = login_form(web, authorize_params(rp[0].client_id, challenge))
    done = follow_to_client(web, submit_login(web, page, official.username, OFFICIAL_PASSWORD))
    claims = id_token_claims(web, rp, done, verifier)
    assert claims["acr"] == authentication_levels.PASSWORD and claims["amr"] == ["pwd"]


def test_acr_values_step_up_a_password_session_to_the_passkey(
    web, official, runtime, rp, authenticator
):
    # A session signed in with the password, in which the first passkey was then added.
    assert sign_in_directly(web, official.username, OFFICIAL_PASSWORD).status_code == 303
    assert add_passkey(web, authenticator, "Máy tính văn phòng").status_code == 303
    verifier, challenge = pkce_pair()
    params = authorize_params(rp[0].client_id, challenge, acr_values=PHISHING_RESISTANT)
    none = web.get("/oauth2/authorize", params={**params, "prompt": "none"})
    assert query_of(none.headers["location"])["error"] == "login_required"
    page = login_form(web, params)
    assert "yêu cầu đăng nhập bằng khóa truy cập" in page.text
    done = follow_to_client(web, passkey_ceremony(web, page, authenticator, mode="alone"))
    assert id_token_claims(web, rp, done, verifier)["acr"] == PHISHING_RESISTANT


def test_a_client_minimum_acr_without_a_passkey_shows_what_to_do(web, official, runtime):
    client, _ = register_client(runtime, minimum_acr=PHISHING_RESISTANT)
    _, challenge = pkce_pair()
    page = login_form(web, authorize_params(client.client_id, challenge))
    answer = submit_login(web, page, official.username, OFFICIAL_PASSWORD)
    assert answer.status_code == 403
    assert "cần khóa truy cập" in answer.text.lower() or "Cần khóa truy cập" in answer.text
    assert 'href="/account/passkeys"' in answer.text
    # The bootstrap: the session just started may add the first passkey.
    _, options = registration_options(web)
    assert options["rp"]["id"] == RP_ID


def add_unit(
    session: Session, runtime: IdpRuntime, code: str, *, level: str = "ward", name: str = ""
) -> Unit:
    """A unit of province 10 (Lào Cai's old code), active since now."""
    now = runtime.clock.now()
    unit = Unit(
        code=code,
        level=level,
        name=name or f"Đơn vị {code}",
        division_type="xã",
        province_code="10",
        status="active",
        created_at=now,
        updated_at=now,
    )
    session.add(unit)
    session.flush()
    return unit


def test_a_unit_requirement_applies_to_its_officials(web, official, runtime, rp, authenticator):
    with transaction(runtime.session_factory) as session:
        unit = add_unit(session, runtime, "10001", name="Phường Cốc Lếu")
        unit.requires_phishing_resistant = True
        session.add(
            AccountProfile(account_id=official.id, unit_id=unit.id, search_name="nguyen van an")
        )
    _, challenge = pkce_pair()
    page = login_form(web, authorize_params(rp[0].client_id, challenge))
    answer = submit_login(web, page, official.username, OFFICIAL_PASSWORD)
    assert answer.status_code == 403 and 'href="/account/passkeys"' in answer.text
    assert add_passkey(web, authenticator, "Điện thoại").status_code == 303
    web.cookies.clear()
    verifier, challenge = pkce_pair()
    page = login_form(web, authorize_params(rp[0].client_id, challenge))
    done = follow_to_client(web, passkey_ceremony(web, page, authenticator, mode="alone"))
    assert id_token_claims(web, rp, done, verifier)["acr"] == PHISHING_RESISTANT


# --- admin pages ----------------------------------------------------------------------------


def system_admin_web(web: TestClient, runtime: IdpRuntime) -> TestClient:
    with transaction(runtime.session_factory) as session:
        accounts.create(
            session=session,
            clock=runtime.clock,
            passwords=runtime.passwords,
            actor="test",
            username="quan.tri",
            full_name="Quản trị hệ thống",
            password=OFFICIAL_PASSWORD,
            is_system_admin=True,
        )
    assert sign_in_directly(web, "quan.tri", OFFICIAL_PASSWORD).status_code == 303
    return web


def test_an_admin_sets_a_clients_minimum_level_on_its_page(web, runtime, rp):
    admin = system_admin_web(web, runtime)
    client, _ = rp
    path = f"/admin/clients/{client.client_id}"
    page = admin.get(path)
    assert "Mức đăng nhập thấp nhất ứng dụng chấp nhận" in page.text
    form = {
        "csrf_token": fields_of(page)["csrf_token"],
        "name": client.name,
        "grant_types": ["authorization_code", "refresh_token"],
        "scope": client.scope,
        "redirect_uris": "\n".join(client.redirect_uris),
        "post_logout_redirect_uris": "\n".join(client.post_logout_redirect_uris),
        "id_token_signed_response_alg": "RS256",
        "access_token_signed_response_alg": "RS256",
        "minimum_acr": PHISHING_RESISTANT,
    }
    saved = admin.post(path, data=form)
    assert saved.status_code == 303, saved.text
    with transaction(runtime.session_factory) as session:
        row = session.scalar(select(Client).where(Client.client_id == client.client_id))
        assert row is not None and row.minimum_acr == PHISHING_RESISTANT
    refused = admin.post(path, data={**form, "minimum_acr": "urn:other"})
    assert refused.status_code == 400
    assert "Mức đăng nhập tối thiểu phải là một trong" in refused.text


def test_an_admin_requires_passkeys_in_a_province_and_its_wards_follow(web, runtime, official, rp):
    with transaction(runtime.session_factory) as session:
        add_unit(session, runtime, "10", level="province")
        ward = add_unit(session, runtime, "10001")
        session.add(AccountProfile(account_id=official.id, unit_id=ward.id, search_name="an"))
    admin = system_admin_web(web, runtime)
    page = admin.get("/admin/units/10")
    assert "phải đăng nhập vào các ứng dụng bằng khóa truy cập" in page.text
    saved = admin.post(
        "/admin/units/10/passkeys",
        data={"csrf_token": fields_of(page)["csrf_token"], "required": "on"},
    )
    assert saved.headers["location"] == "/admin/units/10?done=passkeys-required"
    assert "unit.passkeys_required" in audit_actions(runtime)
    admin.cookies.clear()
    _, challenge = pkce_pair()
    page = login_form(web, authorize_params(rp[0].client_id, challenge))
    answer = submit_login(web, page, official.username, OFFICIAL_PASSWORD)
    assert answer.status_code == 403 and "Cần khóa truy cập" in answer.text


# --- an official's passkeys on the admin pages (issue 16) -----------------------------------


def ward_with_admin(runtime: IdpRuntime, official: Account) -> None:
    """Ward 10001 with a unit admin (admin.xa) of it; ``official`` works in ward 10002."""
    with transaction(runtime.session_factory) as session:
        wards = [add_unit(session, runtime, code) for code in ("10001", "10002")]
        session.add(AccountProfile(account_id=official.id, unit_id=wards[1].id, search_name="an"))
        ward_admin = accounts.create(
            session=session,
            clock=runtime.clock,
            passwords=runtime.passwords,
            actor="test",
            username="admin.xa",
            full_name="Quản trị xã",
            password=OFFICIAL_PASSWORD,
        )
        admin_scope.grant(
            session=session,
            clock=runtime.clock,
            actor_scope=admin_scope.AdminScope(True, frozenset(), frozenset()),
            actor="test",
            account=ward_admin,
            role="unit_admin",
            unit=wards[0],
        )


def audit_entries(runtime: IdpRuntime, action: str) -> list[audit.AuditEntry]:
    with transaction(runtime.session_factory) as session:
        entries = [e for e in audit.tail(session, limit=200) if e.action == action]
        session.expunge_all()
        return entries


def test_an_admin_sees_an_officials_passkeys_and_removes_one(web, official, runtime, authenticator):
    with_passkey(web, official, authenticator)
    synced_key = SoftwareAuthenticator(origin=ISSUER, rp_id=RP_ID, backup_eligible=True)
    with transaction(runtime.session_factory) as session:
        # A second passkey, as a session signed in with the first would have added it.
        session.add(
            Passkey(
                account_id=official.id,
                credential_id="c3luY2Vk",
                public_key=b"\x00",
                name="Điện thoại <Android>",
                aaguid="00000000-0000-0000-0000-000000000000",
                backup_eligible=synced_key.backup_eligible,
                transports=[],
                created_at=runtime.clock.now(),
            )
        )
    admin = system_admin_web(web, runtime)
    page = admin.get(f"/admin/officials/{official.username}")
    assert page.status_code == 200
    assert "Máy tính văn phòng" in page.text and "Điện thoại &lt;Android&gt;" in page.text
    assert "Đồng bộ giữa các thiết bị" in page.text and "Chỉ lưu trên một thiết bị" in page.text
    assert "Chưa dùng" in page.text
    device_bound, synced = passkeys_of(runtime, official.username)
    path = f"/admin/officials/{official.username}/passkeys/{synced.id}/remove"
    assert f'href="{path}"' in page.text
    confirm = admin.get(path)
    assert confirm.status_code == 200 and "Điện thoại &lt;Android&gt;" in confirm.text
    assert "Xóa khóa truy cập" in confirm.text and f'action="{path}"' in confirm.text
    # Without the form's CSRF token nothing is removed.
    assert admin.post(path, data={}).status_code in (400, 403)
    done = admin.post(path, data={"csrf_token": fields_of(confirm)["csrf_token"]})
    assert done.status_code == 303
    assert done.headers["location"] == (
        f"/admin/officials/{official.username}?done=passkey-removed"
    )
    assert "Đã xóa khóa truy cập." in admin.get(done.headers["location"]).text
    assert [p.id for p in passkeys_of(runtime, official.username)] == [device_bound.id]
    [entry] = audit_entries(runtime, "account.passkey_removed")
    assert (entry.actor, entry.target) == ("user:quan.tri", f"account:{official.username}")
    assert json.loads(entry.details or "{}")["passkey_id"] == synced.id
    # Removed already, or another official's id: not found.
    assert admin.get(path).status_code == 404
    assert (
        admin.get(f"/admin/officials/quan.tri/passkeys/{device_bound.id}/remove").status_code == 404
    )


def test_an_admin_outside_the_officials_unit_cannot_see_or_remove_passkeys(
    web, official, runtime, authenticator
):
    with_passkey(web, official, authenticator)
    ward_with_admin(runtime, official)
    [passkey] = passkeys_of(runtime, official.username)
    assert sign_in_directly(web, "admin.xa", OFFICIAL_PASSWORD).status_code == 303
    path = f"/admin/officials/{official.username}/passkeys/{passkey.id}/remove"
    assert web.get(f"/admin/officials/{official.username}").status_code == 404
    assert web.get(path).status_code == 404
    csrf = fields_of(web.get("/admin/imports"))["csrf_token"]
    assert web.post(path, data={"csrf_token": csrf}).status_code == 404
    assert len(passkeys_of(runtime, official.username)) == 1
    assert audit_entries(runtime, "account.passkey_removed") == []


def test_reset_mfa_also_removes_the_officials_passkeys(web, official, runtime, authenticator):
    with_passkey(web, official, authenticator)
    admin = system_admin_web(web, runtime)
    detail = admin.get(f"/admin/officials/{official.username}")
    path = f"/admin/officials/{official.username}/reset-mfa"
    # No authenticator app, but a passkey: the reset is offered and says what it removes.
    assert f'href="{path}"' in detail.text
    confirm = admin.get(path)
    assert "các khóa truy cập của cán bộ sẽ hết hiệu lực" in confirm.text
    done = admin.post(path, data={"csrf_token": fields_of(confirm)["csrf_token"]})
    assert done.status_code == 303
    assert passkeys_of(runtime, official.username) == []
    [entry] = audit_entries(runtime, "account.passkey_removed")
    assert (entry.actor, entry.target) == ("user:quan.tri", f"account:{official.username}")
    # Nothing left to reset: refused, as before.
    again = admin.post(path, data={"csrf_token": fields_of(confirm)["csrf_token"]})
    assert again.status_code == 409


# --- a failed passkey sign-in counts against the login throttle -----------------------------


def throttle_rows(runtime: IdpRuntime) -> dict[str, tuple[str | None, int]]:
    with transaction(runtime.session_factory) as session:
        return {
            row.kind: (row.account_name, row.failures)
            for row in session.scalars(select(LoginThrottle))
        }


def test_a_failed_passkey_sign_in_counts_like_a_wrong_password(
    web, official, runtime, rp, authenticator
):
    with_passkey(web, official, authenticator)
    _, challenge = pkce_pair()
    page = login_form(web, authorize_params(rp[0].client_id, challenge))
    refused = passkey_ceremony(
        web, page, authenticator, mode="alone", origin="https://phishing.example"
    )
    assert refused.status_code == 401
    # The credential names the official: their counters, as a wrong password would.
    assert throttle_rows(runtime) == {
        "account_address": (official.username, 1),
        "account": (official.username, 1),
        "address": (None, 1),
    }
    [entry] = audit_entries(runtime, "login.passkey_failure")
    details = json.loads(entry.details or "{}")
    assert (details["counted_for"], details["locked"]) == (official.username, False)

    # A passkey this server never registered names no account: the address only.
    stranger = SoftwareAuthenticator(origin=ISSUER, rp_id=RP_ID)
    stranger.create({"rp": {"id": RP_ID}, "user": {"id": "eA", "name": "x"}, "challenge": "AA"})
    page = login_form(web, authorize_params(rp[0].client_id, challenge))
    assert passkey_ceremony(web, page, stranger, mode="alone").status_code == 401
    assert throttle_rows(runtime)["address"] == (None, 2)
    assert throttle_rows(runtime)["account"] == (official.username, 1)

    # A passkey sign-in that works ends the official's run of failures.
    page = login_form(web, authorize_params(rp[0].client_id, challenge))
    assert passkey_ceremony(web, page, authenticator, mode="alone").status_code in (302, 303)
    assert throttle_rows(runtime) == {"address": (None, 2)}


def test_a_locked_account_cannot_try_its_passkey_as_the_second_factor(
    web, official, runtime, rp, authenticator
):
    with_passkey(web, official, authenticator)
    _, challenge = pkce_pair()
    page = login_form(web, authorize_params(rp[0].client_id, challenge))
    after_password = submit_login(web, page, official.username, OFFICIAL_PASSWORD)
    second = web.get(after_password.headers["location"])
    # Wrong guesses from this address before, one short of the lock.
    attempt = login_throttle.Attempt(username=official.username, client_address="testclient")
    with transaction(runtime.session_factory) as session:
        for _ in range(runtime.settings.login_lock_after - 1):
            login_throttle.record_failure(
                session=session, clock=runtime.clock, settings=runtime.settings, attempt=attempt
            )
    failed = passkey_ceremony(
        web, second, authenticator, mode="second-factor", origin="https://phishing.example"
    )
    assert failed.status_code == 401
    [entry] = audit_entries(runtime, "login.passkey_failure")
    assert json.loads(entry.details or "{}")["locked"] is True
    locked = passkey_ceremony(web, second, authenticator, mode="second-factor")
    assert locked.status_code == 429
    assert "Bạn đã nhập sai quá nhiều lần" in locked.text


def test_access_tokens_carry_the_logins_acr_through_refresh_and_introspection(
    web, official, runtime, rp, authenticator, clock
):
    """RFC 9068 §2.2.1: the access token says how the official signed in (acr, amr,
    auth_time), introspection (RFC 7662) repeats it, and a refreshed token keeps the level of
    the login that granted it."""
    client, secret = rp
    with_passkey(web, official, authenticator)
    verifier, challenge = pkce_pair()
    page = login_form(web, authorize_params(client.client_id, challenge))
    signed_at = int(clock.now().timestamp())
    done = follow_to_client(web, passkey_ceremony(web, page, authenticator, mode="alone"))
    code = query_of(done.headers["location"])["code"]
    tokens = exchange_code(web, client.client_id, secret, code, verifier).json()
    access = pyjwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert access["acr"] == PHISHING_RESISTANT
    assert access["amr"] == ["hwk", "user", "mfa"]
    assert access["auth_time"] == signed_at
    clock.advance(600)
    renewed = web.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(client.client_id, secret),
    ).json()
    again = pyjwt.decode(renewed["access_token"], options={"verify_signature": False})
    assert (again["acr"], again["auth_time"]) == (PHISHING_RESISTANT, signed_at)
    for token in (renewed["access_token"], renewed["refresh_token"]):
        shown = web.post(
            "/oauth2/introspect", data={"token": token}, auth=(client.client_id, secret)
        ).json()
        assert shown["active"] is True
        assert (shown["acr"], shown["auth_time"]) == (PHISHING_RESISTANT, signed_at)
