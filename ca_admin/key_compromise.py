"""An official reports that the key of their certificate is lost or compromised (issue 18).

The certificate is revoked as ``keyCompromise`` (RFC 5280 §5.3.1), with the date the key was
(suspected) compromised as invalidityDate when the official knows it (§5.3.2); a certificate
already revoked for another reason (superseded by a renewal) changes its reason to
keyCompromise. ``revocation.revoke`` audits it and re-signs the CRL in the caller's
transaction. Then the holder is told by e-mail at the address the IdP holds: if someone else
made the report (a stolen session), the official hears of it at once.

The message is sent before the transaction commits, as the expiry reminders are: a failed send
is logged and never undoes the revocation (a lost key must be revoked even when mail is down).
"""

from __future__ import annotations

import logging
import smtplib
from datetime import datetime

from sqlalchemy.orm import Session

from ca_admin import revocation
from ca_admin.mail import catalogues, compose_bilingual, vietnam_time
from ca_admin.models import IssuedCertificate
from ca_admin.runtime import CaRuntime
from ca_admin.serials import openssl_serial
from core.web.i18n import N_

log = logging.getLogger(__name__)

SUBJECT = N_("Your signing certificate %(serial)s was revoked: key lost or compromised")
BODY = N_(
    "Dear %(name)s,\n\n"
    "Your digital signing certificate (serial number %(serial)s) was revoked on %(when)s "
    "because its key was reported lost or compromised. Documents can no longer be signed "
    "with it.\n\n"
    "If you did not make this report, tell your unit's administrator at once.\n\n"
    "To sign again, request a new certificate at\n"
    "%(url)s\n\n"
    "This is an automatic message; do not reply to it."
)


def report(
    *,
    session: Session,
    runtime: CaRuntime,
    actor: str,
    serial: str,
    invalidity_date: datetime | None,
) -> IssuedCertificate:
    """Revoke as keyCompromise (audited, CRL re-signed), then tell the holder by e-mail."""
    certificate = revocation.revoke(
        session=session,
        runtime=runtime,
        actor=actor,
        serial=serial,
        reason="keyCompromise",
        invalidity_date=invalidity_date,
    )
    _notify_holder(session, runtime, certificate)
    return certificate


def _notify_holder(session: Session, runtime: CaRuntime, certificate: IssuedCertificate) -> None:
    mailer = runtime.mailer
    if mailer is None or certificate.subject_ref is None:
        return
    identity = runtime.directory.find(session, subject_ref=certificate.subject_ref)
    if identity is None or not identity.email:
        return
    message = compose_bilingual(
        settings=mailer.settings,
        translations=catalogues(),
        recipient=identity.email,
        subject=SUBJECT,
        body=BODY,
        values={
            "name": identity.full_name,
            "serial": openssl_serial(certificate.serial),
            "when": vietnam_time(certificate.revoked_at or runtime.clock.now()),
            "url": f"{mailer.settings.base_url}/ca/pages/",
        },
        now=runtime.clock.now(),
    )
    try:
        mailer.send(message)
    except (OSError, smtplib.SMTPException):
        log.exception("key compromise notice for certificate %s not sent", certificate.serial)
