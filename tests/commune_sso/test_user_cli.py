"""``commune-sso user enable|list|show`` (issue 19), in-process on SQLite and PostgreSQL, over
officials made by the services the import and SCIM use."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from core import audit
from core.clock import SystemClock
from core.db import make_session_factory, transaction
from core.settings import Settings
from idp import accounts, admin_scope, mfa, totp
from idp.models import AccountProfile, Passkey, Unit
from idp.official_data import fold_for_search
from idp.passwords import PasswordHasher
from tests.cli_runner import SECRET_KEY, Cli, assert_clean_failure, sign_in
from tests.conftest import OFFICIAL_PASSWORD

# Two wards of Hà Nội (province 01), from the packaged unit data.
WARD_A, WARD_B = "00004", "00008"
OPERATOR = admin_scope.AdminScope(system=True, province_codes=frozenset(), unit_ids=frozenset())


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    built = make_session_factory(engine)
    audit.install(built)
    return built


def add_official(
    factory: sessionmaker[Session],
    username: str,
    full_name: str,
    *,
    unit: str | None = None,
    password: bool = True,
    citizen_id: str | None = None,
) -> None:
    with transaction(factory) as session:
        account = accounts.create(
            session=session,
            clock=SystemClock(),
            passwords=PasswordHasher(Settings()),
            actor="test",
            username=username,
            full_name=full_name,
            password=OFFICIAL_PASSWORD if password else None,
        )
        if unit is not None:
            session.add(
                AccountProfile(
                    account_id=account.id,
                    unit_id=session.scalars(select(Unit.id).where(Unit.code == unit)).one(),
                    citizen_id=citizen_id,
                    position="Chuyên viên",
                    search_name=fold_for_search(full_name),
                )
            )


def account_status(factory: sessionmaker[Session], username: str) -> str:
    with transaction(factory) as session:
        return accounts.get_by_username(session, username).status


# --------------------------------------------------------------------------------------------
# enable


def test_enable_undoes_disable_and_is_audited(cli: Cli, factory: sessionmaker[Session]) -> None:
    add_official(factory, "pham.thi.dung", "Phạm Thị Dung")
    cli.ok("user", "disable", "pham.thi.dung")
    assert "enabled pham.thi.dung" in cli.ok("user", "enable", "PHAM.THI.DUNG").stdout
    assert account_status(factory, "pham.thi.dung") == "active"
    [entry] = cli.json("audit", "tail", "-n", "1")
    assert (entry["action"], entry["target"], entry["actor"]) == (
        "account.enable",
        "account:pham.thi.dung",
        "cli",
    )
    # Enabling an account that is not disabled changes nothing and records nothing.
    again = cli.ok("user", "enable", "pham.thi.dung").stdout
    assert "pham.thi.dung is not disabled (active); nothing changed" in again
    assert cli.json("audit", "tail", "-n", "1") == [entry]


def test_enable_refuses_unknown_and_deleted_accounts(
    cli: Cli, factory: sessionmaker[Session]
) -> None:
    assert_clean_failure(cli("user", "enable", "khong.ton.tai"), "No account with that username.")
    add_official(factory, "xoa.boi.scim", "Đã Xóa", unit=None)
    with transaction(factory) as session:
        account = accounts.get_by_username(session, "xoa.boi.scim")
        profile = AccountProfile(account_id=account.id, search_name="da xoa")
        session.add(profile)
        session.flush()
        accounts.mark_deleted(
            session=session, clock=SystemClock(), actor="scim", account=account, profile=profile
        )
    refused = cli("user", "enable", "xoa.boi.scim")
    assert_clean_failure(refused, "xoa.boi.scim is deleted; a deleted account cannot be enabled")
    assert account_status(factory, "xoa.boi.scim") == "disabled"


# --------------------------------------------------------------------------------------------
# list and show


@pytest.fixture
def officials(cli: Cli, factory: sessionmaker[Session]) -> None:
    """Units from the package; in ward A one active, one never activated and one disabled
    official, in ward B one active; an administrator attached to no unit."""
    cli.ok("unit", "sync")
    add_official(factory, "an.nv", "Nguyễn Văn An", unit=WARD_A, citizen_id="001090000001")
    add_official(factory, "binh.tt", "Trần Thị Bình", unit=WARD_A, password=False)
    add_official(factory, "cuong.lv", "Lê Văn Cường", unit=WARD_A)
    add_official(factory, "dung.pt", "Phạm Thị Dung", unit=WARD_B)
    with transaction(factory) as session:
        accounts.create(
            session=session,
            clock=SystemClock(),
            passwords=PasswordHasher(Settings()),
            actor="test",
            username="quan.tri",
            full_name="Quản Trị",
            password=OFFICIAL_PASSWORD,
            is_system_admin=True,
        )
    cli.ok("user", "disable", "cuong.lv")


def usernames(rows: list[dict[str, object]]) -> list[object]:
    return [row["username"] for row in rows]


def test_list_filters_by_unit_status_and_text(cli: Cli, officials: None) -> None:
    everyone = cli.json("user", "list")
    assert usernames(everyone) == ["an.nv", "binh.tt", "cuong.lv", "dung.pt", "quan.tri"]
    assert everyone[0] == {
        "username": "an.nv",
        "full_name": "Nguyễn Văn An",
        "email": None,
        "unit_code": WARD_A,
        "unit_name": everyone[0]["unit_name"],
        "status": "active",
        "system_admin": False,
    }
    assert everyone[0]["unit_name"]
    assert everyone[-1]["system_admin"] is True
    assert everyone[-1]["unit_code"] is None

    assert usernames(cli.json("user", "list", "--unit", WARD_A)) == [
        "an.nv",
        "binh.tt",
        "cuong.lv",
    ]
    assert usernames(cli.json("user", "list", "--status", "pending")) == ["binh.tt"]
    assert usernames(cli.json("user", "list", "--status", "disabled")) == ["cuong.lv"]
    assert usernames(cli.json("user", "list", "--status", "active", "--unit", WARD_A)) == ["an.nv"]
    assert usernames(cli.json("user", "list", "--search", "tran thi")) == ["binh.tt"]
    assert usernames(cli.json("user", "list", "--search", "001090000001")) == ["an.nv"]
    assert usernames(cli.json("user", "list", "--limit", "2")) == ["an.nv", "binh.tt"]


def test_list_as_a_table(cli: Cli, officials: None) -> None:
    shown = cli.ok("user", "list", "--unit", WARD_A, "--limit", "2").stdout
    lines = shown.splitlines()
    assert any("an.nv" in line and "Nguyễn Văn An" in line and "active" in line for line in lines)
    assert any("binh.tt" in line and "pending" in line for line in lines)
    assert "cuong.lv" not in shown
    assert "2 of 3 official(s)" in shown


def test_list_refuses_an_unknown_unit_or_status(cli: Cli, officials: None) -> None:
    assert_clean_failure(cli("user", "list", "--unit", "99999"), "No unit with code 99999.")
    wrong = cli("user", "list", "--status", "locked")
    assert wrong.exit_code == 2
    assert "locked" in wrong.stderr
    assert wrong.stdout == ""


def test_show_an_official(cli: Cli, officials: None, factory: sessionmaker[Session]) -> None:
    shown = cli.json("user", "show", "binh.tt")
    assert shown["status"] == "pending"
    assert shown["unit_code"] == WARD_A
    assert (shown["mfa_enrolled"], shown["last_sign_in"], shown["roles"]) == (False, None, [])
    assert shown["password_changed_at"] is None

    cli.ok("user", "grant-admin", "an.nv", "--role", "province_admin", "--unit", "01")
    cli.ok("user", "grant-admin", "an.nv", "--role", "unit_admin", "--unit", WARD_B)
    with transaction(factory) as session:
        account = accounts.get_by_username(session, "an.nv")
        secret_key = SECRET_KEY.encode()
        mfa.start_enrolment(
            session=session, clock=SystemClock(), server_secret=secret_key, account=account
        )
        pending = mfa.pending_enrolment(
            session=session, server_secret=secret_key, account=account, issuer_name="test"
        )
        assert pending is not None
        assert mfa.confirm_enrolment(
            session=session,
            clock=SystemClock(),
            server_secret=secret_key,
            account=account,
            code=totp.totp(pending.secret, SystemClock().now()),
        )
        signed_in_at = sign_in(session, account).auth_time

    shown = cli.json("user", "show", "an.nv")
    assert shown["status"] == "active"
    assert (shown["citizen_id"], shown["position"]) == ("001090000001", "Chuyên viên")
    assert shown["roles"] == [
        {"role": "province_admin", "unit": "01"},
        {"role": "unit_admin", "unit": WARD_B},
    ]
    assert shown["mfa_enrolled"] is True
    assert shown["last_sign_in"] == str(signed_in_at)

    text = cli.ok("user", "show", "an.nv").stdout
    for line in (
        "an.nv  Nguyễn Văn An",
        "status: active",
        f"unit: {WARD_A} {shown['unit_name']}",
        f"administrator roles: province_admin of 01, unit_admin of {WARD_B}",
        "two-step verification: yes",
        f"last sign-in: {signed_in_at:%Y-%m-%d %H:%M:%S}",
    ):
        assert line in text, line


def test_show_refuses_an_unknown_official(cli: Cli) -> None:
    assert_clean_failure(cli("user", "show", "khong.ton.tai"), "No account with that username.")


# --------------------------------------------------------------------------------------------
# passkeys and remove-passkey


def add_passkey_row(
    factory: sessionmaker[Session], username: str, name: str, *, synced: bool
) -> int:
    """A stored passkey (registration itself is tested through the app, tests/idp)."""
    with transaction(factory) as session:
        passkey = Passkey(
            account_id=accounts.get_by_username(session, username).id,
            credential_id=f"credential-{name}",
            public_key=b"\x00",
            name=name,
            aaguid="00000000-0000-0000-0000-000000000000",
            backup_eligible=synced,
            transports=[],
            created_at=SystemClock().now(),
        )
        session.add(passkey)
        session.flush()
        return passkey.id


def test_list_and_remove_an_officials_passkeys(cli: Cli, factory: sessionmaker[Session]) -> None:
    add_official(factory, "an.nv", "Nguyễn Văn An")
    assert cli.json("user", "passkeys", "an.nv") == []
    laptop = add_passkey_row(factory, "an.nv", "Máy tính [văn phòng]", synced=False)
    phone = add_passkey_row(factory, "an.nv", "Điện thoại", synced=True)
    rows = cli.json("user", "passkeys", "AN.NV")
    assert [(r["id"], r["name"], r["synced"], r["last_used_at"]) for r in rows] == [
        (laptop, "Máy tính [văn phòng]", False, None),
        (phone, "Điện thoại", True, None),
    ]
    table = cli.ok("user", "passkeys", "an.nv").stdout
    assert "Máy tính [văn phòng]" in table and "device-bound" in table and "synced" in table
    assert "2 passkey(s) of an.nv" in table

    removed = cli.json("user", "remove-passkey", "an.nv", str(phone))
    assert removed == {"username": "an.nv", "removed": phone, "name": "Điện thoại"}
    assert [r["id"] for r in cli.json("user", "passkeys", "an.nv")] == [laptop]
    [entry] = cli.json("audit", "tail", "-n", "1")
    assert (entry["action"], entry["target"], entry["actor"]) == (
        "account.passkey_removed",
        "account:an.nv",
        "cli",
    )
    assert "removed passkey" in cli.ok("user", "remove-passkey", "an.nv", str(laptop)).stdout


def test_passkey_commands_refuse_unknown_officials_and_passkeys(
    cli: Cli, factory: sessionmaker[Session]
) -> None:
    assert_clean_failure(cli("user", "passkeys", "khong.ton.tai"), "No account with that username.")
    add_official(factory, "an.nv", "Nguyễn Văn An")
    add_official(factory, "binh.tt", "Trần Thị Bình")
    others = add_passkey_row(factory, "binh.tt", "Khóa của Bình", synced=False)
    # Another official's passkey is not this one's to remove.
    refused = cli("user", "remove-passkey", "an.nv", str(others))
    assert_clean_failure(refused, f"an.nv has no passkey with id {others}")
    assert [r["id"] for r in cli.json("user", "passkeys", "binh.tt")] == [others]
