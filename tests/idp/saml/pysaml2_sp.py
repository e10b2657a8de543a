"""An independent SAML service provider for the tests: pysaml2 (with the xmlsec1 binary)
configured from our published metadata, as a shared app would be.

``ServiceProvider`` makes the AuthnRequests and checks our Responses with pysaml2's own code;
the official's browser is the ASGI test client, which follows our forms like a browser.
"""

from __future__ import annotations

import html
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
from cryptography.hazmat.primitives import serialization
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, BINDING_SOAP
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.metadata import entity_descriptor
from saml2.saml import NAMEID_FORMAT_PERSISTENT
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from tests.idp.cas.cas_flow import is_login_form, submit_password
from tests.throwaway_certificates import self_signed_rsa

SP_ENTITY_ID = "https://vanban.laocai.gov.vn/saml/metadata"
ACS_URL = "https://vanban.laocai.gov.vn/saml/acs"
SLO_URL = "https://vanban.laocai.gov.vn/saml/slo"
POSTED_FIELD = re.compile(
    r'<input type="hidden" name="(SAMLResponse|SAMLRequest|RelayState)" value="([^"]*)"'
)
FORM_ACTION = re.compile(r'<form class="form" action="([^"]*)" method="post" data-auto-submit>')


def write_key_and_certificate(directory: Path, common_name: str) -> tuple[Path, Path]:
    """An SP key pair as pysaml2 reads it: PEM files of a fresh RSA key and its certificate."""
    certificate, key = self_signed_rsa(common_name)
    key_path, cert_path = directory / f"{common_name}.key", directory / f"{common_name}.crt"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def sp_config(
    *,
    key_path: Path,
    cert_path: Path,
    idp_metadata: str | None,
    entity_id: str = SP_ENTITY_ID,
    acs_url: str = ACS_URL,
    slo_url: str = SLO_URL,
    sign_requests: bool = True,
    encryption_keys: tuple[Path, Path] | None = None,
    allow_unsolicited: bool = False,
    soap_slo_url: str | None = None,
) -> SPConfig:
    settings: dict[str, Any] = {
        "entityid": entity_id,
        "name": "Quản lý văn bản",
        "service": {
            "sp": {
                "name": "Quản lý văn bản",
                "endpoints": {
                    "assertion_consumer_service": [(acs_url, BINDING_HTTP_POST)],
                    "single_logout_service": [
                        (slo_url, BINDING_HTTP_REDIRECT),
                        *([(soap_slo_url, BINDING_SOAP)] if soap_slo_url else []),
                    ],
                },
                "authn_requests_signed": sign_requests,
                "want_assertions_signed": True,
                "want_response_signed": True,
                "allow_unsolicited": allow_unsolicited,
                "name_id_format": [NAMEID_FORMAT_PERSISTENT],
            }
        },
        "key_file": str(key_path),
        "cert_file": str(cert_path),
        "xmlsec_binary": shutil.which("xmlsec1"),
        "allow_unknown_attributes": True,
        "accepted_time_diff": 30,
    }
    if idp_metadata is not None:
        settings["metadata"] = {"inline": [idp_metadata]}
    if encryption_keys is not None:
        settings["encryption_keypairs"] = [
            {"key_file": str(encryption_keys[0]), "cert_file": str(encryption_keys[1])}
        ]
    config = SPConfig()
    config.load(settings)
    return config


def sp_metadata_xml(config: SPConfig) -> bytes:
    return str(entity_descriptor(config)).encode("utf-8")


@dataclass
class PostedForm:
    action: str
    fields: dict[str, str]


def posted_form(response: httpx.Response) -> PostedForm:
    assert response.status_code == 200, (response.status_code, response.text[:500])
    actions = FORM_ACTION.findall(response.text)
    assert actions, response.text[:1000]
    return PostedForm(
        action=html.unescape(actions[0]),
        fields={name: html.unescape(value) for name, value in POSTED_FIELD.findall(response.text)},
    )


class ServiceProvider:
    """pysaml2's Saml2Client, plus the steps a browser takes between it and us."""

    def __init__(self, config: SPConfig, idp_entity_id: str) -> None:
        self.client = Saml2Client(config=config)
        self.idp_entity_id = idp_entity_id

    def authn_request(
        self, *, binding: str = BINDING_HTTP_REDIRECT, sign: bool = True, **options: Any
    ) -> tuple[str, dict[str, Any]]:
        """(request id, http info): a Location header (Redirect) or a form page (POST)."""
        return self.client.prepare_for_authenticate(
            entityid=self.idp_entity_id,
            relay_state="/van-ban/den",
            binding=binding,
            sign=sign,
            sigalg=SIG_RSA_SHA256 if sign else None,
            digest_alg=DIGEST_SHA256 if sign else None,
            **options,
        )

    def parse_response(self, form: PostedForm, request_id: str) -> Any:
        return self.client.parse_authn_request_response(
            form.fields["SAMLResponse"], BINDING_HTTP_POST, outstanding={request_id: "/van-ban/den"}
        )


def send_to_idp(browser: httpx.Client, info: dict[str, Any]) -> httpx.Response:
    """What the SP's page makes the browser do: follow the redirect or post the form."""
    if info.get("method") == "POST" or ("data" in info and info.get("headers", []) == []):
        page = info["data"]
        action = html.unescape(re.findall(r'action="([^"]*)"', page)[0])
        fields = {
            name: html.unescape(value)
            for name, value in re.findall(r'name="([A-Za-z]+)" value="([^"]*)"', page)
        }
        return browser.post(action, data=fields)
    location = dict(info["headers"])["Location"]
    return browser.get(location)


def follow_to_sp(browser: httpx.Client, response: httpx.Response) -> httpx.Response:
    """Follow our redirects (login resume, posted-request continue) to the form page."""
    for _ in range(5):
        if not response.is_redirect:
            return response
        response = browser.get(urljoin(str(response.url), response.headers["location"]))
    raise AssertionError("redirect loop")


def sign_in(browser: httpx.Client, first: httpx.Response) -> PostedForm:
    """From the response to the AuthnRequest: the login form, the password, the posted form."""
    page = follow_to_sp(browser, first)
    assert is_login_form(page), page.text[:800]
    return posted_form(follow_to_sp(browser, submit_password(browser, page)))
