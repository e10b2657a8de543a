"""The Response we post to an SP's ACS (SAML Core §3.2.2, §2.3.3; Profiles §4.1.4.2): a
signed Response holding a signed Assertion with the NameID, a bearer SubjectConfirmation bound
to the request and the ACS URL, the audience, an AuthnStatement whose AuthnContextClassRef
says how the official signed in, and the attributes released to the SP."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from lxml import etree

from idp.saml import xml_signatures
from idp.saml.vocabulary import (
    ASSERTION_NS,
    BASIC_ATTRIBUTE_NAME,
    BEARER,
    PROTOCOL_NS,
    SUCCESS,
)
from keys import CertifiedKey

# Long enough for a slow browser to post the form, short enough not to be worth stealing.
ASSERTION_LIFETIME = timedelta(minutes=5)
# An SP whose clock runs a little behind ours must not find the assertion "not yet valid".
NOT_BEFORE_SLACK = timedelta(seconds=60)
_NSMAP = {"samlp": PROTOCOL_NS, "saml": ASSERTION_NS}


def saml_id() -> str:
    """xs:ID: an NCName, so it must not start with a digit."""
    return "_" + secrets.token_hex(20)


def instant(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _saml(
    parent: etree._Element, local: str, text: str | None = None, **attributes: str
) -> etree._Element:
    element = etree.SubElement(parent, etree.QName(ASSERTION_NS, local), attributes)
    if text is not None:
        element.text = text
    return element


def protocol_message(
    local: str,
    *,
    issuer: str,
    destination: str,
    in_response_to: str | None,
    now: datetime,
    **attributes: str,
) -> etree._Element:
    """A samlp message with the attributes every one has (Core §3.2.1, §3.2.2) and its
    Issuer; a signature placeholder, if any, goes right after the Issuer."""
    element = etree.Element(
        etree.QName(PROTOCOL_NS, local),
        {
            "ID": saml_id(),
            "Version": "2.0",
            "IssueInstant": instant(now),
            "Destination": destination,
            **attributes,
        },
        nsmap=_NSMAP,
    )
    if in_response_to is not None:  # None: unsolicited
        element.set("InResponseTo", in_response_to)
    _saml(element, "Issuer", issuer)
    return element


@dataclass(frozen=True)
class Subject:
    name_id: str
    name_id_format: str
    session_index: str
    authn_instant: datetime
    session_not_on_or_after: datetime
    authn_context_class: str
    attributes: Mapping[str, str]


def assertion(
    *,
    issuer: str,
    audience: str,
    acs_url: str,
    in_response_to: str | None,
    subject: Subject,
    now: datetime,
    key: CertifiedKey,
) -> etree._Element:
    """A signed Assertion (Profiles §4.1.4.2: bearer confirmation with Recipient,
    NotOnOrAfter and InResponseTo; an AudienceRestriction naming the SP)."""
    expires = instant(now + ASSERTION_LIFETIME)
    element = etree.Element(
        etree.QName(ASSERTION_NS, "Assertion"),
        {"ID": saml_id(), "Version": "2.0", "IssueInstant": instant(now)},
        nsmap={"saml": ASSERTION_NS},
    )
    _saml(element, "Issuer", issuer)
    element.append(xml_signatures.signature_placeholder())
    subject_element = _saml(element, "Subject")
    _saml(
        subject_element,
        "NameID",
        subject.name_id,
        Format=subject.name_id_format,
        NameQualifier=issuer,
        SPNameQualifier=audience,
    )
    confirmation = _saml(subject_element, "SubjectConfirmation", Method=BEARER)
    confirmation_data = _saml(
        confirmation, "SubjectConfirmationData", Recipient=acs_url, NotOnOrAfter=expires
    )
    if in_response_to is not None:  # None: IdP-initiated, unsolicited (Profiles §4.1.5)
        confirmation_data.set("InResponseTo", in_response_to)
    conditions = _saml(
        element, "Conditions", NotBefore=instant(now - NOT_BEFORE_SLACK), NotOnOrAfter=expires
    )
    _saml(_saml(conditions, "AudienceRestriction"), "Audience", audience)
    statement = _saml(
        element,
        "AuthnStatement",
        AuthnInstant=instant(subject.authn_instant),
        SessionIndex=subject.session_index,
        SessionNotOnOrAfter=instant(subject.session_not_on_or_after),
    )
    _saml(_saml(statement, "AuthnContext"), "AuthnContextClassRef", subject.authn_context_class)
    if subject.attributes:
        attribute_statement = _saml(element, "AttributeStatement")
        for name, value in subject.attributes.items():
            attribute = _saml(
                attribute_statement,
                "Attribute",
                Name=name,
                NameFormat=BASIC_ATTRIBUTE_NAME,
                FriendlyName=name,
            )
            _saml(attribute, "AttributeValue", value)
    return xml_signatures.sign(element, key)


def response(
    *,
    issuer: str,
    destination: str,
    in_response_to: str | None,
    now: datetime,
    key: CertifiedKey,
    status: str = SUCCESS,
    sub_status: str | None = None,
    assertion_element: etree._Element | None = None,
) -> bytes:
    """The signed Response; with a non-success ``status`` and no assertion for refusals
    (Core §3.2.2.2: NoPassive, InvalidNameIDPolicy)."""
    element = protocol_message(
        "Response",
        issuer=issuer,
        destination=destination,
        in_response_to=in_response_to,
        now=now,
    )
    element.append(xml_signatures.signature_placeholder())
    status_element = etree.SubElement(element, etree.QName(PROTOCOL_NS, "Status"))
    code = etree.SubElement(status_element, etree.QName(PROTOCOL_NS, "StatusCode"), Value=status)
    if sub_status is not None:
        etree.SubElement(code, etree.QName(PROTOCOL_NS, "StatusCode"), Value=sub_status)
    if assertion_element is not None:
        element.append(assertion_element)
    signed = xml_signatures.sign(element, key)
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
