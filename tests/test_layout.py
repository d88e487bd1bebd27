"""The package's shape: no import cycles, thin routes, small files.

Imports are read from the source with ``ast``, including those inside functions, which a
runtime import check would not see.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "latentspace"
MAX_LINES = 450


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(path: Path, modules: set[str] | None = None) -> set[str]:
    """Every ``latentspace`` module ``path`` imports, at module level or inside functions.

    ``from pkg import name`` counts as importing ``pkg.name`` when that is a module (of
    ``modules``), else as importing ``pkg``.
    """
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if modules is not None and sub in modules else base)
    return {m for m in found if m == "latentspace" or m.startswith("latentspace.")}


def graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    modules = {module_name(p): p for p in package.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges[name] = {m for m in imported(path, set(modules)) if m in modules and m != name}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    edges = graph()
    # A package __init__ that re-exports its submodules is not a cycle with them.
    for name in edges:
        edges[name] = {t for t in edges[name] if not t.startswith(f"{name}.")}
    assert cycles(edges) == []


ROUTE_ALLOWED = ("latentspace.api", "latentspace.service")


@pytest.mark.parametrize(
    "path", sorted((PACKAGE / "api" / "routes").glob("*.py")), ids=lambda p: p.name
)
def test_routes_import_only_the_api_and_the_service(path: Path) -> None:
    outside = {m for m in imported(path) if m != "latentspace" and not m.startswith(ROUTE_ALLOWED)}
    assert outside == set(), f"{path.name} reaches past the service layer: {sorted(outside)}"
    source = path.read_text()
    for forbidden in ("sqlalchemy", "faiss", "import numpy", "session"):
        assert forbidden not in source, f"{path.name} mentions {forbidden}"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: module_name(p))
def test_no_source_file_is_over_the_size_limit(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(SRC)} has {lines} lines"
