"""Typed errors of the CA. Messages are translatable msgids (rendered in the caller's language)."""

from __future__ import annotations

from core.errors import Conflict, DomainError, NotFound, PermissionDenied


class BadCertificateRequest(DomainError):
    """A CSR or request the CA refuses: garbage, wrong signature, weak or reused key."""

    code = "bad_certificate_request"


class PolicyViolation(DomainError):
    code = "policy_violation"


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
