"""What the CA knows about an official, and who may approve for which unit.

ca_admin does not import idp (DESIGN): it learns an official's verified data the way a shared
app does, through claims the IdP vouches for. These protocols are that boundary; the
composition root implements them on top of the IdP's own services.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class OfficialIdentity:
    """Verified account data. The certificate subject is built from this only, never from a CSR."""

    subject_ref: str  # the IdP's `sub`
    username: str
    full_name: str
    citizen_id: str | None
    province_code: str | None
    province_name: str | None
    unit_code: str | None
    unit_name: str | None
    agency: str | None
    position: str | None
    email: str | None = None
    active: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OfficialIdentity:
        return cls(**{name: data.get(name) for name in cls.__dataclass_fields__})  # type: ignore[arg-type]


class OfficialDirectory(Protocol):
    def find(self, session: Session, *, subject_ref: str) -> OfficialIdentity | None: ...

    def find_by_username(self, session: Session, *, username: str) -> OfficialIdentity | None: ...

    def find_many(
        self, session: Session, *, subject_refs: Collection[str]
    ) -> dict[str, OfficialIdentity]:
        """The officials among ``subject_refs`` that exist, by subject, in one round trip."""
        ...

    def unit_names(self, session: Session, *, codes: Collection[str]) -> dict[str, str]:
        """The current names of the units among ``codes`` that exist, by code, in one query
        (the pages show a unit by name with its code)."""
        ...


def usernames_of(
    directory: OfficialDirectory, session: Session, refs: Collection[str]
) -> dict[str, str]:
    """The username of each actor among ``refs`` (stored as the IdP's opaque ``sub``), for
    people to read; an actor that is no account ("cli", "ca-lifecycle") keeps its name."""
    found = directory.find_many(session, subject_refs=set(refs))
    return {ref: found[ref].username if ref in found else ref for ref in refs}


class ApproverScope(Protocol):
    """Delegated administration, decided by the IdP's roles (system, province, unit admin)."""

    def may_administer(
        self, session: Session, *, actor_ref: str, unit_code: str | None
    ) -> bool: ...

    def administered_unit_codes(self, session: Session, *, actor_ref: str) -> frozenset[str] | None:
        """Codes of every unit the actor administers (empty: none); None means all of them."""
        ...
