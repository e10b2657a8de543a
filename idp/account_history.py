"""An official's history: the audit entries about the account (target ``account:<username>``).

Imports before this module existed wrote one entry per batch (``import.batch``, target
``import:<job>``) and none per official, so an imported official's history was empty. Imports
now write ``account.create`` / ``account.update`` per official; for an official an earlier
import created, the creation is told from the import job whose run covers the account's
creation time (the job row keeps who ran it and when), marked as derived.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from core import audit
from idp.models import Account, ImportJob

CREATED = "account.create"


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    action: str
    actor: str
    details: dict[str, Any] = field(default_factory=dict)
    # True when told from the import job rather than read from the audit log.
    derived: bool = False

    @property
    def via_import(self) -> bool:
        return self.details.get("via") == "import"


def target_of(account: Account) -> str:
    return f"account:{account.username}"


def history(session: Session, account: Account, *, limit: int = 20) -> list[HistoryEntry]:
    """The newest ``limit`` events about ``account``, newest first."""
    target = target_of(account)
    recorded = [
        HistoryEntry(
            at=entry.at, action=entry.action, actor=entry.actor, details=_details(entry.details)
        )
        for entry in session.scalars(
            select(audit.AuditEntry)
            .where(audit.AuditEntry.target == target)
            .order_by(audit.AuditEntry.seq.desc())
            .limit(limit)
        )
    ]
    if len(recorded) == limit or _creation_recorded(session, target):
        return recorded
    creation = _creation_by_import(session, account)
    return [*recorded, creation] if creation is not None else recorded


def _details(stored: str) -> dict[str, Any]:
    details = json.loads(stored) if stored else {}
    return details if isinstance(details, dict) else {}


def _creation_recorded(session: Session, target: str) -> bool:
    return (
        session.scalar(
            select(audit.AuditEntry.seq)
            .where(audit.AuditEntry.target == target, audit.AuditEntry.action == CREATED)
            .limit(1)
        )
        is not None
    )


def _creation_by_import(session: Session, account: Account) -> HistoryEntry | None:
    job = session.scalar(
        select(ImportJob)
        .where(
            ImportJob.dry_run.is_(False),
            ImportJob.created_at <= account.created_at,
            or_(ImportJob.finished_at.is_(None), ImportJob.finished_at >= account.created_at),
        )
        .order_by(ImportJob.id.desc())
        .limit(1)
    )
    if job is None:
        return None
    return HistoryEntry(
        at=account.created_at,
        action=CREATED,
        actor=job.actor,
        details={"via": "import", "import": job.job_id, "file": job.file_name},
        derived=True,
    )
