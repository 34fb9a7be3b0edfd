"""Which package may import which, read from the source with ``ast``: nothing is imported.

The layers (README, "Layout: services/ in rooms"; services/__init__.py): ``events/`` is the
domain and needs no one else; ``projections/`` folds events into SQLite and knows neither NATS
nor the services; ``replay/`` reads the stream for the services, not the other way round; the
command line is a way in, through the ``ledger`` console script, that no service may call back
into; and the rooms of ``services/`` import only downwards.

Every import counts wherever it stands: at the top, inside a function, under
``if TYPE_CHECKING:``, and a literal ``importlib.import_module("...")``. Relative imports are
resolved against the importing module first.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Import:
    """One module name an import statement brings in, and where."""

    path: Path
    line: int
    module: str
    statement: str

    def __str__(self) -> str:
        return (
            f"{self.path.relative_to(ROOT)}:{self.line}: {self.statement}  (imports {self.module})"
        )


@dataclass(frozen=True)
class Rule:
    """Files under ``scope`` (a directory or one file) must not import ``forbidden`` modules."""

    name: str
    scope: str
    forbidden: tuple[str, ...]
    exempt: tuple[str, ...] = ()
    """Directories under ``scope`` the rule does not apply to."""

    def files(self) -> Iterator[Path]:
        """The Python files the rule applies to."""
        target = ROOT / self.scope
        found = [target] if target.is_file() else sorted(target.rglob("*.py"))
        for path in found:
            relative = path.relative_to(ROOT).as_posix()
            if not any(relative.startswith(f"{exempt}/") for exempt in self.exempt):
                yield path

    def breaks(self, module: str) -> bool:
        """Whether importing ``module`` (a dotted name) breaks the rule."""
        return any(module == name or module.startswith(f"{name}.") for name in self.forbidden)


RULES = [
    Rule(
        "events imports no other project package",
        "events",
        ("projections", "replay", "services", "tests", "bench", "tools"),
    ),
    Rule(
        "projections imports no NATS and no services",
        "projections",
        ("nats", "faststream", "services"),
    ),
    Rule("replay imports no services", "replay", ("services",)),
    Rule(
        "only services/cli imports services.cli: the console script is the way in",
        "services",
        ("services.cli",),
        exempt=("services/cli",),
    ),
    Rule("events/stored.py imports no NATS", "events/stored.py", ("nats", "faststream")),
    # The rooms of services/ (services/__init__.py): infra stands under every other room, and
    # the services that run side by side in `ledger up` know nothing of each other.
    Rule(
        "services/infra imports no other room",
        "services/infra",
        (
            "services.intake",
            "services.projector",
            "services.api",
            "services.client",
            "services.bootstrap",
            "services.drafts",
            "services.iati",
        ),
    ),
    Rule(
        "services/intake imports no other service",
        "services/intake",
        ("services.projector", "services.api", "services.client", "services.bootstrap"),
    ),
    Rule(
        "services/projector imports no other service",
        "services/projector",
        ("services.intake", "services.api", "services.client", "services.bootstrap"),
    ),
    Rule(
        "services/api imports no other service",
        "services/api",
        ("services.intake", "services.projector", "services.client", "services.bootstrap"),
    ),
    Rule(
        "services/errors.py imports no room but infra: every room reads it",
        "services/errors.py",
        (
            "services.intake",
            "services.projector",
            "services.api",
            "services.client",
            "services.bootstrap",
            "services.cli",
        ),
    ),
    Rule(
        "services/client imports no service: offices run it far from the stack",
        "services/client",
        (
            "services.intake",
            "services.projector",
            "services.api",
            "services.bootstrap",
            "services.drafts",
            "services.iati",
        ),
    ),
    # Drafts and IATI are libraries that the API and the CLI serve: they read the projections
    # and know no service (IATI's importer reports through the office client).
    Rule(
        "services/drafts imports no other room",
        "services/drafts",
        (
            "services.intake",
            "services.projector",
            "services.api",
            "services.client",
            "services.bootstrap",
            "services.iati",
        ),
    ),
    Rule(
        "services/iati imports no room but client and infra",
        "services/iati",
        (
            "services.intake",
            "services.projector",
            "services.api",
            "services.bootstrap",
            "services.drafts",
        ),
    ),
]


def module_name(path: Path) -> str:
    """The dotted name of the module in ``path``, e.g. ``services.intake.service``."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _absolute(node: ast.ImportFrom, path: Path) -> str:
    """The module a ``from ... import`` names, relative dots resolved against ``path``."""
    if not node.level:
        return node.module or ""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package.pop()  # a module's dots count from its package
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_in(path: Path) -> Iterator[Import]:
    """Every module ``path`` imports, wherever in the file the import stands.

    ``from a import b`` yields both ``a`` and ``a.b``, since ``b`` may be a module: ``from
    services import cli`` imports ``services.cli``.
    """
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    # ast.walk visits every node, so imports in function bodies and under TYPE_CHECKING count.
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(path, node.lineno, alias.name, _text(lines, node))
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node, path)
            yield Import(path, node.lineno, module, _text(lines, node))
            for alias in node.names:
                if alias.name != "*":
                    yield Import(path, node.lineno, f"{module}.{alias.name}", _text(lines, node))
        elif isinstance(node, ast.Call) and _is_dynamic_import(node):
            target = node.args[0]
            if isinstance(target, ast.Constant) and isinstance(target.value, str):
                yield Import(path, node.lineno, target.value, _text(lines, node))


def _text(lines: list[str], node: ast.expr | ast.stmt) -> str:
    """The node's source on one line. (ast.get_source_segment splits the whole file per call,
    which made this test take seconds.)"""
    end = node.end_lineno or node.lineno
    return " ".join(line.strip() for line in lines[node.lineno - 1 : end])


def _is_dynamic_import(node: ast.Call) -> bool:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name in ("import_module", "__import__") and bool(node.args)


def violations(rule: Rule) -> list[Import]:
    """The imports that break ``rule``, one per statement and module."""
    found: dict[tuple[Path, int, str], Import] = {}
    for path in rule.files():
        for imported in imports_in(path):
            if rule.breaks(imported.module):
                # ``from services.cli import main`` breaks the rule once, not once per name.
                key = (path, imported.line, imported.statement)
                found.setdefault(key, imported)
    return list(found.values())


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.name)
def test_import_rule(rule: Rule) -> None:
    assert any(True for _ in rule.files()), f"{rule.scope} has no Python file to check"
    broken = violations(rule)
    assert not broken, f"{rule.name}; broken by:\n" + "\n".join(f"  {i}" for i in broken)


# -- the walk itself, on made-up sources ------------------------------------------------------


def _written(tmp_path: Path, relative: str, source: str) -> Path:
    path = tmp_path / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")
    return path


@pytest.fixture
def in_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], Path]:
    """Writes a module into a scratch tree that stands in for the project's root."""
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    return lambda relative, source: _written(tmp_path, relative, source)


def test_the_walk_finds_hidden_imports(in_tree: Callable[[str, str], Path]) -> None:
    path = in_tree(
        "projections/sample.py",
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from services.api import app\n"
        "def late():\n"
        "    import nats.js\n"
        "    importlib.import_module('faststream')\n",
    )
    found = {(i.line, i.module) for i in imports_in(path)}
    assert {(3, "services.api.app"), (5, "nats.js"), (6, "faststream")} <= found
    rule = next(r for r in RULES if r.scope == "projections")
    assert [i.line for i in violations(rule)] == [3, 5, 6]


def test_relative_and_from_package_imports_resolve(in_tree: Callable[[str, str], Path]) -> None:
    in_tree("services/cli/main.py", "from . import query\n")
    intake = in_tree(
        "services/intake/service.py", "from ..cli import main\nfrom services import cli\n"
    )
    modules = {i.module for i in imports_in(intake)}
    assert {"services.cli.main", "services.cli"} <= modules
    rule = next(r for r in RULES if r.scope == "services")
    assert [i.line for i in violations(rule)] == [1, 2]  # services/cli itself is exempt
    assert module_name(intake) == "services.intake.service"
