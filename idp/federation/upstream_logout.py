"""Single logout reaches the upstream: a session that began with an upstream sign-in keeps
the upstream's ID token (sealed), and when it ends in the browser the browser goes on to the
upstream's end_session_endpoint (OpenID Connect RP-Initiated Logout 1.0 §2) with it as
``id_token_hint`` and ``post_logout_redirect_uri`` back to us, then to where our own logout
was going (the app's post_logout_redirect_uri, a CAS service, or our logged-out page)."""

from __future__ import annotations

from dataclasses import dataclass

from authlib.common.urls import add_params_to_uri
from sqlalchemy.orm import Session

from core.clock import Clock
from core.sealed_values import SealError, open_sealed, seal
from core.settings import Settings
from idp import sessions
from idp.models import BrowserSession, UpstreamProvider, UpstreamSession

RETURN_PATH = "/login/upstream/logged-out"
PARKED_KEY = "upstream_logout"
_ID_TOKEN_PURPOSE = b"commune-sso/idp/upstream-id-token/v1"
_PARKED_ID_TOKEN_PURPOSE = b"commune-sso/idp/upstream-id-token-parked/v1"


def _bound_to(session_id: int) -> bytes:
    return f"session:{session_id}".encode("ascii")


def _parked_bound_to(interaction_id: int) -> bytes:
    return f"interaction:{interaction_id}".encode("ascii")


def remember(
    *,
    session: Session,
    clock: Clock,
    server_secret: bytes,
    browser_session_id: int,
    provider: UpstreamProvider,
    upstream_subject: str,
    id_token: str,
) -> None:
    session.add(
        UpstreamSession(
            session_id=browser_session_id,
            upstream_pk=provider.id,
            upstream_subject=upstream_subject[:255],
            sealed_id_token=seal(
                id_token.encode("ascii"),
                server_secret=server_secret,
                purpose=_ID_TOKEN_PURPOSE,
                bound_to=_bound_to(browser_session_id),
            ),
            created_at=clock.now(),
        )
    )


def park(
    *,
    server_secret: bytes,
    interaction_id: int,
    provider: UpstreamProvider,
    upstream_subject: str,
    id_token: str,
) -> dict[str, object]:
    """What :func:`remember_parked` needs once our own second factor is done: kept in the
    login interaction (a JSON column), the ID token sealed and bound to that interaction."""
    return {
        "upstream_pk": provider.id,
        "subject": upstream_subject[:255],
        "sealed_id_token": seal(
            id_token.encode("ascii"),
            server_secret=server_secret,
            purpose=_PARKED_ID_TOKEN_PURPOSE,
            bound_to=_parked_bound_to(interaction_id),
        ),
    }


def remember_parked(
    *,
    session: Session,
    clock: Clock,
    server_secret: bytes,
    interaction_id: int,
    parked: dict[str, object],
    browser_session_id: int,
) -> None:
    """The upstream sign-in parked by :func:`park`, remembered for the session that began."""
    provider = session.get(UpstreamProvider, int(str(parked["upstream_pk"])))
    if provider is None:
        return
    try:
        id_token = open_sealed(
            str(parked["sealed_id_token"]),
            server_secret=server_secret,
            purpose=_PARKED_ID_TOKEN_PURPOSE,
            bound_to=_parked_bound_to(interaction_id),
        ).decode("ascii")
    except SealError:
        return  # the session still ends here; the upstream is then not asked to log out
    remember(
        session=session,
        clock=clock,
        server_secret=server_secret,
        browser_session_id=browser_session_id,
        provider=provider,
        upstream_subject=str(parked["subject"]),
        id_token=id_token,
    )


@dataclass(frozen=True)
class UpstreamLogout:
    """Where the upstream ends its own session for one of ours that just ended."""

    end_session_endpoint: str
    client_id: str
    id_token: str | None


def pending_for(
    session: Session, *, server_secret: bytes, browser_session: BrowserSession
) -> UpstreamLogout | None:
    """The upstream logout due when ``browser_session`` ends; None when it did not begin
    upstream or the upstream offers no logout."""
    record = session.get(UpstreamSession, browser_session.id)
    if record is None:
        return None
    provider = session.get(UpstreamProvider, record.upstream_pk)
    if provider is None or not provider.end_session_endpoint:
        return None
    try:
        id_token: str | None = open_sealed(
            record.sealed_id_token,
            server_secret=server_secret,
            purpose=_ID_TOKEN_PURPOSE,
            bound_to=_bound_to(browser_session.id),
        ).decode("ascii")
    except SealError:
        id_token = None  # the upstream will ask the official to confirm instead
    return UpstreamLogout(
        end_session_endpoint=provider.end_session_endpoint,
        client_id=provider.client_id,
        id_token=id_token,
    )


def location(
    *,
    session: Session,
    clock: Clock,
    settings: Settings,
    logout: UpstreamLogout,
    continue_url: str | None,
    client_name: str | None,
) -> str:
    """The upstream's logout URL; ``state`` is the handle of an interaction that remembers
    where to go once the upstream sends the browser back (RP-Initiated Logout §3)."""
    handle = sessions.start_interaction(
        session=session,
        clock=clock,
        settings=settings,
        client_id="",
        params={PARKED_KEY: {"continue": continue_url, "client_name": client_name}},
    )
    params = [
        ("client_id", logout.client_id),
        ("post_logout_redirect_uri", f"{settings.issuer}{RETURN_PATH}"),
        ("state", handle),
    ]
    if logout.id_token:
        params.insert(0, ("id_token_hint", logout.id_token))
    return add_params_to_uri(logout.end_session_endpoint, params)
