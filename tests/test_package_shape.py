"""The package's shape stays as designed: imports point one way only.

Every ``import`` in ``src/ssformer`` (at module level, inside functions and under
``TYPE_CHECKING`` alike) is read with :mod:`ast`; the test fails on an import cycle between
modules, on any import between :mod:`ssformer.models` and :mod:`ssformer.data`, and on torch
imported by the modules that must stay torch-free.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "ssformer"
TORCH_FREE = (
    "ssformer.registry",
    "ssformer.errors",
    "ssformer.config",
    "ssformer.run_files",
    "ssformer.image_size",
    "ssformer.deploy.formats",
    "ssformer.data.layout",
)
HEAVY = ("torch", "torchvision", "timm", "numpy")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports_of(node: ast.Import | ast.ImportFrom, name: str, is_package: bool) -> set[str]:
    """The module names one import statement of module ``name`` imports."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    if node.level:
        base = name.split(".")
        base = base[: len(base) - node.level + (1 if is_package else 0)]
        module = ".".join([*base, *([node.module] if node.module else [])])
    else:
        module = node.module or ""
    # ``from package import module`` imports that module too
    return {module} | {f"{module}.{alias.name}" for alias in node.names}


def _imports(path: Path, name: str) -> set[str]:
    """Every module name ``path`` imports, wherever the import statement stands."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found |= _imports_of(node, name, is_package)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (``ssformer.x.y`` resolved to the longest
    existing module name)."""
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}

    def resolve(target: str) -> str | None:
        while target and target not in paths:
            target = target.rpartition(".")[0]
        return target or None

    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        targets = {resolve(t) for t in _imports(path, name) if t.startswith("ssformer")}
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _package_faces(graph: dict[str, set[str]]) -> set[str]:
    return {name for name in graph if (PACKAGE.parent / name.replace(".", "/")).is_dir()}


def test_no_import_cycle() -> None:
    graph = import_graph()
    # A package's __init__ that re-exports its modules is their face, not part of a cycle;
    # every module-to-module edge counts.
    faces = _package_faces(graph)
    modules = {m: {t for t in ts if t not in faces} for m, ts in graph.items() if m not in faces}
    assert _cycles(modules) == []


def test_models_and_data_never_import_each_other() -> None:
    crossing = sorted(
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        for target in targets
        if (module.startswith("ssformer.models") and target.startswith("ssformer.data"))
        or (module.startswith("ssformer.data") and target.startswith("ssformer.models"))
    )
    assert crossing == []


def _import_time_imports(name: str) -> set[str]:
    """What importing module ``name`` imports at once: statements outside functions and
    outside ``if TYPE_CHECKING:`` blocks (lazy imports inside functions do not count)."""
    tree = ast.parse(_path_of(name).read_text(encoding="utf-8"))
    found: set[str] = set()
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found |= _imports_of(node, name, _path_of(name).name == "__init__.py")
            continue
        todo.extend(child for child in ast.iter_child_nodes(node) if isinstance(child, ast.stmt))
    return found


def _path_of(module: str) -> Path:
    relative = PACKAGE.parent.joinpath(*module.split("."))
    package = relative / "__init__.py"
    return package if package.exists() else relative.with_suffix(".py")


@pytest.mark.parametrize("package", TORCH_FREE)
def test_torch_free_modules_import_no_torch(package: str) -> None:
    """Importing these (and all they import at once) never loads torch, timm or NumPy: loading a
    config or the registry stays a matter of milliseconds."""
    graph = import_graph()
    reached: set[str] = set()
    todo = [m for m in graph if m == package or m.startswith(package + ".")]
    heavy = []
    while todo:
        module = todo.pop()
        if module in reached:
            continue
        reached.add(module)
        names = _import_time_imports(module)
        heavy += [f"{module} imports {n}" for n in names if n.split(".")[0] in HEAVY]
        todo += [m for m in graph if m in names]
    assert heavy == []


def test_the_checks_see_a_cycle_and_a_crossing() -> None:
    """The checks above can fail: a made-up graph with both faults is caught."""
    graph = {"ssformer.models.a": {"ssformer.data.b"}, "ssformer.data.b": {"ssformer.models.a"}}
    assert _cycles(graph) == [["ssformer.data.b", "ssformer.models.a"]]
    real = import_graph()
    assert "ssformer.models.backbones" in real["ssformer.models.model"]  # edges are read
