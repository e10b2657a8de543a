"""The request-ID replay cache lives in the database, so every worker and host shares it: a
second use from another transaction is refused, the same ID from another SP is not, and
expired entries are forgotten."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from core.db import transaction
from idp.models import SamlServiceProvider
from idp.runtime import IdpRuntime
from idp.saml import replay_cache
from tests.idp.saml.conftest import register_sp
from tests.idp.saml.pysaml2_sp import sp_config, sp_metadata_xml, write_key_and_certificate


def registered_pks(runtime: IdpRuntime, tmp_path: Path) -> list[int]:
    for name in ("a", "b"):
        key_path, cert_path = write_key_and_certificate(tmp_path, name)
        register_sp(
            runtime,
            sp_metadata_xml(
                sp_config(
                    key_path=key_path,
                    cert_path=cert_path,
                    idp_metadata=None,
                    entity_id=f"https://{name}.laocai.gov.vn/saml",
                    acs_url=f"https://{name}.laocai.gov.vn/acs",
                )
            ),
        )
    with transaction(runtime.session_factory) as session:
        return [sp.id for sp in session.query(SamlServiceProvider).order_by(SamlServiceProvider.id)]


def use(runtime: IdpRuntime, sp_pk: int, request_id: str) -> bool:
    with transaction(runtime.session_factory) as session:
        return replay_cache.first_use(
            session=session,
            clock=runtime.clock,
            sp_pk=sp_pk,
            request_id=request_id,
            keep_until=runtime.clock.now() + timedelta(minutes=7),
        )


def test_each_request_id_once_per_sp(runtime: IdpRuntime, tmp_path: Path) -> None:
    first, second = registered_pks(runtime, tmp_path)
    assert use(runtime, first, "_r1")
    assert not use(runtime, first, "_r1")
    assert use(runtime, second, "_r1")
    runtime.clock.advance(minutes=8)
    assert use(runtime, first, "_r1")  # forgotten once its IssueInstant could no longer pass
