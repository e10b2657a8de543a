"""Service tickets (CAS 3.0 §3.1): "ST-" and 256 random bits, stored as a SHA-256 digest,
bound to the exact (normalised) service URL, valid for ``cas_ticket_ttl`` seconds and for one
validation attempt whether it succeeds or not (§3.1.1)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.clock import Clock
from core.opaque_tokens import digest, new_opaque_token
from core.settings import Settings
from idp.models import BrowserSession, CasService, CasTicket

SERVICE_TICKET_PREFIX = "ST-"
# §3.1.1: at least 32 characters; ours are 46. Anything longer is no ticket of ours.
MAX_TICKET_LENGTH = 256


def issue(
    *,
    session: Session,
    clock: Clock,
    settings: Settings,
    service: CasService,
    service_url: str,
    browser_session: BrowserSession,
    from_new_login: bool,
) -> str:
    """A new ticket for ``service_url`` (normalised) in ``browser_session``."""
    ticket = SERVICE_TICKET_PREFIX + new_opaque_token()
    now = clock.now()
    session.add(
        CasTicket(
            ticket_digest=digest(ticket),
            service_pk=service.id,
            service_url=service_url,
            session_id=browser_session.id,
            from_new_login=from_new_login,
            created_at=now,
            expires_at=now + timedelta(seconds=settings.cas_ticket_ttl),
        )
    )
    return ticket


def consume(*, session: Session, clock: Clock, ticket: str) -> CasTicket | None:
    """Spend ``ticket``: its row if this call is the first to present it, else None.

    One conditional UPDATE decides, so of two concurrent validations (two workers, two hosts)
    exactly one wins on SQLite and PostgreSQL alike; the caller then checks expiry and service,
    and the ticket stays spent whatever they say (§3.1.1)."""
    if not ticket.startswith(SERVICE_TICKET_PREFIX) or len(ticket) > MAX_TICKET_LENGTH:
        return None
    ticket_digest = digest(ticket)
    result = session.execute(
        update(CasTicket)
        .where(CasTicket.ticket_digest == ticket_digest, CasTicket.consumed_at.is_(None))
        .values(consumed_at=clock.now())
        .execution_options(synchronize_session=False)
    )
    if not getattr(result, "rowcount", 0):
        return None
    return session.scalar(select(CasTicket).where(CasTicket.ticket_digest == ticket_digest))
