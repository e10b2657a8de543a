"""No refusal shows a raw placeholder (issue 18: "The field %(field)s must be a short text.").

Two halves. Every raise of a ``DomainError`` (read with ``ast`` through the same index as
``test_error_messages_translated``) gives a value for each ``%(name)s`` of its msgid; ``field``
counts, since ``DomainError.text`` fills it. And every msgid with placeholders, in every
catalogue, renders through ``DomainError.text`` with its parameters into a text without ``%(``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from core.errors import DomainError
from tests.core.test_catalogues_complete import PLACEHOLDER, ROOT
from tests.core.test_error_messages_translated import (
    CallSite,
    MessageCheck,
    Module,
    _is_marker,
    _modules,
)

CATALOGUES = sorted(ROOT.glob("*/**/LC_MESSAGES/messages.po"))


def _literal_msgid(check: MessageCheck, node: ast.expr, module: Module) -> str | None:
    """The msgid when written at the call (``N_("...")``) or as a module constant."""
    if isinstance(node, ast.Call) and _is_marker(node):
        argument = node.args[0]
        if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
            return argument.value
    if isinstance(node, ast.Name):
        constant = check._constants(module).get(node.id)
        if constant is not None:
            return _literal_msgid(check, constant, module)
    return None


def unfilled_placeholders(modules: list[Module]) -> tuple[int, list[str]]:
    """(error raises looked at, "path:line: names" for each raise that leaves one unfilled)."""
    check = MessageCheck(modules, {})
    looked_at, problems = 0, []
    for site in check.sites:
        site_problem = _unfilled_at(check, site)
        if site_problem is None:
            continue
        looked_at += 1
        if site_problem:
            problems.append(site_problem)
    return looked_at, problems


def _unfilled_at(check: MessageCheck, site: CallSite) -> str | None:
    """None: not a plain error raise with a literal msgid; "": every placeholder is given."""
    call, module = site.call, site.scope.module
    target = check.target_of(call.func, module, site.method_class)
    if target is None or target not in check.errors:
        return None
    if check._init_owner(target) is not None:
        return None  # a class with its own __init__ builds its message and parameters itself
    if any(keyword.arg is None for keyword in call.keywords):
        return None  # **params: given at run time
    message = call.args[0] if call.args else None
    message = next((k.value for k in call.keywords if k.arg == "message"), message)
    msgid = _literal_msgid(check, message, module) if message is not None else None
    if msgid is None:
        return None
    needed = set(PLACEHOLDER.findall(msgid))
    given = {keyword.arg for keyword in call.keywords}
    missing = needed - given
    if not missing:
        return ""
    return f"{module.where}:{call.lineno}: {msgid!r} lacks {', '.join(sorted(missing))}"


@pytest.fixture(scope="module")
def modules() -> list[Module]:
    return _modules()


def test_every_error_raise_fills_every_placeholder_of_its_message(modules: list[Module]) -> None:
    looked_at, problems = unfilled_placeholders(modules)
    assert looked_at > 250
    assert problems == [], "\n".join(problems)


def test_the_check_finds_a_raise_that_leaves_a_placeholder(tmp_path: Path) -> None:
    source = (
        "from core.errors import DomainError\n"
        "from core.web.i18n import N_\n"
        "def refuse(name):\n"
        "    raise DomainError(N_('No unit %(code)s in %(province)s.'), code=name)\n"
        "def fine(name):\n"
        "    raise DomainError(N_('The field %(field)s is required.'), field=name)\n"
    )
    sample = Module("sample", "sample.py", ast.parse(source))
    core_errors = next(m for m in _modules() if m.name == "core.errors")
    looked_at, problems = unfilled_placeholders([core_errors, sample])
    assert looked_at == 2
    assert problems == ["sample.py:4: 'No unit %(code)s in %(province)s.' lacks province"]


@pytest.mark.parametrize("po_path", CATALOGUES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_message_with_parameters_renders_without_a_placeholder(po_path: Path) -> None:
    with po_path.open("rb") as handle:
        catalogue = read_po(handle)
    translations = {m.id: m.string for m in catalogue if isinstance(m.id, str) and m.id}
    rendered = 0
    for msgid, msgstr in translations.items():
        names = set(PLACEHOLDER.findall(msgid))
        if not names:
            continue
        # field travels apart from the other parameters, as the API's refusals give it.
        params = {name: f"<{name}>" for name in names if name != "field"}
        error = DomainError(msgid, field="reason" if "field" in names else None, **params)
        text = error.text(lambda text: translations.get(text) or text)
        assert "%(" not in text, (po_path, msgid, text)
        rendered += 1
    assert rendered > 0
