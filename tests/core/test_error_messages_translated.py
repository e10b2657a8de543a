"""Every refusal is shown in the reader's language (issue 19: every Vietnamese page Vietnamese).

A ``DomainError`` carries a msgid that is looked up in the catalogues when it is shown
(``DomainError.text(translate)``). A message built at run time (f-string, ``+``, ``%``,
``.format``) is never in a catalogue, and a literal without a Vietnamese msgstr shows English
to an official, on a page or in the CLI with ``--lang vi``. So every message given to a
``DomainError`` (or a subclass, or a ``FieldProblem``, one problem of an app registration) must
be a literal msgid with a Vietnamese translation in the catalogues the app merges.

The modules are read with ``ast``, nothing is imported. The message is followed to where it is
written: module constants (also imported ones), ``a if c else b``, local variables, the
``return`` values of a called function, and the parameters of a function that passes a message
on (its callers are then checked, like the callers of a subclass's own ``__init__``). Only the
``.message`` of an existing error or problem is taken as it is: it was checked where it was made.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import pytest

from tests.core.test_catalogues_complete import PACKAGES, ROOT, _vi_entries

# (module, name): idp.scim has its own NotFound and Conflict (SCIM errors for machines, whose
# ``detail`` stays English), and methods are named "Class.method".
Target = tuple[str, str]
ROOT_ERROR: Target = ("core.errors", "DomainError")
# Carriers of a msgid that are not DomainErrors: their parameters, and which is the message.
OTHER_CARRIERS: dict[Target, tuple[list[str], set[str]]] = {
    ("idp.clients", "FieldProblem"): (["field", "message", "params", "line"], {"message"}),
}
MAX_DEPTH = 12


@dataclass(frozen=True)
class Module:
    name: str  # dotted, e.g. "idp.units"
    where: str  # path relative to the project
    tree: ast.Module


def _modules() -> list[Module]:
    modules = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT)
            parts = list(relative.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            modules.append(Module(".".join(parts), relative.as_posix(), tree))
    return modules


@dataclass(frozen=True)
class Scope:
    """Where an expression is read: its module, the function around it and, when the function
    is followed from a call, what that call gave its parameters (None: any caller)."""

    module: Module
    function: ast.FunctionDef | None = None
    key: Target | None = None
    bindings: Mapping[str, tuple[ast.expr, Scope]] | None = None

    @property
    def method_class(self) -> str | None:
        if self.key is None or "." not in self.key[1]:
            return None
        return self.key[1].split(".")[0]


@dataclass(frozen=True)
class CallSite:
    call: ast.Call
    scope: Scope

    @property
    def method_class(self) -> str | None:
        """The class whose method holds the call (``self.x()`` is that class's method)."""
        return self.scope.method_class


def _parameters(function: ast.FunctionDef, *, method: bool) -> list[ast.arg]:
    positional = function.args.posonlyargs + function.args.args
    return positional[1:] if method and positional else positional


def _defaults(function: ast.FunctionDef) -> dict[str, ast.expr]:
    arguments = function.args
    positional = arguments.posonlyargs + arguments.args
    found = {
        parameter.arg: default
        for parameter, default in zip(
            positional[len(positional) - len(arguments.defaults) :], arguments.defaults, strict=True
        )
    }
    for parameter, kw_default in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True):
        if kw_default is not None:
            found[parameter.arg] = kw_default
    return found


def _is_marker(call: ast.Call) -> bool:
    func = call.func
    named_n = (isinstance(func, ast.Name) and func.id == "N_") or (
        isinstance(func, ast.Attribute) and func.attr == "N_"
    )
    return named_n and len(call.args) == 1 and not call.keywords


def _built_at_run_time(node: ast.expr) -> bool:
    """An f-string, a concatenation or ``%``, or ``.format()``: no catalogue can hold it."""
    if isinstance(node, ast.JoinedStr | ast.BinOp):
        return True
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
    )


def _is_super_init(call: ast.Call) -> bool:
    func = call.func
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "__init__"
        and isinstance(func.value, ast.Call)
        and isinstance(func.value.func, ast.Name)
        and func.value.func.id == "super"
    )


def _own_nodes(function: ast.FunctionDef) -> Iterator[ast.AST]:
    """The nodes of a function's body, without those of functions defined inside it."""
    stack: list[ast.AST] = list(function.body)
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            stack.extend(ast.iter_child_nodes(node))


class MessageCheck:
    """Follows every message given to an error back to where it is written."""

    def __init__(self, modules: list[Module], vietnamese: Mapping[str, object]) -> None:
        self.modules = {module.name: module for module in modules}
        self.vietnamese = vietnamese
        self.problems: dict[str, None] = {}  # ordered, without repeats
        self.passed_on: set[tuple[Target, str]] = set()  # (function, parameter)
        self.definitions: dict[Target, ast.ClassDef | ast.FunctionDef] = {}
        self.bases: dict[Target, list[Target]] = {}
        self.sites: list[CallSite] = []
        for module in modules:
            self._index(module)
        self.errors = self._error_classes()

    # ------------------------------------------------------------------ what the modules hold

    def _index(self, module: Module) -> None:
        for node in module.tree.body:
            if isinstance(node, ast.FunctionDef):
                self.definitions[(module.name, node.name)] = node
            elif isinstance(node, ast.ClassDef):
                self.definitions[(module.name, node.name)] = node
                for item in node.body:
                    if isinstance(item, ast.FunctionDef):
                        self.definitions[(module.name, f"{node.name}.{item.name}")] = item
        self._collect_calls(module.tree, Scope(module), None)

    def _collect_calls(self, node: ast.AST, scope: Scope, enclosing_class: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                self._collect_calls(child, scope, child.name)
            elif isinstance(child, ast.FunctionDef):
                qualname = f"{enclosing_class}.{child.name}" if enclosing_class else child.name
                self._collect_calls(
                    child, Scope(scope.module, child, (scope.module.name, qualname)), None
                )
            else:
                if isinstance(child, ast.Call):
                    self.sites.append(CallSite(child, scope))
                self._collect_calls(child, scope, enclosing_class)

    def _imports(self, module: Module) -> dict[str, Target]:
        """``from x import y [as z]``: z -> (x, y); also ``import x.y as z``: z -> (x.y, "")."""
        found: dict[str, Target] = {}
        for node in module.tree.body:
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    found[alias.asname or alias.name] = (node.module, alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        found[alias.asname] = (alias.name, "")
        return found

    def _constants(self, module: Module) -> dict[str, ast.expr]:
        found: dict[str, ast.expr] = {}
        for node in module.tree.body:
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        found[target.id] = node.value
            elif (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and node.value is not None
            ):
                found[node.target.id] = node.value
        return found

    def _origin(self, target: Target, depth: int = 0) -> Target:
        """Where an imported name is defined, following re-exports."""
        module = self.modules.get(target[0])
        if module is None or depth > 5 or target in self.definitions:
            return target
        if target[1] in self._constants(module):
            return target
        imported = self._imports(module).get(target[1])
        return self._origin(imported, depth + 1) if imported else target

    def _module_of_name(self, name: str, module: Module) -> Module | None:
        """The module a name stands for (``from idp import clients``)."""
        imported = self._imports(module).get(name)
        if imported is None:
            return None
        dotted = f"{imported[0]}.{imported[1]}" if imported[1] else imported[0]
        return self.modules.get(dotted)

    def target_of(
        self, func: ast.expr, module: Module, enclosing_class: str | None
    ) -> Target | None:
        if isinstance(func, ast.Name):
            if (module.name, func.id) in self.definitions:
                return (module.name, func.id)
            imported = self._imports(module).get(func.id)
            return self._origin(imported) if imported else None
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            if func.value.id in ("self", "cls") and enclosing_class:
                return (module.name, f"{enclosing_class}.{func.attr}")
            source = self._module_of_name(func.value.id, module)
            return self._origin((source.name, func.attr)) if source else None
        return None

    def _error_classes(self) -> set[Target]:
        for target, node in self.definitions.items():
            if isinstance(node, ast.ClassDef):
                module = self.modules[target[0]]
                self.bases[target] = [
                    base for expr in node.bases if (base := self.target_of(expr, module, None))
                ]
        found = {ROOT_ERROR}
        while True:
            more = {t for t, parents in self.bases.items() if set(parents) & found} - found
            if not more:
                return found
            found |= more

    def _init_owner(self, cls: Target) -> Target | None:
        """The class (``cls`` or an ancestor below DomainError) whose ``__init__`` it uses."""
        while cls != ROOT_ERROR and cls in self.bases:
            if (cls[0], f"{cls[1]}.__init__") in self.definitions:
                return cls
            parents = [base for base in self.bases[cls] if base in self.errors]
            if not parents:
                return None
            cls = parents[0]
        return None

    def message_parameters(self, target: Target) -> tuple[list[str], set[str]] | None:
        """The parameters of a carrier of messages, and which of them are messages."""
        if target in OTHER_CARRIERS:
            return OTHER_CARRIERS[target]
        if target in self.errors:
            owner = self._init_owner(target)
            if owner is None:
                return ["message"], {"message"}
            target = (owner[0], f"{owner[1]}.__init__")
        definition = self.definitions.get(target)
        if not isinstance(definition, ast.FunctionDef):
            return None
        messages = {name for key, name in self.passed_on if key == target}
        if not messages:
            return None
        method = "." in target[1]
        return [p.arg for p in _parameters(definition, method=method)], messages

    # ------------------------------------------------------------------ following a message

    def report(self, scope: Scope, node: ast.expr, why: str) -> None:
        self.problems[f"{scope.module.where}:{node.lineno}: {why}"] = None

    def check(self, node: ast.expr, scope: Scope, depth: int = 0, *, marked: bool = False) -> None:
        """``marked``: ``node`` is the argument of ``N_()``, where ``pybabel extract`` finds it."""
        shown = ast.unparse(node)[:70]
        if depth > MAX_DEPTH:
            self.report(scope, node, f"message followed too far ({shown})")
        elif _built_at_run_time(node):
            self.report(
                scope,
                node,
                f"message built at run time ({shown}); "
                "write a %(name)s msgid and pass the values as parameters",
            )
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if not marked:
                self.report(scope, node, f"{node.value!r} is not marked with N_()")
            if node.value not in self.vietnamese:
                self.report(scope, node, f"{node.value!r} has no Vietnamese translation")
        elif isinstance(node, ast.Constant):
            if node.value is not None:
                self.report(scope, node, f"not a message ({shown})")
        elif isinstance(node, ast.Call) and _is_marker(node):
            self.check(node.args[0], scope, depth + 1, marked=True)
        elif isinstance(node, ast.IfExp):
            self.check(node.body, scope, depth + 1)
            self.check(node.orelse, scope, depth + 1)
        elif isinstance(node, ast.BoolOp):
            for value in node.values:
                self.check(value, scope, depth + 1)
        elif isinstance(node, ast.Name):
            self._check_name(node, scope, depth)
        elif isinstance(node, ast.Attribute):
            self._check_attribute(node, scope, depth)
        elif isinstance(node, ast.Call):
            self._check_returns(node, scope, depth)
        else:
            self.report(scope, node, f"message is not a literal msgid ({shown})")

    def _check_name(self, node: ast.Name, scope: Scope, depth: int) -> None:
        function, name = scope.function, node.id
        if function is not None and scope.key is not None:
            parameters = {a.arg for a in function.args.posonlyargs + function.args.args}
            parameters |= {a.arg for a in function.args.kwonlyargs}
            if name in parameters:
                default = _defaults(function).get(name)
                if scope.bindings is not None and name in scope.bindings:
                    expression, caller = scope.bindings[name]
                    self.check(expression, caller, depth + 1)
                    return
                if scope.bindings is None:
                    self.passed_on.add((scope.key, name))  # its callers are checked
                if default is not None:
                    self.check(default, Scope(scope.module), depth + 1)
                return
            assigned = [
                statement.value
                for statement in _own_nodes(function)
                if isinstance(statement, ast.Assign | ast.AnnAssign)
                and statement.value is not None
                and any(
                    isinstance(target, ast.Name) and target.id == name
                    for target in (
                        statement.targets
                        if isinstance(statement, ast.Assign)
                        else [statement.target]
                    )
                )
            ]
            if assigned:
                for value in assigned:
                    self.check(value, scope, depth + 1)
                return
        module = scope.module
        if name in (constants := self._constants(module)):
            self.check(constants[name], Scope(module), depth + 1)
            return
        imported = self._imports(module).get(name)
        origin = self._origin(imported) if imported else None
        source = self.modules.get(origin[0]) if origin else None
        if origin and source and origin[1] in (constants := self._constants(source)):
            self.check(constants[origin[1]], Scope(source), depth + 1)
            return
        self.report(scope, node, f"message is not a literal msgid ({name})")

    def _check_attribute(self, node: ast.Attribute, scope: Scope, depth: int) -> None:
        if isinstance(node.value, ast.Name):
            source = self._module_of_name(node.value.id, scope.module)
            if source is not None and node.attr in (constants := self._constants(source)):
                self.check(constants[node.attr], Scope(source), depth + 1)
                return
        if node.attr == "message":
            return  # an existing error's or problem's message: checked where it was made
        self.report(scope, node, f"message is not a literal msgid ({ast.unparse(node)[:70]})")

    def _check_returns(self, call: ast.Call, scope: Scope, depth: int) -> None:
        """A message returned by a function: every value it may return."""
        target = self.target_of(call.func, scope.module, scope.method_class)
        definition = self.definitions.get(target) if target else None
        if not isinstance(definition, ast.FunctionDef) or target is None:
            shown = ast.unparse(call)[:70]
            self.report(
                scope, call, f"message comes from a call this check cannot follow ({shown})"
            )
            return
        method = "." in target[1]
        bindings = self._bind(call, definition, scope, method=method)
        inner = Scope(self.modules[target[0]], definition, target, bindings)
        for node in _own_nodes(definition):
            if isinstance(node, ast.Return) and node.value is not None:
                self.check(node.value, inner, depth + 1)

    @staticmethod
    def _bind(
        call: ast.Call, definition: ast.FunctionDef, scope: Scope, *, method: bool
    ) -> dict[str, tuple[ast.expr, Scope]]:
        names = [p.arg for p in _parameters(definition, method=method)]
        bound = {
            name: (argument, scope)
            for name, argument in zip(names, call.args, strict=False)
            if not isinstance(argument, ast.Starred)
        }
        bound |= {k.arg: (k.value, scope) for k in call.keywords if k.arg is not None}
        return bound

    # ------------------------------------------------------------------ every carrier call

    def _message_arguments(self, site: CallSite) -> Iterator[ast.expr]:
        call, module = site.call, site.scope.module
        if _is_super_init(call):
            cls = (module.name, site.method_class or "")
            parents = [base for base in self.bases.get(cls, []) if base in self.errors]
            if not parents:
                return
            target: Target | None = parents[0]
        else:
            target = self.target_of(call.func, module, site.method_class)
        signature = self.message_parameters(target) if target else None
        if signature is None:
            return
        names, messages = signature
        for name, argument in zip(names, call.args, strict=False):
            if name in messages and not isinstance(argument, ast.Starred):
                yield argument
        for keyword in call.keywords:
            if keyword.arg in messages:
                yield keyword.value

    def run(self) -> list[str]:
        """Check every carrier call; repeat while functions that pass a message on are found."""
        while True:
            known = len(self.passed_on)
            for site in self.sites:
                for argument in self._message_arguments(site):
                    self.check(argument, site.scope)
            if len(self.passed_on) == known:
                return list(self.problems)

    def carrier_calls(self) -> int:
        return sum(1 for site in self.sites for _ in self._message_arguments(site))


def problems_of(modules: list[Module], vietnamese: Mapping[str, object]) -> list[str]:
    """What is wrong with every message given to an error, as "path:line: why" lines."""
    return MessageCheck(modules, vietnamese).run()


@pytest.fixture(scope="module")
def modules() -> list[Module]:
    return _modules()


def test_the_check_sees_the_errors_of_every_package(modules: list[Module]) -> None:
    check = MessageCheck(modules, {})
    assert {
        ("core.errors", "NotFound"),
        ("core.web.csrf", "CsrfError"),
        ("ca_admin.errors", "UnknownCertificate"),
        ("idp.clients", "InvalidClientSettings"),
    } <= check.errors
    assert ("idp.scim.errors", "NotFound") not in check.errors  # SCIM's own, for machines
    problems = check.run()
    for package in PACKAGES:
        assert any(p.startswith(f"{package}/") for p in problems), package
    assert check.carrier_calls() > 250
    # Messages passed on through a function are followed to its callers.
    assert any(key[1].endswith("._gone") for key, _ in check.passed_on), check.passed_on


def test_every_error_message_is_a_literal_msgid_translated_into_vietnamese(
    modules: list[Module],
) -> None:
    problems = problems_of(modules, _vi_entries())
    assert problems == [], (
        f"{len(problems)} error message(s) an official would read in English:\n  "
        + "\n  ".join(problems)
        + "\nAdd the msgid to the vi and en catalogues of the package that raises it."
    )


SAMPLE = """
from core.errors import Conflict, DomainError
from core.web.i18n import N_
from idp import clients

TRANSLATED = N_("Translated")


class Refused(Conflict):
    def __init__(self, message=N_("Default"), *, field=None):
        super().__init__(message, field=field)


def refuse(name, code):
    raise Refused(f"Unit {name} exists.")
    raise DomainError("Level " + code)
    raise DomainError("Level %s" % code)
    raise DomainError("Level {}".format(code), field="level")
    raise DomainError(message=N_(f"Bad {code}"))
    raise DomainError(name.title())
    raise DomainError(N_("Not in the catalogue"))
    raise DomainError("Translated")
    raise DomainError(TRANSLATED)
    raise DomainError(clients.GOOD)
    raise Refused(N_("Translated"), field="x")
    raise Refused()
    raise Conflict(TRANSLATED if code else N_("Good"))
    message = problem_of(code)
    raise Conflict(message)
    pass_on(N_("Passed on"))


def problem_of(code):
    if code:
        return None
    return choose(first=N_("Returned"))


def choose(first, second=TRANSLATED):
    return first or second


def pass_on(message):
    raise DomainError(message)
"""


def test_the_check_catches_every_kind_of_untranslatable_message() -> None:
    errors_source = ROOT.joinpath("core/errors.py").read_text(encoding="utf-8")
    errors = Module("core.errors", "core/errors.py", ast.parse(errors_source))
    sample = Module("idp.sample", "idp/sample.py", ast.parse(SAMPLE))
    clients = Module("idp.clients", "idp/clients.py", ast.parse('GOOD = N_("Good")'))
    vietnamese = {"Translated": ("Đã dịch",), "Good": ("Tốt",), "Default": ("Mặc định",)}
    problems = problems_of([errors, sample, clients], vietnamese)
    assert problems == [
        "idp/sample.py:15: message built at run time (f'Unit {name} exists.'); "
        "write a %(name)s msgid and pass the values as parameters",
        "idp/sample.py:16: message built at run time ('Level ' + code); "
        "write a %(name)s msgid and pass the values as parameters",
        "idp/sample.py:17: message built at run time ('Level %s' % code); "
        "write a %(name)s msgid and pass the values as parameters",
        "idp/sample.py:18: message built at run time ('Level {}'.format(code)); "
        "write a %(name)s msgid and pass the values as parameters",
        "idp/sample.py:19: message built at run time (f'Bad {code}'); "
        "write a %(name)s msgid and pass the values as parameters",
        "idp/sample.py:20: message comes from a call this check cannot follow (name.title())",
        "idp/sample.py:21: 'Not in the catalogue' has no Vietnamese translation",
        "idp/sample.py:22: 'Translated' is not marked with N_()",
        "idp/sample.py:36: 'Returned' has no Vietnamese translation",
        "idp/sample.py:30: 'Passed on' has no Vietnamese translation",
    ]
    # Without "Default" in the catalogue, the default of the subclass's message is reported.
    del vietnamese["Default"]
    assert "idp/sample.py:10: 'Default' has no Vietnamese translation" in problems_of(
        [errors, sample, clients], vietnamese
    )
