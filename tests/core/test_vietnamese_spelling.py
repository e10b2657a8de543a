"""One Vietnamese spelling: the new-style tone placement (Ministry of Education 2018 rules).

In an open syllable with the rhymes oa, oe, uy the mark goes on the first vowel: "hóa", "khóa",
"hòa", "xóe", "thủy", "tùy", "ủy". With a final consonant the mark stays where both styles
put it ("toán", "hoàn", "quyết"), and after "q" the "u" belongs to the consonant ("quý").
Pages mixing "khóa" and "khoá" read as careless, and search and sorting treat them as different
words, so the catalogues and templates use one form. Data that officials type (agency names,
imported files) is matched in either form: idp.agencies folds both.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "idp", "ca_admin", "commune_sso")

# An old-style open syllable: o + marked a/e, or u + marked y, at the end of a word; "qu" + "ý"
# is a different syllable ("quý") and is correct in both styles.
OLD_STYLE = re.compile(r"(?<![qQ])(?:[oO][áàảãạÁÀẢÃẠéèẻẽẹÉÈẺẼẸ]|[uU][ýỳỷỹỵÝỲỶỸỴ])(?!\w)")


def _display_files() -> list[Path]:
    """Everything a person reads: the Vietnamese catalogues and every page template."""
    files = [p for package in PACKAGES for p in (ROOT / package).rglob("vi/LC_MESSAGES/*.po")]
    files += [p for package in PACKAGES for p in (ROOT / package).rglob("templates/**/*.html")]
    files += [p for package in PACKAGES for p in (ROOT / package).rglob("templates/**/*.txt")]
    return sorted(files)


def old_style_forms(text: str) -> list[str]:
    """The words of ``text`` spelled with the old tone placement (compared in NFC)."""
    text = unicodedata.normalize("NFC", text)
    words = []
    for match in OLD_STYLE.finditer(text):
        start = match.start()
        while start > 0 and text[start - 1].isalpha():
            start -= 1
        words.append(text[start : match.end()])
    return words


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Khoá tài khoản", ["Khoá"]),
        ("hoà giải, văn hoá", ["hoà", "hoá"]),
        ("Uỷ ban, tuỳ chọn, thuỷ lợi", ["Uỷ", "tuỳ", "thuỷ"]),
        ("UỶ BAN", ["UỶ"]),
        ("xoè", ["xoè"]),
        # Decomposed (NFD) text is the same word.
        (unicodedata.normalize("NFD", "khoá"), ["khoá"]),
        # New style, closed syllables, and "qu" are fine.
        ("Khóa, hòa, thủy, tùy, ủy, lòa", []),
        ("toán, hoàn, hoặc, quyết, quý, thuyền, khuya", []),
    ],
)
def test_the_checker_tells_the_two_styles_apart(text: str, found: list[str]) -> None:
    assert old_style_forms(text) == found


def test_the_display_files_are_found() -> None:
    files = _display_files()
    assert any(p.name == "messages.po" and "idp" in p.parts for p in files)
    assert any(p.suffix == ".html" and "ca_admin" in p.parts for p in files)
    assert any(p.name == "base.html" for p in files)


@pytest.mark.parametrize("path", _display_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_catalogues_and_templates_use_the_new_tone_placement(path: Path) -> None:
    found = [
        f"line {number}: {word}"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        for word in old_style_forms(line)
    ]
    assert found == [], (
        f"old-style tone placement in {path.relative_to(ROOT)} (write hóa, khóa, hòa, thủy, "
        f"tùy, ủy): {found}"
    )
