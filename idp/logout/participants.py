"""Which shared apps took part in a browser session.

An app took part when it obtained a code (and so tokens) with the session: its grant carries
the session's id. Revoked grants count too: logout revokes them, and an app whose refresh
token was revoked may still hold a local session that has to end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.models import BrowserSession, Client, Grant


def clients_by_session(
    session: Session, browser_sessions: Sequence[BrowserSession]
) -> dict[int, list[Client]]:
    """Active (not removed) clients with a grant tied to each browser session, by session id."""
    ids = [b.id for b in browser_sessions]
    if not ids:
        return {}
    # Distinct on plain columns: PostgreSQL cannot DISTINCT the client's JSON columns.
    pairs = session.execute(
        select(Grant.session_id, Grant.client_pk)
        .where(Grant.session_id.in_(ids))
        .distinct()
        .order_by(Grant.session_id, Grant.client_pk)
    ).all()
    client_pks = {client_pk for _, client_pk in pairs}
    found = {
        c.id: c
        for c in session.scalars(
            select(Client).where(Client.id.in_(client_pks), Client.removed_at.is_(None))
        )
    }
    result: dict[int, list[Client]] = {}
    for session_id, client_pk in pairs:
        client = found.get(client_pk)
        if client is not None and session_id is not None:
            result.setdefault(session_id, []).append(client)
    return result


@dataclass(frozen=True)
class ProtocolLogoutNotice:
    """A notice another protocol (CAS, SAML) asks the delivery worker to POST when a session
    ends: ``form`` form-encoded to ``uri`` (CAS), or ``payload`` kept as it is for the protocol
    to turn into its message when sent (SAML signs its SOAP LogoutRequest then); retried and
    logged like a logout token."""

    protocol: str
    participant: str  # as the delivery log names it, e.g. "cas:<service id>"
    uri: str
    subject: str
    session_index: str
    form: Mapping[str, str] = field(default_factory=dict)
    payload: str | None = None
