"""Delegated administration: a unit admin of A cannot reach B, a province admin cannot reach
another province; one rule, in idp.admin_scope."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core import audit
from core.db import transaction
from core.errors import DomainError, PermissionDenied
from idp import accounts, admin_scope
from idp.models import Account, Unit

# Real codes: Lào Cai (15) with two of its wards, Sơn La (14) with one.
UNITS = [
    ("15", "province", "Lào Cai", "15"),
    ("14", "province", "Sơn La", "14"),
    ("02656", "ward", "Phường Cam Đường", "15"),
    ("02668", "ward", "Xã Bát Xát", "15"),
    ("03862", "ward", "Xã Mường Bú", "14"),
]


@pytest.fixture
def units(runtime):
    now = runtime.clock.now()
    with transaction(runtime.session_factory) as session:
        rows = [
            Unit(
                code=code,
                level=level,
                name=name,
                division_type="xã",
                province_code=province,
                status="active",
                created_at=now,
                updated_at=now,
            )
            for code, level, name, province in UNITS
        ]
        session.add_all(rows)
    return {row.code: row for row in rows}


def make_account(runtime, username, *, system_admin=False):
    with transaction(runtime.session_factory) as session:
        return accounts.create(
            session=session,
            clock=runtime.clock,
            passwords=runtime.passwords,
            actor="test",
            username=username,
            full_name="Quản trị viên",
            is_system_admin=system_admin,
        )


def grant(runtime, granter_id, account_id, role, unit):
    with transaction(runtime.session_factory) as session:
        granter = session.get(Account, granter_id)
        admin_scope.grant(
            session=session,
            clock=runtime.clock,
            actor_scope=admin_scope.scope_of(session, granter),
            actor=f"user:{granter.username}",
            account=session.get(Account, account_id),
            role=role,
            unit=session.get(Unit, unit.id),
        )


def scope_for(runtime, account_id):
    with transaction(runtime.session_factory) as session:
        return admin_scope.scope_of(session, session.get(Account, account_id))


@pytest.fixture
def admins(runtime, units):
    root = make_account(runtime, "root", system_admin=True)
    province = make_account(runtime, "qt.laocai")
    ward = make_account(runtime, "qt.camduong")
    grant(runtime, root.id, province.id, admin_scope.PROVINCE_ADMIN, units["15"])
    grant(runtime, province.id, ward.id, admin_scope.UNIT_ADMIN, units["02656"])
    return root, province, ward


def test_unit_admin_reaches_only_its_unit(runtime, units, admins):
    scope = scope_for(runtime, admins[2].id)
    scope.require(units["02656"])
    for other in ("02668", "03862", "15"):
        with pytest.raises(PermissionDenied):
            scope.require(units[other])
    with pytest.raises(PermissionDenied):
        scope.require(None)  # officials attached to no unit: system admins only


def test_province_admin_reaches_its_province_and_nothing_else(runtime, units, admins):
    scope = scope_for(runtime, admins[1].id)
    for code in ("15", "02656", "02668"):
        scope.require(units[code])
    with pytest.raises(PermissionDenied):
        scope.require(units["03862"])


def test_query_filter_keeps_exactly_the_units_in_scope(runtime, units, admins):
    expected = {
        admins[0].id: {u for u, *_ in UNITS},
        admins[1].id: {"15", "02656", "02668"},
        admins[2].id: {"02656"},
    }
    for account_id, codes in expected.items():
        scope = scope_for(runtime, account_id)
        with transaction(runtime.session_factory) as session:
            found = set(session.scalars(select(Unit.code).where(scope.units_clause())))
        assert found == codes


def test_ordinary_and_disabled_accounts_administer_nothing(runtime, units, admins):
    nobody = make_account(runtime, "can.bo")
    assert not scope_for(runtime, nobody.id).is_admin
    with transaction(runtime.session_factory) as session:
        accounts.disable(
            session=session,
            clock=runtime.clock,
            actor="test",
            account=session.get(Account, admins[1].id),
        )
    assert not scope_for(runtime, admins[1].id).is_admin


def test_appointments_stay_within_the_appointer_scope(runtime, units, admins):
    root, province, ward = admins
    newcomer = make_account(runtime, "qt.muongbu")
    with pytest.raises(PermissionDenied):  # another province
        grant(runtime, province.id, newcomer.id, admin_scope.UNIT_ADMIN, units["03862"])
    with pytest.raises(PermissionDenied):  # only system admins appoint province admins
        grant(runtime, province.id, newcomer.id, admin_scope.PROVINCE_ADMIN, units["15"])
    with pytest.raises(PermissionDenied):  # a unit admin cannot appoint next door
        grant(runtime, ward.id, newcomer.id, admin_scope.UNIT_ADMIN, units["02668"])
    with pytest.raises(DomainError):  # a unit admin is appointed on a ward, not a province
        grant(runtime, root.id, newcomer.id, admin_scope.UNIT_ADMIN, units["14"])
    assert not scope_for(runtime, newcomer.id).is_admin


def test_grants_are_audited_and_idempotent(runtime, units, admins):
    root, _, ward = admins
    grant(runtime, root.id, ward.id, admin_scope.UNIT_ADMIN, units["02656"])  # again
    with transaction(runtime.session_factory) as session:
        grants = [e for e in audit.tail(session, limit=50) if e.action == "admin.grant"]
        assert audit.verify(session).ok
    assert len(grants) == 2  # province admin + unit admin; the repeat wrote nothing


def test_a_merged_unit_no_longer_gives_its_admin_a_scope(runtime, units, admins):
    with transaction(runtime.session_factory) as session:
        session.get(Unit, units["02656"].id).status = "merged"
    assert not scope_for(runtime, admins[2].id).is_admin
