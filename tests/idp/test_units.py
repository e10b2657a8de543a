"""Administrative units (idp.units) on real SQLite and PostgreSQL, and the ``unit`` scope through
the real login flow."""

from __future__ import annotations

import time

import jwt as pyjwt
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core import audit
from core.db import transaction
from core.errors import DomainError
from idp import accounts, lifecycle, units
from idp.claims import UNIT_CLAIMS, claims_for_scope
from idp.models import Account, AccountMove, AccountProfile, Agency, Unit, UnitEvent
from idp.official_data import fold_for_search
from idp.runtime import IdpRuntime
from tests.conftest import ISSUER, OFFICIAL_PASSWORD, register_client
from tests.idp.oidc_flow import authorize_params, exchange_code, log_in, pkce_pair, query_of

HANOI = "01"
HOAN_KIEM = "00070"  # Phường Hoàn Kiếm, Hà Nội


@pytest.fixture
def synced(runtime: IdpRuntime) -> units.SyncResult:
    with transaction(runtime.session_factory) as session:
        return units.sync_from_package(session=session, clock=runtime.clock, actor="test")


def two_wards(session: Session, province: str = HANOI) -> tuple[Unit, Unit]:
    first, second = units.list_units(session, province_code=province, level="ward", limit=2)
    return first, second


def audit_entries(session: Session, limit: int, prefix: str | None = None) -> list[dict]:
    """The newest audit entries, newest first, with details parsed."""
    return [audit.entry_as_dict(e) for e in audit.tail(session, limit=limit, action_prefix=prefix)]


def add_official(
    runtime: IdpRuntime,
    session: Session,
    username: str,
    full_name: str,
    *,
    unit: Unit | None,
    agency: Agency | None = None,
    position: str | None = None,
) -> Account:
    account = accounts.create(
        session=session,
        clock=runtime.clock,
        passwords=runtime.passwords,
        actor="test",
        username=username,
        full_name=full_name,
    )
    session.add(
        AccountProfile(
            account_id=account.id,
            unit_id=unit.id if unit else None,
            agency_id=agency.id if agency else None,
            position=position,
            search_name=fold_for_search(full_name),
        )
    )
    session.flush()
    return account


# --------------------------------------------------------------------------------------------
# sync


def test_sync_loads_every_province_and_ward(runtime: IdpRuntime) -> None:
    started = time.perf_counter()
    with transaction(runtime.session_factory) as session:
        result = units.sync_from_package(session=session, clock=runtime.clock, actor="test")
    elapsed = time.perf_counter() - started
    assert result == units.SyncResult(created=34 + 3321, renamed=0, unchanged=0)
    # Not a benchmark: a generous bound that a query per unit would still break.
    assert elapsed < 10, elapsed

    with transaction(runtime.session_factory) as session:
        all_units = list(session.scalars(select(Unit)))
        provinces = {u.code: u for u in all_units if u.level == "province"}
        wards = [u for u in all_units if u.level == "ward"]
        assert len(provinces) == 34
        assert len(wards) == 3321
        assert len({u.code for u in all_units}) == len(all_units)
        assert all(len(code) == 2 and code.isdigit() for code in provinces)
        assert all(p.province_code == p.code for p in provinces.values())
        assert all(len(w.code) == 5 and w.code.isdigit() for w in wards)
        assert all(w.province_code in provinces for w in wards)
        assert all(u.status == "active" for u in all_units)
        assert provinces[HANOI].name == "Thành phố Hà Nội"
        hoan_kiem = units.find_by_code(session, HOAN_KIEM)
        assert hoan_kiem is not None
        assert (hoan_kiem.name, hoan_kiem.province_code) == ("Phường Hoàn Kiếm", HANOI)
        assert hoan_kiem.division_type == "phường"
        created = session.scalar(
            select(func.count()).select_from(UnitEvent).where(UnitEvent.kind == "created")
        )
        assert created == 3355
        entries = audit_entries(session, 5, "unit.")
        assert [(e["action"], e["details"]) for e in entries] == [
            ("unit.sync", {"created": 3355, "renamed": 0, "unchanged": 0})
        ]


def test_second_sync_changes_nothing(runtime: IdpRuntime, synced: units.SyncResult) -> None:
    with transaction(runtime.session_factory) as session:
        events_before = session.scalar(select(func.count()).select_from(UnitEvent))
        again = units.sync_from_package(session=session, clock=runtime.clock, actor="test")
    assert again == units.SyncResult(created=0, renamed=0, unchanged=3355)
    with transaction(runtime.session_factory) as session:
        assert session.scalar(select(func.count()).select_from(UnitEvent)) == events_before
        assert units.count(session) == 3355


def test_sync_restores_a_changed_name(runtime: IdpRuntime, synced: units.SyncResult) -> None:
    with transaction(runtime.session_factory) as session:
        session.execute(update(Unit).where(Unit.code == HOAN_KIEM).values(name="Phường Sai Tên"))
    runtime.clock.advance(60)
    with transaction(runtime.session_factory) as session:
        result = units.sync_from_package(session=session, clock=runtime.clock, actor="test")
    assert result == units.SyncResult(created=0, renamed=1, unchanged=3354)
    with transaction(runtime.session_factory) as session:
        unit = units.find_by_code(session, HOAN_KIEM)
        assert unit is not None and unit.name == "Phường Hoàn Kiếm"
        assert unit.updated_at == runtime.clock.now()
        renamed = [e for e in units.events_of(session, unit) if e.kind == "renamed"]
        assert len(renamed) == 1
        assert renamed[0].details["old_name"] == "Phường Sai Tên"
        assert renamed[0].details["new_name"] == "Phường Hoàn Kiếm"


def test_sync_creates_a_missing_unit(runtime: IdpRuntime) -> None:
    # A later package release adding a unit: only the new one is created.
    some = [u for u in units.package_units() if u.province_code == HANOI]
    with transaction(runtime.session_factory) as session:
        first = units.sync_from_package(
            session=session, clock=runtime.clock, actor="test", source=some[:-1]
        )
        second = units.sync_from_package(
            session=session, clock=runtime.clock, actor="test", source=some
        )
    assert (first.created, second.created, second.unchanged) == (len(some) - 1, 1, len(some) - 1)


# --------------------------------------------------------------------------------------------
# search


def test_unit_search_folds_like_account_search() -> None:
    assert fold_for_search("Phường Hoàn Kiếm") == "phuong hoan kiem"
    assert fold_for_search("  Đặc  khu   CÔN ĐẢO ") == "dac khu con dao"
    assert fold_for_search("Nguyễn Văn An") == "nguyen van an"


def test_search_ignores_case_and_diacritics(runtime: IdpRuntime, synced: units.SyncResult) -> None:
    with transaction(runtime.session_factory) as session:
        found = units.list_units(session, query="phuong hoan kiem")
        assert [u.code for u in found] == [HOAN_KIEM]
        assert [u.code for u in units.list_units(session, query="PHƯỜNG hoàn  KIẾM")] == [HOAN_KIEM]
        in_hanoi = units.list_units(session, province_code=HANOI, query="hoan kiem")
        assert HOAN_KIEM in {u.code for u in in_hanoi}
        assert units.list_units(session, province_code="79", query="hoan kiem") == []
        provinces = units.list_units(session, level="province", query="ha noi")
        assert [u.code for u in provinces] == [HANOI]


def test_list_filters_and_limit(runtime: IdpRuntime, synced: units.SyncResult) -> None:
    with transaction(runtime.session_factory) as session:
        provinces = units.list_units(session, level="province", limit=None)
        assert len(provinces) == 34
        assert [u.code for u in provinces] == sorted(u.code for u in provinces)
        hanoi_wards = units.list_units(session, province_code=HANOI, level="ward", limit=None)
        assert hanoi_wards and all(u.province_code == HANOI for u in hanoi_wards)
        assert len(units.list_units(session, limit=50)) == 50
        assert len(units.list_units(session, query="phuong", limit=7)) == 7
        with pytest.raises(DomainError, match="province or ward"):
            units.list_units(session, level="district")


# --------------------------------------------------------------------------------------------
# rename, merge, dissolve


def test_rename_keeps_the_old_name_in_history(
    runtime: IdpRuntime, synced: units.SyncResult
) -> None:
    with transaction(runtime.session_factory) as session:
        unit = units.get_by_code(session, HOAN_KIEM)
        units.rename(
            session=session,
            clock=runtime.clock,
            actor="admin",
            unit=unit,
            new_name="Phường  Hoàn Kiếm Mới ",
            reason="Nghị quyết 2026",
        )
    with transaction(runtime.session_factory) as session:
        unit = units.get_by_code(session, HOAN_KIEM)
        assert unit.name == "Phường Hoàn Kiếm Mới"
        event = units.events_of(session, unit)[-1]
        assert (event.kind, event.actor) == ("renamed", "admin")
        assert event.details == {
            "old_name": "Phường Hoàn Kiếm",
            "new_name": "Phường Hoàn Kiếm Mới",
            "reason": "Nghị quyết 2026",
        }
        [entry] = audit_entries(session, 1, "unit.rename")
        assert entry["target"] == f"unit:{HOAN_KIEM}"
        with pytest.raises(DomainError, match="already named"):
            units.rename(
                session=session,
                clock=runtime.clock,
                actor="admin",
                unit=unit,
                new_name="Phường Hoàn Kiếm Mới",
                reason="again",
            )
        with pytest.raises(DomainError, match="reason is required"):
            units.rename(
                session=session,
                clock=runtime.clock,
                actor="admin",
                unit=unit,
                new_name="Phường X",
                reason="  ",
            )


def test_merge_moves_accounts_with_the_reason(
    runtime: IdpRuntime, synced: units.SyncResult
) -> None:
    with transaction(runtime.session_factory) as session:
        source, target = two_wards(session)
        agency = Agency(unit_id=source.id, kind="people_committee", name="UBND phường")
        session.add(agency)
        session.flush()
        add_official(runtime, session, "tran.thi.binh", "Trần Thị Bình", unit=source, agency=agency)
        add_official(runtime, session, "le.van.cuong", "Lê Văn Cường", unit=source)
        add_official(runtime, session, "pham.van.dung", "Phạm Văn Dũng", unit=target)
        source_code, target_code = source.code, target.code
    runtime.clock.advance(30)

    with transaction(runtime.session_factory) as session:
        moved = units.merge(
            session=session,
            clock=runtime.clock,
            actor="admin",
            source=units.get_by_code(session, source_code),
            target=units.get_by_code(session, target_code),
            reason="Sáp nhập theo Nghị quyết 2026",
        )
    assert moved == 2

    with transaction(runtime.session_factory) as session:
        source = units.get_by_code(session, source_code)
        target = units.get_by_code(session, target_code)
        assert source.status == "merged"
        assert source.merged_into_id == target.id
        assert units.attached_account_count(session, source) == 0
        assert units.attached_account_count(session, target) == 3
        moves = list(session.scalars(select(AccountMove).order_by(AccountMove.id)))
        assert len(moves) == 2
        assert {(m.from_unit_id, m.to_unit_id, m.reason, m.actor, m.at) for m in moves} == {
            (source.id, target.id, "Sáp nhập theo Nghị quyết 2026", "admin", runtime.clock.now())
        }
        assert [e.kind for e in units.events_of(session, source)][-1] == "merged"
        assert [e.kind for e in units.events_of(session, target)][-1] == "merged"
        assert units.events_of(session, target)[-1].details["absorbed"] == source_code
        # The agency went with its officials.
        assert session.get(Agency, agency.id).unit_id == target.id  # type: ignore[union-attr]
        entries = {(e["action"], e["target"]): e for e in audit_entries(session, 3)}
        assert set(entries) == {
            ("unit.merge", f"unit:{source_code}"),
            ("account.move", "account:le.van.cuong"),
            ("account.move", "account:tran.thi.binh"),
        }
        assert entries["unit.merge", f"unit:{source_code}"]["details"]["accounts_moved"] == 2
        assert entries["account.move", "account:le.van.cuong"]["details"] == {
            "from_unit": source_code,
            "to_unit": target_code,
            "reason": "Sáp nhập theo Nghị quyết 2026",
        }
        # Other parts (the CA module) learn of the moves through the lifecycle feed.
        moved_events = lifecycle.events_after(session, cursor=0)
        assert [e.kind for e in moved_events] == [lifecycle.ACCOUNT_MOVED] * 2
        assert {e.payload["to_unit"] for e in moved_events} == {target_code}


def test_merge_refusals(runtime: IdpRuntime, synced: units.SyncResult) -> None:
    with transaction(runtime.session_factory) as session:
        first, second = two_wards(session)
        third = units.list_units(session, province_code=HANOI, level="ward", limit=3)[2]
        hanoi = units.get_by_code(session, HANOI)

        def merge(source: Unit, target: Unit) -> int:
            return units.merge(
                session=session,
                clock=runtime.clock,
                actor="admin",
                source=source,
                target=target,
                reason="test",
            )

        with pytest.raises(DomainError, match="cannot be merged into itself"):
            merge(first, first)
        with pytest.raises(DomainError, match="only units of the same level can be merged"):
            merge(first, hanoi)
        merge(first, second)
        with pytest.raises(DomainError, match="already merged into another unit"):
            merge(first, third)
        with pytest.raises(DomainError, match="merged into an active unit"):
            merge(third, first)
        with pytest.raises(DomainError, match="reason is required"):
            units.merge(
                session=session,
                clock=runtime.clock,
                actor="admin",
                source=third,
                target=second,
                reason="",
            )


def test_merging_a_province_moves_its_wards(runtime: IdpRuntime, synced: units.SyncResult) -> None:
    with transaction(runtime.session_factory) as session:
        source, target = units.list_units(session, level="province", limit=2)
        wards = units.list_units(session, province_code=source.code, level="ward", limit=None)
        units.merge(
            session=session,
            clock=runtime.clock,
            actor="admin",
            source=source,
            target=target,
            reason="test",
        )
        source_code, target_code = source.code, target.code
    with transaction(runtime.session_factory) as session:
        assert units.list_units(session, province_code=source_code, level="ward") == []
        moved = units.list_units(session, province_code=target_code, level="ward", limit=None)
        assert {w.code for w in wards} <= {w.code for w in moved}
        [entry] = audit_entries(session, 1)
        assert entry["details"]["wards_moved"] == len(wards)


def test_dissolve_is_refused_while_accounts_are_attached(
    runtime: IdpRuntime, synced: units.SyncResult
) -> None:
    with transaction(runtime.session_factory) as session:
        unit, other = two_wards(session)
        add_official(runtime, session, "tran.thi.binh", "Trần Thị Bình", unit=unit)
        with pytest.raises(DomainError, match="still has 1 account"):
            units.dissolve(
                session=session, clock=runtime.clock, actor="admin", unit=unit, reason="test"
            )
        assert unit.status == "active"
        with pytest.raises(DomainError, match=r"still has \d+ active commune\(s\) or ward"):
            units.dissolve(
                session=session,
                clock=runtime.clock,
                actor="admin",
                unit=units.get_by_code(session, HANOI),
                reason="test",
            )
        units.dissolve(
            session=session, clock=runtime.clock, actor="admin", unit=other, reason="Giải thể"
        )
        other_code = other.code
    with transaction(runtime.session_factory) as session:
        other = units.get_by_code(session, other_code)
        assert other.status == "dissolved"
        assert units.events_of(session, other)[-1].details == {"reason": "Giải thể"}
        with pytest.raises(DomainError, match=r"no longer active \(Dissolved\)"):
            units.dissolve(
                session=session, clock=runtime.clock, actor="admin", unit=other, reason="again"
            )


# --------------------------------------------------------------------------------------------
# the "unit" scope


def test_unit_claims(runtime: IdpRuntime, synced: units.SyncResult) -> None:
    with transaction(runtime.session_factory) as session:
        unit = units.get_by_code(session, HOAN_KIEM)
        agency = Agency(unit_id=unit.id, kind="people_committee", name="UBND phường Hoàn Kiếm")
        session.add(agency)
        session.flush()
        full = add_official(
            runtime,
            session,
            "tran.thi.binh",
            "Trần Thị Bình",
            unit=unit,
            agency=agency,
            position="Chuyên viên",
        )
        bare = add_official(runtime, session, "le.van.cuong", "Lê Văn Cường", unit=None)
        without_profile = accounts.create(
            session=session,
            clock=runtime.clock,
            passwords=runtime.passwords,
            actor="test",
            username="pham.van.dung",
            full_name="Phạm Văn Dũng",
        )
        claims = units.unit_claims(session, full)
        assert claims == {
            "province_code": HANOI,
            "province_name": "Thành phố Hà Nội",
            "unit_code": HOAN_KIEM,
            "unit_name": "Phường Hoàn Kiếm",
            "agency": "UBND phường Hoàn Kiếm",
            "position": "Chuyên viên",
        }
        assert set(claims) == set(UNIT_CLAIMS)
        assert units.unit_claims(session, bare) == {}
        assert units.unit_claims(session, without_profile) == {}
        # Released only under the unit scope.
        assert (
            claims_for_scope(full, "openid profile", directory_claims=claims)
            .keys()
            .isdisjoint(UNIT_CLAIMS)
        )
        assert claims_for_scope(full, "openid unit", directory_claims=claims) == claims


def test_citizen_id_only_under_its_own_scope() -> None:
    official = Account(full_name="Nguyễn Văn An", username="an", email=None, phone=None)
    directory = {"unit_code": "00070", "citizen_id": "001085012345"}
    assert "citizen_id" not in claims_for_scope(official, "openid unit", directory_claims=directory)
    assert claims_for_scope(official, "openid citizen_id", directory_claims=directory) == {
        "citizen_id": "001085012345"
    }


def test_unit_scope_through_the_login_flow(web, runtime: IdpRuntime, synced) -> None:
    with transaction(runtime.session_factory) as session:
        unit = units.get_by_code(session, HOAN_KIEM)
        agency = Agency(unit_id=unit.id, kind="people_committee", name="UBND phường Hoàn Kiếm")
        session.add(agency)
        session.flush()
        official = accounts.create(
            session=session,
            clock=runtime.clock,
            passwords=runtime.passwords,
            actor="test",
            username="nguyen.van.an",
            full_name="Nguyễn Văn An",
            password=OFFICIAL_PASSWORD,
        )
        session.add(
            AccountProfile(
                account_id=official.id,
                unit_id=unit.id,
                agency_id=agency.id,
                position="Phó Chủ tịch",
                search_name="nguyen van an",
            )
        )
        subject = official.subject
    client, secret = register_client(runtime, scope="openid profile unit")
    expected = {
        "province_code": HANOI,
        "province_name": "Thành phố Hà Nội",
        "unit_code": HOAN_KIEM,
        "unit_name": "Phường Hoàn Kiếm",
        "agency": "UBND phường Hoàn Kiếm",
        "position": "Phó Chủ tịch",
    }

    verifier, challenge = pkce_pair()
    params = authorize_params(client.client_id, challenge, scope="openid profile unit")
    back = log_in(web, params, "nguyen.van.an", OFFICIAL_PASSWORD)
    token = exchange_code(
        web, client.client_id, secret, query_of(back.headers["location"])["code"], verifier
    )
    assert token.status_code == 200, token.text
    body = token.json()
    assert set(body["scope"].split()) == {"openid", "profile", "unit"}
    jwks = web.get("/oauth2/jwks").json()
    header = pyjwt.get_unverified_header(body["id_token"])
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    claims = pyjwt.decode(
        body["id_token"],
        pyjwt.PyJWK(key).key,
        algorithms=["RS256"],
        audience=client.client_id,
        issuer=ISSUER,
    )
    assert claims["sub"] == subject
    assert {name: claims[name] for name in UNIT_CLAIMS} == expected

    info = web.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.status_code == 200
    assert {name: info.json()[name] for name in UNIT_CLAIMS} == expected
    assert info.json()["name"] == "Nguyễn Văn An"


def test_no_unit_claims_without_the_unit_scope(web, runtime: IdpRuntime, synced) -> None:
    with transaction(runtime.session_factory) as session:
        official = accounts.create(
            session=session,
            clock=runtime.clock,
            passwords=runtime.passwords,
            actor="test",
            username="nguyen.van.an",
            full_name="Nguyễn Văn An",
            password=OFFICIAL_PASSWORD,
        )
        session.add(
            AccountProfile(
                account_id=official.id,
                unit_id=units.get_by_code(session, HOAN_KIEM).id,
                position="Phó Chủ tịch",
                search_name="nguyen van an",
            )
        )
    client, secret = register_client(runtime, scope="openid profile unit")
    verifier, challenge = pkce_pair()
    params = authorize_params(client.client_id, challenge, scope="openid profile")
    back = log_in(web, params, "nguyen.van.an", OFFICIAL_PASSWORD)
    token = exchange_code(
        web, client.client_id, secret, query_of(back.headers["location"])["code"], verifier
    )
    body = token.json()
    claims = pyjwt.decode(body["id_token"], options={"verify_signature": False})
    assert claims.keys().isdisjoint(UNIT_CLAIMS)
    info = web.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.json().keys().isdisjoint(UNIT_CLAIMS)


def test_discovery_lists_the_unit_scope_and_claims(web) -> None:
    provider = web.get("/.well-known/openid-configuration").json()
    assert "unit" in provider["scopes_supported"]
    assert set(UNIT_CLAIMS) <= set(provider["claims_supported"])
    assert set(UNIT_CLAIMS) == {
        "province_code",
        "province_name",
        "unit_code",
        "unit_name",
        "agency",
        "position",
    }
