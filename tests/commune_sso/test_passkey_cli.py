"""The CLI side of passkeys (issue 16): a client's minimum sign-in level (``client add
--minimum-acr``, ``client set-minimum-acr``) and a unit's requirement (``unit
require-passkeys``), both audited and checked by the same rules as the admin pages."""

from __future__ import annotations

from sqlalchemy import Engine, select

from core import audit
from core.clock import SystemClock
from core.db import make_session_factory, transaction
from idp.authentication_levels import PHISHING_RESISTANT
from idp.models import Unit
from tests.cli_runner import Cli, assert_clean_failure


def test_client_minimum_acr_from_the_cli(cli: Cli, engine: Engine) -> None:
    created = cli.json(
        "client",
        "add",
        "--name",
        "Quản lý hồ sơ",
        "--redirect-uri",
        "https://hoso.laocai.gov.vn/cb",
        "--minimum-acr",
        PHISHING_RESISTANT,
    )
    assert created["minimum_acr"] == PHISHING_RESISTANT
    client_id = created["client_id"]
    cleared = cli.json("client", "set-minimum-acr", client_id, "none")
    assert cleared["minimum_acr"] is None
    assert_clean_failure(
        cli("client", "set-minimum-acr", client_id, "urn:other:acr"),
        "minimum_acr: The minimum sign-in level must be one of",
    )
    with transaction(make_session_factory(engine)) as session:
        actions = [e.action for e in audit.tail(session, limit=20)]
    assert "client.update" in actions


def test_unit_require_passkeys_from_the_cli(cli: Cli, engine: Engine) -> None:
    now = SystemClock().now()
    with transaction(make_session_factory(engine)) as session:
        session.add(
            Unit(
                code="10001",
                level="ward",
                name="Phường Cốc Lếu",
                division_type="phường",
                province_code="10",
                status="active",
                created_at=now,
                updated_at=now,
            )
        )
    assert cli.json("unit", "require-passkeys", "10001") == {
        "code": "10001",
        "requires_passkeys": True,
    }
    assert cli.json("unit", "require-passkeys", "10001", "--off")["requires_passkeys"] is False
    with transaction(make_session_factory(engine)) as session:
        unit = session.scalar(select(Unit).where(Unit.code == "10001"))
        assert unit is not None and not unit.requires_phishing_resistant
        actions = [e.action for e in audit.tail(session, limit=20)]
    assert "unit.passkeys_required" in actions and "unit.passkeys_not_required" in actions
