"""Every user-facing msgid has a Vietnamese translation (CONVENTIONS §15).

Vietnamese is the default language, so an untranslated msgid shows English to an official.
The msgids are found the way ``pybabel extract`` finds them (babel.cfg): literal ``N_("...")``
calls in the Python packages, read with ``ast`` so nothing is imported, and ``_()`` /
``{% trans %}`` in the Jinja templates, read with Babel's Jinja extractor. They are then looked
up in the catalogues merged exactly as the app merges them (``load_translations``).

``DomainError.text(gettext)`` fills ``%(name)s`` after translating, and newstyle Jinja gettext
does the same, so a translation that drops or renames a placeholder raises ``KeyError`` (or
loses the value) at run time: the placeholder sets must be equal.
"""

from __future__ import annotations

import ast
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import PoFileParser, read_po

from core.web.i18n import load_translations

ROOT = Path(__file__).resolve().parents[2]
# commune_sso wires the packages together (error pages, CLI, CA bridge); its msgids live in the
# catalogue of the package they are about.
PACKAGES = ("core", "idp", "ca_admin", "commune_sso")
# The order commune_sso/app.py merges them in: a later catalogue overrides an earlier one.
LOCALE_DIRS = {
    "core": ROOT / "core" / "web" / "locale",
    "idp": ROOT / "idp" / "locale",
    "ca_admin": ROOT / "ca_admin" / "locale",
}
# Every catalogue file in the packages, also any a module might load on its own.
PO_FILES = sorted(
    p for package in PACKAGES for p in (ROOT / package).rglob("LC_MESSAGES/messages.po")
)
# printf-style named placeholders, as Python's % operator reads them (flags, width, precision).
PLACEHOLDER = re.compile(r"%\((\w+)\)[-#0 +]*(?:\d+|\*)?(?:\.(?:\d+|\*))?[diouxXeEfFgGcrsa]")

# msgid (a str, or a (singular, plural) tuple) -> where it is used, as "path:line".
Uses = dict[str | tuple[str, ...], list[str]]


def _is_marker(func: ast.expr) -> bool:
    """``N_(...)`` or ``i18n.N_(...)``: Babel's gettext_noop keyword."""
    return (isinstance(func, ast.Name) and func.id == "N_") or (
        isinstance(func, ast.Attribute) and func.attr == "N_"
    )


def _marker_calls() -> Iterator[tuple[str, ast.Call]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            where = path.relative_to(ROOT).as_posix()
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and _is_marker(node.func):
                    yield f"{where}:{node.lineno}", node


def _literal(call: ast.Call) -> str | None:
    if len(call.args) == 1 and not call.keywords:
        argument = call.args[0]
        if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
            return argument.value
    return None


def _python_msgids() -> Uses:
    uses: Uses = defaultdict(list)
    for where, call in _marker_calls():
        msgid = _literal(call)
        if msgid:
            uses[msgid].append(where)
    return uses


def _template_dirs() -> list[Path]:
    return sorted(
        d for package in PACKAGES for d in (ROOT / package).rglob("templates") if d.is_dir()
    )


def _template_msgids() -> Uses:
    uses: Uses = defaultdict(list)
    for directory in _template_dirs():
        # The same extractor settings as babel.cfg, so trimmed {% trans %} blocks match.
        for filename, lineno, message, _comments, _context in extract_from_dir(
            str(directory),
            method_map=[("**.html", "jinja2")],
            options_map={"**.html": {"extensions": "jinja2.ext.i18n", "trimmed": "true"}},
        ):
            where = f"{(directory / filename).relative_to(ROOT).as_posix()}:{lineno}"
            if isinstance(message, tuple):  # ngettext / {% pluralize %}
                if message[0]:
                    uses[tuple(m for m in message if m)].append(where)
            elif message:
                uses[message].append(where)
    return uses


def _placeholders(text: str) -> set[str]:
    return {match.group(0) for match in PLACEHOLDER.finditer(text)}


def _forms(value: object) -> tuple[str, ...]:
    """A msgid or msgstr as the tuple of its forms (one form unless it has plurals)."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, tuple | list):
        return tuple(form if isinstance(form, str) else "" for form in value)
    return ()


def _vi_entries() -> dict[str, tuple[str, ...]]:
    """Singular msgid -> msgstr forms of the translated (non-empty, non-fuzzy) vi entries.

    Later directories win, as in ``load_translations``.
    """
    entries: dict[str, tuple[str, ...]] = {}
    for locale_dir in LOCALE_DIRS.values():
        po_path = locale_dir / "vi" / "LC_MESSAGES" / "messages.po"
        with po_path.open("rb") as fh:
            for message in read_po(fh, locale="vi"):
                ids, strings = _forms(message.id), _forms(message.string)
                if ids and ids[0] and not message.fuzzy and strings and all(strings):
                    entries[ids[0]] = strings
    return entries


@pytest.fixture(scope="module")
def vi() -> Any:
    return load_translations(list(LOCALE_DIRS.values()))["vi"]


@pytest.fixture(scope="module")
def used_msgids() -> Uses:
    uses: Uses = defaultdict(list)
    for source in (_python_msgids(), _template_msgids()):
        for msgid, wheres in source.items():
            uses[msgid].extend(wheres)
    return uses


def _report(problems: list[tuple[str | tuple[str, ...], list[str], str]]) -> str:
    lines = [f"{len(problems)} msgid(s) without a proper Vietnamese translation:"]
    for msgid, wheres, why in problems:
        lines.append(f"  {', '.join(wheres)}: {msgid!r} ({why})")
    lines.append(
        "Add them at the end of <package>/locale/vi/LC_MESSAGES/messages.po (core: "
        "core/web/locale; commune_sso: the package the message is about), keeping every "
        "%(name)s placeholder."
    )
    return "\n".join(lines)


def test_the_extractors_find_msgids_in_every_package(used_msgids: Uses) -> None:
    python_uses = [w for wheres in _python_msgids().values() for w in wheres]
    for package in PACKAGES:
        assert any(w.startswith(f"{package}/") for w in python_uses), package
    templates = _template_msgids()
    assert {"Sign in", "Allow", "Single sign-on portal"} <= set(templates)
    assert any(w.startswith("core/") for ws in templates.values() for w in ws)
    assert any(w.startswith("idp/") for ws in templates.values() for w in ws)
    assert len(used_msgids) >= len(templates)


def test_n_marks_only_single_string_literals() -> None:
    # N_(variable) or N_(f"...") hides the text from the extractor and from this test.
    bad = [where for where, call in _marker_calls() if _literal(call) is None]
    assert bad == [], "N_() must be called with one plain string literal: " + ", ".join(bad)


def test_every_msgid_has_a_vietnamese_translation_with_the_same_placeholders(
    vi: Any, used_msgids: Uses
) -> None:
    declared = _vi_entries()
    problems: list[tuple[str | tuple[str, ...], list[str], str]] = []
    for msgid, wheres in sorted(used_msgids.items(), key=lambda item: item[1][0]):
        singular = msgid[0] if isinstance(msgid, tuple) else msgid
        if singular not in declared:
            problems.append((msgid, wheres, "missing"))
            continue
        if isinstance(msgid, tuple):
            # Vietnamese has one plural form; it carries the plural msgid's placeholders.
            effective = [vi.ngettext(msgid[0], msgid[-1], n) for n in (1, 2)]
            expected = _placeholders(msgid[-1])
        else:
            effective = [vi.gettext(msgid)]
            expected = _placeholders(msgid)
        if not set(effective) <= set(declared[singular]):
            problems.append((msgid, wheres, f"merged catalogues give {effective!r}"))
            continue
        for text in effective:
            if not text.strip():
                problems.append((msgid, wheres, "empty"))
            elif _placeholders(text) != expected:
                problems.append(
                    (msgid, wheres, f"placeholders {sorted(_placeholders(text))} in {text!r}")
                )
    assert problems == [], _report(problems)


# ---------------------------------------------------------------- catalogue files


@pytest.mark.parametrize("po_path", PO_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_po_file_parses_and_its_entries_are_consistent(po_path: Path) -> None:
    with po_path.open("rb") as fh:
        catalog = read_po(fh, abort_invalid=True)
    assert catalog.locale is not None and str(catalog.locale) == po_path.parts[-3]
    problems = [(message.id, errors) for message, errors in catalog.check()]
    assert problems == []
    assert not [m.id for m in catalog if m.id and m.fuzzy]
    for message in catalog:
        ids = _forms(message.id)
        for text in _forms(message.string):
            # NFD text looks the same but breaks search, sorting and string comparison.
            assert unicodedata.normalize("NFC", text) == text, message.id
            if text and ids and ids[0]:
                assert _placeholders(text) == _placeholders(ids[-1]), message.id


class _RecordingCatalog(Catalog):
    """A Catalog that remembers every entry the parser adds: Catalog itself merges duplicates."""

    def __init__(self, **kwargs: Any) -> None:
        self.added: list[Message] = []
        super().__init__(**kwargs)

    def __setitem__(self, id: Any, message: Message) -> None:
        self.added.append(message)
        super().__setitem__(id, message)


@pytest.mark.parametrize("po_path", PO_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_po_file_has_no_duplicate_msgids(po_path: Path) -> None:
    catalog = _RecordingCatalog(locale=po_path.parts[-3], domain="messages")
    with po_path.open("rb") as fh:
        PoFileParser(catalog, ignore_obsolete=True, abort_invalid=True).parse(fh)
    lines: dict[tuple[str | None, Any], list[int | None]] = defaultdict(list)
    for message in catalog.added:
        if message.id:
            lines[(message.context, message.id)].append(message.lineno)
    duplicates = {key[1]: at for key, at in lines.items() if len(at) > 1}
    assert duplicates == {}, f"msgids defined more than once in {po_path} (msgid: lines)"


def test_the_recording_parser_does_see_duplicates(tmp_path: Path) -> None:
    po_path = tmp_path / "vi" / "LC_MESSAGES" / "messages.po"
    po_path.parent.mkdir(parents=True)
    po_path.write_text(
        'msgid "Sign in"\nmsgstr "Đăng nhập"\n\nmsgid "Sign in"\nmsgstr "Vào"\n', encoding="utf-8"
    )
    with pytest.raises(AssertionError, match="more than once"):
        test_po_file_has_no_duplicate_msgids(po_path)


def test_the_ca_admin_catalogues_exist() -> None:
    for locale in ("vi", "en"):
        assert (LOCALE_DIRS["ca_admin"] / locale / "LC_MESSAGES" / "messages.po").is_file()


# ---------------------------------------------------------------- every entry, used or not

# msgids whose Vietnamese is rightly the English text: proper names, "OK", technical tokens.
# Keep it short; anything else left in English reaches an official as English.
SAME_IN_VIETNAMESE: frozenset[str] = frozenset({"OK", "SCIM", "OpenID Connect", "CSV", "XLSX"})


def _is_placeholders_or_url(text: str) -> bool:
    rest = PLACEHOLDER.sub("", text).strip(" :,-/()")
    return not rest or rest.startswith(("http://", "https://", "/"))


def untranslated_entries(po_path: Path) -> list[str]:
    """The entries of a vi catalogue that would show English: empty, or copied from the msgid."""
    with po_path.open("rb") as fh:
        catalog = read_po(fh, locale="vi")
    problems = []
    for message in catalog:
        ids, strings = _forms(message.id), _forms(message.string)
        if not ids or not ids[0]:
            continue  # the header
        if not strings or not all(s.strip() for s in strings):
            problems.append(f"{ids[0]!r}: empty")
        elif (
            strings[0] == ids[0]
            and ids[0] not in SAME_IN_VIETNAMESE
            and not _is_placeholders_or_url(ids[0])
        ):
            problems.append(f"{ids[0]!r}: left in English")
    return problems


@pytest.mark.parametrize("package", list(LOCALE_DIRS), ids=lambda package: f"{package}-vi")
def test_every_catalogue_entry_is_translated_into_vietnamese(package: str) -> None:
    """Not only the msgids the extractors find: msgids built at run time live only in the
    catalogue, and an entry left empty or copied from the English shows English on a page."""
    po_path = LOCALE_DIRS[package] / "vi" / "LC_MESSAGES" / "messages.po"
    problems = untranslated_entries(po_path)
    assert problems == [], f"{po_path.relative_to(ROOT)}:\n  " + "\n  ".join(problems)


def test_the_translation_check_catches_an_entry_left_in_english(tmp_path: Path) -> None:
    po_path = tmp_path / "vi" / "LC_MESSAGES" / "messages.po"
    po_path.parent.mkdir(parents=True)
    po_path.write_text(
        'msgid "Sign in"\nmsgstr "Sign in"\n\nmsgid "OK"\nmsgstr "OK"\n\n'
        'msgid "%(name)s"\nmsgstr "%(name)s"\n\nmsgid "Sign out"\nmsgstr ""\n',
        encoding="utf-8",
    )
    assert untranslated_entries(po_path) == ["'Sign in': left in English", "'Sign out': empty"]


def _stray_msgstr_lines(path: Path) -> list[int]:
    """Line numbers of a ``msgstr`` that follows no ``msgid``: what a merge of two catalogues
    leaves when it keeps one side's translation and drops the other's msgid. Babel's reader
    skips such a line silently; GNU msgfmt calls it a syntax error."""
    stray = []
    previous = ""
    for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
        if line.startswith("msgstr") and not previous.startswith(("msgid", '"')):
            stray.append(number)
        previous = line
    return stray


@pytest.mark.parametrize(
    "path",
    sorted(ROOT.glob("*/locale/*/LC_MESSAGES/messages.po"))
    + sorted(ROOT.glob("core/web/locale/*/LC_MESSAGES/messages.po")),
    ids=lambda path: str(path.relative_to(ROOT)),
)
def test_every_msgstr_belongs_to_a_msgid(path: Path) -> None:
    assert _stray_msgstr_lines(path) == [], f"{path}: msgstr lines without a msgid"
