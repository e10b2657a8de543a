"""Pre-produced OCSP answers (RFC 5019 §2.2.1; thisUpdate/nextUpdate as RFC 6960 §2.4 means them).

One signed answer per certificate of an issuing CA, SHA-1 CertID (RFC 5019 §2.1.1), no nonce,
stored in ``ca_ocsp_response`` and served as is by the responder (``ca_admin.ocsp``):

* :func:`produce` signs them in the caller's transaction at every revocation, hold and release,
  so the stored answer, the CRL and the audit record change together and the old answer is
  never served after the change commits;
* :func:`refresh_due` is the maintenance worker's pass: answers within ``ocsp_refresh_before``
  of their nextUpdate are signed again, certificates without one get one (every new
  certificate: issuance does not sign its answer, so that the OCSP signer's RSA signature stays
  off the issuing path, and a new certificate is answered live, "good", until the next pass,
  within ``ca_admin.maintenance.DEFAULT_INTERVAL``; also those issued before this table
  existed), and answers past their nextUpdate whose certificate has expired are dropped. Each
  batch locks the certificate rows it signs (``FOR UPDATE SKIP LOCKED``; on SQLite the write
  lock), so a revocation committing meanwhile is never overwritten by an older status, and two
  workers do not sign the same batch.

A certificate whose answer is missing or past nextUpdate is answered live, so a late or failed
pass costs speed, never correctness.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol, cast

from cryptography.hazmat.primitives import hashes
from sqlalchemy import Table, delete, exists, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ca_admin import ocsp
from ca_admin.models import IssuedCertificate, PreproducedOcspResponse
from ca_admin.runtime import CaRuntime
from core.db import transaction
from keys.errors import KeyUnavailable

REFRESH_BATCH = 500  # answers signed per transaction by the maintenance pass

_RESPONSES = cast(Table, PreproducedOcspResponse.__table__)
_CERTIFICATES = cast(Table, IssuedCertificate.__table__)


class StatusRow(Protocol):
    """What an answer is made of: an ``IssuedCertificate`` or a row of its columns."""

    @property
    def serial(self) -> str: ...
    @property
    def authority_id(self) -> int: ...
    @property
    def status(self) -> str: ...
    @property
    def revoked_at(self) -> datetime | None: ...
    @property
    def revocation_reason(self) -> str | None: ...


def produce(
    *,
    session: Session,
    runtime: CaRuntime,
    certificates: Iterable[StatusRow],
    refreshing: bool = False,
) -> int:
    """Sign and store the current answer of each certificate in the caller's transaction.

    A certificate whose CA has no OCSP signer (the root's) gets none; if one was stored, it is
    deleted rather than left saying something older; so is one whose signer's key is absent,
    unless ``refreshing`` (the status did not change). Returns the number signed.
    """
    authorities = runtime.authorities(session)
    now = runtime.clock.now().replace(microsecond=0)
    signed: list[dict[str, Any]] = []
    unsigned: list[str] = []
    for certificate in certificates:
        authority = authorities.get(certificate.authority_id)
        if authority is None:  # a CA created by another process in the last seconds
            runtime.forget_authorities()
            authorities = runtime.authorities(session)
            authority = authorities.get(certificate.authority_id)
        if authority is None or authority.role != "issuing" or authority.ocsp_key_uri is None:
            unsigned.append(certificate.serial)
            continue
        status = ocsp.certificate_status(
            (certificate.status, certificate.revoked_at, certificate.revocation_reason)
        )
        try:
            der = ocsp.sign_status(
                runtime=runtime,
                authority=authority,
                algorithm=hashes.SHA1(),  # noqa: S303 — RFC 5019 §2.1.1 CertID
                issuer_name_hash=authority.name_hash_sha1,
                issuer_key_hash=authority.key_hash_sha1,
                serial_number=int(certificate.serial, 16),
                status=status,
                this_update=now,
            )
        except KeyUnavailable:
            # The signer's key is absent (HSM token). After a status change the stored answer
            # is out of date and goes: the responder answers tryLater until the maintenance
            # pass signs a new one. A refresh keeps the old one, still true until nextUpdate.
            if not refreshing:
                unsigned.append(certificate.serial)
            continue
        signed.append(
            {
                "serial": certificate.serial,
                "authority_id": authority.id,
                "status": status.label,
                "this_update": now,
                "next_update": now + runtime.ocsp_lifetime,
                "der": der,
            }
        )
    if signed:
        session.execute(_upsert(session), signed)
    if unsigned:
        session.execute(delete(_RESPONSES).where(_RESPONSES.c.serial.in_(unsigned)))
    return len(signed)


def _upsert(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    statement = (pg_insert if dialect == "postgresql" else sqlite_insert)(_RESPONSES)
    return statement.on_conflict_do_update(
        index_elements=[_RESPONSES.c.serial],
        set_={
            name: statement.excluded[name]
            for name in ("authority_id", "status", "this_update", "next_update", "der")
        },
    )


_STATUS_COLUMNS = (
    _CERTIFICATES.c.serial,
    _CERTIFICATES.c.authority_id,
    _CERTIFICATES.c.status,
    _CERTIFICATES.c.revoked_at,
    _CERTIFICATES.c.revocation_reason,
)


def _refresh_batch(session: Session, runtime: CaRuntime) -> int:
    now = runtime.clock.now()
    serving = [
        authority.id
        for authority in runtime.authorities(session).values()
        if authority.role == "issuing" and authority.ocsp_key_uri is not None
    ]
    if not serving:
        return 0
    valid = (_CERTIFICATES.c.authority_id.in_(serving), _CERTIFICATES.c.not_after > now)
    due = (
        select(*_STATUS_COLUMNS)
        .join(_RESPONSES, _RESPONSES.c.serial == _CERTIFICATES.c.serial)
        .where(_RESPONSES.c.next_update <= now + runtime.ocsp_refresh_before, *valid)
        .limit(REFRESH_BATCH)
        .with_for_update(of=_CERTIFICATES, skip_locked=True)
    )
    rows = list(session.connection().execute(due))
    if len(rows) < REFRESH_BATCH:
        # Without an answer yet: certificates issued since the last pass (issuance leaves their
        # answer to us), and once, those issued before the upgrade that added the table.
        missing = (
            select(*_STATUS_COLUMNS)
            .where(~exists().where(_RESPONSES.c.serial == _CERTIFICATES.c.serial), *valid)
            .limit(REFRESH_BATCH - len(rows))
            .with_for_update(of=_CERTIFICATES, skip_locked=True)
        )
        rows += session.connection().execute(missing)
    return produce(session=session, runtime=runtime, certificates=rows, refreshing=True)


def refresh_due(runtime: CaRuntime) -> int:
    """The maintenance pass: re-sign what is due, one transaction per batch; returns how many."""
    if runtime.ocsp_lifetime <= runtime.ocsp_refresh_before:
        raise ValueError("an OCSP answer must outlive its refresh margin, or it is always due")
    total = 0
    while True:
        with transaction(runtime.session_factory) as session:
            signed = _refresh_batch(session, runtime)
        total += signed
        if signed < REFRESH_BATCH:
            break
    with transaction(runtime.session_factory) as session:
        # Past nextUpdate and not refreshed: the certificate expired (or its CA stopped
        # answering); the responder would sign live anyway, so the row is only weight.
        session.execute(delete(_RESPONSES).where(_RESPONSES.c.next_update <= runtime.clock.now()))
    return total
