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


# Alembic's revisions are named by number and found by Alembic; they need no map.
PACKAGES = sorted(
    p.parent
    for p in PACKAGE.rglob("__init__.py")
    if p.parent != PACKAGE and p.parent.name != "versions"
)


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: module_name(p / "__init__.py"))
def test_each_package_map_names_all_its_modules(package: Path) -> None:
    # A package's docstring is its map: a newcomer reads one page to find a module.
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
    words = set(doc.replace("/", " ").replace(",", " ").replace("`", " ").split())
    members = [p.stem for p in package.glob("*.py") if p.stem not in ("__init__", "__main__")]
    members += [p.parent.name for p in package.glob("*/__init__.py")]
    missing = sorted(m for m in members if m not in words)
    assert not missing, f"{module_name(package / '__init__.py')}'s map lacks {missing}"


# The views a process keeps per collection: only latentspace.live builds or changes them.
VIEW_MUTATORS = {"committed", "forget", "remodelled", "register", "apply", "written", "drop"}
VIEW_NAMES = {"indexes", "rows", "keywords", "hits", "phashes", "maps"}


def _view_calls(path: Path) -> list[str]:
    # ``<x>.live.<view>.<mutator>(...)``: a view changed past its owner.
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        target = node.func.value
        if (
            node.func.attr in VIEW_MUTATORS
            and isinstance(target, ast.Attribute)
            and target.attr in VIEW_NAMES
            and isinstance(target.value, ast.Attribute)
            and target.value.attr == "live"
        ):
            found.append(f"{path.name}:{node.lineno} {target.attr}.{node.func.attr}")
    return found


OUTSIDE_LIVE = sorted(
    p for p in PACKAGE.rglob("*.py") if "live" not in p.relative_to(PACKAGE).parts
)
VIEW_CLASSES = {
    "HitCache",
    "PhashIndexes",
    "KeywordIndexes",
    "MapViews",
    "CollectionRows",
    "LocalIndexes",
    "RayShardedIndexes",
    "LiveState",
}


@pytest.mark.parametrize("path", OUTSIDE_LIVE, ids=lambda p: module_name(p))
def test_views_are_reached_only_through_their_owner(path: Path) -> None:
    assert _view_calls(path) == [], f"{path.name} changes a view past LiveState"
    tree = ast.parse(path.read_text())
    built = [
        n.func.id if isinstance(n.func, ast.Name) else n.func.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name | ast.Attribute)
    ]
    wrong = sorted(
        set(built) & VIEW_CLASSES - ({"LiveState"} if path.name == "context.py" else set())
    )
    assert wrong == [], f"{path.name} builds views itself: {wrong}"
    for node in ast.walk(tree):  # no context field holds a view of its own
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            annotation = ast.unparse(node.annotation)
            assert not VIEW_CLASSES & set(annotation.replace("|", " ").split()) - {"LiveState"}, (
                f"{path.name}:{node.lineno} keeps a view outside LiveState: {annotation}"
            )


def test_the_view_check_finds_a_view_changed_by_hand(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f(ctx):\n    ctx.live.hits.drop(row)\n    ctx.live.committed(row, c)\n")
    assert _view_calls(bad) == ["bad.py:2 hits.drop"]


def test_no_package_imports_a_package_above_it_in_a_cycle() -> None:
    # Folder level: the packages' import graph has no cycle (function-level imports count).
    edges = graph()
    folders: dict[str, set[str]] = {}

    def folder(name: str) -> str:
        parts = name.split(".")
        return ".".join(parts[:2])

    for source, targets in edges.items():
        folders.setdefault(folder(source), set()).update(
            folder(t) for t in targets if folder(t) != folder(source)
        )
    folders.pop("latentspace", None)
    for targets in folders.values():
        targets.discard("latentspace")
    assert cycles(folders) == []


def test_service_and_live_tests_are_named_after_their_modules() -> None:
    # tests/service and tests/live mirror their packages: test_<module>.py for a module or
    # subpackage of latentspace.service / latentspace.live (test_forget.py: the forget and
    # recreate suite of live's owner, state.py).
    tests = Path(__file__).resolve().parent
    package = Path(__file__).resolve().parents[1] / "src" / "latentspace"
    extra = {"service": set(), "live": {"forget"}}
    for folder, allowed_extra in extra.items():
        source = package / folder
        modules = {p.stem for p in source.glob("*.py") if p.stem != "__init__"}
        modules |= {p.parent.name for p in source.glob("*/__init__.py")}
        names = {p.stem.removeprefix("test_") for p in (tests / folder).glob("test_*.py")}
        stray = sorted(names - modules - allowed_extra)
        assert not stray, f"tests/{folder}: no latentspace.{folder} module for {stray}"
