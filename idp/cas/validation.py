"""Service ticket validation (CAS 3.0 §2.5, §2.4 for CAS 1.0): one ticket, one attempt."""

from __future__ import annotations

from datetime import datetime

from idp import released_attributes, sessions
from idp.cas import service_urls, tickets
from idp.cas.responses import (
    INVALID_REQUEST,
    INVALID_SERVICE,
    INVALID_TICKET,
    INVALID_TICKET_SPEC,
    Failure,
    Success,
)
from idp.models import BrowserSession, CasService
from idp.request_scope import RequestScope


def is_set(value: str | None) -> bool:
    """A boolean request parameter (§2.1.1 renew, gateway): present and not "false"."""
    return value is not None and value.strip().lower() not in ("false", "0")


def _utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def validate(scope: RequestScope, params: dict[str, str]) -> Success | Failure:
    """§2.5.1 parameters: ``service`` and ``ticket`` required, ``renew`` optional; ``pgtUrl``
    is ignored (proxy tickets are not supported; §2.5.4 lets validation succeed without a
    proxy-granting ticket)."""
    service_param, ticket = params.get("service", ""), params.get("ticket", "")
    if not service_param or not ticket:
        return Failure(INVALID_REQUEST, "Both the service and ticket parameters are required.")
    session, clock = scope.session, scope.runtime.clock
    issued = tickets.consume(session=session, clock=clock, ticket=ticket)
    shown = ticket[:60]
    if issued is None:
        return Failure(INVALID_TICKET, f"Ticket {shown} not recognized.")
    if clock.now() >= issued.expires_at:
        return Failure(INVALID_TICKET, f"Ticket {shown} has expired.")
    try:
        service_url = service_urls.normalise(service_param)
    except service_urls.InvalidServiceUrl:
        service_url = None
    service = session.get(CasService, issued.service_pk)
    if service_url != issued.service_url or service is None or service.removed_at is not None:
        # §2.5.3: the ticket is invalidated all the same (consume spent it).
        return Failure(INVALID_SERVICE, f"Ticket {shown} was not issued for this service.")
    if is_set(params.get("renew")) and not issued.from_new_login:
        return Failure(
            INVALID_TICKET_SPEC, f"Ticket {shown} was not issued from a new login (renew)."
        )
    browser_session = session.get(BrowserSession, issued.session_id)
    if browser_session is None or not sessions.is_alive(
        browser_session, now=clock.now(), settings=scope.runtime.settings
    ):
        return Failure(INVALID_TICKET, f"Ticket {shown} belongs to a session that has ended.")
    # Spent for good: keeping it now only lets single logout name the service's session.
    issued.session_index = ticket
    account = browser_session.account
    released = {
        "authenticationDate": _utc(browser_session.auth_time),
        "longTermAuthenticationRequestTokenUsed": "false",
        "isFromNewLogin": "true" if issued.from_new_login else "false",
        **released_attributes.released(session, account, service.attributes),
    }
    return Success(user=account.username, attributes=released)
