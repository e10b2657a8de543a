"""Who is calling: a provisioning client with a bearer token (RFC 7644 §2, RFC 6750).

The token comes from our own token endpoint (client_credentials, scope "scim"). The client
reaches the units listed for it in ``ClientUnitScope``; a province row covers all its wards.
A client with no rows reaches nothing (secure by default).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.admin_scope import AdminScope
from idp.claims import SCIM_SCOPE
from idp.clients import ClientCache, ProvisioningReach
from idp.models import Client, ClientUnitScope, Unit
from idp.oauth.access_tokens import read_access_token
from idp.request_scope import RequestScope
from idp.scim.errors import Forbidden, Unauthorized


@dataclass(frozen=True)
class Provisioner:
    client_id: str
    reach: AdminScope
    # Every unit in reach, a province's wards included: listings filter on these ids.
    unit_ids: frozenset[int]


def _challenge(error: str | None = None) -> dict[str, str]:
    value = 'Bearer realm="scim"'
    if error == "insufficient_scope":
        value += f', error="{error}", scope="{SCIM_SCOPE}"'
    elif error:
        value += f', error="{error}"'
    return {"WWW-Authenticate": value}


def find_provisioner(
    session: Session, client_id: str, cache: ClientCache | None = None
) -> Provisioner | None:
    """The active client and the units it reaches. It is asked on every request: ``cache``
    keeps it per worker, forgotten when the client or the units change (the token state feed,
    idp/token_state.py) and after the client cache's few seconds whatever happens."""
    if cache is not None:
        cached = cache.cached_reach(client_id)
        if cached is not None:
            return Provisioner(client_id=client_id, reach=cached.scope, unit_ids=cached.unit_ids)
    read_at = time.monotonic()
    rows = session.execute(
        select(Unit.id, Unit.level, Unit.province_code, Unit.status)
        .select_from(Client)
        .outerjoin(ClientUnitScope, ClientUnitScope.client_pk == Client.id)
        .outerjoin(Unit, Unit.id == ClientUnitScope.unit_id)
        .where(Client.client_id == client_id, Client.removed_at.is_(None))
    ).all()
    if not rows:
        return None
    reach = AdminScope(
        system=False,
        province_codes=frozenset(r.province_code for r in rows if r.level == "province"),
        unit_ids=frozenset(
            r.id
            for r in rows
            if r.id is not None and r.level != "province" and r.status == "active"
        ),
    )
    unit_ids = frozenset(session.scalars(select(Unit.id).where(reach.units_clause())))
    if cache is not None:
        cache.remember_reach(
            client_id, ProvisioningReach(scope=reach, unit_ids=unit_ids), read_at=read_at
        )
    return Provisioner(client_id=client_id, reach=reach, unit_ids=unit_ids)


def authenticate(scope: RequestScope) -> Provisioner:
    """401 without a valid token of ours, 403 when it lacks the scim scope (RFC 6750 §3.1)."""
    header = scope.http.header("authorization") or ""
    if header[:7].lower() != "bearer " or not header[7:].strip():
        raise Unauthorized("A bearer access token is required.", headers=_challenge())
    view = read_access_token(
        scope.runtime,
        scope.session,
        header[7:].strip(),
        client_certificate=scope.http.client_certificate,
    )
    if view is None:
        raise Unauthorized(
            "The access token is invalid or expired.", headers=_challenge("invalid_token")
        )
    if SCIM_SCOPE not in str(view.claims.get("scope", "")).split():
        raise Forbidden(
            "The access token lacks the scim scope.", headers=_challenge("insufficient_scope")
        )
    # Provisioning is done by clients on their own behalf, never with an official's token.
    caller = (
        find_provisioner(scope.session, view.client_id, scope.runtime.client_cache)
        if view.grant is None
        else None
    )
    if caller is None:
        raise Forbidden(
            "Only provisioning clients (client_credentials) may use SCIM.",
            headers=_challenge("insufficient_scope"),
        )
    return caller
