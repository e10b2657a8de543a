"""Services registered for CAS: who may receive tickets, which attributes they get, whether
they are sent single-logout requests. Every change is audited in its own transaction."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.clock import Clock
from core.errors import Conflict, DomainError, NotFound
from core.web.i18n import N_
from idp import authentication_levels as levels
from idp.cas import service_urls
from idp.models import CasService
from idp.registry import SoftRemovedRegistry
from idp.released_attributes import RELEASABLE

# Shown in logs and as "cas:<service_id>" in the delivery log (whose column holds 64).
SERVICE_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,47}")
EXACT = "exact"
REGEX = "regex"


def register(
    *,
    session: Session,
    clock: Clock,
    actor: str,
    service_id: str,
    name: str,
    url: str | None = None,
    pattern: str | None = None,
    attributes: Sequence[str] = (),
    single_logout: bool = True,
    minimum_acr: str | None = None,
    client_address: str | None = None,
) -> CasService:
    """Register a service by one exact URL or one anchored pattern (not both)."""
    if not SERVICE_ID_PATTERN.fullmatch(service_id):
        raise DomainError(
            N_("A service id is 1 to 48 lower-case letters, digits, '.', '_' or '-'."),
            field="service_id",
        )
    name = name.strip()
    if not name or len(name) > 200:
        raise DomainError(N_("A service needs a name of at most 200 characters."), field="name")
    if (url is None) == (pattern is None):
        raise DomainError(N_("Give either an exact service URL or a pattern."), field="url")
    if url is not None:
        match_kind, url_pattern = EXACT, service_urls.registrable_url(url)
    else:
        assert pattern is not None
        match_kind, url_pattern = REGEX, service_urls.registrable_pattern(pattern).pattern
    unknown = [group for group in attributes if group not in RELEASABLE]
    if unknown:
        raise DomainError(
            N_("Unknown attribute %(name)s; released attributes are %(known)s."),
            field="attributes",
            name=unknown[0],
            known=", ".join(RELEASABLE),
        )
    if session.scalar(select(CasService.id).where(CasService.service_id == service_id)):
        raise Conflict(N_("A service with this id is already registered."), field="service_id")
    service = CasService(
        service_id=service_id,
        name=name,
        match_kind=match_kind,
        url_pattern=url_pattern,
        attributes=list(dict.fromkeys(attributes)),
        single_logout=single_logout,
        minimum_acr=levels.checked_minimum(minimum_acr),
        created_at=clock.now(),
    )
    session.add(service)
    session.flush()
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="cas.service_registered",
        target=f"cas_service:{service_id}",
        details=as_dict(service),
        client_address=client_address,
    )
    return service


def as_dict(service: CasService) -> dict[str, Any]:
    return {
        "service_id": service.service_id,
        "name": service.name,
        "match": service.match_kind,
        "url_pattern": service.url_pattern,
        "attributes": list(service.attributes),
        "single_logout": service.single_logout,
        "minimum_acr": service.minimum_acr,
    }


# Removed, its tickets not yet validated stop validating; its history stays.
REGISTRY = SoftRemovedRegistry(
    CasService,
    key="service_id",
    target_prefix="cas_service",
    removed_action="cas.service_removed",
    minimum_acr_action="cas.service_minimum_acr",
    not_found=lambda: NotFound(N_("No CAS service with this id."), field="service_id"),
)


def find_for_url(session: Session, normalised_url: str) -> CasService | None:
    """The registration a normalised service URL belongs to: an exact one first, then the
    patterns in registration order."""
    active = CasService.removed_at.is_(None)
    exact = session.scalar(
        select(CasService)
        .where(active, CasService.match_kind == EXACT, CasService.url_pattern == normalised_url)
        .order_by(CasService.id)
        .limit(1)
    )
    if exact is not None:
        return exact
    for service in session.scalars(
        select(CasService).where(active, CasService.match_kind == REGEX).order_by(CasService.id)
    ):
        if re.fullmatch(service.url_pattern, normalised_url):
            return service
    return None
