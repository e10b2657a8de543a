"""Typed errors of the CA. Messages are translatable msgids (rendered in the caller's language)."""

from __future__ import annotations

from collections.abc import Callable

from core.errors import Conflict, DomainError, NotFound, PermissionDenied
from core.web.i18n import N_


class BadCertificateRequest(DomainError):
    """A CSR or request the CA refuses: garbage, wrong signature, weak or reused key."""

    code = "bad_certificate_request"


class PolicyViolation(DomainError):
    code = "policy_violation"


class ProfileIncomplete(PolicyViolation):
    """The official's record lacks what the certificate's subject is built from (provisioning
    accepts partial records, e.g. SCIM with only a userName). ``missing`` holds msgids of the
    missing facts, translated with the message, so every caller (API, pages, CLI) names them
    in its own language."""

    code = "profile_incomplete"

    def __init__(self, missing: tuple[str, ...]) -> None:
        super().__init__(
            N_(
                "The official's profile is incomplete for this certificate; missing: "
                "%(missing)s. Ask the unit's administrator to complete it, then request again."
            ),
            field="profile",
            missing=", ".join(missing),
        )
        self.missing = missing

    def text(self, translate: Callable[[str], str] = str) -> str:
        names = ", ".join(translate(name) for name in self.missing)
        return translate(self.message) % {"missing": names}


class UnknownCertificate(NotFound):
    code = "unknown_certificate"


class UnknownRequest(NotFound):
    code = "unknown_request"


class UnknownAuthority(NotFound):
    code = "unknown_authority"


class AlreadyRevoked(Conflict):
    code = "already_revoked"


class RequestAlreadyDecided(Conflict):
    code = "request_already_decided"


class ApprovalRefused(PermissionDenied):
    code = "approval_refused"
