"""The live officials per unit that the database keeps (idp/live_officials.py), on SQLite and
PostgreSQL: after every kind of write the kept counts equal a count of the profiles, a SCIM
page's total reads them, and on PostgreSQL writers in overlapping units never wait for each
other (a counter row updated by every writer would make two imports deadlock)."""

from __future__ import annotations

import threading

from sqlalchemy import delete, func, literal_column, select, text, update

from core.db import transaction
from idp import accounts, live_officials
from idp.models import AccountProfile, UnitLiveOfficials, UnitLiveOfficialsChange
from idp.scim import users
from tests.idp import test_scim as read_side
from tests.idp.test_scim import get

directory = read_side.directory
province_token = read_side.province_token


def counted(session) -> dict[int, int]:
    """What a count of the profiles says: live officials by unit key (0: no unit)."""
    unit_key = func.coalesce(AccountProfile.unit_id, literal_column("0"))
    rows = session.execute(
        select(unit_key, func.count()).where(AccountProfile.deleted_at.is_(None)).group_by(unit_key)
    )
    return {unit: number for unit, number in rows}


def kept(session) -> dict[int, int]:
    """What the kept counts say: base counts plus the changes not yet folded."""
    totals: dict[int, int] = {}
    for unit, number in session.execute(select(UnitLiveOfficials.unit_key, UnitLiveOfficials.live)):
        totals[unit] = totals.get(unit, 0) + number
    for unit, change in session.execute(
        select(UnitLiveOfficialsChange.unit_key, UnitLiveOfficialsChange.change)
    ):
        totals[unit] = totals.get(unit, 0) + change
    return {unit: number for unit, number in totals.items() if number}


def new_official(session, runtime, username, unit_id):
    account = accounts.create(
        session=session,
        clock=runtime.clock,
        passwords=runtime.passwords,
        actor="test",
        username=username,
        full_name=username,
    )
    session.add(AccountProfile(account_id=account.id, unit_id=unit_id, search_name=username))
    session.flush()
    return account


def test_counts_follow_every_kind_of_write(runtime, directory):
    units = directory["units"]
    ward_a, ward_b = units["02656"], units["03862"]
    with transaction(runtime.session_factory) as session:
        before = counted(session)
        assert before and kept(session) == before
    with transaction(runtime.session_factory) as session:
        # Inserts (one statement for several rows, as the import sends them), no unit at all.
        created = [new_official(session, runtime, f"moi.{n}", ward_a) for n in range(3)]
        homeless = new_official(session, runtime, "khong.don.vi", None)
    with transaction(runtime.session_factory) as session:
        assert kept(session) == counted(session)
        assert counted(session)[ward_a] == before[ward_a] + 3
        assert counted(session)[0] == 1
        # A move, a soft delete, a restore, a hard delete, a bulk move in one statement.
        session.execute(
            update(AccountProfile)
            .where(AccountProfile.account_id == created[0].id)
            .values(unit_id=ward_b)
        )
        session.execute(
            update(AccountProfile)
            .where(AccountProfile.account_id == created[1].id)
            .values(deleted_at=runtime.clock.now())
        )
        session.execute(
            update(AccountProfile)
            .where(AccountProfile.deleted_at.is_not(None), AccountProfile.unit_id == ward_a)
            .values(deleted_at=None)
        )
        session.execute(delete(AccountProfile).where(AccountProfile.account_id == homeless.id))
        session.execute(
            update(AccountProfile).where(AccountProfile.unit_id == ward_b).values(unit_id=ward_a)
        )
        # Inside the writing transaction the counts already agree.
        assert kept(session) == counted(session)
    with transaction(runtime.session_factory) as session:
        assert kept(session) == counted(session)
        assert 0 not in kept(session)


def test_a_rolled_back_write_leaves_no_count(runtime, directory):
    ward = directory["units"]["02656"]
    with transaction(runtime.session_factory) as session:
        before = kept(session)
    session = runtime.session_factory()
    try:
        new_official(session, runtime, "se.huy", ward)
        assert kept(session)[ward] == before[ward] + 1
        session.rollback()
    finally:
        session.close()
    with transaction(runtime.session_factory) as session:
        assert kept(session) == before == counted(session)


def test_folding_keeps_the_totals_and_empties_the_changes(runtime, directory):
    ward = directory["units"]["02656"]
    with transaction(runtime.session_factory) as session:
        for n in range(4):
            new_official(session, runtime, f"gop.{n}", ward)
    with transaction(runtime.session_factory) as session:
        before = kept(session)
        appended = session.scalar(select(func.count()).select_from(UnitLiveOfficialsChange))
    folded = live_officials.fold_changes(runtime.session_factory)
    with transaction(runtime.session_factory) as session:
        assert kept(session) == before == counted(session)
        left = session.scalar(select(func.count()).select_from(UnitLiveOfficialsChange))
    if runtime.session_factory.kw["bind"].dialect.name == "postgresql":
        assert appended > 0 and folded > 0 and left == 0
    else:  # SQLite's triggers write the base counts directly
        assert appended == 0 and folded == 0 and left == 0


def test_recount_repairs_counts_kept_without_triggers(runtime, directory):
    """What a migration that rebuilt the table must do (idp/live_officials.py docstring)."""
    ward = directory["units"]["02656"]
    with transaction(runtime.session_factory) as session:
        live_officials.drop_triggers(session.connection())
        new_official(session, runtime, "khong.trigger", ward)
        assert kept(session) != counted(session)
        live_officials.create_triggers(session.connection())
        assert kept(session) == counted(session)
        new_official(session, runtime, "co.trigger", ward)
        assert kept(session) == counted(session)


def total_results(web, token, start_index=1):
    response = get(web, f"/Users?startIndex={start_index}&count=2", token)
    assert response.status_code == 200, response.text
    return response.json()["totalResults"]


def test_scim_totals_read_the_kept_counts(web, runtime, directory, province_token):
    ward = directory["units"]["02656"]
    total = total_results(web, province_token)
    with transaction(runtime.session_factory) as session:
        new_official(session, runtime, "them.mot", ward)
    assert total_results(web, province_token) == total + 1
    # Past the end of the list the total comes from the counts alone.
    assert total_results(web, province_token, start_index=total + 5) == total + 1
    assert "idp_account_profile" not in str(users._live_count(frozenset({ward})))


def test_writers_in_overlapping_units_do_not_wait_for_each_other(runtime, directory):
    """Two transactions add officials to the same two units in opposite orders and commit only
    after both have written: with one counter row per unit updated by each writer, the second
    would wait for the first (and PostgreSQL would report a deadlock); SQLite has one writer
    at a time anyway, so this runs on PostgreSQL only."""
    engine = runtime.session_factory.kw["bind"]
    if engine.dialect.name != "postgresql":
        return
    ward_a, ward_b = directory["units"]["02656"], directory["units"]["03862"]
    both_written = threading.Barrier(2, timeout=20)
    failures: list[BaseException] = []

    def writer(name: str, order: tuple[int, int]) -> None:
        try:
            with transaction(runtime.session_factory) as session:
                session.execute(text("SET LOCAL lock_timeout = '5s'"))
                for n, unit in enumerate(order):
                    new_official(session, runtime, f"{name}.{n}", unit)
                both_written.wait()
        except BaseException as error:
            failures.append(error)

    threads = [
        threading.Thread(target=writer, args=("xuoi", (ward_a, ward_b))),
        threading.Thread(target=writer, args=("nguoc", (ward_b, ward_a))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert failures == []
    with transaction(runtime.session_factory) as session:
        assert kept(session) == counted(session)
