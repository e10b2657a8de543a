"""``commune-sso saml add-sp / list-sps / remove-sp``: registration from a metadata file or
URL, refusals in one line without a traceback, and the audit trail."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from tests.cli_runner import assert_clean_failure
from tests.cli_runner import audit_actions as cli_audit_actions
from tests.idp.live_server import bind_loopback, issuer_for, serve
from tests.idp.saml.pysaml2_sp import (
    ACS_URL,
    SP_ENTITY_ID,
    sp_config,
    sp_metadata_xml,
    write_key_and_certificate,
)


def audit_actions(database_url: str) -> list[tuple[str, str | None]]:
    return cli_audit_actions(database_url, "saml.")


@pytest.fixture
def metadata_file(tmp_path: Path) -> Path:
    key_path, cert_path = write_key_and_certificate(tmp_path, "cli-sp")
    path = tmp_path / "sp-metadata.xml"
    path.write_bytes(
        sp_metadata_xml(sp_config(key_path=key_path, cert_path=cert_path, idp_metadata=None))
    )
    return path


def test_add_list_remove_audited(cli, database_url: str, metadata_file: Path) -> None:
    added = cli.json(
        "saml",
        "add-sp",
        "--metadata",
        str(metadata_file),
        "--name",
        "Quản lý văn bản",
        "--attribute",
        "name",
        "--attribute",
        "unit",
        "--minimum-acr",
        "urn:commune-sso:acr:phishing-resistant",
    )
    assert added["entity_id"] == SP_ENTITY_ID
    assert added["minimum_acr"] == "urn:commune-sso:acr:phishing-resistant"
    assert added["name"] == "Quản lý văn bản"
    assert added["assertion_consumer_services"][0]["url"] == ACS_URL
    assert added["authn_requests_signed"] is True
    assert added["signing_certificates"] == 1
    assert added["name_id_format"] == "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
    assert added["attributes"] == ["name", "unit"]
    assert [row["entity_id"] for row in cli.json("saml", "list-sps")] == [SP_ENTITY_ID]
    assert_clean_failure(
        cli("saml", "add-sp", "--metadata", str(metadata_file)), "already registered"
    )
    changed = cli.json("saml", "set-minimum-acr", SP_ENTITY_ID, "none", "--json")
    assert changed == {"entity_id": SP_ENTITY_ID, "minimum_acr": None}
    cli.ok("saml", "remove-sp", SP_ENTITY_ID)
    assert cli.json("saml", "list-sps") == []
    assert audit_actions(database_url) == [
        ("saml.sp_registered", f"saml_sp:{SP_ENTITY_ID}"),
        ("saml.sp_minimum_acr", f"saml_sp:{SP_ENTITY_ID}"),
        ("saml.sp_removed", f"saml_sp:{SP_ENTITY_ID}"),
    ]


@pytest.fixture
def metadata_url(metadata_file: Path) -> Iterator[str]:
    body = metadata_file.read_bytes()

    async def metadata(_request: object) -> Response:
        return Response(body, media_type="application/samlmetadata+xml")

    sock = bind_loopback()
    try:
        with serve(Starlette(routes=[Route("/metadata", metadata)]), sock):
            yield f"{issuer_for(sock)}/metadata"
    finally:
        sock.close()


def test_add_from_url(cli, metadata_url: str) -> None:
    assert cli.json("saml", "add-sp", "--metadata", metadata_url)["entity_id"] == SP_ENTITY_ID


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="&lol2;"/>"""


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (BILLION_LAUGHS, "DOCTYPE"),
        (b"<md:EntityDescriptor", "not acceptable XML"),
        (
            b'<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
            b'entityID="https://x.vn"/>',
            "SPSSODescriptor",
        ),
    ],
)
def test_bad_metadata_refused_and_nothing_written(
    cli, database_url: str, tmp_path: Path, document: bytes, message: str
) -> None:
    path = tmp_path / "bad.xml"
    path.write_bytes(document)
    assert_clean_failure(cli("saml", "add-sp", "--metadata", str(path)), message)
    assert audit_actions(database_url) == []


def test_http_metadata_url_off_loopback_refused(cli) -> None:
    assert_clean_failure(
        cli("saml", "add-sp", "--metadata", "http://sp.example.vn/metadata"), "must use https"
    )
