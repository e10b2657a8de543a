"""Assertions encrypted to the SP (AES-256-GCM, the key by RSA-OAEP to its registered
encryption certificate): pysaml2 decrypts them with xmlsec1 and verifies the signature of the
assertion inside."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from starlette.testclient import TestClient

from core.errors import DomainError
from idp.runtime import IdpRuntime
from tests.idp.saml.conftest import IDP_ENTITY_ID, register_sp
from tests.idp.saml.pysaml2_sp import (
    ServiceProvider,
    send_to_idp,
    sign_in,
    sp_config,
    sp_metadata_xml,
    write_key_and_certificate,
)


@pytest.fixture
def encrypting_sp(
    runtime: IdpRuntime, web: TestClient, tmp_path: Path, official_at_work: Any
) -> ServiceProvider:
    key_path, cert_path = write_key_and_certificate(tmp_path, "signing")
    encryption_keys = write_key_and_certificate(tmp_path, "encryption")
    options = {"key_path": key_path, "cert_path": cert_path, "encryption_keys": encryption_keys}
    register_sp(
        runtime,
        sp_metadata_xml(sp_config(idp_metadata=None, **options)),
        attributes=["name", "position"],
        encrypt_assertions=True,
    )
    config = sp_config(idp_metadata=web.get("/saml/metadata").text, **options)
    return ServiceProvider(config, IDP_ENTITY_ID)


def test_encrypted_assertion_decrypted_by_pysaml2(
    web: TestClient, encrypting_sp: ServiceProvider
) -> None:
    request_id, info = encrypting_sp.authn_request()
    form = sign_in(web, send_to_idp(web, info))
    root = etree.fromstring(base64.b64decode(form.fields["SAMLResponse"]))
    assert root.find("{urn:oasis:names:tc:SAML:2.0:assertion}Assertion") is None
    encrypted = root.find("{urn:oasis:names:tc:SAML:2.0:assertion}EncryptedAssertion")
    assert encrypted is not None
    assert "Phó Chủ tịch".encode() not in base64.b64decode(form.fields["SAMLResponse"])
    response = encrypting_sp.parse_response(form, request_id)
    assert response.assertion.signature is not None
    assert response.ava == {"name": ["Nguyễn Văn An"], "position": ["Phó Chủ tịch"]}


def test_encryption_needs_an_encryption_certificate(runtime: IdpRuntime, tmp_path: Path) -> None:
    key_path, cert_path = write_key_and_certificate(tmp_path, "only-signing")
    metadata = sp_metadata_xml(sp_config(key_path=key_path, cert_path=cert_path, idp_metadata=None))
    assert b'KeyDescriptor use="signing"' in metadata  # and none for encryption
    with pytest.raises(DomainError, match="RSA encryption certificate"):
        register_sp(runtime, metadata, encrypt_assertions=True)
