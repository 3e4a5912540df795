"""Every import statement of the package resolves: each module it names imports and each name
it takes from a module exists, whether the statement sits at module level, inside a function or
under ``TYPE_CHECKING``. An import inside a branch that no test reaches (``report`` of a PraNet
run once imported a name that did not exist) fails here, not in a user's hands.

The statements are read with :mod:`ast` and executed one by one. An import guarded by a ``try``
whose handler catches the failure (optional packages, a platform without ``fcntl``) may fail as
its handler expects; its names are still checked when the module is there. The scripts in
``tools/`` and ``benchmarks/`` are checked for what they take from ``ssformer``.
"""

from __future__ import annotations

import ast
import builtins
import importlib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "ssformer"
SCRIPTS = sorted((ROOT / "tools").glob("*.py")) + sorted((ROOT / "benchmarks").glob("*.py"))
ONLY_ELSEWHERE: dict[str, str] = {
    "google.colab": "exists only on Colab (ssformer.notebook imports it after in_colab())",
}
"""Modules that exist only where their branch runs: checked only when importable."""


@dataclass(frozen=True)
class Statement:
    """One import statement: the module it imports, the names it takes (empty for ``import
    X``), where it is, and the exception types a ``try`` around it catches."""

    module: str
    names: tuple[str, ...]
    where: str
    caught: tuple[type[BaseException], ...]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _absolute(node: ast.ImportFrom, path: Path) -> str:
    if not node.level:
        return node.module or ""
    base = _module_name(path).split(".")
    keep = len(base) - node.level + (1 if path.name == "__init__.py" else 0)
    return ".".join([*base[:keep], *([node.module] if node.module else [])])


def _handler_types(handlers: list[ast.ExceptHandler]) -> tuple[type[BaseException], ...]:
    names: list[str] = []
    for handler in handlers:
        if handler.type is None:
            names.append("BaseException")
        elif isinstance(handler.type, ast.Tuple):
            names += [e.id for e in handler.type.elts if isinstance(e, ast.Name)]
        elif isinstance(handler.type, ast.Name):
            names.append(handler.type.id)
    found = (getattr(builtins, name, None) for name in names)
    return tuple(t for t in found if isinstance(t, type) and issubclass(t, BaseException))


def _statements(path: Path, root: Path = ROOT) -> list[Statement]:
    """Every import statement of ``path`` (named relative to ``root``), with the exceptions
    caught around it."""
    found: list[Statement] = []
    relative = path.relative_to(root)

    def visit(node: ast.AST, caught: tuple[type[BaseException], ...]) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Statement(alias.name, (), f"{relative}:{node.lineno}", caught))
        elif isinstance(node, ast.ImportFrom):
            names = tuple(alias.name for alias in node.names if alias.name != "*")
            found.append(
                Statement(_absolute(node, path), names, f"{relative}:{node.lineno}", caught)
            )
        if isinstance(node, ast.Try):
            inner = caught + _handler_types(node.handlers)
            for child in node.body:
                visit(child, inner)
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(child, caught)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, caught)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), ())
    return found


def _check(statement: Statement) -> str | None:
    """``None`` if the statement resolves (or fails as its ``try`` expects), else the problem."""
    try:
        module = importlib.import_module(statement.module)
    except BaseException as error:  # SystemExit included: a package may exit on import
        if statement.caught and isinstance(error, statement.caught):
            return None
        if isinstance(error, ImportError) and statement.module in ONLY_ELSEWHERE:
            return None
        return (
            f"{statement.where}: import {statement.module} fails: {type(error).__name__}: {error}"
        )
    for name in statement.names:
        if hasattr(module, name):
            continue
        try:
            importlib.import_module(f"{statement.module}.{name}")
        except ImportError:
            return f"{statement.where}: {statement.module} has no name {name!r}"
    return None


@pytest.fixture(autouse=True)
def _kaggle_without_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``kaggle`` authenticates when imported: give it placeholder credentials (no request is
    made by an import) so that its names can be checked without the user's key."""
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("KAGGLE_USERNAME", "placeholder")
    monkeypatch.setenv("KAGGLE_KEY", "placeholder")


PACKAGE_FILES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", PACKAGE_FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_import_of_the_package_resolves(path: Path) -> None:
    problems = [p for p in map(_check, _statements(path)) if p]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_what_the_scripts_take_from_ssformer_exists(path: Path) -> None:
    ours = [s for s in _statements(path) if s.module.split(".")[0] == "ssformer"]
    problems = [p for p in map(_check, ours) if p]
    assert not problems, "\n".join(problems)


def test_the_check_finds_a_name_that_does_not_exist(tmp_path: Path) -> None:
    """The check is not vacuous: the import ``report`` once had, inside a function, fails it."""
    source = tmp_path / "module.py"
    source.write_text(
        "def test_folder():\n"
        "    try:\n"
        "        import fcntl\n"
        "    except ImportError:\n"
        "        pass\n"
        "    from ssformer.data.datasets import PRANET_TEST_SETS\n",
        encoding="utf-8",
    )
    statements = _statements(source, root=tmp_path)
    assert [s.caught for s in statements] == [(ImportError,), ()]
    assert _check(statements[0]) is None
    problem = _check(statements[1])
    assert problem is not None and "has no name 'PRANET_TEST_SETS'" in problem
    assert _check(Statement("ssformer.registry", ("PROTOCOLS",), "here", ())) is None
    assert "fails" in (_check(Statement("ssformer.no_such_module", (), "here", ())) or "")
