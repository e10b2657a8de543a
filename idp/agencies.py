"""Agencies inside a unit (People's Committee, Party Committee, ...): their kinds, the standard
name an agency of a kind gets, and the names officials write for them.

Officials write an agency the way they say it: in full ("Ủy ban Mặt trận Tổ quốc Việt Nam"),
without "Việt Nam", abbreviated (UBND, HĐND, MTTQ), followed by the place ("UBND xã Tân Lập"),
in any case, with or without diacritics and with either tone placement ("Ủy"/"Uỷ"). The names
are data (``idp/data/agency-aliases.csv``); they are compared after :func:`agency_key`. An
unknown name is refused with the nearest known names (:mod:`difflib` on the same keys).
"""

from __future__ import annotations

import csv
import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

from core.errors import DomainError
from core.text_search import fold_for_search
from core.web.i18n import N_

ALIASES_FILE = Path(__file__).parent / "data" / "agency-aliases.csv"

# Agency kinds and the name an agency of that kind gets when an import first uses it in a unit.
AGENCY_KINDS: Mapping[str, str] = {
    "peoples_committee": "Ủy ban nhân dân",
    "party_committee": "Đảng ủy",
    "peoples_council": "Hội đồng nhân dân",
    "fatherland_front": "Ủy ban Mặt trận Tổ quốc Việt Nam",
    "public_service_centre": "Trung tâm Phục vụ hành chính công",
    "other": "Khác",
}
UNKNOWN_AGENCY = N_("Unknown agency %(agency)s; use one of: %(kinds)s.")
UNKNOWN_AGENCY_SUGGESTED = N_(
    "Unknown agency %(agency)s. Did you mean %(suggestions)s? Known agencies: %(kinds)s."
)
SUGGESTIONS = 3

_PUNCTUATION = re.compile(r"[^\w]+")
# "UBND xã Tân Lập", "HĐND phường 5", "MTTQ TP Huế": the unit is its own column, so a trailing
# place names nothing more. Checked on folded keys, as whole words.
_PLACE = re.compile(
    r"\s(?:xa|phuong|thi tran|dac khu|tinh|thanh pho|tp|huyen|quan|thi xa)(?:\s.*)?$"
)
_COUNTRY = re.compile(r"(?:\s(?:viet nam|vietnam|vn))+$")


def agency_key(raw: str) -> str:
    """The comparison key of an agency name: folded (case, diacritics, đ, NFC/NFD), punctuation
    as spaces, without a trailing place or "Việt Nam"."""
    key = " ".join(_PUNCTUATION.sub(" ", fold_for_search(raw).replace("_", " ")).split())
    key = _PLACE.sub("", key)
    return _COUNTRY.sub("", key)


@cache
def _aliases() -> dict[str, str]:
    aliases = {agency_key(name): kind for kind, name in AGENCY_KINDS.items()}
    with ALIASES_FILE.open(encoding="utf-8", newline="") as handle:
        lines = (line for line in handle if not line.startswith("#"))
        for row in csv.DictReader(lines):
            kind = row["kind"].strip()
            if kind not in AGENCY_KINDS:
                raise ValueError(f"{ALIASES_FILE.name}: unknown kind {kind}")
            aliases.setdefault(agency_key(row["name"]), kind)
    return aliases


@dataclass(frozen=True, slots=True)
class _Resolved:
    kind: str | None
    suggestions: tuple[str, ...] = ()


# An import of 35,200 rows holds a handful of distinct agency texts: each is resolved once.
@lru_cache(maxsize=4096)
def _resolve(raw: str) -> _Resolved:
    aliases = _aliases()
    key = agency_key(raw)
    kind = aliases.get(key) or aliases.get(key.replace(" ", ""))
    if kind is not None:
        return _Resolved(kind)
    suggested: list[str] = []
    for near in difflib.get_close_matches(key, aliases, n=10, cutoff=0.6):
        name = AGENCY_KINDS[aliases[near]]
        if name not in suggested:
            suggested.append(name)
    return _Resolved(None, tuple(suggested[:SUGGESTIONS]))


def agency_kind(raw: str) -> str:
    """The agency kind named by ``raw`` (a kind, a standard name, or a name as officials write
    it); :class:`DomainError` naming the nearest known agencies otherwise."""
    resolved = _resolve(raw)
    if resolved.kind is not None:
        return resolved.kind
    kinds = "; ".join(AGENCY_KINDS.values())
    if resolved.suggestions:
        raise DomainError(
            UNKNOWN_AGENCY_SUGGESTED,
            field="agency",
            agency=raw,
            kinds=kinds,
            suggestions=" / ".join(f"“{name}”" for name in resolved.suggestions),
        )
    raise DomainError(UNKNOWN_AGENCY, field="agency", agency=raw, kinds=kinds)
