"""Scheduled upkeep of the online CAs, run by every serving process (harmless in parallel):
re-sign CRLs before their nextUpdate, sign a partitioned CA's full CRL that revocations left
behind (within ``CaRuntime.full_crl_max_delay``: the pass runs at least that often), re-issue
OCSP-signing certificates a month before they expire (both take the authority row lock, so two
workers never publish the same number), and re-sign pre-produced OCSP answers before their
nextUpdate (each batch locks its certificate rows, skipping those another worker holds:
ca_admin.preproduced_ocsp).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.orm import Session

from ca_admin import crl, hierarchy, preproduced_ocsp, reminders, renewals
from ca_admin.models import Authority, PublishedCrl
from ca_admin.runtime import CaRuntime
from core.db import transaction
from keys.signing_keys import key_algorithm

log = logging.getLogger(__name__)

ACTOR = "ca-scheduler"
OCSP_SIGNER_RENEW_BEFORE = timedelta(days=30)
DEFAULT_INTERVAL = 300.0  # seconds; far below the CRL refresh margin (a quarter of its life)


def pass_interval(runtime: CaRuntime) -> float:
    """Seconds between passes: every 5 minutes, or more often if the full CRL may lag behind a
    revocation for less than that (COMMUNE_SSO_CA_FULL_CRL_MAX_DELAY)."""
    return min(DEFAULT_INTERVAL, runtime.full_crl_max_delay.total_seconds())


def renew_ocsp_signers_due(*, session: Session, runtime: CaRuntime) -> list[str]:
    """Re-issue every OCSP-signing certificate that expires within 30 days; names the CAs."""
    now = runtime.clock.now()
    renewed = []
    for authority in session.scalars(select(Authority).where(Authority.role == "issuing")):
        if authority.ocsp_certificate_der is None or authority.ocsp_key_uri is None:
            continue
        current = x509.load_der_x509_certificate(authority.ocsp_certificate_der)
        if current.not_valid_after_utc - now > OCSP_SIGNER_RENEW_BEFORE:
            continue
        if authority.not_after - now <= OCSP_SIGNER_RENEW_BEFORE:
            continue  # the CA itself is ending: a rollover, not a new responder, is needed
        session.refresh(authority, with_for_update=True)
        current = x509.load_der_x509_certificate(authority.ocsp_certificate_der)
        if current.not_valid_after_utc - now > OCSP_SIGNER_RENEW_BEFORE:
            continue  # another worker renewed it while we waited for the lock
        # A file key is replaced by a fresh one; a PKCS#11 key has a fixed label: certify it again.
        fresh_key = authority.ocsp_key_uri.startswith("file:")
        hierarchy.issue_ocsp_signer(
            session=session,
            runtime=runtime,
            actor=ACTOR,
            authority=authority,
            algorithm=key_algorithm(runtime.key_store.get(authority.ocsp_key_uri)),
            key_uri=None if fresh_key else authority.ocsp_key_uri,
            reuse_key=not fresh_key,
        )
        renewed.append(authority.name)
    return renewed


def run_due(runtime: CaRuntime) -> tuple[list[int], list[str]]:
    """One pass: CRLs due for re-signing (CRL numbers) and OCSP signers renewed (CA names)."""
    with transaction(runtime.session_factory) as session:
        if session.scalar(select(PublishedCrl.authority_id).limit(1)) is None:
            return [], []  # no CA set up yet
        published = crl.refresh_due(
            session=session,
            runtime=runtime,
            actor=ACTOR,
            pass_interval=timedelta(seconds=pass_interval(runtime)),
        )
        renewed = renew_ocsp_signers_due(session=session, runtime=runtime)
        renewals.supersede_due(session=session, runtime=runtime)
    # After the signers: an answer re-signed now carries the renewed signer's certificate.
    signed = preproduced_ocsp.refresh_due(runtime)
    if signed:
        log.info("signed %d pre-produced OCSP answers", signed)
    # Expiry e-mails after the CRLs are safe: one transaction per certificate (reminders.py).
    reminders.send_due(runtime)
    return [p.crl_number for p in published], renewed


async def run_periodically(*, runtime: CaRuntime, interval: float) -> None:
    while True:
        started = time.monotonic()
        try:
            await asyncio.to_thread(run_due, runtime)
        except Exception:
            log.exception("CA maintenance failed; retrying in %s s", interval)
        # From start to start: a pass that signs a large full CRL must not push the next one
        # past the full CRL's maximum delay.
        await asyncio.sleep(max(1.0, interval - (time.monotonic() - started)))


def start(runtime: CaRuntime, interval: float | None = None) -> asyncio.Task[None]:
    return asyncio.create_task(
        run_periodically(runtime=runtime, interval=interval or pass_interval(runtime)),
        name="ca-maintenance",
    )
