"""Page languages: Vietnamese first, English second (CONVENTIONS §15).

Catalogues are the ``messages.po`` files kept in git; they are compiled in memory at start-up,
so there is no compile step and no ``.mo`` file to forget. Each package keeps its own
catalogue (``core/web/locale``, ``idp/locale``, later ``ca_admin/locale``); the app merges them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

log = logging.getLogger(__name__)

SUPPORTED_LOCALES: tuple[str, ...] = ("vi", "en")
DEFAULT_LOCALE = "vi"
CATALOGUE_DOMAIN = "messages"


def N_(message: str) -> str:
    """Mark a msgid for ``pybabel extract`` without translating it yet (gettext_noop).

    Python code hands msgids to the page renderer, which translates them in the page's locale;
    ``N_`` is one of Babel's default extraction keywords.
    """
    return message


# Compiled catalogues by (path, locale, mtime, size): parsing a .po file is the slow part of
# building an app (about 70 ms a file), and a process that builds several apps (the test
# suite, a reload) reads the same unchanged files again. An edited file has another key.
_compiled_catalogues: dict[tuple[str, str, int, int], bytes] = {}
# The merged catalogues by the identity of every file they were merged from.
_merged_catalogues: dict[
    tuple[tuple[str, tuple[str, int, int] | None], ...], dict[str, Translations]
] = {}


def _compile_po(path: Path, locale: str) -> Translations:
    status = path.stat()
    key = (str(path.resolve()), locale, status.st_mtime_ns, status.st_size)
    compiled_bytes = _compiled_catalogues.get(key)
    if compiled_bytes is None:
        with path.open("rb") as po_file:
            catalog = read_po(po_file, locale=locale, domain=CATALOGUE_DOMAIN)
        compiled = BytesIO()
        # Untranslated (empty msgstr) and fuzzy entries are left out, so lookups fall back to
        # the English msgid instead of showing an empty string.
        write_mo(compiled, catalog, use_fuzzy=False)
        compiled_bytes = compiled.getvalue()
        _compiled_catalogues[key] = compiled_bytes
    # A new Translations object each time: merging into the first catalogue changes it.
    return Translations(fp=BytesIO(compiled_bytes), domain=CATALOGUE_DOMAIN)


def load_translations(locale_dirs: Sequence[Path]) -> dict[str, Translations]:
    """Read ``<dir>/<locale>/LC_MESSAGES/messages.po`` for every supported locale and merge.

    Directories are merged in the order given (core first, then idp, then ca_admin); a msgid
    present in several catalogues takes the translation of the later one. A missing file is
    not an error: that locale simply falls back to the msgids. The merged catalogues are
    shared by every caller with the same unchanged files: nothing changes them once merged.
    """
    files = [
        (locale, Path(locale_dir) / locale / "LC_MESSAGES" / f"{CATALOGUE_DOMAIN}.po")
        for locale in SUPPORTED_LOCALES
        for locale_dir in locale_dirs
    ]
    key = tuple((locale, _file_identity(path)) for locale, path in files)
    cached = _merged_catalogues.get(key)
    if cached is not None:
        return dict(cached)
    result: dict[str, Translations] = {}
    for locale in SUPPORTED_LOCALES:
        merged: Translations | None = None
        for file_locale, po_path in files:
            if file_locale != locale:
                continue
            if not po_path.is_file():
                log.debug("no %s catalogue at %s", locale, po_path)
                continue
            catalogue = _compile_po(po_path, locale)
            if merged is None:  # the first catalogue's header (plural forms) is kept
                merged = catalogue
            else:
                merged.merge(catalogue)
        result[locale] = merged if merged is not None else Translations(domain=CATALOGUE_DOMAIN)
    _merged_catalogues[key] = result
    return dict(result)


def _file_identity(path: Path) -> tuple[str, int, int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return (str(path.resolve()), status.st_mtime_ns, status.st_size)


def supported_locale(tag: str | None) -> str | None:
    """Map a language tag ('vi', 'vi-VN', 'en_US', 'EN') to a supported locale, or None."""
    if not tag:
        return None
    primary = tag.strip().replace("_", "-").split("-", 1)[0].lower()
    return primary if primary in SUPPORTED_LOCALES else None


def negotiate_locale(
    *, ui_locales: str | None, query_lang: str | None, cookie_lang: str | None
) -> str:
    """Pick the page language.

    Order: the OIDC ``ui_locales`` request parameter (OpenID Connect Core 1.0 §3.1.2.1,
    space-separated BCP 47 tags in order of preference, first supported one wins), then an
    explicit ``?lang=`` choice, then the ``lang`` cookie, else Vietnamese. Accept-Language is
    deliberately ignored: the service is Vietnamese-first whatever the browser's setting.
    """
    for tag in (ui_locales or "").split():
        locale = supported_locale(tag)
        if locale:
            return locale
    for candidate in (query_lang, cookie_lang):
        locale = supported_locale(candidate)
        if locale:
            return locale
    return DEFAULT_LOCALE
