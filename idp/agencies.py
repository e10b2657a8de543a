"""Agencies inside a unit (People's Committee, Party Committee, ...): their kinds, the standard
name an agency of a kind gets, and the names officials type for them."""

from __future__ import annotations

from collections.abc import Mapping

from core.errors import DomainError
from core.web.i18n import N_
from idp import official_data

# Agency kinds and the name an agency of that kind gets when an import first uses it in a unit.
AGENCY_KINDS: Mapping[str, str] = {
    "peoples_committee": "Ủy ban nhân dân",
    "party_committee": "Đảng ủy",
    "peoples_council": "Hội đồng nhân dân",
    "fatherland_front": "Ủy ban Mặt trận Tổ quốc Việt Nam",
    "public_service_centre": "Trung tâm Phục vụ hành chính công",
    "other": "Khác",
}
_AGENCY_ALIASES = {
    **{kind.replace("_", " "): kind for kind in AGENCY_KINDS},
    **{official_data.fold_for_search(name): kind for kind, name in AGENCY_KINDS.items()},
    "ubnd": "peoples_committee",
    "people's committee": "peoples_committee",
    "peoples committee": "peoples_committee",
    "dang uy": "party_committee",
    "party committee": "party_committee",
    "hdnd": "peoples_council",
    "people's council": "peoples_council",
    "peoples council": "peoples_council",
    "mttq": "fatherland_front",
    "mat tran to quoc": "fatherland_front",
    "uy ban mttq": "fatherland_front",
    "fatherland front": "fatherland_front",
    "public service center": "public_service_centre",
    "public service centre": "public_service_centre",
    "trung tam phuc vu hanh chinh cong": "public_service_centre",
    "khac": "other",
}


def agency_kind(raw: str) -> str:
    """The agency kind named by ``raw`` (a kind, a standard name or a common abbreviation)."""
    kind = _AGENCY_ALIASES.get(official_data.fold_for_search(raw).replace("_", " "))
    if kind is None:
        raise DomainError(
            N_("Unknown agency %(agency)s; use one of: %(kinds)s."),
            field="agency",
            agency=raw,
            kinds=", ".join(AGENCY_KINDS),
        )
    return kind
