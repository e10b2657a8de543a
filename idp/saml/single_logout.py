"""SAML Single Logout (Core §3.7, Profiles §4.4) by the front channel, joined to the shared
single logout (``idp.logout``).

When a browser session ends (OIDC RP-initiated logout, ``/cas/logout``, a SAML SP's own
LogoutRequest), every SP that received an assertion in it is sent a signed LogoutRequest with
the NameID and SessionIndexes it was given, by HTTP-Redirect in a hidden iframe of the
logged-out page, like the OIDC front-channel logout iframes beside it. SPs that offer only the
HTTP-POST binding for logout are not told this way (an iframe cannot post); SOAP back-channel
logout is not offered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm import Session

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
    target: SpInSession,
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
    name_id = etree.SubElement(
        element,
        etree.QName(ASSERTION_NS, "NameID"),
        Format=target.name_id_format,
        NameQualifier=issuer,
        SPNameQualifier=target.sp.entity_id,
    )
    name_id.text = target.name_id
    for session_index in target.session_indexes:
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


def signed_for_post(element: etree._Element, key: CertifiedKey) -> bytes:
    """HTTP-POST carries an enveloped XML signature, after the Issuer (Core §5.4.1)."""
    element.insert(1, xml_signatures.signature_placeholder())
    signed = xml_signatures.sign(element, key)
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


def endpoint(sp: SamlServiceProvider, bindings_wanted: Sequence[str]) -> dict[str, object] | None:
    """The SP's first SingleLogoutService of the first binding in ``bindings_wanted``."""
    for binding in bindings_wanted:
        for service in sp.single_logout_services:
            if service.get("binding") == binding:
                return dict(service)
    return None


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
    key = keyring.certified_signing_key(alg=idp_metadata.SIGNING_ALG, now=now)
    urls = []
    for target in targets:
        service = endpoint(target.sp, [HTTP_REDIRECT])
        if service is None:
            continue
        location = str(service["url"])
        xml = etree.tostring(
            logout_request(
                issuer=idp_metadata.entity_id(issuer),
                destination=location,
                target=target,
                now=now,
            )
        )
        urls.append(bindings.redirect_url(location, "SAMLRequest", xml, relay_state=None, key=key))
    return urls
