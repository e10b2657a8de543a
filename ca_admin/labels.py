"""What ca_admin's stored codes are called on a page: one table per kind (core.web.code_labels).

The CA pages print certificate statuses, revocation reasons and merger job states through the
``label`` filter; idp's audit page shows the CA's audit actions and actors through the tables
the composition root merges in. Adding a code means adding its label here.
"""

from __future__ import annotations

from core.web.code_labels import CodeLabels
from core.web.i18n import N_

AUDIT_ACTIONS = {
    "ca.root.created": N_("Root CA created"),
    "ca.issuing.created": N_("Issuing CA created"),
    "ca.ocsp_signer.issued": N_("OCSP signing certificate issued"),
    "ca.request.submitted": N_("Certificate request submitted"),
    "ca.request.approved": N_("Certificate request approved"),
    "ca.request.rejected": N_("Certificate request rejected"),
    "ca.key.generated": N_("Key generated on the server"),
    "ca.certificate.issued": N_("Certificate issued"),
    "ca.certificate.revoked": N_("Certificate revoked"),
    "ca.certificate.reason_changed": N_("Revocation reason changed to key compromise"),
    "ca.certificate.held": N_("Certificate put on hold"),
    "ca.certificate.released": N_("Certificate released from hold"),
    "ca.certificate.expiry_reminder": N_("Certificate expiry reminder sent"),
    "ca.crl.published": N_("Revocation list (CRL) published"),
    "ca.crl.deferred": N_("Revocation list (CRL) owed: the CA key is unavailable"),
    "ca.signature.validated": N_("Document signatures validated"),
    "ca.merger.planned": N_("Unit merger planned for certificates"),
    "ca.merger.approved": N_("Unit merger for certificates approved"),
    "ca.merger.completed": N_("Unit merger for certificates completed"),
}

AUDIT_ACTORS = {
    "ca-scheduler": N_("Certificate authority (scheduled task)"),
    "ca-lifecycle": N_("Certificate authority (account changes)"),
}

CERTIFICATE_STATUSES = {
    "good": N_("Valid"),
    "hold": N_("On hold"),
    "revoked": N_("Revoked"),
    "expired": N_("Expired"),
    "renewed": N_("Renewed"),
}
REQUEST_STATUSES = {
    "pending": N_("Waiting for approval"),
    "approved": N_("Approved: collect your key file"),
    "rejected": N_("Rejected"),
    "issued": N_("Issued"),
}
# RFC 5280 §5.3.1 reason codes, as stored; the revoke form offers all but certificateHold.
REVOCATION_REASONS = {
    "unspecified": N_("Unspecified"),
    "keyCompromise": N_("Key compromise"),
    "affiliationChanged": N_("Affiliation changed"),
    "superseded": N_("Superseded"),
    "cessationOfOperation": N_("Cessation of operation"),
    "privilegeWithdrawn": N_("Privilege withdrawn"),
    "certificateHold": N_("On hold"),
}
MERGER_JOB_STATUSES = {
    "pending_approval": N_("Waiting for approval"),
    "approved": N_("Approved"),
    "done": N_("Done"),
}

LABELS: CodeLabels = {
    "audit_action": AUDIT_ACTIONS,
    "audit_actor": AUDIT_ACTORS,
    "certificate_status": CERTIFICATE_STATUSES,
    "certificate_request_status": REQUEST_STATUSES,
    "revocation_reason": REVOCATION_REASONS,
    "merger_job_status": MERGER_JOB_STATUSES,
}
