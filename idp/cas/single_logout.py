"""CAS single logout (CAS 3.0 §2.3.3 and Appendix C): when an official's session ends, every
service that validated a ticket of that session (and is registered for single logout) is sent
a SAML ``LogoutRequest`` as the ``logoutRequest`` form field of a POST to the service URL the
ticket was issued for; ``SessionIndex`` is that ticket, which is how the service finds its
local session.

The shared layer (``idp.logout.backchannel``) asks for these notices in the transaction that
ends the session and delivers them with the OIDC logout tokens: same outbox, same retries,
same delivery log.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from xml.sax.saxutils import escape

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.clock import Clock
from idp.logout.participants import ProtocolLogoutNotice
from idp.models import BrowserSession, CasService, CasTicket

PROTOCOL = "cas"
FORM_FIELD = "logoutRequest"


def logout_request(*, session_index: str, issued_at: datetime) -> str:
    """Appendix C: NameID "@NOT_USED@", the ticket as SessionIndex; ID an NCName."""
    instant = issued_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        '<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
        'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" '
        f'ID="_{secrets.token_hex(16)}" Version="2.0" IssueInstant="{instant}">'
        "<saml:NameID>@NOT_USED@</saml:NameID>"
        f"<samlp:SessionIndex>{escape(session_index)}</samlp:SessionIndex>"
        "</samlp:LogoutRequest>"
    )


def notices_for_sessions(
    session: Session, *, clock: Clock, browser_sessions: Sequence[BrowserSession]
) -> list[ProtocolLogoutNotice]:
    by_id = {b.id: b for b in browser_sessions}
    if not by_id:
        return []
    now = clock.now()
    rows = session.execute(
        select(CasTicket.session_id, CasTicket.session_index, CasTicket.service_url, CasService)
        .join(CasService, CasService.id == CasTicket.service_pk)
        .where(
            CasTicket.session_id.in_(by_id),
            CasTicket.session_index.is_not(None),
            CasService.removed_at.is_(None),
            CasService.single_logout.is_(True),
        )
        .order_by(CasTicket.id)
    ).all()
    return [
        ProtocolLogoutNotice(
            protocol=PROTOCOL,
            participant=f"{PROTOCOL}:{service.service_id}",
            uri=service_url,
            subject=by_id[session_id].account.subject,
            session_index=session_index,
            form={FORM_FIELD: logout_request(session_index=session_index, issued_at=now)},
        )
        for session_id, session_index, service_url, service in rows
        if session_index is not None  # the query's condition, for the type checker
    ]
