"""Diacritic- and case-insensitive search keys for Vietnamese names, shared by idp and ca_admin."""

from __future__ import annotations

import unicodedata

# Letters with a stroke do not decompose under NFD. "ð" is here because the Icelandic capital
# Ð (U+00D0) looks like Đ and is often typed for it by old Vietnamese keyboard layouts.
_STROKED_D = str.maketrans({"đ": "d", "ð": "d"})


def fold_for_search(text: str) -> str:
    """Fold text for diacritic- and case-insensitive search: "Nguyễn Văn An" -> "nguyen van an".

    Casefold first (so that "İ" -> "i̇" loses its dot too), then NFD and drop the combining
    marks (tones, breve, circumflex, horn, dot below), map đ to d, drop invisible format
    characters (soft hyphen, zero-width space) and collapse whitespace. Idempotent, so a stored
    folded column and a folded query always agree.
    """
    decomposed = unicodedata.normalize("NFD", text.casefold())
    kept = "".join(
        ch for ch in decomposed if unicodedata.category(ch) not in {"Mn", "Me", "Cf"}
    ).translate(_STROKED_D)
    return unicodedata.normalize("NFC", " ".join(kept.split()))
