"""The forwarded client certificate: read only from a trusted proxy, in every encoding proxies
use (core/web/client_certificate.py)."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from starlette.datastructures import Headers

from core.settings import Settings
from core.web.client_address import parse_networks
from core.web.client_certificate import (
    MalformedClientCertificate,
    certificate_thumbprint,
    configured_client_certificate,
    forwarded_certificate_of,
    parse_forwarded_certificate,
)
from tests.throwaway_certificates import self_signed_p256

PROXIES = parse_networks(["10.0.0.5", "172.18.0.0/16"])
HEADER = "x-ssl-client-cert"


@pytest.fixture(scope="module")
def certificate() -> x509.Certificate:
    return self_signed_p256("Nguyễn Văn An")[0]


def _encodings(certificate: x509.Certificate) -> dict[str, str]:
    pem = certificate.public_bytes(Encoding.PEM).decode()
    der_b64 = base64.b64encode(certificate.public_bytes(Encoding.DER)).decode()
    return {
        # nginx $ssl_client_escaped_cert
        "nginx escaped PEM": quote(pem, safe=""),
        "plain PEM": pem,
        # nginx's deprecated $ssl_client_cert: every line after the first starts with a tab
        "tab-indented PEM": pem.rstrip("\n").replace("\n", "\n\t"),
        "base64 DER": der_b64,
        "RFC 9440 byte sequence": f":{der_b64}:",
    }


@pytest.mark.parametrize(
    "encoding",
    ["nginx escaped PEM", "plain PEM", "tab-indented PEM", "base64 DER", "RFC 9440 byte sequence"],
)
def test_every_proxy_encoding_gives_the_certificate(certificate, encoding):
    value = _encodings(certificate)[encoding]
    assert parse_forwarded_certificate(value) == certificate


def test_an_empty_header_is_no_certificate_and_garbage_is_refused(certificate):
    assert parse_forwarded_certificate("") is None  # nginx without a client certificate
    for garbage in ("not a certificate", "%ZZ", ":AAAA:", "-----BEGIN CERTIFICATE-----x"):
        with pytest.raises(MalformedClientCertificate):
            parse_forwarded_certificate(garbage)
    with pytest.raises(MalformedClientCertificate):
        parse_forwarded_certificate("A" * 20000)


def test_the_header_is_read_only_from_a_trusted_proxy(certificate):
    headers = Headers({HEADER: _encodings(certificate)["nginx escaped PEM"]})
    read = forwarded_certificate_of("10.0.0.5", headers, header=HEADER, trusted_proxies=PROXIES)
    assert read == certificate
    assert forwarded_certificate_of("172.18.3.4", headers, header=HEADER, trusted_proxies=PROXIES)
    # A client that reaches us directly cannot present a certificate by header.
    for peer in ("203.0.113.7", "10.0.0.6", None, "garbage"):
        assert (
            forwarded_certificate_of(peer, headers, header=HEADER, trusted_proxies=PROXIES) is None
        )
    # The feature off: no header name, or no trusted proxies.
    assert not forwarded_certificate_of("10.0.0.5", headers, header=None, trusted_proxies=PROXIES)
    assert not forwarded_certificate_of("10.0.0.5", headers, header=HEADER, trusted_proxies=())


def test_two_copies_of_the_header_are_believed_neither(certificate):
    value = _encodings(certificate)["base64 DER"]
    headers = Headers(raw=[(HEADER.encode(), value.encode()), (HEADER.encode(), value.encode())])
    read = forwarded_certificate_of("10.0.0.5", headers, header=HEADER, trusted_proxies=PROXIES)
    assert read is None


def test_configured_from_settings(certificate, tmp_path):
    settings = Settings(
        var_dir=tmp_path,
        trusted_proxies="10.0.0.5",
        client_certificate_header="X-SSL-Client-Cert",
    )
    value = _encodings(certificate)["base64 DER"].encode()
    scope = {"type": "http", "client": ("10.0.0.5", 4321), "headers": [(HEADER.encode(), value)]}
    assert configured_client_certificate(scope, settings) == certificate
    assert configured_client_certificate({**scope, "client": ("192.0.2.1", 1)}, settings) is None
    assert configured_client_certificate(scope, Settings(var_dir=tmp_path)) is None


def test_a_header_without_trusted_proxies_is_refused_at_start(tmp_path):
    with pytest.raises(ValueError, match="COMMUNE_SSO_TRUSTED_PROXIES"):
        Settings(var_dir=tmp_path, client_certificate_header="x-ssl-client-cert")


def test_thumbprint_is_base64url_sha256_of_the_der(certificate):
    thumbprint = certificate_thumbprint(certificate)
    assert len(thumbprint) == 43 and "=" not in thumbprint
    expected = base64.urlsafe_b64encode(certificate.fingerprint(hashes.SHA256())).rstrip(b"=")
    assert thumbprint == expected.decode()
