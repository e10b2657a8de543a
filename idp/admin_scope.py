"""Delegated administration: who may administer which officials (issue 3).

Three roles. A system admin reaches everything; a province admin reaches every unit of one
province; a unit admin reaches one commune or ward. Every admin API, page, CLI-over-API call,
import and SCIM request asks :func:`scope_of` once and then :meth:`AdminScope.require` for each
unit it touches, or :meth:`AdminScope.units_clause` to filter a query — this module is the one
place where the rule lives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import ColumnElement, false, or_, select, true
from sqlalchemy.orm import Session

from core import audit
from core.clock import Clock
from core.errors import DomainError, PermissionDenied
from core.web.i18n import N_
from idp.models import Account, AdminRole, Unit

PROVINCE_ADMIN = "province_admin"
UNIT_ADMIN = "unit_admin"
ROLE_LEVEL = {PROVINCE_ADMIN: "province", UNIT_ADMIN: "ward"}
OUT_OF_SCOPE = N_("You do not administer this unit.")


class PlacedUnit(Protocol):
    """What the rule needs of a unit: a Unit row, or a lighter copy of one."""

    @property
    def id(self) -> int: ...

    @property
    def province_code(self) -> str: ...


@dataclass(frozen=True)
class AdminScope:
    system: bool
    province_codes: frozenset[str]
    unit_ids: frozenset[int]

    @property
    def is_admin(self) -> bool:
        return self.system or bool(self.province_codes or self.unit_ids)

    def covers(self, unit: PlacedUnit) -> bool:
        return self.system or unit.province_code in self.province_codes or unit.id in self.unit_ids

    def require(self, unit: Unit | None) -> None:
        """Refuse, without saying whether the unit exists, anything outside the scope.

        Accounts attached to no unit are for system admins only.
        """
        if unit is None:
            if not self.system:
                raise PermissionDenied(OUT_OF_SCOPE)
            return
        if not self.covers(unit):
            raise PermissionDenied(OUT_OF_SCOPE, unit=unit.code)

    def units_clause(self) -> ColumnElement[bool]:
        """A WHERE clause on :class:`Unit` that keeps exactly the units in scope."""
        if self.system:
            return true()
        conditions: list[ColumnElement[bool]] = []
        if self.province_codes:
            conditions.append(Unit.province_code.in_(sorted(self.province_codes)))
        if self.unit_ids:
            conditions.append(Unit.id.in_(sorted(self.unit_ids)))
        return or_(*conditions) if conditions else false()


NO_SCOPE = AdminScope(system=False, province_codes=frozenset(), unit_ids=frozenset())


def scope_of(session: Session, account: Account) -> AdminScope:
    if not account.is_active:
        return NO_SCOPE
    if account.is_system_admin:
        return AdminScope(system=True, province_codes=frozenset(), unit_ids=frozenset())
    rows = session.execute(
        select(AdminRole.role, Unit.id, Unit.province_code, Unit.status)
        .join(Unit, Unit.id == AdminRole.unit_id)
        .where(AdminRole.account_id == account.id)
    ).all()
    provinces = frozenset(r.province_code for r in rows if r.role == PROVINCE_ADMIN)
    units = frozenset(r.id for r in rows if r.role == UNIT_ADMIN and r.status == "active")
    return AdminScope(system=False, province_codes=provinces, unit_ids=units)


def roles_of(session: Session, account: Account) -> list[tuple[str, str]]:
    """(role, unit code) of every delegated role the account holds, province roles first."""
    return [
        (role, code)
        for role, code in session.execute(
            select(AdminRole.role, Unit.code)
            .join(Unit, Unit.id == AdminRole.unit_id)
            .where(AdminRole.account_id == account.id)
            .order_by(AdminRole.role, Unit.code)
        )
    ]


def _held_role(session: Session, account: Account, role: str, unit: Unit) -> AdminRole | None:
    return session.scalar(
        select(AdminRole).where(
            AdminRole.account_id == account.id, AdminRole.role == role, AdminRole.unit_id == unit.id
        )
    )


def grant(
    *,
    session: Session,
    clock: Clock,
    actor_scope: AdminScope,
    actor: str,
    account: Account,
    role: str,
    unit: Unit,
) -> AdminRole:
    """Give ``account`` a role on ``unit``; the granting admin must cover that unit."""
    if role not in ROLE_LEVEL:
        raise DomainError(N_("Unknown administrator role."), field="role")
    if unit.level != ROLE_LEVEL[role]:
        raise DomainError(
            N_("A province admin is granted on a province, a unit admin on a commune or ward."),
            field="unit",
        )
    actor_scope.require(unit)
    if role == PROVINCE_ADMIN and not actor_scope.system:
        raise PermissionDenied(N_("Only a system administrator can appoint province admins."))
    existing = _held_role(session, account, role, unit)
    if existing is not None:
        return existing
    granted = AdminRole(account_id=account.id, role=role, unit_id=unit.id, granted_at=clock.now())
    session.add(granted)
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="admin.grant",
        target=f"account:{account.username}",
        details={"role": role, "unit": unit.code},
    )
    return granted


def revoke(
    *,
    session: Session,
    clock: Clock,
    actor_scope: AdminScope,
    actor: str,
    account: Account,
    role: str,
    unit: Unit,
) -> bool:
    actor_scope.require(unit)
    existing = _held_role(session, account, role, unit)
    if existing is None:
        return False
    session.delete(existing)
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="admin.revoke",
        target=f"account:{account.username}",
        details={"role": role, "unit": unit.code},
    )
    return True
