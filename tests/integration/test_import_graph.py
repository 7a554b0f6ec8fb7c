"""The package's import graph has no cycles and follows the layers of pyproject.toml.

import-linter checks the same contract in CI (``lint-imports``); this test reads every
module with ``ast`` and counts every import, also those inside functions and under
``if TYPE_CHECKING:``, so that an import cannot dodge a cycle by hiding in a function.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "bayesmeta"


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__``)."""
    modules = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _resolve(name: str, modules: Mapping[str, Path]) -> str | None:
    """The module that ``name`` (a module or a name in one) lives in, if it is ours."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imported_modules(module: str, source: str, modules: Mapping[str, Path]) -> Iterator[str]:
    """The package's modules that ``source`` (module ``module``) imports, anywhere in it."""
    is_package = modules[module].name == "__init__.py"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module if is_package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}" if base else anchor
            # "from pkg import sub" imports the module pkg.sub; "from mod import name" mod.
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names
            ]
        else:
            continue
        for target in targets:
            resolved = _resolve(target, modules)
            if resolved is not None and resolved != module:
                yield resolved


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the package's modules it imports."""
    modules = module_files(root)
    return {
        name: set(imported_modules(name, path.read_text(), modules))
        for name, path in modules.items()
    }


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def contract_layers(pyproject: Path = ROOT / "pyproject.toml") -> list[list[str]]:
    """The layers contract of pyproject.toml, bottom first; each layer its sibling packages."""
    config = tomllib.loads(pyproject.read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["type"] == "layers"]
    (container,) = contract["containers"]
    assert container == PACKAGE
    return [
        [f"{PACKAGE}.{name.strip()}" for name in layer.split("|")]
        for layer in reversed(contract["layers"])
    ]


def layer_violations(
    graph: Mapping[str, Iterable[str]], layers: list[list[str]]
) -> list[tuple[str, str, str]]:
    """Imports that go up a layer, across independent siblings, or out of the layers.

    A module outside every layer (the package's ``__init__`` and the shims left at
    old paths) may import anything; a module inside one may import its own package
    and the layers below.
    """

    def place(module: str) -> tuple[int, str] | None:
        for level, siblings in enumerate(layers):
            for top in siblings:
                if module == top or module.startswith(top + "."):
                    return level, top
        return None

    bad = []
    for importer, imported in sorted((a, b) for a, targets in graph.items() for b in targets):
        here = place(importer)
        if here is None:
            continue
        there = place(imported)
        if there is None:
            bad.append((importer, imported, "imports a module outside the layers (an old path?)"))
        elif there[0] > here[0]:
            bad.append((importer, imported, "imports a higher layer"))
        elif there[0] == here[0] and there[1] != here[1]:
            bad.append((importer, imported, "imports an independent sibling"))
    return bad


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_imports_follow_the_layers():
    assert layer_violations(import_graph(), contract_layers()) == []


def test_every_package_has_a_layer():
    layers = contract_layers()
    placed = {top for siblings in layers for top in siblings}
    for module in module_files():
        top = ".".join(module.split(".")[:2])
        if module == PACKAGE or top not in placed:
            # the package's __init__, and the shims left at old top-level paths
            assert module == PACKAGE or _is_shim(module), f"{module} has no layer"


def _is_shim(module: str) -> bool:
    return "moved(__name__" in module_files()[module].read_text()


def test_the_checks_catch_a_cycle_and_a_climb():
    # The checks themselves: a cycle hidden in a function and an import up a layer.
    graph = {"p.a": {"p.b"}, "p.b": {"p.a"}, "p.low": {"p.high"}}
    assert cycles(graph) == [["p.a", "p.b"]]
    layers = [["p.low"], ["p.a", "p.b"], ["p.high"]]
    assert layer_violations(graph, layers) == [
        ("p.a", "p.b", "imports an independent sibling"),
        ("p.b", "p.a", "imports an independent sibling"),
        ("p.low", "p.high", "imports a higher layer"),
    ]
    source = "def f():\n    from bayesmeta.cli.main import main\n"
    modules = module_files()
    assert list(imported_modules("bayesmeta.tasks.task", source, modules)) == ["bayesmeta.cli.main"]
