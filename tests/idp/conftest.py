"""Fixtures shared by the IdP tests."""

from __future__ import annotations

from typing import Any

import pytest

from core.db import transaction
from core.text_search import fold_for_search
from idp.models import AccountProfile, Agency, Unit
from idp.runtime import IdpRuntime
from tests.conftest import register_client


@pytest.fixture
def service(runtime) -> tuple[str, str]:
    """A confidential service client (client_credentials only, no redirect URIs)."""
    client, secret = register_client(
        runtime,
        name="Dịch vụ đồng bộ",
        grant_types=["client_credentials"],
        redirect_uris=[],
        scope="profile email",
        first_party=False,
    )
    assert secret is not None
    return client.client_id, secret


@pytest.fixture
def official_at_work(runtime: IdpRuntime, official: Any) -> Any:
    """The conftest official, Phó Chủ tịch of a ward of Lào Cai: every unit, agency and
    position attribute in Vietnamese (CAS and SAML attribute release)."""
    with transaction(runtime.session_factory) as session:
        now = runtime.clock.now()
        province = Unit(
            code="15",
            level="province",
            name="Tỉnh Lào Cai",
            division_type="tỉnh",
            province_code="15",
            created_at=now,
            updated_at=now,
        )
        ward = Unit(
            code="02647",
            level="ward",
            name="Phường Cam Đường",
            division_type="phường",
            province_code="15",
            created_at=now,
            updated_at=now,
        )
        session.add_all([province, ward])
        session.flush()
        agency = Agency(unit_id=ward.id, kind="people_committee", name="UBND phường Cam Đường")
        session.add(agency)
        session.flush()
        session.add(
            AccountProfile(
                account_id=official.id,
                unit_id=ward.id,
                agency_id=agency.id,
                position="Phó Chủ tịch",
                search_name=fold_for_search(official.full_name),
            )
        )
    return official
