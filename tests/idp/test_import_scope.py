"""Delegated administration reaches imports: a unit admin of A cannot import into unit B, nor
change an official of B by reusing their citizen ID; a province admin stays in its province."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.db import transaction
from idp import accounts, admin_scope, units
from idp.bulk_import.apply import apply_file
from idp.bulk_import.plan import ERROR, build_plan
from idp.bulk_import.reading import read_file
from idp.models import Account, AccountProfile, Unit
from tests.idp.import_files import cccd, csv_bytes, write

HANOI, HOAN_KIEM = "01", "00070"


@pytest.fixture
def two_provinces(runtime):
    with transaction(runtime.session_factory) as session:
        units.sync_from_package(session=session, clock=runtime.clock, actor="test")
    with transaction(runtime.session_factory) as session:
        hanoi_wards = list(
            session.scalars(
                select(Unit.code)
                .where(Unit.province_code == HANOI, Unit.level == "ward")
                .order_by(Unit.code)
                .limit(2)
            )
        )
        other = session.scalar(
            select(Unit.code).where(Unit.province_code == "15", Unit.level == "ward").limit(1)
        )
    return hanoi_wards, other


def admin_of(runtime, username, role, unit_code):
    with transaction(runtime.session_factory) as session:
        account = accounts.create(
            session=session,
            clock=runtime.clock,
            passwords=runtime.passwords,
            actor="test",
            username=username,
            full_name="Quản trị viên",
        )
        admin_scope.grant(
            session=session,
            clock=runtime.clock,
            actor_scope=admin_scope.AdminScope(True, frozenset(), frozenset()),
            actor="test",
            account=account,
            role=role,
            unit=units.get_by_code(session, unit_code),
        )
    with transaction(runtime.session_factory) as session:
        return admin_scope.scope_of(session, session.get(Account, account.id))


def row(serial, ward):
    return [cccd(serial), "Đỗ Thị Hạnh", "", "", "", ward, "", ""]


def test_unit_admin_cannot_import_into_another_unit(runtime, two_provinces, tmp_path):
    (mine, neighbour), _ = two_provinces
    reach = admin_of(runtime, "qt.phuong", admin_scope.UNIT_ADMIN, mine)
    path = write(tmp_path, "f.csv", csv_bytes([row(1, mine), row(2, neighbour)]))
    with transaction(runtime.session_factory) as session:
        plan = build_plan(session, read_file(path), today=runtime.clock.now().date(), reach=reach)
    assert [r.action for r in plan.rows] == ["create", ERROR]
    assert plan.rows[1].errors[0].field == "unit_code"
    assert plan.rows[1].errors[0].line == 3

    result = apply_file(
        session_factory=runtime.session_factory,
        clock=runtime.clock,
        actor="user:qt.phuong",
        file=read_file(path),
        output_dir=tmp_path / "out",
        issuer=runtime.settings.issuer,
        reach=reach,
    )
    assert result.summary.error == 1
    with transaction(runtime.session_factory) as session:
        stored = set(session.scalars(select(AccountProfile.citizen_id)))
    assert stored == {cccd(1)}


def test_an_official_of_another_unit_cannot_be_changed_through_a_file(
    runtime, two_provinces, tmp_path
):
    (mine, neighbour), _ = two_provinces
    theirs = write(tmp_path, "theirs.csv", csv_bytes([row(7, neighbour)]))
    apply_file(
        session_factory=runtime.session_factory,
        clock=runtime.clock,
        actor="test",
        file=read_file(theirs),
        output_dir=tmp_path / "out",
        issuer=runtime.settings.issuer,
    )
    reach = admin_of(runtime, "qt.phuong", admin_scope.UNIT_ADMIN, mine)
    # Same citizen ID, moved into the admin's own unit: refused, the official stays where it is.
    grab = write(tmp_path, "grab.csv", csv_bytes([row(7, mine)]))
    with transaction(runtime.session_factory) as session:
        plan = build_plan(session, read_file(grab), today=runtime.clock.now().date(), reach=reach)
    assert plan.rows[0].action == ERROR and plan.rows[0].errors[0].field == "citizen_id"


def test_province_admin_imports_anywhere_in_its_province_only(runtime, two_provinces, tmp_path):
    (first, second), elsewhere = two_provinces
    reach = admin_of(runtime, "qt.hanoi", admin_scope.PROVINCE_ADMIN, HANOI)
    path = write(tmp_path, "f.csv", csv_bytes([row(1, first), row(2, second), row(3, elsewhere)]))
    with transaction(runtime.session_factory) as session:
        plan = build_plan(session, read_file(path), today=runtime.clock.now().date(), reach=reach)
    assert [r.action for r in plan.rows] == ["create", "create", ERROR]


def test_cli_imports_on_behalf_of_an_admin_and_grants_roles(cli, runtime, two_provinces, tmp_path):
    (mine, neighbour), _ = two_provinces
    cli.ok("user", "add", "qt.phuong", "--name", "Quản trị phường")
    granted = cli.json("user", "grant-admin", "qt.phuong", "--role", "unit_admin", "--unit", mine)
    assert granted == {"username": "qt.phuong", "role": "unit_admin", "unit": mine, "granted": True}
    path = write(tmp_path, "f.csv", csv_bytes([row(1, mine), row(2, neighbour)]))
    result = cli(
        "import-users",
        str(path),
        "--as",
        "qt.phuong",
        "--output-dir",
        str(tmp_path / "codes"),
        "--json",
    )
    assert result.exit_code == 1  # one row refused, the other applied
    cli.ok("user", "revoke-admin", "qt.phuong", "--role", "unit_admin", "--unit", mine)
    refused = cli("import-users", str(path), "--as", "qt.phuong", "--dry-run", "--lang", "en")
    assert refused.exit_code == 2 and "not an active administrator" in refused.stderr
    refused_vi = cli("import-users", str(path), "--as", "qt.phuong", "--dry-run")
    assert "không phải là quản trị viên đang hoạt động" in refused_vi.stderr
    wrong_level = cli(
        "user", "grant-admin", "qt.phuong", "--role", "province_admin", "--unit", mine
    )
    assert wrong_level.exit_code == 1 and "province admin" in wrong_level.stderr.lower()
