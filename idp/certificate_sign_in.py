"""Sign-in with a TLS client certificate our CA issued (issue 16, "Certificate sign-in").

The official's browser presents the certificate in the TLS handshake with our reverse proxy,
which forwards it (core/web/client_certificate.py). The IdP does not judge certificates
itself: idp never imports ca_admin, so the composition root gives the runtime a
:data:`CertificateCheck` (commune_sso/ca_bridge.py) that answers from the CA's own records
(chain to one of our issuing CAs, validity, revocation status, clientAuth). What is left here
is the IdP's part: the citizen ID in the subject names the account, and only an active,
undeleted account signs in.

``amr`` of such a login: ``["pop"]`` (RFC 8176 §2: proof of possession of a key, used when
whether the key is hardware- or software-held is not known, as with a certificate that may be
in a USB token or in the browser's store). It counts as phishing-resistant
(idp/authentication_levels.py): TLS client authentication binds the proof to the TLS channel
with our proxy, so a look-alike site cannot relay it (NIST SP 800-63B §5.2.5).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.settings import Settings
from core.web.i18n import N_
from idp.models import Account, AccountProfile

AMR = ["pop"]


@dataclass(frozen=True)
class CertificateVerdict:
    """The CA's answer about a presented certificate: ``refusal`` None when it is good, else
    one of the reasons in :data:`REFUSALS`; ``citizen_id`` from the subject of a good one."""

    refusal: str | None
    serial: str
    citizen_id: str | None = None
    issuer: str | None = None


CertificateCheck = Callable[[Session, x509.Certificate, datetime], CertificateVerdict]

NOT_AVAILABLE = N_("Sign-in with a digital certificate is not available on this server.")
NO_CERTIFICATE = N_(
    "Your browser did not present a digital certificate. Plug in your USB token or choose your "
    "certificate when the browser asks, then try again."
)
UNREADABLE = N_("The digital certificate could not be read. Please contact the IT department.")
UNKNOWN_ACCOUNT = N_(
    "No official's account matches the citizen ID in this certificate. Please contact the IT "
    "department."
)
ACCOUNT_DISABLED = N_("This account is disabled. Please contact the IT department.")
# The CA's reasons (ca_admin/presented_certificates.py), worded for the official.
REFUSALS: dict[str, str] = {
    "unknown_issuer": N_(
        "This certificate was not issued by the province's certification authority. Use the "
        "sign-in certificate the province issued to you."
    ),
    "not_yet_valid": N_("This certificate is not valid yet."),
    "expired": N_("This certificate has expired. Renew it, or sign in with your password."),
    "revoked": N_(
        "This certificate has been revoked or suspended and can no longer be used to sign in."
    ),
    "not_for_client_auth": N_(
        "This certificate is not meant for signing in (a document signing certificate, for "
        "example). Use your sign-in certificate."
    ),
}
# Signed by our key yet missing from our records: to the official, like a stranger's.
REFUSALS["not_issued"] = REFUSALS["unknown_issuer"]


def available(settings: Settings, check: CertificateCheck | None) -> bool:
    """Offered only where a proxy forwards certificates and the CA can judge them."""
    return bool(settings.client_certificate_header) and check is not None


def refusal_message(reason: str) -> str:
    return REFUSALS.get(reason, REFUSALS["unknown_issuer"])


def account_of(session: Session, citizen_id: str) -> Account | None:
    """The account whose profile carries ``citizen_id`` (unique), unless deleted."""
    return session.scalar(
        select(Account)
        .join(AccountProfile, AccountProfile.account_id == Account.id)
        .where(AccountProfile.citizen_id == citizen_id, AccountProfile.deleted_at.is_(None))
    )
