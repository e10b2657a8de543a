"""What an account lifecycle event does to its holder's certificates (Decree 68/2024/ND-CP:
a certificate is revoked when its holder's position no longer matches it, on retirement, and
when the holder's unit is merged or dissolved).

ca_admin does not import idp (DESIGN): the composition root reads the IdP's lifecycle outbox
and calls :func:`handle_account_event` with the event's kind, the account's ``sub`` and payload.

The mapping, and why:

* ``account.disabled`` -> **certificateHold** (RFC 5280 §5.3.1), not revocation. Disabling is
  often temporary (leave, an inquiry, a mistyped SCIM flag); a hold stops every signature at
  once, like a revocation does, but is reversible, as Keycloak/EJBCA admins expect of a
  suspension. The holds placed this way are remembered (:class:`LifecycleHold`).
* ``account.enabled`` -> release exactly those holds (never a hold an admin placed by hand,
  and never one turned into a revocation since).
* ``account.deleted`` -> **cessationOfOperation**: the official left the service or retired;
  the certificate is no longer needed for its purpose. Also turns a lifecycle hold into a
  revocation (the IdP publishes ``disabled`` then ``deleted`` for a deletion).
* ``account.moved`` of one official (SCIM, an admin's edit) -> **affiliationChanged** for every
  certificate that does not name the new unit: the subject's L= (unit) no longer matches.
* ``account.moved`` because the whole unit was merged (``commune-sso unit merge`` publishes
  ``from_unit``/``to_unit``) -> nothing here. Those certificates are revoked *and re-issued for
  the same key* by a unit-merger job (unit_merger.py), which is previewed and approved first: a
  side effect of the feed must not revoke a whole ward's certificates unannounced and leave its
  officials unable to sign until they each re-apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ca_admin import revocation
from ca_admin.models import IssuedCertificate, LifecycleHold
from ca_admin.runtime import CaRuntime

ACCOUNT_DISABLED = "account.disabled"
ACCOUNT_ENABLED = "account.enabled"
ACCOUNT_DELETED = "account.deleted"
ACCOUNT_MOVED = "account.moved"

ACTOR = "ca-lifecycle"  # audit actor; the IdP-side actor goes into the details as "by"
# Certificates the CA signs for its own operation carry no subject_ref; listed for clarity.
CA_PROFILES = ("issuing-ca", "ocsp-signing")


def _valid_certificates(
    session: Session, runtime: CaRuntime, subject_ref: str, statuses: tuple[str, ...]
) -> list[IssuedCertificate]:
    return list(
        session.scalars(
            select(IssuedCertificate)
            .where(
                IssuedCertificate.subject_ref == subject_ref,
                IssuedCertificate.status.in_(statuses),
                IssuedCertificate.not_after > runtime.clock.now(),
                IssuedCertificate.profile.not_in(CA_PROFILES),
            )
            .order_by(IssuedCertificate.id)
            .with_for_update()
        )
    )


def is_unit_merger_move(payload: Mapping[str, Any]) -> bool:
    """A whole unit merged: ``idp.units.merge`` marks its moves with ``cause: unit.merge``."""
    return payload.get("cause") == "unit.merge"


def handle_account_event(
    *,
    session: Session,
    runtime: CaRuntime,
    kind: str,
    subject_ref: str,
    payload: Mapping[str, Any],
    event_id: int = 0,
    republish: bool = True,
) -> list[IssuedCertificate]:
    """Apply one lifecycle event in the caller's transaction; returns the certificates changed.

    Idempotent: a certificate already in the target state is skipped, so handling the same
    event twice changes nothing the second time. Unknown kinds are ignored (a newer IdP may
    publish kinds this CA does not act on).
    """
    details: dict[str, object] = {"cause": kind, "event": event_id, "by": payload.get("by")}
    if kind == ACCOUNT_DISABLED:
        certificates = _valid_certificates(session, runtime, subject_ref, ("good",))
        held = revocation.revoke_many(
            session=session,
            runtime=runtime,
            actor=ACTOR,
            certificates=certificates,
            reason="certificateHold",
            details=details,
            republish=republish,
        )
        now = runtime.clock.now()
        for certificate in held:
            if session.get(LifecycleHold, certificate.id) is None:
                session.add(LifecycleHold(certificate_id=certificate.id, event_id=event_id, at=now))
        return held
    if kind == ACCOUNT_ENABLED:
        holds = session.scalars(
            select(LifecycleHold)
            .join(IssuedCertificate, IssuedCertificate.id == LifecycleHold.certificate_id)
            .where(IssuedCertificate.subject_ref == subject_ref)
            .order_by(LifecycleHold.certificate_id)
        ).all()
        released = []
        for hold in holds:
            on_hold = session.get(IssuedCertificate, hold.certificate_id)
            session.delete(hold)
            if on_hold is not None and on_hold.status == "hold":
                released.append(
                    revocation.release_hold(
                        session=session,
                        runtime=runtime,
                        actor=ACTOR,
                        serial=on_hold.serial,
                        republish=republish,
                    )
                )
        return released
    if kind == ACCOUNT_DELETED:
        return _revoke(
            session, runtime, subject_ref, "cessationOfOperation", details, republish=republish
        )
    if kind == ACCOUNT_MOVED:
        if is_unit_merger_move(payload):
            return []  # a unit-merger job re-issues these (module docstring)
        new_unit = payload.get("to")
        return _revoke(
            session,
            runtime,
            subject_ref,
            "affiliationChanged",
            details | {"from_unit": payload.get("from"), "to_unit": new_unit},
            keep_unit=str(new_unit) if new_unit else None,
            republish=republish,
        )
    return []


def _revoke(
    session: Session,
    runtime: CaRuntime,
    subject_ref: str,
    reason: str,
    details: dict[str, object],
    *,
    keep_unit: str | None = None,
    republish: bool = True,
) -> list[IssuedCertificate]:
    certificates = [
        c
        for c in _valid_certificates(session, runtime, subject_ref, ("good", "hold"))
        # A certificate issued after the move (the feed may lag) already names the new unit.
        if keep_unit is None or c.unit_code != keep_unit
    ]
    revoked = revocation.revoke_many(
        session=session,
        runtime=runtime,
        actor=ACTOR,
        certificates=certificates,
        reason=reason,
        details=details,
        republish=republish,
    )
    if revoked:
        session.execute(
            delete(LifecycleHold).where(LifecycleHold.certificate_id.in_([c.id for c in revoked]))
        )
    return revoked
