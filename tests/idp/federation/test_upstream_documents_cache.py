"""The upstream's JWK Set and discovery document are kept (idp/federation/document_cache.py):
counted at the second commune-sso, a sign-in does not fetch the keys again within their
max-age, a token naming a key we lack makes us fetch once, and a forged ``kid`` cannot make us
fetch more than once per interval."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import urlsplit

import pytest

from idp.federation.discovery import WELL_KNOWN
from idp.federation.document_cache import (
    DEFAULT_MAX_AGE,
    MAX_MAX_AGE,
    MIN_MAX_AGE,
    REFETCH_INTERVAL,
    key_ids,
    max_age_of,
)
from idp.federation.token_request import upstream_jwks
from idp.models import UpstreamProvider
from idp.runtime import IdpRuntime
from tests.idp.federation.broker_flow import Browser
from tests.idp.federation.conftest import CITIZEN_ID, Upstream, create_official
from tests.idp.federation.test_admin_upstream_pages import NEW, form
from tests.idp.federation.test_upstream_sign_in import OUR_USERNAME, signed_in_through_upstream
from tests.idp.live_server import LiveServer
from tests.idp.test_admin_pages import post, sign_in
from tests.idp.test_admin_pages import world as world  # the same admins and officials


@pytest.fixture
def sign_in_through_upstream(live_server: LiveServer, rp) -> Callable[[], None]:
    """One sign-in through the upstream, each in a browser of its own."""

    def run() -> None:
        browser = Browser(live_server)
        try:
            signed_in_through_upstream(browser, rp[0].client_id)
        finally:
            browser.close()

    return run


@pytest.fixture
def linked(runtime: IdpRuntime) -> None:
    create_official(runtime, username=OUR_USERNAME, citizen_id=CITIZEN_ID)


def jwks_path(provider: UpstreamProvider) -> str:
    return urlsplit(provider.jwks_uri).path


def fetch(runtime: IdpRuntime, provider: UpstreamProvider, kid: str | None) -> object:
    return asyncio.run(upstream_jwks(provider.jwks_uri, kid=kid, cache=runtime.upstream_documents))


def test_sign_ins_fetch_the_keys_once_per_max_age(
    sign_in_through_upstream, runtime: IdpRuntime, upstream: Upstream, registered, linked
) -> None:
    path = jwks_path(registered)
    sign_in_through_upstream()
    sign_in_through_upstream()
    assert upstream.requests.count(path) == 1
    # The upstream says max-age=300: kept that long, then fetched again.
    runtime.clock.advance(299)
    sign_in_through_upstream()
    assert upstream.requests.count(path) == 1
    runtime.clock.advance(2)
    sign_in_through_upstream()
    assert upstream.requests.count(path) == 2


def test_a_token_naming_a_key_we_lack_fetches_the_keys_again(
    sign_in_through_upstream, runtime: IdpRuntime, upstream: Upstream, registered, linked
) -> None:
    # As after the upstream rotated its keys: the copy in hand (fresh) lacks the token's kid.
    runtime.upstream_documents.keep(registered.jwks_uri, {"keys": []}, cache_control=None)
    sign_in_through_upstream()
    assert upstream.requests.count(jwks_path(registered)) == 1
    assert key_ids(runtime.upstream_documents.fresh(registered.jwks_uri))


def test_a_forged_kid_fetches_at_most_once_per_interval(
    runtime: IdpRuntime, upstream: Upstream, registered
) -> None:
    path = jwks_path(registered)
    keys = fetch(runtime, registered, None)
    kid = sorted(key_ids(keys))[0]
    assert upstream.requests.count(path) == 1
    for forged in ("forged-1", "forged-2", "forged-3"):
        assert fetch(runtime, registered, forged) == keys
    assert fetch(runtime, registered, kid) == keys
    assert upstream.requests.count(path) == 1
    runtime.clock.advance(REFETCH_INTERVAL.total_seconds() + 1)
    for forged in ("forged-4", "forged-5", "forged-6"):
        fetch(runtime, registered, forged)
    assert upstream.requests.count(path) == 2


def test_the_discovery_document_is_fetched_once_for_several_tries(
    web, runtime: IdpRuntime, world, upstream: Upstream
) -> None:
    sign_in(web, runtime, world.system)
    # Refused after discovery (the id), then added: the document is not fetched again.
    refused = post(web, NEW, form(upstream, upstream_id="VNeID"), form_page=NEW)  # type: ignore[arg-type]
    assert refused.status_code == 400
    added = post(web, NEW, form(upstream), form_page=NEW)  # type: ignore[arg-type]
    assert added.status_code == 303
    assert upstream.requests.count(WELL_KNOWN) == 1
    # Its max-age (300 s) later, fetched again.
    runtime.clock.advance(301)
    again = post(web, NEW, form(upstream, upstream_id="second"), form_page=NEW)  # type: ignore[arg-type]
    assert again.status_code == 303
    assert upstream.requests.count(WELL_KNOWN) == 2


@pytest.mark.parametrize(
    ("header", "kept"),
    [
        (None, DEFAULT_MAX_AGE),
        ("public, max-age=3600", timedelta(hours=1)),
        ("max-age=0", MIN_MAX_AGE),
        ("no-store", MIN_MAX_AGE),
        ("public, max-age=31536000", MAX_MAX_AGE),
        ("public", DEFAULT_MAX_AGE),
        ("max-age=abc", DEFAULT_MAX_AGE),
    ],
)
def test_max_age_is_the_upstreams_within_bounds(header: str | None, kept: timedelta) -> None:
    assert max_age_of(header) == kept
