"""A registry whose entries are removed softly: what an administrator registers by a key of its
own (an upstream provider, a SAML service provider, a CAS service), listed, found and removed
the same way.

Removal sets ``removed_at`` and keeps the row: the entry's history (audit log, sessions, the
pairwise identifiers it was given) still points at it. Only active entries are listed and found;
the removal is audited in the caller's transaction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.clock import Clock
from core.errors import NotFound
from idp.authentication_levels import checked_minimum

Entry = TypeVar("Entry")


class SoftRemovedRegistry(Generic[Entry]):
    """``model``: a mapped class with ``id`` and ``removed_at``; ``key``: the name of its
    column the administrator addresses an entry by. ``target_prefix``: the audit target is
    ``<prefix>:<key>``; ``removed_action``: the audit action of a removal; ``not_found``: the
    :class:`NotFound` for an unknown or removed key (made where its msgid is written, so that
    tests/core/test_error_messages_translated.py sees a literal); ``minimum_acr_action``: the
    audit action of a change of the entry's lowest sign-in level, for entries that have one."""

    def __init__(
        self,
        model: type[Entry],
        *,
        key: str,
        target_prefix: str,
        removed_action: str,
        not_found: Callable[[], NotFound],
        minimum_acr_action: str | None = None,
    ) -> None:
        self.model = model
        self.key = key
        self.target_prefix = target_prefix
        self.removed_action = removed_action
        self.not_found = not_found
        self.minimum_acr_action = minimum_acr_action
        self._columns: Any = model

    def audit_target(self, entry: Entry) -> str:
        return f"{self.target_prefix}:{getattr(entry, self.key)}"

    def list_active(self, session: Session) -> list[Entry]:
        """In registration order."""
        columns = self._columns
        return list(
            session.scalars(
                select(self.model).where(columns.removed_at.is_(None)).order_by(columns.id)
            )
        )

    def find_active(self, session: Session, key: str) -> Entry | None:
        columns = self._columns
        return session.scalar(
            select(self.model).where(
                getattr(columns, self.key) == key, columns.removed_at.is_(None)
            )
        )

    def get_active(self, session: Session, key: str) -> Entry:
        entry = self.find_active(session, key)
        if entry is None:
            raise self.not_found()
        return entry

    def set_minimum_acr(
        self,
        *,
        session: Session,
        clock: Clock,
        actor: str,
        entry: Entry,
        level: str | None,
        client_address: str | None = None,
    ) -> None:
        """The lowest sign-in level the entry (a CAS service, a SAML SP) accepts, as an OIDC
        client's minimum_acr: one of idp.authentication_levels.LEVELS, or None for any;
        audited as ``minimum_acr_action`` with the level before and after."""
        assert self.minimum_acr_action is not None, "entries without a sign-in level"
        row: Any = entry  # the mapped class, whichever: it has minimum_acr
        before, after = row.minimum_acr, checked_minimum(level)
        row.minimum_acr = after
        audit.record(
            session,
            clock=clock,
            actor=actor,
            action=self.minimum_acr_action,
            target=self.audit_target(entry),
            client_address=client_address,
            details={"before": before, "after": after},
        )

    def remove(
        self,
        *,
        session: Session,
        clock: Clock,
        actor: str,
        entry: Entry,
        client_address: str | None = None,
    ) -> None:
        row: Any = entry  # the mapped class, whichever: it has removed_at
        row.removed_at = clock.now()
        audit.record(
            session,
            clock=clock,
            actor=actor,
            action=self.removed_action,
            target=self.audit_target(entry),
            client_address=client_address,
        )
