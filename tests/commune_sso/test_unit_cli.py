"""``commune-sso unit ...`` in-process on real SQLite and PostgreSQL databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import sessionmaker

from core import audit
from core.clock import SystemClock
from core.db import make_session_factory, transaction
from core.settings import Settings
from idp import accounts, units
from idp.models import AccountMove, AccountProfile, Client, ClientUnitScope, Unit
from idp.official_data import fold_for_search
from idp.passwords import PasswordHasher
from tests.cli_runner import (
    Cli,
    assert_clean_failure,
)

HANOI = "01"
HOAN_KIEM = "00070"


@pytest.fixture
def factory(engine: Engine) -> sessionmaker:
    made = make_session_factory(engine)
    audit.install(made)
    return made


@pytest.fixture
def synced(cli: Cli) -> None:
    assert cli.json("unit", "sync") == {"created": 3355, "renamed": 0, "unchanged": 0}


def test_sync_twice(cli: Cli) -> None:
    first = cli.ok("unit", "sync").stdout
    assert "3355 created, 0 renamed, 0 unchanged" in " ".join(first.split())
    assert cli.json("unit", "sync") == {"created": 0, "renamed": 0, "unchanged": 3355}
    [entry] = cli.json("audit", "tail", "-n", "1")
    assert entry["action"] == "unit.sync"
    assert entry["details"] == {"created": 0, "renamed": 0, "unchanged": 3355}


def test_list_with_filters(cli: Cli, synced: None) -> None:
    provinces = cli.json("unit", "list", "--level", "province", "--limit", "100")
    assert len(provinces) == 34
    assert provinces[0] == {
        "code": HANOI,
        "level": "province",
        "name": "Thành phố Hà Nội",
        "division_type": "thành phố trung ương",
        "province_code": HANOI,
        "status": "active",
        "merged_into": None,
    }
    found = cli.json("unit", "list", "--search", "phuong hoan kiem")
    assert [u["code"] for u in found] == [HOAN_KIEM]
    in_hanoi = cli.json("unit", "list", "--province", HANOI, "--level", "ward", "--limit", "5")
    assert len(in_hanoi) == 5
    assert all(u["province_code"] == HANOI and u["level"] == "ward" for u in in_hanoi)
    table = cli.ok("unit", "list", "--search", "hoàn kiếm").stdout
    assert HOAN_KIEM in table and "Phường Hoàn Kiếm" in table


def test_list_refuses_an_unknown_level(cli: Cli, synced: None) -> None:
    assert_clean_failure(
        cli("unit", "list", "--level", "district"), "The unit level is province or ward."
    )


def test_show_and_rename(cli: Cli, synced: None) -> None:
    renamed = cli.json(
        "unit", "rename", HOAN_KIEM, "Phường Hoàn Kiếm Mới", "--reason", "Nghị quyết 2026"
    )
    assert renamed["name"] == "Phường Hoàn Kiếm Mới"
    shown = cli.json("unit", "show", HOAN_KIEM)
    assert shown["name"] == "Phường Hoàn Kiếm Mới"
    assert shown["accounts"] == 0
    assert [e["kind"] for e in shown["events"]] == ["created", "renamed"]
    assert shown["events"][1]["details"]["old_name"] == "Phường Hoàn Kiếm"
    assert shown["events"][1]["actor"] == "cli"
    text = cli.ok("unit", "show", HOAN_KIEM).stdout
    assert "Phường Hoàn Kiếm Mới" in text and "renamed" in text
    # Sync restores the name of the package (it is the source of truth for names).
    assert cli.json("unit", "sync")["renamed"] == 1


def test_show_unknown_unit_fails_cleanly(cli: Cli, synced: None) -> None:
    assert_clean_failure(cli("unit", "show", "99999"), "No unit with code 99999.")


def test_merge_moves_accounts(
    cli: Cli, synced: None, factory: sessionmaker, tmp_path: Path
) -> None:
    source, target = cli.json(
        "unit", "list", "--province", HANOI, "--level", "ward", "--limit", "2"
    )
    hasher = PasswordHasher(Settings(var_dir=tmp_path / "var"))
    with transaction(factory) as session:
        unit = units.get_by_code(session, source["code"])
        for username, name in [
            ("tran.thi.binh", "Trần Thị Bình"),
            ("le.van.cuong", "Lê Văn Cường"),
        ]:
            account = accounts.create(
                session=session,
                clock=SystemClock(),
                passwords=hasher,
                actor="test",
                username=username,
                full_name=name,
            )
            session.add(
                AccountProfile(
                    account_id=account.id,
                    unit_id=unit.id,
                    search_name=fold_for_search(name),
                )
            )

    merged = cli.json("unit", "merge", source["code"], target["code"], "--reason", "Sáp nhập")
    assert merged == {"source": source["code"], "target": target["code"], "accounts_moved": 2}
    shown = cli.json("unit", "show", source["code"])
    assert (shown["status"], shown["merged_into"], shown["accounts"]) == (
        "merged",
        target["code"],
        0,
    )
    assert cli.json("unit", "show", target["code"])["accounts"] == 2
    with transaction(factory) as session:
        moves = list(session.scalars(select(AccountMove)))
        assert [(m.reason, m.actor) for m in moves] == [("Sáp nhập", "cli")] * 2
    actions = [e["action"] for e in cli.json("audit", "tail", "-n", "3")]
    assert sorted(actions) == ["account.move", "account.move", "unit.merge"]

    again = cli("unit", "merge", source["code"], target["code"], "--reason", "again")
    assert_clean_failure(again, f"Unit {source['code']} is already merged into another unit.")


def test_merge_refusals_fail_cleanly(cli: Cli, synced: None) -> None:
    assert_clean_failure(
        cli("unit", "merge", HOAN_KIEM, HOAN_KIEM, "--reason", "x"),
        f"Unit {HOAN_KIEM} cannot be merged into itself.",
    )
    assert_clean_failure(
        cli("unit", "merge", HOAN_KIEM, HANOI, "--reason", "x"),
        "only units of the same level can be merged.",
    )
    assert_clean_failure(
        cli("unit", "merge", HOAN_KIEM, "99999", "--reason", "x"), "No unit with code 99999."
    )
    assert_clean_failure(
        cli("unit", "merge", HOAN_KIEM, "00004", "--reason", " "), "A reason is required."
    )


def test_dissolve(cli: Cli, synced: None) -> None:
    dissolved = cli.json("unit", "dissolve", HOAN_KIEM, "--reason", "Giải thể")
    assert dissolved["status"] == "dissolved"
    assert_clean_failure(
        cli("unit", "dissolve", HANOI, "--reason", "x"),
        "active commune(s) or ward(s): merge the province",
    )


def test_provisioning_client_is_given_its_units(
    cli: Cli, synced: None, factory: sessionmaker
) -> None:
    created = cli.json(
        "client", "add", "--name", "Hệ thống nhân sự", "--grant-type", "client_credentials",
        "--scope", "scim", "--unit", HOAN_KIEM, "--unit", HANOI,
    )  # fmt: skip
    with transaction(factory) as session:
        reach = session.execute(
            select(Unit.code)
            .join(ClientUnitScope, ClientUnitScope.unit_id == Unit.id)
            .join(Client, Client.id == ClientUnitScope.client_pk)
            .where(Client.client_id == created["client_id"])
        ).scalars()
        assert set(reach) == {HOAN_KIEM, HANOI}
    assert_clean_failure(
        cli(
            "client", "add", "--name", "x", "--grant-type", "client_credentials", "--unit", "99999"
        ),
        "No unit with code 99999.",
    )
