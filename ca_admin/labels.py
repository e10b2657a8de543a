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
    "ca.tsa.issued": N_("Time-stamping certificate issued"),
    "ca.timestamp.issued": N_("Time-stamp issued"),
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
    "tsa": N_("Time-stamping service"),
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

# Signature validation (signature_validation.py): ETSI EN 319 102-1 indications and the
# sub-indications the service reports, said as an official would understand them.
SIGNATURE_INDICATIONS = {
    "TOTAL-PASSED": N_("Valid signature"),
    "TOTAL-FAILED": N_("Invalid signature"),
    "INDETERMINATE": N_("Cannot be confirmed"),
}
SIGNATURE_SUB_INDICATIONS = {
    "HASH_FAILURE": N_("The document was changed after it was signed."),
    "SIG_CRYPTO_FAILURE": N_("The signature does not match the signer's certificate."),
    "REVOKED": N_("The signer's certificate was revoked before the document was signed."),
    "REVOKED_NO_POE": N_(
        "The signer's certificate was revoked after the time the signer states, but no "
        "timestamp proves that the document was signed before the revocation."
    ),
    "REVOKED_CA_NO_POE": N_(
        "The certification authority's own certificate was revoked, and no timestamp proves "
        "that the document was signed before that."
    ),
    "NO_CERTIFICATE_CHAIN_FOUND": N_(
        "The signer's certificate was not issued by a trusted certification authority."
    ),
    "OUT_OF_BOUNDS_NO_POE": N_(
        "The signer's certificate is expired or not yet valid, and no timestamp proves when "
        "the document was signed."
    ),
    "EXPIRED": N_("The signer's certificate is expired."),
    "NOT_YET_VALID": N_("The signer's certificate was not yet valid when the document was signed."),
    "TRY_LATER": N_("The signer's certificate is on hold: check the document again later."),
    "FORMAT_FAILURE": N_("The signature cannot be read."),
    "SIG_CONSTRAINTS_FAILURE": N_("The signer's certificate may not be used to sign documents."),
    "CHAIN_CONSTRAINTS_FAILURE": N_("The signer's certificate chain is not acceptable."),
    "CRYPTO_CONSTRAINTS_FAILURE": N_("The signature uses an algorithm too weak to be trusted."),
    "CERTIFICATE_CHAIN_GENERAL_FAILURE": N_("The signer's certificate chain cannot be checked."),
}
SIGNATURE_CERTIFICATE_STATUSES = {
    "good": N_("Valid"),
    "revoked": N_("Revoked"),
    "hold": N_("On hold"),
    "unknown": N_("Not known"),
}

LABELS: CodeLabels = {
    "audit_action": AUDIT_ACTIONS,
    "audit_actor": AUDIT_ACTORS,
    "certificate_status": CERTIFICATE_STATUSES,
    "certificate_request_status": REQUEST_STATUSES,
    "revocation_reason": REVOCATION_REASONS,
    "merger_job_status": MERGER_JOB_STATUSES,
    "signature_indication": SIGNATURE_INDICATIONS,
    "signature_sub_indication": SIGNATURE_SUB_INDICATIONS,
    "signature_certificate_status": SIGNATURE_CERTIFICATE_STATUSES,
}
