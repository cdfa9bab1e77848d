"""The house has no loops: the import graph of vattfw/ and plugins/ (read with ast: every import
statement that can run, also those inside functions) has no cycle between modules, and none
between the folders of vattfw (engine, eval, data, spec, sweep, commands, backend) or of plugins.
Imports under ``if TYPE_CHECKING:`` never run (they name types for annotations) and are left out."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"vattfw": ROOT / "vattfw", "vattfw_plugins": ROOT / "plugins"}


def modules() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package's __init__)."""
    out = {}
    for package, folder in PACKAGES.items():
        for file in folder.rglob("*.py"):
            parts = [package, *file.relative_to(folder).with_suffix("").parts]
            is_package = parts[-1] == "__init__"
            out[".".join(parts[:-1] if is_package else parts)] = (file, is_package)
    return out


def imports_of(name: str, file: Path, is_package: bool, known: set[str]) -> set[str]:
    """The project modules ``name`` imports (``from pkg import mod`` counts as importing pkg.mod)."""
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in _runnable(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            found.update(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names)
    return {m for m in found if m in known and m != name}


def _runnable(tree: ast.AST):
    """Every node of ``tree`` except the bodies of ``if TYPE_CHECKING:`` blocks."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            yield from (n for child in node.orelse for n in (child, *_runnable(child)))
            continue
        yield node
        yield from _runnable(node)


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(name, file, is_package, set(found)) for name, (file, is_package) in found.items()}


def folder_of(module: str) -> str:
    """vattfw.engine.trainer -> vattfw.engine; vattfw.model -> vattfw.model (a top-level module is
    its own node); vattfw_plugins.heads._fac -> vattfw_plugins.heads."""
    parts = module.split(".")
    if len(parts) > 1 and (PACKAGES[parts[0]] / parts[1]).is_dir():
        return ".".join(parts[:2])
    return module


def folders(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for a, targets in edges.items():
        out.setdefault(folder_of(a), set())
        for b in targets:
            if folder_of(a) != folder_of(b):
                out[folder_of(a)].add(folder_of(b))
    return out


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One path per strongly connected component of more than one node (Tarjan), e.g. [a, b, a]."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(path_through(edges, set(component)))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def path_through(edges: dict[str, set[str]], component: set[str]) -> list[str]:
    """The shortest loop inside ``component`` through its first node (breadth-first)."""
    start = min(component)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(edges[v] & component):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start] if v != start else [start, start]
                if w not in came_from:
                    came_from[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no loop through {start}")


def show(loops: list[list[str]]) -> str:
    return "\n".join(" -> ".join(loop) for loop in loops)


def test_no_import_cycle_between_modules():
    loops = cycles(graph())
    assert not loops, "import cycles:\n" + show(loops)


def test_no_loop_between_folders():
    loops = cycles(folders(graph()))
    assert not loops, "folder loops:\n" + show(loops)


def test_the_checker_sees_a_loop():
    # the checker itself: a two-module circle and a three-folder loop are found and named
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b", "a"]]
    edges = {"vattfw.eval.x": {"vattfw.engine.y"}, "vattfw.engine.y": {"vattfw.sweep.z"},
             "vattfw.sweep.z": {"vattfw.eval.w"}, "vattfw.eval.w": set()}
    assert cycles(edges) == []
    assert cycles(folders(edges)) == [["vattfw.engine", "vattfw.sweep", "vattfw.eval", "vattfw.engine"]]


def test_the_graph_reads_relative_and_function_level_imports():
    edges = graph()
    # relative, inside a function: `from .evaluate import run_evaluators` in Trainer._evaluate
    assert "vattfw.engine.evaluate" in edges["vattfw.engine.trainer"]
    # `from . import shared, t5, transformer` in a package's __init__
    assert {"vattfw_plugins.backbones.t5", "vattfw_plugins.backbones.shared"} <= edges["vattfw_plugins.backbones"]
    # `from ..engine.weights import load_weights` two levels up
    assert "vattfw.engine.weights" in edges["vattfw.eval"]
    # annotation-only imports are not edges: hookspec names PluginHost for type checkers only
    assert "vattfw.host" not in edges["vattfw.hookspec"] and "vattfw.hookspec" in edges["vattfw.host"]
