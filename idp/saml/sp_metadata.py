"""Reading a service provider's metadata (SAML Metadata §2.4.4 SPSSODescriptor) into what we
register: entity ID, AssertionConsumerService and SingleLogoutService endpoints, signing and
encryption certificates, AuthnRequestsSigned, WantAssertionsSigned, NameID formats, a name."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from lxml import etree

from core.errors import DomainError
from core.web.i18n import N_
from idp.saml.vocabulary import (
    HTTP_POST,
    HTTP_REDIRECT,
    NAME_ID_FORMATS,
    NAMESPACES,
    PERSISTENT,
    PROTOCOL_NS,
    qualified,
)
from idp.saml.xml_parsing import MAX_DOCUMENT_BYTES, UnsafeXml, parse_untrusted

MAX_ENTITY_ID_LENGTH = 1024  # SAML Core §8.3.6
SOAP = "urn:oasis:names:tc:SAML:2.0:bindings:SOAP"  # back-channel single logout only
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


@dataclass
class SpMetadata:
    entity_id: str
    name: str | None
    assertion_consumer_services: list[dict[str, object]]
    single_logout_services: list[dict[str, object]] = field(default_factory=list)
    signing_certificates: list[str] = field(default_factory=list)
    encryption_certificates: list[str] = field(default_factory=list)
    authn_requests_signed: bool = False
    want_assertions_signed: bool = False
    name_id_format: str = PERSISTENT
    # alg:SigningMethod Algorithms, of the SPSSODescriptor or else the EntityDescriptor; None
    # when the metadata declares none.
    signing_methods: list[str] | None = None


def _flag(element: etree._Element, name: str) -> bool:
    return (element.get(name) or "").strip().lower() in ("true", "1")


def endpoint_url(url: str | None, what: str) -> str:
    """An endpoint we send the browser to: https, or http on the loopback address only."""
    parts = urlsplit((url or "").strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
        raise DomainError(
            N_("The metadata has an invalid %(what)s URL."), field="metadata", what=what
        )
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        raise DomainError(
            N_("The %(what)s URL must use https (plain http only on the loopback address)."),
            field="metadata",
            what=what,
        )
    return (url or "").strip()


def certificate_der(text: str | None) -> str:
    """Base64 DER of a ds:X509Certificate, checked to be a certificate."""
    compact = "".join((text or "").split())
    try:
        x509.load_der_x509_certificate(base64.b64decode(compact, validate=True))
    except (binascii.Error, ValueError) as error:
        raise DomainError(
            N_("The metadata holds a certificate that cannot be read."), field="metadata"
        ) from error
    return compact


def load_certificate(der_base64: str) -> x509.Certificate:
    return x509.load_der_x509_certificate(base64.b64decode(der_base64))


def _display_name(descriptor: etree._Element, entity: etree._Element) -> str | None:
    candidates = [
        *descriptor.findall("md:Extensions/mdui:UIInfo/mdui:DisplayName", NAMESPACES),
        *entity.findall("md:Organization/md:OrganizationDisplayName", NAMESPACES),
    ]
    xml_lang = "{http://www.w3.org/XML/1998/namespace}lang"
    preferred = [c for c in candidates if c.get(xml_lang) == "vi"] + candidates
    for candidate in preferred:
        text = (candidate.text or "").strip()
        if text:
            return text[:200]
    return None


def declared_signing_methods(
    descriptor: etree._Element, entity: etree._Element
) -> list[str] | None:
    """Metadata Profile for Algorithm Support §2.3: the role's own list wins over the
    entity's; each Algorithm once, in order."""
    for holder in (descriptor, entity):
        methods = [
            (method.get("Algorithm") or "").strip()
            for method in holder.findall("md:Extensions/alg:SigningMethod", NAMESPACES)
        ]
        if any(methods):
            return list(dict.fromkeys(method for method in methods if method))
    return None


def parse(document: bytes) -> SpMetadata:
    """The SP of one EntityDescriptor; a DomainError says what is wrong with it."""
    try:
        entity = parse_untrusted(document)
    except UnsafeXml as error:
        raise DomainError(
            N_("The metadata is not acceptable XML: %(reason)s."),
            field="metadata",
            reason=str(error),
        ) from error
    if entity.tag != qualified("md", "EntityDescriptor"):
        raise DomainError(
            N_("The metadata must be one md:EntityDescriptor of one service provider."),
            field="metadata",
        )
    entity_id = (entity.get("entityID") or "").strip()
    if not entity_id or len(entity_id) > MAX_ENTITY_ID_LENGTH:
        raise DomainError(N_("The metadata has no valid entityID."), field="metadata")
    descriptors = [
        d
        for d in entity.findall("md:SPSSODescriptor", NAMESPACES)
        if PROTOCOL_NS in (d.get("protocolSupportEnumeration") or "").split()
    ]
    if len(descriptors) != 1:
        raise DomainError(
            N_("The metadata must have one SPSSODescriptor for SAML 2.0."), field="metadata"
        )
    descriptor = descriptors[0]
    acs = []
    for position, element in enumerate(
        descriptor.findall("md:AssertionConsumerService", NAMESPACES)
    ):
        if element.get("Binding") != HTTP_POST:
            continue  # responses are sent by HTTP-POST only
        index = element.get("index", str(position))
        acs.append(
            {
                "url": endpoint_url(element.get("Location"), "AssertionConsumerService"),
                "binding": HTTP_POST,
                "index": int(index) if index.isdigit() else position,
                "is_default": _flag(element, "isDefault"),
            }
        )
    if not acs:
        raise DomainError(
            N_("The metadata has no AssertionConsumerService with the HTTP-POST binding."),
            field="metadata",
        )
    slo = [
        {
            "url": endpoint_url(element.get("Location"), "SingleLogoutService"),
            "binding": element.get("Binding"),
            "response_url": endpoint_url(
                element.get("ResponseLocation") or element.get("Location"), "SingleLogoutService"
            ),
        }
        for element in descriptor.findall("md:SingleLogoutService", NAMESPACES)
        if element.get("Binding") in (HTTP_REDIRECT, HTTP_POST, SOAP)
    ]
    signing, encryption = [], []
    for key_descriptor in descriptor.findall("md:KeyDescriptor", NAMESPACES):
        use = key_descriptor.get("use")
        for text in key_descriptor.findall("ds:KeyInfo/ds:X509Data/ds:X509Certificate", NAMESPACES):
            der = certificate_der(text.text)
            if use in (None, "signing") and der not in signing:
                signing.append(der)
            if use in (None, "encryption") and der not in encryption:
                encryption.append(der)
    formats = [(f.text or "").strip() for f in descriptor.findall("md:NameIDFormat", NAMESPACES)]
    supported = [f for f in formats if f in NAME_ID_FORMATS]
    authn_requests_signed = _flag(descriptor, "AuthnRequestsSigned")
    if authn_requests_signed and not signing:
        raise DomainError(
            N_("The SP signs its requests but its metadata has no signing certificate."),
            field="metadata",
        )
    return SpMetadata(
        entity_id=entity_id,
        name=_display_name(descriptor, entity),
        assertion_consumer_services=acs,
        single_logout_services=slo,
        signing_certificates=signing,
        encryption_certificates=encryption,
        authn_requests_signed=authn_requests_signed,
        want_assertions_signed=_flag(descriptor, "WantAssertionsSigned"),
        name_id_format=supported[0] if supported else PERSISTENT,
        signing_methods=declared_signing_methods(descriptor, entity),
    )


FETCH_TIMEOUT = 10.0


def fetch(url: str) -> bytes:
    """The metadata document at ``url`` (https, or http on the loopback address), for
    registration by URL; no redirects followed, at most MAX_DOCUMENT_BYTES read."""
    endpoint_url(url, "metadata")
    try:
        with (
            httpx.Client(timeout=FETCH_TIMEOUT, follow_redirects=False) as http,
            http.stream("GET", url, headers={"Accept": "application/samlmetadata+xml"}) as reply,
        ):
            if reply.status_code != 200:
                raise DomainError(
                    N_("The metadata URL answered HTTP %(status)s."),
                    field="metadata",
                    status=reply.status_code,
                )
            body = b""
            for chunk in reply.iter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise DomainError(N_("The metadata document is too large."), field="metadata")
            return body
    except httpx.HTTPError as error:
        raise DomainError(
            N_("The metadata could not be fetched: %(reason)s."),
            field="metadata",
            reason=str(error),
        ) from error
