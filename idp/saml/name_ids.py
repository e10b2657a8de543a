"""The NameID an SP gets for an official (SAML Core §8.3): persistent (random, pairwise per SP,
stored so it stays the same), transient (new for every assertion) or the e-mail address."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.clock import Clock
from core.db import is_postgresql
from idp.models import Account, SamlPersistentId, SamlServiceProvider
from idp.saml.vocabulary import EMAIL_ADDRESS, PERSISTENT, TRANSIENT


def new_transient() -> str:
    return "_" + secrets.token_hex(20)


def persistent(
    *, session: Session, clock: Clock, sp: SamlServiceProvider, account: Account, allow_create: bool
) -> str | None:
    """The official's persistent ID at ``sp``; made on first use unless ``allow_create`` is
    false (Core §3.4.1.1: then only an existing one may be used)."""

    def existing() -> str | None:
        return session.scalar(
            select(SamlPersistentId.value).where(
                SamlPersistentId.account_id == account.id, SamlPersistentId.sp_pk == sp.id
            )
        )

    value = existing()
    if value is not None or not allow_create:
        return value
    dialect_insert = postgresql.insert if is_postgresql(session) else sqlite.insert
    # Two first sign-ins at once: one INSERT wins and both read the winner's value.
    session.execute(
        dialect_insert(SamlPersistentId)
        .values(
            account_id=account.id,
            sp_pk=sp.id,
            value=secrets.token_urlsafe(32),
            created_at=clock.now(),
        )
        .on_conflict_do_nothing(index_elements=["account_id", "sp_pk"])
    )
    return existing()


def name_id_for(
    *,
    session: Session,
    clock: Clock,
    sp: SamlServiceProvider,
    account: Account,
    name_id_format: str,
    allow_create: bool,
) -> str | None:
    """None when the official has no identifier of that format (InvalidNameIDPolicy)."""
    if name_id_format == PERSISTENT:
        return persistent(
            session=session, clock=clock, sp=sp, account=account, allow_create=allow_create
        )
    if name_id_format == TRANSIENT:
        return new_transient()
    if name_id_format == EMAIL_ADDRESS:
        return account.email or None
    return None
