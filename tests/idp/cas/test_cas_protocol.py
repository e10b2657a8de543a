"""CAS 3.0 end to end: the official's browser against the live server, a third-party CAS
client (python-cas, ``CASClient(version=3)``) as the shared app validating tickets over real
HTTP, on SQLite and PostgreSQL; single logout to a service app on its own loopback port."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from cas import CASClient, CASClientV3
from sqlalchemy import select

from core import audit
from core.db import transaction
from idp.cas import services
from idp.logout import backchannel
from idp.models import CasTicket
from idp.runtime import IdpRuntime
from tests.idp.cas.cas_flow import (
    ServiceApp,
    hidden_inputs,
    is_login_form,
    place_at_work,
    running_service_app,
    sign_in,
    ticket_of,
)
from tests.idp.live_server import (  # noqa: F401 (fixtures)
    LiveServer,
    live_server_fixture,
    live_settings_fixture,
    loopback_socket_fixture,
)

ALL_ATTRIBUTES = ["name", "email", "unit", "province", "agency", "position"]


@pytest.fixture
def service_app() -> Iterator[ServiceApp]:
    with running_service_app() as running:
        yield running


@pytest.fixture
def official_at_work(runtime: IdpRuntime, official) -> Any:
    place_at_work(runtime, official)
    return official


def register(runtime: IdpRuntime, service_id: str, **options: Any) -> None:
    with transaction(runtime.session_factory) as session:
        services.register(
            session=session, clock=runtime.clock, actor="test", service_id=service_id, **options
        )


@pytest.fixture
def service_url(runtime: IdpRuntime, service_app: ServiceApp) -> str:
    """The document-management app, registered by its exact URL with every attribute."""
    url = service_app.url("/van-ban/cas")
    register(runtime, "van-ban", name="Quản lý văn bản", url=url, attributes=ALL_ATTRIBUTES)
    return url


@pytest.fixture
def browser(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(follow_redirects=False, timeout=10) as client:
        yield client


def cas_client(live_server: LiveServer, service_url: str, **options: Any) -> CASClientV3:
    client = CASClient(
        version=3, service_url=service_url, server_url=live_server.url("/cas/"), **options
    )
    assert isinstance(client, CASClientV3)
    return client


def login_url(live_server: LiveServer, service: str, **extra: str) -> str:
    return live_server.url("/cas/login?" + urlencode({"service": service, **extra}))


def validate_raw(
    live_server: LiveServer,
    service: str,
    ticket: str,
    path: str = "/cas/p3/serviceValidate",
    **extra: str,
) -> httpx.Response:
    return httpx.get(
        live_server.url(path), params={"service": service, "ticket": ticket, **extra}, timeout=10
    )


def failure_code(response: httpx.Response) -> str | None:
    """The code of a CAS XML failure, read with python-cas's own parser's library."""
    from xml.etree import ElementTree

    tree = ElementTree.fromstring(response.content)
    failure = tree.find("{http://www.yale.edu/tp/cas}authenticationFailure")
    return None if failure is None else failure.get("code")


# --- Sign-in, validation, attributes ---------------------------------------------------------


def test_login_then_python_cas_validates_with_attributes(
    live_server, browser, runtime, official_at_work, service_url
) -> None:
    client = cas_client(live_server, service_url)
    landed = sign_in(browser, client.get_login_url(), live_server.issuer)
    assert landed.startswith(service_url + "?ticket=ST-")
    ticket = ticket_of(landed)
    assert ticket is not None and len(ticket) >= 3 + 43  # "ST-" + 256 bits

    user, attributes, pgtiou = client.verify_ticket(ticket)

    assert user == "nguyen.van.an"
    assert pgtiou is None  # proxy tickets are not supported
    assert attributes["name"] == "Nguyễn Văn An"
    assert attributes["email"] == "an.nv@laocai.gov.vn"
    assert attributes["unit_code"] == "02647"
    assert attributes["unit_name"] == "Phường Cam Đường"
    assert attributes["province_code"] == "15"
    assert attributes["province_name"] == "Tỉnh Lào Cai"
    assert attributes["agency"] == "UBND phường Cam Đường"
    assert attributes["position"] == "Phó Chủ tịch"
    assert attributes["isFromNewLogin"] == "true"
    assert attributes["longTermAuthenticationRequestTokenUsed"] == "false"
    assert attributes["authenticationDate"].endswith("Z")
    with transaction(runtime.session_factory) as session:
        entry = audit.tail(session, limit=1, action_prefix="login.success")[0]
        assert audit.entry_as_dict(entry)["target"] == "cas_service:van-ban"
        stored = session.scalars(select(CasTicket)).one()
        assert ticket not in stored.ticket_digest  # only the digest was stored at issue


def test_service_validate_json_and_cas_2_path(
    live_server, browser, official_at_work, service_url
) -> None:
    landed = sign_in(browser, login_url(live_server, service_url), live_server.issuer)
    response = validate_raw(
        live_server,
        service_url,
        ticket_of(landed) or "",
        path="/cas/serviceValidate",
        format="JSON",
    )
    assert response.headers["content-type"].startswith("application/json")
    success = json.loads(response.content.decode("utf-8"))["serviceResponse"][
        "authenticationSuccess"
    ]
    assert success["user"] == "nguyen.van.an"
    assert success["attributes"]["name"] == ["Nguyễn Văn An"]
    assert success["attributes"]["position"] == ["Phó Chủ tịch"]
    # UTF-8 on the wire, not escapes.
    assert "Nguyễn Văn An".encode() in response.content


def test_attributes_are_released_per_service(
    live_server, browser, runtime, official_at_work, service_app
) -> None:
    url = service_app.url("/bao-cao/")
    register(runtime, "bao-cao", name="Báo cáo", url=url, attributes=["name"])
    client = cas_client(live_server, url)
    landed = sign_in(browser, client.get_login_url(), live_server.issuer)
    _user, attributes, _ = client.verify_ticket(ticket_of(landed))
    assert attributes["name"] == "Nguyễn Văn An"
    assert not {"email", "unit_code", "province_code", "agency", "position"} & set(attributes)


def test_sso_session_gets_a_ticket_without_the_form(
    live_server, browser, official_at_work, service_url, service_app, runtime
) -> None:
    sign_in(browser, login_url(live_server, service_url), live_server.issuer)
    other = service_app.url("/mot-cua/")
    register(runtime, "mot-cua", name="Một cửa", url=other, attributes=["name"])

    response = browser.get(login_url(live_server, other))

    assert response.status_code == 303
    ticket = ticket_of(response.headers["location"])
    _user, attributes, _ = cas_client(live_server, other).verify_ticket(ticket)
    assert attributes["isFromNewLogin"] == "false"


def test_renew_asks_for_the_password_again(
    live_server, browser, official_at_work, service_url
) -> None:
    first = sign_in(browser, login_url(live_server, service_url), live_server.issuer)
    sso = browser.get(login_url(live_server, service_url))
    sso_ticket = ticket_of(sso.headers["location"])
    assert sso_ticket is not None

    # A ticket from the SSO session fails a validation that asks for renew (§2.5.1).
    refused = validate_raw(live_server, service_url, sso_ticket, renew="true")
    assert failure_code(refused) == "INVALID_TICKET_SPEC"

    client = cas_client(live_server, service_url, renew=True)
    form = browser.get(client.get_login_url())
    assert is_login_form(form)  # even though a session exists
    landed = sign_in(browser, client.get_login_url(), live_server.issuer)
    accepted = validate_raw(live_server, service_url, ticket_of(landed) or "", renew="true")
    assert failure_code(accepted) is None
    assert b"<cas:isFromNewLogin>true</cas:isFromNewLogin>" in accepted.content
    assert first != landed


def test_gateway_without_a_session_returns_without_a_ticket(
    live_server, browser, official_at_work, service_url
) -> None:
    response = browser.get(login_url(live_server, service_url, gateway="true"))
    assert response.status_code == 303
    assert response.headers["location"] == service_url

    sign_in(browser, login_url(live_server, service_url), live_server.issuer)
    with_session = browser.get(login_url(live_server, service_url, gateway="true"))
    assert ticket_of(with_session.headers["location"]) is not None


def test_renew_wins_over_gateway(live_server, browser, official_at_work, service_url) -> None:
    response = browser.get(login_url(live_server, service_url, gateway="true", renew="true"))
    assert is_login_form(response)


# --- Tickets refused --------------------------------------------------------------------------


def test_ticket_reused_is_refused(live_server, browser, official_at_work, service_url) -> None:
    client = cas_client(live_server, service_url)
    ticket = ticket_of(sign_in(browser, client.get_login_url(), live_server.issuer))
    assert client.verify_ticket(ticket)[0] == "nguyen.van.an"

    assert client.verify_ticket(ticket) == (None, {}, None)
    assert failure_code(validate_raw(live_server, service_url, ticket or "")) == "INVALID_TICKET"


def test_ticket_for_another_service_is_refused_and_spent(
    live_server, browser, runtime, official_at_work, service_url, service_app
) -> None:
    other = service_app.url("/mot-cua/")
    register(runtime, "mot-cua", name="Một cửa", url=other)
    ticket = ticket_of(sign_in(browser, login_url(live_server, service_url), live_server.issuer))

    assert failure_code(validate_raw(live_server, other, ticket or "")) == "INVALID_SERVICE"
    # §3.1.1: one validation attempt, successful or not.
    assert failure_code(validate_raw(live_server, service_url, ticket or "")) == "INVALID_TICKET"


def test_expired_ticket_is_refused(
    live_server, browser, clock, official_at_work, service_url, settings
) -> None:
    ticket = ticket_of(sign_in(browser, login_url(live_server, service_url), live_server.issuer))
    clock.advance(settings.cas_ticket_ttl)
    assert cas_client(live_server, service_url).verify_ticket(ticket) == (None, {}, None)


def test_ticket_of_an_ended_session_is_refused(
    live_server, browser, official_at_work, service_url
) -> None:
    ticket = ticket_of(sign_in(browser, login_url(live_server, service_url), live_server.issuer))
    browser.get(live_server.url("/cas/logout"))
    assert failure_code(validate_raw(live_server, service_url, ticket or "")) == "INVALID_TICKET"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"service": "http://127.0.0.1:9/x"}, "INVALID_REQUEST"),
        ({"ticket": "ST-abc"}, "INVALID_REQUEST"),
        ({"service": "http://127.0.0.1:9/x", "ticket": "ST-never-issued"}, "INVALID_TICKET"),
        ({"service": "http://127.0.0.1:9/x", "ticket": "PT-proxy"}, "INVALID_TICKET"),
        (
            {"service": "http://127.0.0.1:9/x", "ticket": "ST-x", "format": "YAML"},
            "INVALID_REQUEST",
        ),
    ],
)
def test_validation_failure_codes(live_server, params: dict[str, str], code: str) -> None:
    response = httpx.get(live_server.url("/cas/p3/serviceValidate"), params=params, timeout=10)
    assert response.status_code == 200
    assert failure_code(response) == code


def test_cas_1_validate(live_server, browser, official_at_work, service_url) -> None:
    client = CASClient(version=1, service_url=service_url, server_url=live_server.url("/cas/"))
    ticket = ticket_of(sign_in(browser, client.get_login_url(), live_server.issuer))
    assert client.verify_ticket(ticket) == ("nguyen.van.an", None, None)
    assert client.verify_ticket(ticket) == (None, None, None)


# --- Services: unknown and look-alike URLs ------------------------------------------------------


LOOK_ALIKES = [
    "http://127.0.0.1:{port}.evil.example/van-ban/cas",
    "http://127.0.0.1:{port}@evil.example/van-ban/cas",
    "http://evil.example@127.0.0.1:{port}/van-ban/cas",
    "http://127.0.0.1:1{port}/van-ban/cas",
    "https://127.0.0.1:{port}/van-ban/cas",
    "http://127.0.0.1:{port}/van-ban/cas/../../evil",
    "http://127.0.0.1:{port}/van-ban/%2e%2e/cas",
    "http://127.0.0.1:{port}/van-ban%2Fcas",
    "http://127.0.0.1:{port}/van-ban/cas/",
    "http://127.0.0.1:{port}/van-ban/casx",
    "http://127.0.0.1:{port}\\@evil.example/van-ban/cas",
    "http://127.0.0.1:{port}/van-ban/cas#frag",
    "http://127.0.0.1:{port}/van-ban/cas?ticket=ST-forged",
]


@pytest.mark.parametrize("look_alike", LOOK_ALIKES)
def test_look_alike_service_urls_get_no_ticket(
    live_server, browser, runtime, official_at_work, service_url, service_app, look_alike: str
) -> None:
    sign_in(browser, login_url(live_server, service_url), live_server.issuer)
    port = service_app.base.rsplit(":", 1)[1]
    response = browser.get(login_url(live_server, look_alike.format(port=port)))
    assert response.status_code == 400
    assert "location" not in response.headers
    with transaction(runtime.session_factory) as session:
        assert len(session.scalars(select(CasTicket)).all()) == 1  # the sign-in's own only


def test_equivalent_spelling_of_the_service_url_is_the_same_service(
    live_server, browser, official_at_work, service_url, service_app
) -> None:
    """RFC 3986 §6.2.2: case of scheme and host, and escapes of unreserved characters."""
    port = service_app.base.rsplit(":", 1)[1]
    spelled = f"HTTP://127.0.0.1:{port}/van%2Dban/cas"
    landed = sign_in(browser, login_url(live_server, spelled), live_server.issuer)
    assert landed.startswith(service_url + "?ticket=")
    # Validated with the registered spelling, as the ticket is bound to the normalised URL.
    assert cas_client(live_server, spelled).verify_ticket(ticket_of(landed))[0] == "nguyen.van.an"


def test_pattern_service(live_server, browser, runtime, official_at_work, service_app) -> None:
    base = service_app.base.replace(".", "\\.")
    register(runtime, "ho-so", name="Hồ sơ", pattern=f"^{base}/ho-so/.*$", attributes=["name"])
    url = service_app.url("/ho-so/mo?id=42")
    client = cas_client(live_server, url)
    landed = sign_in(browser, client.get_login_url(), live_server.issuer)
    assert landed == f"{url}&ticket={ticket_of(landed)}"
    assert client.verify_ticket(ticket_of(landed))[0] == "nguyen.van.an"
    outside = browser.get(login_url(live_server, service_app.url("/ho-so")))
    assert outside.status_code == 400


def test_unknown_service_gets_an_error_page(live_server, browser) -> None:
    response = browser.get(login_url(live_server, "https://evil.example/"))
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "Ứng dụng không xác định" in response.text


def test_removed_service_tickets_stop_validating(
    live_server, browser, runtime, official_at_work, service_url
) -> None:
    ticket = ticket_of(sign_in(browser, login_url(live_server, service_url), live_server.issuer))
    with transaction(runtime.session_factory) as session:
        services.REGISTRY.remove(
            session=session,
            clock=runtime.clock,
            actor="test",
            entry=services.REGISTRY.get_active(session, "van-ban"),
        )
    assert failure_code(validate_raw(live_server, service_url, ticket or "")) == "INVALID_SERVICE"


# --- Logout and single logout ----------------------------------------------------------------


def deliver(runtime: IdpRuntime) -> list[backchannel.DeliveryOutcome]:
    async def round_() -> list[backchannel.DeliveryOutcome]:
        async with httpx.AsyncClient() as http:
            return await backchannel.deliver_due(runtime, http)

    return asyncio.run(round_())


def test_single_logout_posts_logout_request_to_the_service(
    live_server, browser, runtime, official_at_work, service_url, service_app
) -> None:
    client = cas_client(live_server, service_url)
    ticket = ticket_of(sign_in(browser, client.get_login_url(), live_server.issuer))
    client.verify_ticket(ticket)

    response = browser.get(client.get_logout_url(service_url))

    assert response.status_code == 303 and response.headers["location"] == service_url
    assert browser.get(login_url(live_server, service_url)).status_code == 200  # signed out
    outcomes = deliver(runtime)
    assert [(o.client_id, o.status) for o in outcomes] == [("cas:van-ban", "delivered")]
    (received,) = service_app.received
    logout_request = received["logoutRequest"][0]
    # The service app finds its session with python-cas's own single-logout check.
    assert CASClientV3.verify_logout_request(logout_request, ticket)
    with transaction(runtime.session_factory) as session:
        (view,) = backchannel.list_deliveries(session, client_id="cas:van-ban")
        assert view.uri == service_url and view.reason == "logout" and view.attempts == 1


def test_single_logout_from_an_oidc_logout_and_sign_out_everywhere(
    live_server, browser, runtime, official_at_work, service_url, service_app
) -> None:
    """Single logout fans out from the shared layer: any end of the session tells CAS."""
    from idp import accounts
    from idp.logout import sign_out

    client = cas_client(live_server, service_url)
    ticket = ticket_of(sign_in(browser, client.get_login_url(), live_server.issuer))
    client.verify_ticket(ticket)
    with transaction(runtime.session_factory) as session:
        account = accounts.find_by_username(session, "nguyen.van.an")
        assert account is not None
        sign_out.sign_out_everywhere(
            session=session, clock=runtime.clock, actor="test", account=account
        )
    deliver(runtime)
    (received,) = service_app.received
    assert CASClientV3.verify_logout_request(received["logoutRequest"][0], ticket)


def test_no_single_logout_for_unvalidated_tickets_or_opted_out_services(
    live_server, browser, runtime, official_at_work, service_url, service_app
) -> None:
    quiet = service_app.url("/quiet/")
    register(runtime, "quiet", name="Im lặng", url=quiet, single_logout=False)
    sign_in(browser, login_url(live_server, service_url), live_server.issuer)  # not validated
    quiet_ticket = ticket_of(browser.get(login_url(live_server, quiet)).headers["location"])
    cas_client(live_server, quiet).verify_ticket(quiet_ticket)

    browser.get(live_server.url("/cas/logout"))

    assert deliver(runtime) == []
    assert service_app.received == []


def test_retries_a_service_that_is_down(
    live_server, browser, runtime, clock, official_at_work, service_app
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/down/"
    register(runtime, "down", name="Đang bảo trì", url=dead)
    client = cas_client(live_server, dead)
    ticket = ticket_of(sign_in(browser, client.get_login_url(), live_server.issuer))
    client.verify_ticket(ticket)
    browser.get(live_server.url("/cas/logout"))

    (first,) = deliver(runtime)
    assert (first.client_id, first.status, first.attempts) == ("cas:down", "pending", 1)
    clock.advance(backchannel.RETRY_DELAYS[0])
    (second,) = deliver(runtime)
    assert second.attempts == 2
    with transaction(runtime.session_factory) as session:
        (view,) = backchannel.list_deliveries(session, client_id="cas:down")
        assert len(view.log) == 2 and view.last_error


def test_logout_redirects_only_to_registered_services(
    live_server, browser, official_at_work, service_url
) -> None:
    sign_in(browser, login_url(live_server, service_url), live_server.issuer)
    evil = browser.get(
        live_server.url("/cas/logout?" + urlencode({"service": "https://evil.example/"}))
    )
    assert evil.status_code == 200 and "location" not in evil.headers
    assert "refresh" not in evil.headers
    assert 'href="https://evil.example' not in evil.text
    # The session ended all the same.
    assert is_login_form(browser.get(login_url(live_server, service_url)))
    registered = browser.get(live_server.url("/cas/logout?" + urlencode({"service": service_url})))
    assert registered.status_code == 303 and registered.headers["location"] == service_url


def test_login_without_service_goes_to_the_account_pages(live_server, browser) -> None:
    response = browser.get(live_server.url("/cas/login"))
    assert response.status_code == 303 and response.headers["location"] == "/account"


def test_resume_without_the_login_is_refused(
    live_server, browser, official_at_work, service_url
) -> None:
    """The resume step issues a ticket only to the session its own interaction started."""
    form = browser.get(login_url(live_server, service_url))
    handle = hidden_inputs(form.text)["interaction"]
    response = browser.get(
        live_server.url("/cas/login/resume?" + urlencode({"interaction": handle}))
    )
    assert response.status_code == 400 and "location" not in response.headers
    assert "Phiên đăng nhập đã hết hạn" in response.text
