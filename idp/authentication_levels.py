"""Authentication levels: the ``acr`` values of our ID tokens (OIDC Core §2) and how an app or a
unit asks for one.

Three ordered levels, named by URNs of our own (no registry names these levels for a province's
officials; a URN does not depend on where the provider is deployed):

* ``urn:commune-sso:acr:password`` — the password alone, or a login through an upstream
  provider, whose methods we cannot vouch for;
* ``urn:commune-sso:acr:mfa`` — two factors, at least one of them phishable (password and a
  TOTP or recovery code);
* ``urn:commune-sso:acr:phishing-resistant`` — a WebAuthn credential, bound by the browser to
  our origin (NIST SP 800-63B §5.2.5): a passkey with user verification alone, or the password
  then a passkey; or a TLS client certificate of our CA (``pop``, idp/certificate_sign_in.py),
  whose proof is bound to the TLS channel.

The level follows from the session's ``amr`` (RFC 8176), so every session, token and protocol
tells the same story. An app asks for a level with ``acr_values`` (OIDC Core §3.1.2.1; we treat
them as essential: the login must reach the lowest level listed that we know, values we do not
know are ignored) or has a minimum of its own (``Client.minimum_acr``); a unit can require the
phishing-resistant level of all its officials, and a province of all its wards' officials.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, aliased

from core import audit
from core.clock import Clock
from core.errors import DomainError
from core.web.i18n import N_
from idp.models import Account, AccountProfile, Unit

PASSWORD = "urn:commune-sso:acr:password"
MULTI_FACTOR = "urn:commune-sso:acr:mfa"
PHISHING_RESISTANT = "urn:commune-sso:acr:phishing-resistant"
# Lowest first: the rank of a level is its index.
LEVELS = (PASSWORD, MULTI_FACTOR, PHISHING_RESISTANT)
LEVEL_LABELS = {
    PASSWORD: N_("Password"),
    MULTI_FACTOR: N_("Two factors (password and a code)"),
    PHISHING_RESISTANT: N_("Phishing-resistant (passkey or certificate)"),
}
UNKNOWN_LEVEL = N_("The minimum sign-in level must be one of %(choices)s.")
# RFC 8176 §2: proof of possession of a hardware- or software-secured key, or of a key whose
# custody is unknown ("pop": a TLS client certificate).
KEY_METHODS = frozenset({"hwk", "swk", "pop"})
SECOND_FACTOR_METHODS = frozenset({"otp", "mfa", *KEY_METHODS})


def rank(acr: str) -> int:
    return LEVELS.index(acr)


def acr_of(amr: Iterable[str]) -> str:
    """The level a login with these RFC 8176 methods reached."""
    methods = set(amr)
    if "fed" in methods:
        # The upstream's own amr is reported but not ours to vouch for.
        return PASSWORD
    if methods & KEY_METHODS:
        return PHISHING_RESISTANT
    if methods & SECOND_FACTOR_METHODS:
        return MULTI_FACTOR
    return PASSWORD


def checked_minimum(level: str | None) -> str | None:
    """A minimum level an administrator gives an app (OIDC client, CAS service, SAML SP):
    one of :data:`LEVELS`, or None (blank) for any."""
    level = (level or "").strip() or None
    if level is not None and level not in LEVELS:
        raise DomainError(UNKNOWN_LEVEL, field="minimum_acr", choices=", ".join(LEVELS))
    return level


def requested_level(acr_values: str | None) -> str | None:
    """The lowest known level among ``acr_values`` (space-separated, OIDC Core §3.1.2.1): any
    of them satisfies the request. None when none is known (the request is then voluntary)."""
    known = [value for value in (acr_values or "").split() if value in LEVELS]
    return min(known, key=rank) if known else None


def highest(*levels: str | None) -> str | None:
    present = [level for level in levels if level is not None]
    return max(present, key=rank) if present else None


def satisfies(reached: str, required: str | None) -> bool:
    return required is None or rank(reached) >= rank(required)


# The official's unit and the province it belongs to, in one statement of columns (no ORM
# objects): read at every sign-in (issue 15).
_PROVINCE = aliased(Unit)
_UNIT_REQUIREMENTS = (
    select(Unit.requires_phishing_resistant, Unit.level, _PROVINCE.requires_phishing_resistant)
    .select_from(AccountProfile)
    .join(Unit, AccountProfile.unit_id == Unit.id)
    .outerjoin(_PROVINCE, (_PROVINCE.code == Unit.province_code) & (_PROVINCE.level == "province"))
    .where(
        AccountProfile.account_id == bindparam("account_id"), AccountProfile.deleted_at.is_(None)
    )
)


def unit_requires_phishing_resistant(session: Session, account: Account) -> bool:
    """Whether the official's unit, or the province it belongs to, requires passkeys."""
    # Asked in the middle of a sign-in whose own changes (the interaction, the new session)
    # have no bearing on units: flushing them here would cost an UPDATE of its own.
    with session.no_autoflush:
        row = session.execute(_UNIT_REQUIREMENTS, {"account_id": account.id}).first()
    if row is None:
        return False
    unit_requires, level, province_requires = row
    if unit_requires:
        return True
    if level == "province":
        return False
    return bool(province_requires)


def required_for_account(session: Session, account: Account, required: str | None) -> str | None:
    """``required`` raised to the phishing-resistant level when the official's unit says so."""
    if unit_requires_phishing_resistant(session, account):
        return PHISHING_RESISTANT
    return required


def set_unit_requirement(
    *,
    session: Session,
    clock: Clock,
    actor: str,
    unit: Unit,
    required: bool,
    client_address: str | None = None,
) -> bool:
    """Require (or stop requiring) passkeys of the unit's officials; audited. False when it was
    already so (nothing audited)."""
    if unit.requires_phishing_resistant == required:
        return False
    unit.requires_phishing_resistant = required
    unit.updated_at = clock.now()
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="unit.passkeys_required" if required else "unit.passkeys_not_required",
        target=f"unit:{unit.code}",
        client_address=client_address,
    )
    return True
