"""Expiry reminders by e-mail, 30, 7 and 1 days before a certificate expires.

Run by the CA maintenance task (every serving process, harmless in parallel). Each
(certificate, threshold) is handled once: the ``ca_reminder_sent`` row is inserted before the
message is sent and committed after, one certificate per transaction, so a second worker
waits on the unique key and then skips, and a failed send is rolled back and tried again on the
next pass. A certificate already renewed gets no reminder; when several thresholds are due at
once (the service was down), only the nearest one is sent and the others are recorded as
covered.

The message is in Vietnamese, then English (CONVENTIONS §15), and goes to the e-mail address the
IdP holds for the official (never one from a CSR). Without an SMTP host it is written as an
RFC 5322 ``.eml`` file under ``<var_dir>/mail/`` (the embedded default), so it can be read.
"""

from __future__ import annotations

import logging
import smtplib
from datetime import datetime, timedelta
from email.message import EmailMessage

from babel.support import Translations
from sqlalchemy import and_, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from ca_admin.lifecycle import CA_PROFILES
from ca_admin.mail import Mailer, MailSettings, catalogues, compose_bilingual, vietnam_time
from ca_admin.models import IssuedCertificate, ReminderSent
from ca_admin.runtime import CaRuntime
from ca_admin.serials import openssl_serial
from core import audit
from core.db import transaction
from core.web.i18n import N_

log = logging.getLogger(__name__)

THRESHOLDS_DAYS = (30, 7, 1)
ACTOR = "ca-scheduler"
BATCH_LIMIT = 500  # certificates per pass; the next pass (minutes later) takes the rest

SUBJECT = N_("Your signing certificate expires in %(days)s day(s)")
BODY = N_(
    "Dear %(name)s,\n\n"
    "Your digital signing certificate (serial number %(serial)s) expires on %(expiry)s, "
    "in %(days)s day(s).\n\n"
    "To keep signing documents without interruption, renew it before then: sign in at\n"
    "%(url)s\n"
    'and choose "Renew" next to the certificate. Your unit\'s administrator approves the '
    "request.\n\n"
    "If you have already renewed it, please ignore this message.\n\n"
    "This is an automatic message; do not reply to it."
)


def compose(
    *,
    settings: MailSettings,
    translations: dict[str, Translations],
    recipient: str,
    name: str,
    serial: str,
    not_after: datetime,
    days: int,
    now: datetime,
) -> EmailMessage:
    """The reminder: Vietnamese first, then English, in one plain-text UTF-8 message."""
    return compose_bilingual(
        settings=settings,
        translations=translations,
        recipient=recipient,
        subject=SUBJECT,
        body=BODY,
        values={
            "name": name,
            "serial": serial,
            "expiry": vietnam_time(not_after),
            "days": days,
            "url": f"{settings.base_url}/ca/pages/",
        },
        now=now,
    )


def _due(session: Session, now: datetime, threshold: int) -> list[IssuedCertificate]:
    """Good, unexpired certificates within ``threshold`` days of expiry, not renewed yet and
    without a reminder for this threshold."""
    renewal = aliased(IssuedCertificate)
    return list(
        session.scalars(
            select(IssuedCertificate)
            .where(
                IssuedCertificate.status == "good",
                IssuedCertificate.subject_ref.is_not(None),
                IssuedCertificate.profile.not_in(CA_PROFILES),
                IssuedCertificate.not_after > now,
                IssuedCertificate.not_after <= now + timedelta(days=threshold),
                ~exists().where(
                    and_(
                        ReminderSent.certificate_id == IssuedCertificate.id,
                        ReminderSent.threshold_days == threshold,
                    )
                ),
                ~exists().where(
                    and_(renewal.renewal_of_id == IssuedCertificate.id, renewal.status == "good")
                ),
            )
            .order_by(IssuedCertificate.not_after)
            .limit(BATCH_LIMIT)
        )
    )


def _handle(
    *,
    runtime: CaRuntime,
    mailer: Mailer,
    translations: dict[str, Translations],
    certificate_id: int,
) -> str | None:
    """One certificate, in its own transaction: the outcome, or None if nothing was due."""
    with transaction(runtime.session_factory) as session:
        certificate = session.get(IssuedCertificate, certificate_id)
        now = runtime.clock.now()
        if certificate is None or certificate.status != "good" or certificate.not_after <= now:
            return None
        left = certificate.not_after - now
        done = set(
            session.scalars(
                select(ReminderSent.threshold_days).where(
                    ReminderSent.certificate_id == certificate.id
                )
            )
        )
        due = [t for t in THRESHOLDS_DAYS if left <= timedelta(days=t) and t not in done]
        if not due:
            return None
        nearest = min(due)
        identity = runtime.directory.find(session, subject_ref=certificate.subject_ref or "")
        recipient = identity.email if identity is not None and identity.active else None
        outcome = "sent" if recipient else "no_address"
        try:
            with session.begin_nested():
                for threshold in due:
                    session.add(
                        ReminderSent(
                            certificate_id=certificate.id,
                            threshold_days=threshold,
                            at=now,
                            outcome=outcome if threshold == nearest else "covered",
                            recipient=recipient if threshold == nearest else None,
                        )
                    )
                session.flush()
        except IntegrityError:
            return None  # another worker claimed it first
        audit.record(
            session,
            clock=runtime.clock,
            actor=ACTOR,
            action="ca.certificate.expiry_reminder",
            target=f"cert:{certificate.serial}",
            details={"threshold_days": nearest, "outcome": outcome, "covered": sorted(due)[1:]},
        )
        if recipient:
            days = max(1, -(-left // timedelta(days=1)))  # whole days left, rounded up
            mailer.send(
                compose(
                    settings=mailer.settings,
                    translations=translations,
                    recipient=recipient,
                    name=identity.full_name if identity else certificate.common_name,
                    serial=openssl_serial(certificate.serial),
                    not_after=certificate.not_after,
                    days=days,
                    now=now,
                )
            )
        return outcome


def send_due(runtime: CaRuntime) -> dict[str, int]:
    """One pass over every threshold; counts of outcomes (``sent``, ``no_address``)."""
    mailer = runtime.mailer
    if mailer is None:
        return {}
    translations = catalogues()
    with transaction(runtime.session_factory) as session:
        now = runtime.clock.now()
        candidates = {c.id for t in THRESHOLDS_DAYS for c in _due(session, now, t)}
    counts: dict[str, int] = {}
    for certificate_id in sorted(candidates):
        try:
            outcome = _handle(
                runtime=runtime,
                mailer=mailer,
                translations=translations,
                certificate_id=certificate_id,
            )
        except (OSError, smtplib.SMTPException):
            # Rolled back: the reminder is tried again on the next pass.
            log.exception("expiry reminder for certificate %s not sent", certificate_id)
            outcome = "failed"
        if outcome:
            counts[outcome] = counts.get(outcome, 0) + 1
    return counts
