"""``commune-sso cas add-service / list-services / remove-service``: registrations, refusals
in one line without a traceback, and the audit trail."""

from __future__ import annotations

import pytest

from tests.cli_runner import assert_clean_failure
from tests.cli_runner import audit_actions as cli_audit_actions

URL = "https://vanban.laocai.gov.vn/cas"


def audit_actions(database_url: str) -> list[tuple[str, str | None]]:
    return cli_audit_actions(database_url, "cas.")


def test_add_list_remove_audited(cli, database_url: str) -> None:
    added = cli.json(
        "cas",
        "add-service",
        "van-ban",
        "--name",
        "Quản lý văn bản",
        "--url",
        "HTTPS://VanBan.LaoCai.gov.vn:443/cas",
        "--attribute",
        "name",
        "--attribute",
        "unit",
        "--minimum-acr",
        "urn:commune-sso:acr:phishing-resistant",
    )
    assert added == {
        "service_id": "van-ban",
        "name": "Quản lý văn bản",
        "match": "exact",
        "url_pattern": URL,  # stored normalised
        "attributes": ["name", "unit"],
        "single_logout": True,
        "minimum_acr": "urn:commune-sso:acr:phishing-resistant",
    }
    cli.ok(
        "cas",
        "add-service",
        "mot-cua",
        "--name",
        "Một cửa",
        "--pattern",
        r"^https://motcua\.laocai\.gov\.vn/.*$",
        "--no-single-logout",
    )
    listed = cli.json("cas", "list-services")
    assert [(s["service_id"], s["match"], s["single_logout"]) for s in listed] == [
        ("van-ban", "exact", True),
        ("mot-cua", "regex", False),
    ]
    cli.ok("cas", "list-services")  # the table (its narrow test console wraps the cells)
    changed = cli.json("cas", "set-minimum-acr", "mot-cua", "urn:commune-sso:acr:mfa", "--json")
    assert changed == {"service_id": "mot-cua", "minimum_acr": "urn:commune-sso:acr:mfa"}
    assert cli("cas", "set-minimum-acr", "mot-cua", "urn:x").exit_code != 0

    cli.ok("cas", "remove-service", "van-ban")

    assert [s["service_id"] for s in cli.json("cas", "list-services")] == ["mot-cua"]
    assert audit_actions(database_url) == [
        ("cas.service_registered", "cas_service:van-ban"),
        ("cas.service_registered", "cas_service:mot-cua"),
        ("cas.service_minimum_acr", "cas_service:mot-cua"),
        ("cas.service_removed", "cas_service:van-ban"),
    ]


REFUSED = [
    (["--pattern", r"https://a\.vn/.*"], "A service pattern must be anchored"),
    (["--pattern", r"^https://a\.vn/.*"], "A service pattern must be anchored"),
    (["--pattern", "^https://.*$"], "The service pattern matches any site."),
    (["--pattern", r"^https://a\.vn/($"], "not a valid regular expression"),
    (["--url", "http://a.vn/cas"], "A service URL must use https"),
    (["--url", "https://a.vn@evil.vn/cas"], "The service URL is not valid (userinfo)."),
    (["--url", URL, "--pattern", r"^https://a\.vn/.*$"], "Give either an exact service URL"),
    (["--url", URL, "--attribute", "password"], "Unknown attribute password"),
]


@pytest.mark.parametrize(("options", "message"), REFUSED)
def test_refused_registrations_write_nothing(
    cli, database_url: str, options: list[str], message: str
) -> None:
    assert_clean_failure(cli("cas", "add-service", "a", "--name", "A", *options), message)
    assert cli.json("cas", "list-services") == []
    assert audit_actions(database_url) == []


def test_refused_ids_and_unknown_services(cli, database_url: str) -> None:
    add = ("cas", "add-service")
    assert_clean_failure(cli(*add, "Bad Id", "--name", "A", "--url", URL), "A service id is")
    cli.ok(*add, "a", "--name", "A", "--url", URL)
    assert_clean_failure(cli(*add, "a", "--name", "A", "--url", URL), "already registered")
    assert_clean_failure(cli("cas", "remove-service", "nope"), "No CAS service with this id.")
    assert audit_actions(database_url) == [("cas.service_registered", "cas_service:a")]
