"""``commune-sso upstream add / list / remove``: discovery fetched and checked at add time,
the secret sealed (never printed), refusals in one line, and the audit trail."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from core.db import make_engine, make_session_factory, transaction
from idp.models import UpstreamProvider
from tests.cli_runner import assert_clean_failure
from tests.cli_runner import audit_actions as cli_audit_actions
from tests.conftest import ISSUER
from tests.idp.federation.conftest import Upstream


def audit_actions(database_url: str) -> list[tuple[str, str | None]]:
    return cli_audit_actions(database_url, "upstream.")


def stored_secret(database_url: str) -> str | None:
    engine = make_engine(database_url)
    try:
        with transaction(make_session_factory(engine)) as session:
            return session.scalar(select(UpstreamProvider.sealed_client_secret))
    finally:
        engine.dispose()


def add_args(upstream: Upstream, *extra: str) -> list[str]:
    return [
        "upstream",
        "add",
        upstream.issuer,
        "--client-id",
        upstream.client_id,
        "--name",
        "VNeID thử nghiệm",
        "--link-claim",
        "citizen_id",
        "--scope",
        "openid citizen_id",
        *extra,
    ]


def test_add_list_remove_audited(cli, database_url: str, upstream: Upstream) -> None:
    added = cli.json(
        *add_args(upstream, "--client-secret-stdin", "--id", "vneid", "--name-en", "VNeID"),
        input=upstream.client_secret + "\n",
    )
    assert added["upstream_id"] == "vneid"
    assert added["token_endpoint_auth_method"] == "client_secret_basic"
    assert added["redirect_uri"] == f"{ISSUER}/login/upstream/vneid/callback"
    assert added["post_logout_redirect_uri"] == f"{ISSUER}/login/upstream/logged-out"
    assert added["end_session_endpoint"] == upstream.url("/oauth2/logout")
    assert added["id_token_algs"] == ["RS256", "ES256", "EdDSA"]
    assert upstream.client_secret not in str(added)
    sealed = stored_secret(database_url)
    assert sealed and upstream.client_secret not in sealed

    listed = cli.json("upstream", "list")
    assert [(p["upstream_id"], p["link_claim"]) for p in listed] == [("vneid", "citizen_id")]
    cli.ok("upstream", "list")
    cli.ok("upstream", "remove", "vneid")
    assert cli.json("upstream", "list") == []
    assert_clean_failure(cli("upstream", "remove", "vneid"), "No upstream provider with this id")
    assert audit_actions(database_url) == [
        ("upstream.registered", "upstream:vneid"),
        ("upstream.removed", "upstream:vneid"),
    ]


def test_the_default_id_comes_from_the_issuer(cli, upstream: Upstream) -> None:
    added = cli.json(*add_args(upstream, "--client-secret-stdin"), input="s3cret\n")
    assert added["upstream_id"] == "localhost"


def test_linking_by_email_is_refused(cli, database_url: str, upstream: Upstream) -> None:
    args = add_args(upstream, "--client-secret-stdin")
    args[args.index("citizen_id")] = "email"
    assert_clean_failure(cli(*args, input="s3cret\n"), "never linked by e-mail alone")
    assert audit_actions(database_url) == []


def test_a_discovery_document_of_another_issuer_is_refused(
    cli, database_url: str, upstream: Upstream
) -> None:
    """Same server, other name: OIDC Discovery §4.3 wants the issuer exactly."""
    port = urlsplit(upstream.issuer).port
    args = add_args(upstream, "--client-secret-stdin")
    args[2] = f"http://127.0.0.1:{port}"
    assert_clean_failure(cli(*args, input="s3cret\n"), "names another issuer")
    assert audit_actions(database_url) == []


@pytest.mark.parametrize(
    ("issuer", "message"),
    [
        ("http://sso.example.vn", "is not an https address"),
        ("https://127.0.0.1:9", "cannot be reached"),
    ],
)
def test_unusable_issuers_are_refused(cli, database_url: str, issuer: str, message: str) -> None:
    result = cli(
        "upstream",
        "add",
        issuer,
        "--client-id",
        "x",
        "--name",
        "X",
        "--link-claim",
        "citizen_id",
        "--private-key-jwt",
    )
    assert_clean_failure(result, message)
    assert audit_actions(database_url) == []


def test_private_key_jwt_is_accepted_when_the_upstream_offers_it(cli, upstream: Upstream) -> None:
    """commune-sso's token endpoint now offers private_key_jwt (RFC 7523; the sign-in through
    it: test_upstream_sign_in.py::test_sign_in_through_an_upstream_that_registered_our_jwks_uri)."""
    result = cli(*add_args(upstream, "--private-key-jwt"))
    assert result.exit_code == 0, result.output


def test_exactly_one_way_to_authenticate(cli, upstream: Upstream) -> None:
    assert_clean_failure(cli(*add_args(upstream)), "exactly one of")
