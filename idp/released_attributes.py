"""Attributes released to an app that does not ask by OIDC scope (CAS 3.0 §2.5.2
``cas:attributes``, SAML 2.0 ``AttributeStatement``): the claims OIDC releases
(``idp.claims``), chosen per registered app by group."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from idp import units
from idp.claims import UNIT_SCOPE, claims_for_scope
from idp.models import Account

# A group an administrator releases -> the claims (attribute names) it carries.
RELEASABLE: dict[str, tuple[str, ...]] = {
    "name": ("name",),
    "email": ("email",),
    "unit": ("unit_code", "unit_name"),
    "province": ("province_code", "province_name"),
    "agency": ("agency",),
    "position": ("position",),
}
_SCOPE_OF_ALL_GROUPS = f"profile email {UNIT_SCOPE}"


def released(session: Session, account: Account, groups: Sequence[str]) -> dict[str, str]:
    """The attributes of ``groups`` that the official has (none is sent empty)."""
    if not groups:
        return {}
    unit_claims = units.unit_claims(session, account) if set(groups) - {"name", "email"} else {}
    claims = claims_for_scope(account, _SCOPE_OF_ALL_GROUPS, directory_claims=unit_claims)
    return {
        name: str(claims[name])
        for group in groups
        for name in RELEASABLE.get(group, ())
        if claims.get(name) not in (None, "")
    }
