"""Sign-in through an upstream OpenID provider, against a second commune-sso (issue 17)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from core import audit
from core.db import transaction
from core.sealed_values import open_sealed
from idp import accounts, clients
from idp.federation import discovery, providers
from idp.federation.upstream_logout import _ID_TOKEN_PURPOSE, RETURN_PATH
from idp.models import Account, BrowserSession, UpstreamProvider, UpstreamSession
from idp.runtime import IdpRuntime
from tests.conftest import RP_LOGOUT_REDIRECT, RP_REDIRECT
from tests.idp.federation.broker_flow import Browser, upstream_buttons, with_query
from tests.idp.federation.conftest import CITIZEN_ID, UPSTREAM_ID, Upstream, create_official
from tests.idp.live_server import LiveServer
from tests.idp.oidc_flow import query_of

OUR_USERNAME = "nguyen.van.an"


@pytest.fixture
def browser(live_server: LiveServer) -> Iterator[Browser]:
    opened = Browser(live_server)
    yield opened
    opened.close()


@pytest.fixture
def linked_official(runtime: IdpRuntime) -> Account:
    """Our official with the upstream official's citizen ID (and no password here)."""
    return create_official(runtime, username=OUR_USERNAME, citizen_id=CITIZEN_ID)


def audit_entries(runtime: IdpRuntime, prefix: str) -> list[audit.AuditEntry]:
    with transaction(runtime.session_factory) as session:
        return list(
            session.scalars(
                select(audit.AuditEntry)
                .where(audit.AuditEntry.action.startswith(prefix))
                .order_by(audit.AuditEntry.seq)
            )
        )


def signed_in_through_upstream(browser: Browser, rp_client_id: str) -> tuple[str, str]:
    """The whole round trip; returns our code and the callback URL that was used."""
    started = browser.to_upstream(rp_client_id)
    back = browser.sign_in_upstream(started.headers["location"])
    callback = back.headers["location"]
    answered = browser.follow_to_client(browser.get(callback))
    assert answered.status_code in (302, 303), answered.text
    location = answered.headers["location"]
    assert location.startswith(RP_REDIRECT), location
    return query_of(location)["code"], callback


def exchange(browser: Browser, rp: tuple, code: str) -> dict:
    client, secret = rp
    response = browser.http.post(
        browser.ours.url("/oauth2/token"),
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": RP_REDIRECT,
            "code_verifier": browser.verifier,
        },
        auth=(client.client_id, secret),
    )
    assert response.status_code == 200, response.text
    return response.json()


def id_token_claims(runtime: IdpRuntime, id_token: str) -> dict:
    return dict(runtime.keyring.verify_jwt(id_token, now=runtime.clock.now()).claims)


def test_login_page_offers_the_upstream_in_vietnamese(
    browser: Browser, rp, registered: UpstreamProvider
) -> None:
    page = browser.open_login(rp[0].client_id)
    assert [text for _, text in upstream_buttons(page.text)] == ["Đăng nhập bằng VNeID thử nghiệm"]
    english = browser.open_login(rp[0].client_id, ui_locales="en")
    assert [text for _, text in upstream_buttons(english.text)] == ["Sign in with Test VNeID"]


def test_sign_in_linked_by_citizen_id(
    browser: Browser, rp, runtime: IdpRuntime, registered: UpstreamProvider, linked_official
) -> None:
    started = browser.to_upstream(rp[0].client_id)
    authorize = query_of(started.headers["location"])
    assert started.headers["location"].startswith(registered.authorization_endpoint)
    assert authorize["code_challenge_method"] == "S256"
    assert authorize["state"] and authorize["nonce"] and authorize["code_challenge"]
    assert authorize["scope"] == "openid profile citizen_id"

    back = browser.sign_in_upstream(started.headers["location"])
    answered = browser.follow_to_client(browser.get(back.headers["location"]))
    code = query_of(answered.headers["location"])["code"]
    tokens = exchange(browser, rp, code)
    claims = id_token_claims(runtime, tokens["id_token"])
    assert claims["sub"] == linked_official.subject
    # RFC 8176: "fed" first, then how the upstream authenticated the official.
    assert claims["amr"] == ["fed", "pwd"]

    [success] = audit_entries(runtime, "login.success")
    assert success.actor == f"user:{OUR_USERNAME}"
    assert json.loads(success.details)["upstream"] == UPSTREAM_ID
    with transaction(runtime.session_factory) as session:
        [record] = session.scalars(select(UpstreamSession)).all()
        assert record.upstream_pk == registered.id
        # Sealed: the upstream's ID token is not stored in the clear (a JWT's header segment
        # would open the value; a random "eyJ" inside the ciphertext is no leak), and it opens
        # back to the upstream's JWT with our secret, bound to this browser session.
        assert not record.sealed_id_token.startswith("eyJ")
        assert record.sealed_id_token.count(".") < 2
        opened = open_sealed(
            record.sealed_id_token,
            server_secret=runtime.server_secret,
            purpose=_ID_TOKEN_PURPOSE,
            bound_to=f"session:{record.session_id}".encode("ascii"),
        ).decode("ascii")
        assert opened.startswith("eyJ") and opened.count(".") == 2
        assert opened.split(".")[0] not in record.sealed_id_token


def test_the_callback_works_once(
    browser: Browser, rp, runtime: IdpRuntime, registered, linked_official
) -> None:
    _, callback = signed_in_through_upstream(browser, rp[0].client_id)
    replayed = browser.get(callback)
    assert replayed.status_code == 400
    assert "Phiên đăng nhập đã hết hạn" in replayed.text


def test_no_matching_official_is_refused(
    browser: Browser, rp, runtime: IdpRuntime, registered
) -> None:
    create_official(runtime, username=OUR_USERNAME, citizen_id="079200001111")
    refused = browser.get(browser.callback_url(rp[0].client_id))
    assert refused.status_code == 403
    assert "không khớp với tài khoản cán bộ nào" in refused.text
    # The sign-in form is still there, for the password.
    assert 'name="password"' in refused.text
    with transaction(runtime.session_factory) as session:
        assert session.scalars(select(BrowserSession)).all() == []
    [entry] = audit_entries(runtime, "login.upstream_no_match")
    assert entry.target == f"upstream:{UPSTREAM_ID}"


def test_a_disabled_official_is_refused(
    browser: Browser, rp, runtime: IdpRuntime, registered, linked_official
) -> None:
    with transaction(runtime.session_factory) as session:
        accounts.disable(
            session=session,
            clock=runtime.clock,
            actor="test",
            account=session.get(Account, linked_official.id),
        )
    refused = browser.get(browser.callback_url(rp[0].client_id))
    assert refused.status_code == 403
    assert "tài khoản cán bộ của bạn đã bị khóa" in refused.text
    assert [e.actor for e in audit_entries(runtime, "login.upstream_refused_disabled")] == [
        f"user:{OUR_USERNAME}"
    ]


def test_a_tampered_state_is_refused(
    browser: Browser, rp, runtime: IdpRuntime, registered, linked_official
) -> None:
    started = browser.to_upstream(rp[0].client_id)
    back = browser.sign_in_upstream(started.headers["location"])
    refused = browser.get(with_query(back.headers["location"], state="not-the-state"))
    assert refused.status_code == 400
    assert "không thành công" in refused.text
    [entry] = audit_entries(runtime, "login.upstream_failure")
    assert json.loads(entry.details) == {"reason": "state mismatch"}


def test_an_error_from_the_upstream_is_shown(
    browser: Browser, rp, runtime: IdpRuntime, registered, linked_official
) -> None:
    """RFC 6749 §4.1.2.1: the official refused or cancelled at the upstream."""
    started = browser.to_upstream(rp[0].client_id)
    state = query_of(started.headers["location"])["state"]
    refused = browser.get(
        f"/login/upstream/{UPSTREAM_ID}/callback?error=access_denied&state={state}"
    )
    assert refused.status_code == 400
    assert "đã bị hủy hoặc bị từ chối" in refused.text
    [entry] = audit_entries(runtime, "login.upstream_failure")
    assert json.loads(entry.details) == {"reason": "upstream error: access_denied"}


def test_a_callback_from_another_browser_finds_nothing(
    browser: Browser, live_server: LiveServer, rp, registered, linked_official
) -> None:
    """Login CSRF: the callback URL alone, without the browser's cookie, signs no one in."""
    started = browser.to_upstream(rp[0].client_id)
    back = browser.sign_in_upstream(started.headers["location"])
    other = Browser(live_server)
    try:
        refused = other.get(back.headers["location"])
    finally:
        other.close()
    assert refused.status_code == 400
    assert "sso_session" not in refused.headers.get("set-cookie", "")


def test_a_wrong_nonce_is_refused(
    browser: Browser, rp, runtime: IdpRuntime, registered, linked_official
) -> None:
    """The upstream signs the nonce it was sent; one that is not ours fails our check."""
    callback = browser.callback_url(
        rp[0].client_id, lambda authorize: with_query(authorize, nonce="someone-elses-nonce")
    )
    refused = browser.get(callback)
    assert refused.status_code == 400
    [entry] = audit_entries(runtime, "login.upstream_failure")
    assert "nonce" in json.loads(entry.details)["reason"]


def test_an_expired_id_token_is_refused(
    browser: Browser, rp, runtime: IdpRuntime, registered, linked_official
) -> None:
    """Our clock runs past the upstream's ID token lifetime (and its minute of skew) while
    the interaction is still alive."""
    started = browser.to_upstream(rp[0].client_id)
    back = browser.sign_in_upstream(started.headers["location"])
    runtime.clock.advance(  # type: ignore[attr-defined]
        runtime.settings.id_token_ttl + timedelta(minutes=2).total_seconds()
    )
    refused = browser.get(back.headers["location"])
    assert refused.status_code == 400
    [entry] = audit_entries(runtime, "login.upstream_failure")
    assert "expired" in json.loads(entry.details)["reason"]


def test_a_code_for_another_client_is_refused(
    browser: Browser, rp, runtime: IdpRuntime, upstream: Upstream, registered, linked_official
) -> None:
    """Our secret does not redeem a code the upstream issued to another of its clients."""
    from idp import clients

    with transaction(upstream.runtime.session_factory) as session:
        other, _ = clients.create(
            session=session,
            clock=upstream.clock,
            actor="test",
            name="Ứng dụng khác",
            redirect_uris=[browser.ours.url(f"/login/upstream/{UPSTREAM_ID}/callback")],
            scope="openid citizen_id",
            first_party=True,
        )
    callback = browser.callback_url(
        rp[0].client_id, lambda authorize: with_query(authorize, client_id=other.client_id)
    )
    refused = browser.get(callback)
    assert refused.status_code == 400
    [entry] = audit_entries(runtime, "login.upstream_failure")
    assert "invalid_grant" in json.loads(entry.details)["reason"]


def test_a_removed_upstream_is_refused_and_no_longer_offered(
    browser: Browser, rp, runtime: IdpRuntime, registered, linked_official
) -> None:
    from idp.federation import providers

    started = browser.to_upstream(rp[0].client_id)
    back = browser.sign_in_upstream(started.headers["location"])
    with transaction(runtime.session_factory) as session:
        providers.REGISTRY.remove(
            session=session,
            clock=runtime.clock,
            actor="test",
            entry=providers.REGISTRY.get_active(session, UPSTREAM_ID),
        )
    refused = browser.get(back.headers["location"])
    assert refused.status_code == 403
    assert "không còn được cung cấp" in refused.text
    assert upstream_buttons(browser.open_login(rp[0].client_id).text) == []


def test_logout_goes_through_the_upstream(
    browser: Browser, rp, runtime: IdpRuntime, upstream: Upstream, registered, linked_official
) -> None:
    code, _ = signed_in_through_upstream(browser, rp[0].client_id)
    tokens = exchange(browser, rp, code)
    logout = browser.http.get(
        browser.ours.url("/oauth2/logout"),
        params={
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": RP_LOGOUT_REDIRECT,
        },
    )
    assert logout.status_code == 303, logout.text
    to_upstream = logout.headers["location"]
    assert to_upstream.startswith(registered.end_session_endpoint or "-")
    sent = query_of(to_upstream)
    assert sent["post_logout_redirect_uri"] == browser.ours.url(RETURN_PATH)
    assert sent["client_id"] == upstream.client_id
    assert sent["id_token_hint"].count(".") == 2

    at_upstream = browser.get(to_upstream)
    assert at_upstream.status_code == 303, at_upstream.text
    back_here = at_upstream.headers["location"]
    assert back_here.startswith(browser.ours.url(RETURN_PATH))
    onwards = browser.get(back_here)
    assert onwards.status_code == 303
    assert onwards.headers["location"] == RP_LOGOUT_REDIRECT

    # Both sessions ended: ours and the upstream's.
    for side in (runtime, upstream.runtime):
        with transaction(side.session_factory) as session:
            rows = session.scalars(select(BrowserSession)).all()
            assert rows and all(row.ended_at is not None for row in rows)


def test_sign_in_through_an_upstream_that_registered_our_jwks_uri(
    browser: Browser, rp, runtime: IdpRuntime, upstream: Upstream, linked_official
) -> None:
    """End to end with private_key_jwt on both sides: the upstream (another commune-sso)
    registers us with our jwks_uri and no secret; we authenticate at its token endpoint with
    an assertion signed by our key ring (RFC 7523 §2.2), which it verifies with the keys it
    fetches from us, and the official signs in."""
    with transaction(upstream.runtime.session_factory) as session:
        client, secret = clients.create(
            session=session,
            clock=upstream.clock,
            actor="test",
            name="Cổng SSO tỉnh Lào Cai (khóa)",
            redirect_uris=[browser.ours.url(f"/login/upstream/{UPSTREAM_ID}/callback")],
            scope="openid profile citizen_id",
            first_party=True,
            auth_method="private_key_jwt",
            keys=clients.ClientSettings(name="", jwks_uri=browser.ours.url("/oauth2/jwks")),
        )
    assert secret is None
    with transaction(runtime.session_factory) as session:
        providers.register(
            session=session,
            clock=runtime.clock,
            actor="test",
            upstream_id=UPSTREAM_ID,
            metadata=discovery.discover(upstream.issuer),
            client_id=client.client_id,
            client_secret=None,  # private_key_jwt
            server_secret=runtime.server_secret,
            link_claim="citizen_id",
            name_vi="VNeID thử nghiệm",
            scope="openid profile citizen_id",
        )
    code, _callback = signed_in_through_upstream(browser, rp[0].client_id)
    claims = id_token_claims(runtime, exchange(browser, rp, code)["id_token"])
    assert claims["sub"] == linked_official.subject
    assert claims["amr"] == ["fed", "pwd"]
