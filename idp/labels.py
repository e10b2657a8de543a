"""What idp's stored codes are called on a page: one table per kind of code (core.web.code_labels).

Pages print codes through the ``label`` / ``actor_label`` filters, the CLI and the admin API
through :func:`core.web.code_labels.label_msgid`; nothing else maps these codes to words.
Adding an audit action, a status or a reason means adding its label here (the page test fails
until it is).
"""

from __future__ import annotations

from collections.abc import Callable

from core.web.code_labels import CodeLabels
from core.web.i18n import N_

AUDIT_ACTIONS = {
    "login.success": N_("Sign-in succeeded"),
    "login.failure": N_("Sign-in failed"),
    "login.refused_locked": N_("Sign-in refused: too many failed attempts"),
    "login.second_factor_required": N_("Sign-in: authenticator code asked for"),
    "login.second_factor_failure": N_("Sign-in: wrong authenticator code"),
    "login.second_factor_replayed": N_("Sign-in: authenticator code used twice"),
    "login.passkey_failure": N_("Sign-in with a passkey refused"),
    "login.certificate_failure": N_("Sign-in with a digital certificate refused"),
    "login_throttle.cleared": N_("Sign-in throttle cleared"),
    "account.password_reset_requested": N_("Password reset link sent"),
    "account.password_reset": N_("Password reset by the official"),
    "login.upstream_failure": N_("Sign-in through another provider did not complete"),
    "login.upstream_no_match": N_("Sign-in through another provider: no matching official"),
    "login.upstream_refused_disabled": N_(
        "Sign-in through another provider refused: account disabled"
    ),
    "logout": N_("Signed out"),
    "logout.delivery_failed": N_("Sign-out notice to an app failed"),
    "consent.grant": N_("Allowed an app access"),
    "consent.deny": N_("Refused an app access"),
    "token.code_replay": N_("Sign-in code used twice: its tokens revoked"),
    "token.revoke": N_("Token revoked by an app"),
    "account.create": N_("New account created"),
    "account.update": N_("Account details changed"),
    "account.set_password": N_("Password set by an administrator"),
    "account.disable": N_("Account disabled"),
    "account.enable": N_("Account enabled"),
    "account.delete": N_("Account deleted"),
    "account.move": N_("Account moved to another unit"),
    "account.password_changed": N_("Password changed"),
    "account.password_change_refused": N_("Password change refused"),
    "account.activation_code_issued": N_("Activation code issued"),
    "account.activated": N_("Account activated"),
    "account.activation_failed": N_("Activation failed"),
    "account.sign_out_everywhere": N_("Signed out everywhere"),
    "account.session_ended": N_("A session was ended"),
    "account.other_sessions_ended": N_("Other sessions were ended"),
    "account.totp_enabled": N_("Two-step verification turned on"),
    "account.totp_disabled": N_("Two-step verification turned off"),
    "account.recovery_code_used": N_("Recovery code used"),
    "account.recovery_codes_regenerated": N_("New recovery codes made"),
    "account.passkey_added": N_("Passkey added"),
    "account.passkey_removed": N_("Passkey removed"),
    "account.passkey_refused": N_("Passkey not added"),
    "account.passkey_clone_suspected": N_("Passkey refused: it may have been copied"),
    "import.submit": N_("Import file submitted"),
    "import.start": N_("Import started"),
    "import.resume": N_("Import resumed"),
    "import.resume_requested": N_("Import resumption requested"),
    "import.batch": N_("Import batch written"),
    "import.activation_codes_downloaded": N_("Activation codes downloaded"),
    "unit.sync": N_("Units synchronised"),
    "unit.rename": N_("Unit renamed"),
    "unit.merge": N_("Units merged"),
    "unit.dissolve": N_("Unit dissolved"),
    "unit.passkeys_required": N_("Passkeys required in the unit"),
    "unit.passkeys_not_required": N_("Passkeys no longer required in the unit"),
    "client.create": N_("App registered"),
    "client.registered_from_page": N_("App registered from the admin pages"),
    "client.update": N_("App updated"),
    "client.update_uris": N_("App addresses changed"),
    "client.rotate_secret": N_("App secret replaced"),
    "client.revoke_old_secret": N_("App's previous secret revoked"),
    "client.remove": N_("App removed"),
    "cas.service_registered": N_("CAS service registered"),
    "cas.service_removed": N_("CAS service removed"),
    "cas.service_minimum_acr": N_("CAS service's lowest sign-in level changed"),
    "saml.sp_registered": N_("SAML application registered"),
    "saml.sp_removed": N_("SAML application removed"),
    "saml.sp_minimum_acr": N_("SAML application's lowest sign-in level changed"),
    "saml.assertion_issued": N_("Signed in to a SAML application"),
    "upstream.registered": N_("Sign-in provider added"),
    "upstream.removed": N_("Sign-in provider removed"),
    "upstream.changed": N_("Sign-in provider changed"),
    "scim.user.create": N_("Account created through SCIM"),
    "scim.user.replace": N_("Account replaced through SCIM"),
    "scim.user.patch": N_("Account changed through SCIM"),
    "scim.group.create": N_("Group created through SCIM"),
    "scim.group.replace": N_("Group replaced through SCIM"),
    "scim.group.patch": N_("Group changed through SCIM"),
    "scim.group.delete": N_("Group deleted through SCIM"),
    "admin.grant": N_("Administrator rights granted"),
    "admin.revoke": N_("Administrator rights withdrawn"),
    "audit.verify": N_("Audit log checked"),
}

ACCOUNT_STATUSES = {
    "active": N_("Active"),
    "disabled": N_("Disabled"),
    "pending": N_("Not yet activated"),
    "deleted": N_("Deleted"),
}

UNIT_STATUSES = {
    "active": N_("Active"),
    "merged": N_("Merged"),
    "dissolved": N_("Dissolved"),
}

UNIT_EVENTS = {
    "created": N_("Unit created"),
    "renamed": N_("Unit renamed"),
    "merged": N_("Unit merged"),
    "dissolved": N_("Unit dissolved"),
}

# The keys of a unit event's details, and the values of its "source".
UNIT_EVENT_DETAILS = {
    "code": N_("Unit code"),
    "source": N_("Source"),
    "old_name": N_("Old name"),
    "new_name": N_("New name"),
    "old_division_type": N_("Old type"),
    "new_division_type": N_("New type"),
    "from_unit": N_("From unit"),
    "to_unit": N_("To unit"),
    "reason": N_("Reason"),
    "accounts_moved": N_("Accounts moved"),
    "wards_moved": N_("Wards moved"),
    "absorbed": N_("Unit taken in"),
}
UNIT_EVENT_SOURCES = {"sync": N_("the administrative units list (unit sync)")}

LOGOUT_DELIVERY_STATUSES = {
    "pending": N_("Pending"),
    "delivered": N_("Delivered"),
    "failed": N_("Failed"),
}
# Why the sessions that a back-channel logout notice is about were ended.
LOGOUT_REASONS = {
    "logout": N_("Signed out"),
    "account_disabled": N_("Account disabled"),
    "sign_out_everywhere": N_("Signed out everywhere"),
    "password_changed": N_("Password changed"),
    "ended_by_official": N_("Session ended by the official"),
}

# What a sign-in throttle counts (idp.login_throttle.KINDS).
LOGIN_THROTTLE_KINDS = {
    "account_address": N_("This account from this address"),
    "account": N_("This account from unknown devices"),
    "device": N_("This account from one known device"),
    "address": N_("This address, any account"),
    "reset_account": N_("Reset links sent by e-mail (per account)"),
    "reset_address": N_("Reset links asked for from this address"),
}

# Import file columns, as refused-row errors and changed-field lists name them.
IMPORT_COLUMNS = {
    "citizen_id": N_("Citizen ID"),
    "full_name": N_("Full name"),
    "username": N_("Username"),
    "email": N_("E-mail"),
    "phone": N_("Phone"),
    "unit_code": N_("Unit code"),
    "agency": N_("Agency"),
    "position": N_("Position"),
    "file": N_("File"),
}
IMPORT_JOB_STATUSES = {
    "queued": N_("Waiting"),
    "running": N_("In progress"),
    "done": N_("Done"),
    "failed": N_("Failed"),
}
IMPORT_ROW_ACTIONS = {
    "create": N_("New account"),
    "update": N_("Update"),
    "unchanged": N_("Unchanged"),
    "error": N_("Refused"),
}

LABELS: CodeLabels = {
    "audit_action": AUDIT_ACTIONS,
    "account_status": ACCOUNT_STATUSES,
    "unit_status": UNIT_STATUSES,
    "unit_event": UNIT_EVENTS,
    "unit_event_detail": UNIT_EVENT_DETAILS,
    "unit_event_source": UNIT_EVENT_SOURCES,
    "logout_delivery_status": LOGOUT_DELIVERY_STATUSES,
    "logout_reason": LOGOUT_REASONS,
    "login_throttle_kind": LOGIN_THROTTLE_KINDS,
    "import_column": IMPORT_COLUMNS,
    "import_job_status": IMPORT_JOB_STATUSES,
    "import_row_action": IMPORT_ROW_ACTIONS,
}


def import_column(name: str, translate: Callable[[str], str]) -> str:
    """An import column's name in the reader's language (the CLI and the per-row result file)."""
    msgid = IMPORT_COLUMNS.get(name)
    return translate(msgid) if msgid else name


# The attribute groups an administrator releases to a CAS or SAML app
# (idp.released_attributes.RELEASABLE).
ATTRIBUTE_GROUPS = {
    "name": N_("Full name"),
    "email": N_("E-mail address"),
    "unit": N_("Unit (code and name)"),
    "province": N_("Province (code and name)"),
    "agency": N_("Agency"),
    "position": N_("Position"),
}
