"""SAML Single Logout (Core §3.7, Profiles §4.4) by the front channel, joined to the shared
single logout (``idp.logout``).

When a browser session ends (OIDC RP-initiated logout, ``/cas/logout``, a SAML SP's own
LogoutRequest), every SP that received an assertion in it is sent a signed LogoutRequest with
the NameID and SessionIndexes it was given, by HTTP-Redirect in a hidden iframe of the
logged-out page, like the OIDC front-channel logout iframes beside it.

An SP that registered a SOAP SingleLogoutService is told by the back channel instead (SAML
Bindings §3.2), also when no browser is there (an account disabled, "sign out everywhere"):
the shared delivery outbox (``idp.logout.backchannel``) queues the notice with the logout and
POSTs the LogoutRequest, signed when sent, in a SOAP envelope, with its retries and log.
SPs that offer only the HTTP-POST binding for logout are not told (an iframe cannot post).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.logout.participants import ProtocolLogoutNotice
from idp.models import BrowserSession, SamlServiceProvider, SamlSessionParticipant
from idp.saml import bindings, idp_metadata, xml_signatures
from idp.saml.responses import protocol_message
from idp.saml.vocabulary import ASSERTION_NS, HTTP_REDIRECT, PROTOCOL_NS, SUCCESS
from keys import CertifiedKey, KeyRing


@dataclass
class SpInSession:
    """One SP of a browser session: the NameID it knows and every SessionIndex it was given."""

    sp: SamlServiceProvider
    name_id: str
    name_id_format: str
    session_indexes: list[str] = field(default_factory=list)


def participants(session: Session, browser_session: BrowserSession) -> list[SpInSession]:
    by_sp: dict[int, SpInSession] = {}
    rows = session.execute(
        select(SamlSessionParticipant, SamlServiceProvider)
        .join(SamlServiceProvider, SamlServiceProvider.id == SamlSessionParticipant.sp_pk)
        .where(
            SamlSessionParticipant.session_id == browser_session.id,
            SamlServiceProvider.removed_at.is_(None),
        )
        .order_by(SamlSessionParticipant.id)
    ).all()
    for participant, sp in rows:
        entry = by_sp.setdefault(
            sp.id, SpInSession(sp, participant.name_id, participant.name_id_format)
        )
        # The latest NameID wins (a transient one changes with every assertion).
        entry.name_id, entry.name_id_format = participant.name_id, participant.name_id_format
        entry.session_indexes.append(participant.session_index)
    return list(by_sp.values())


def logout_request(
    *,
    issuer: str,
    destination: str,
    sp_entity_id: str,
    name_id: str,
    name_id_format: str,
    session_indexes: Sequence[str],
    now: datetime,
) -> etree._Element:
    """Core §3.7.1 (unsigned: HTTP-Redirect signs the query)."""
    element = protocol_message(
        "LogoutRequest",
        issuer=issuer,
        destination=destination,
        in_response_to=None,
        now=now,
        Reason="urn:oasis:names:tc:SAML:2.0:logout:user",
    )
    etree.SubElement(
        element,
        etree.QName(ASSERTION_NS, "NameID"),
        Format=name_id_format,
        NameQualifier=issuer,
        SPNameQualifier=sp_entity_id,
    ).text = name_id
    for session_index in session_indexes:
        etree.SubElement(element, etree.QName(PROTOCOL_NS, "SessionIndex")).text = session_index
    return element


def logout_response(
    *,
    issuer: str,
    destination: str,
    in_response_to: str,
    now: datetime,
    status: str = SUCCESS,
) -> etree._Element:
    """Core §3.7.2 (unsigned; signed by :func:`signed_for_post` or the Redirect query)."""
    element = protocol_message(
        "LogoutResponse",
        issuer=issuer,
        destination=destination,
        in_response_to=in_response_to,
        now=now,
    )
    status_element = etree.SubElement(element, etree.QName(PROTOCOL_NS, "Status"))
    etree.SubElement(status_element, etree.QName(PROTOCOL_NS, "StatusCode"), Value=status)
    return element


def signed(element: etree._Element, key: CertifiedKey) -> etree._Element:
    """An enveloped XML signature after the Issuer (Core §5.4.1), for HTTP-POST and SOAP."""
    element.insert(1, xml_signatures.signature_placeholder())
    return xml_signatures.sign(element, key)


def signed_for_post(element: etree._Element, key: CertifiedKey) -> bytes:
    return etree.tostring(signed(element, key), xml_declaration=True, encoding="UTF-8")


def endpoint(sp: SamlServiceProvider, bindings_wanted: Sequence[str]) -> dict[str, object] | None:
    """The SP's first SingleLogoutService of the first binding in ``bindings_wanted``."""
    for binding in bindings_wanted:
        for service in sp.single_logout_services:
            if service.get("binding") == binding:
                return dict(service)
    return None


PROTOCOL = "saml"
SOAP_BINDING = "urn:oasis:names:tc:SAML:2.0:bindings:SOAP"
SOAP_ENVELOPE_NS = "http://schemas.xmlsoap.org/soap/envelope/"
# SAML Bindings §3.2.2.1: SOAP 1.1 over HTTP, text/xml, this SOAPAction.
SOAP_HEADERS = {
    "Content-Type": "text/xml; charset=utf-8",
    "SOAPAction": "http://www.oasis-open.org/committees/security",
}


def notices_for_sessions(
    session: Session, *, browser_sessions: Sequence[BrowserSession]
) -> list[ProtocolLogoutNotice]:
    """One back-channel notice per SP with a SOAP logout endpoint in each session."""
    notices = []
    for browser_session in browser_sessions:
        for target in participants(session, browser_session):
            service = endpoint(target.sp, [SOAP_BINDING])
            if service is None:
                continue
            notices.append(
                ProtocolLogoutNotice(
                    protocol=PROTOCOL,
                    participant=f"{PROTOCOL}:{target.sp.id}",
                    uri=str(service["url"]),
                    subject=browser_session.account.subject,
                    session_index=target.session_indexes[-1],
                    payload=json.dumps(
                        {
                            "sp_entity_id": target.sp.entity_id,
                            "name_id": target.name_id,
                            "name_id_format": target.name_id_format,
                            "session_indexes": target.session_indexes,
                            "destination": str(service["url"]),
                            "signing_methods": target.sp.signing_methods,
                        }
                    ),
                )
            )
    return notices


def soap_logout_request(payload: str, *, keyring: KeyRing, issuer: str, now: datetime) -> str:
    """The queued notice as a signed LogoutRequest in a SOAP 1.1 envelope (Bindings §3.2.3)."""
    facts = json.loads(payload)
    request = logout_request(
        issuer=idp_metadata.entity_id(issuer),
        destination=facts["destination"],
        sp_entity_id=facts["sp_entity_id"],
        name_id=facts["name_id"],
        name_id_format=facts["name_id_format"],
        session_indexes=facts["session_indexes"],
        now=now,
    )
    key = xml_signatures.signing_key_for(keyring, facts.get("signing_methods"), now=now)
    envelope = etree.Element(
        etree.QName(SOAP_ENVELOPE_NS, "Envelope"), nsmap={"soap": SOAP_ENVELOPE_NS}
    )
    etree.SubElement(envelope, etree.QName(SOAP_ENVELOPE_NS, "Body")).append(signed(request, key))
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8").decode("utf-8")


def frontchannel_urls(
    session: Session,
    *,
    issuer: str,
    keyring: KeyRing,
    now: datetime,
    browser_session: BrowserSession,
    except_sp_pk: int | None = None,
) -> list[str]:
    """Signed HTTP-Redirect LogoutRequests (Bindings §3.4.4.1) for the SPs of the session
    (except the one that asked to log out), for the logged-out page's iframes."""
    targets = [t for t in participants(session, browser_session) if t.sp.id != except_sp_pk]
    if not targets:
        return []
    urls = []
    for target in targets:
        if endpoint(target.sp, [SOAP_BINDING]) is not None:
            continue  # told by the back channel (notices_for_sessions)
        service = endpoint(target.sp, [HTTP_REDIRECT])
        if service is None:
            continue
        location = str(service["url"])
        xml = etree.tostring(
            logout_request(
                issuer=idp_metadata.entity_id(issuer),
                destination=location,
                sp_entity_id=target.sp.entity_id,
                name_id=target.name_id,
                name_id_format=target.name_id_format,
                session_indexes=target.session_indexes,
                now=now,
            )
        )
        key = xml_signatures.signing_key_for(keyring, target.sp.signing_methods, now=now)
        urls.append(bindings.redirect_url(location, "SAMLRequest", xml, relay_state=None, key=key))
    return urls
