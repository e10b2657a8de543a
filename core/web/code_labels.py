"""Codes kept in the database (audit actions, actors, statuses, reasons) shown to people as words.

Each package names its own codes in a ``labels`` module: ``kind -> {code: msgid}``, the msgids
marked with ``N_`` and translated in the package's catalogue. The composition root merges the
tables (the audit page lists every package's actions, but idp never imports ca_admin) and hands
them to :class:`core.web.templating.PageRenderer`, which installs two filters in every page
language:

* ``{{ unit.status|label("unit_status") }}``: the translated label of one code;
* ``{{ entry.actor|actor_label }}``: an audit actor, either a fixed name (``system``) or
  ``<kind>:<name>`` (``user:lan.nt`` -> "Tài khoản lan.nt").

A code without a label is shown as it is, so a new code never breaks a page;
tests/core/test_pages_speak_the_page_language.py fails until it has one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from core.web.i18n import N_

# kind -> code -> msgid
CodeLabels = Mapping[str, Mapping[str, str]]

ACTOR_KIND = "audit_actor"
# Actors the core itself knows: the prefixes every package writes (``user:<username>``,
# ``client:<client_id>``), each a msgid with a ``%(name)s`` placeholder, and the fixed names.
CORE_LABELS: CodeLabels = {
    ACTOR_KIND: {
        "user:": N_("Account %(name)s"),
        "client:": N_("App %(name)s"),
        "system": N_("System"),
        "anonymous": N_("Someone not signed in"),
        "cli": N_("Command line (CLI)"),
    },
}


def merge_labels(*tables: CodeLabels) -> dict[str, dict[str, str]]:
    """One table from several; a kind present in several tables gets all their codes.

    The same code under the same kind in two tables must mean the same thing: a different msgid
    is a programming error, refused here so it cannot depend on merge order.
    """
    merged: dict[str, dict[str, str]] = {}
    for table in tables:
        for kind, codes in table.items():
            target = merged.setdefault(kind, {})
            for code, msgid in codes.items():
                if target.get(code, msgid) != msgid:
                    raise ValueError(f"{kind} {code!r} labelled twice: {target[code]!r}, {msgid!r}")
                target[code] = msgid
    return merged


def label_msgid(labels: CodeLabels, kind: str, code: object) -> str | None:
    """The msgid for ``code`` of ``kind``, or None when there is none."""
    if not isinstance(code, str):
        return None
    return labels.get(kind, {}).get(code)


def actor_msgid(labels: CodeLabels, actor: str) -> tuple[str, dict[str, str]] | None:
    """The msgid and parameters that name ``actor``, or None for an unknown actor."""
    known = labels.get(ACTOR_KIND, {})
    if actor in known:
        return known[actor], {}
    prefix, separator, name = actor.partition(":")
    if separator and f"{prefix}:" in known:
        return known[f"{prefix}:"], {"name": name}
    return None


def label_filters(
    labels: CodeLabels, gettext: Callable[[str], str]
) -> dict[str, Callable[..., str]]:
    """The Jinja filters for one page language (``gettext`` is that language's catalogue)."""

    def label(code: object, kind: str) -> str:
        msgid = label_msgid(labels, kind, code)
        if msgid is None:
            return "" if code is None else str(code)
        return gettext(msgid)

    def actor_label(actor: object) -> str:
        if not isinstance(actor, str):
            return "" if actor is None else str(actor)
        found = actor_msgid(labels, actor)
        if found is None:
            return actor
        msgid, params = found
        return gettext(msgid) % params if params else gettext(msgid)

    return {"label": label, "actor_label": actor_label}


def known_codes(labels: CodeLabels, kinds: Iterable[str] | None = None) -> set[str]:
    """Every code of ``kinds`` (all kinds when None): what a page must never show raw."""
    chosen = labels.keys() if kinds is None else kinds
    return {code for kind in chosen for code in labels.get(kind, {})}
