"""The import graph of recgoat_lib has no cycles and no upward imports.

Built statically with `ast` from every `import` / `from ... import` in the package, at any depth
(module level, inside functions, under `if TYPE_CHECKING`), so a loop hidden in a function body
counts too. Importing `a.b.c` also runs the packages `a.b` and `a`, so an edge to a module
is also an edge to each package above it (the root package, which imports nothing, is left out).

Every module belongs to one of `LAYERS` (bottom first) and may import only its own layer and the
layers below it; a new module must be placed in a layer here.
"""
from __future__ import annotations

import ast
from pathlib import Path

LIB = Path(__file__).resolve().parent.parent / "recgoat_lib"
ROOT = LIB.name

#: the library's layers, bottom first (module names relative to the root; "pkg.*" is every module of
#: the package pkg, the package itself included)
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundations", ("", "dataset", "determinism", "memory", "references", "departures", "download", "files",
                     "notebook_outputs")),
    ("data and features", ("data", "toy", "graphs", "tables", "feature_cache", "lm", "images",
                           "sequential", "sequential.data")),
    ("models", ("models.*", "ot", "sequential.models")),
    ("training and measurement", ("evaluate", "train", "presets", "sequential.evaluate", "sequential.train",
                                  "estimators", "alignment", "lm_analysis")),
    ("experiments", ("runner", "stats", "lineups", "protocol", "ablations", "study", "theory", "semantic_gap",
                     "dry_run", "investigations", "report", "pins", "crosscheck")),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(LIB.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(LIB.rglob("*.py"))}


def imported(tree: ast.AST, name: str, is_package: bool, known: set[str]) -> set[str]:
    """The recgoat_lib modules one module's source imports (resolved, with their parent packages)."""
    out: set[str] = set()
    here = name.split(".") if is_package else name.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            targets = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in known else stem for a in node.names]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            out.update(".".join(parts[:k]) for k in range(2, len(parts) + 1))
    return {t for t in out if t in known and t != name}


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imported(ast.parse(path.read_text(), str(path)), name, path.name == "__init__.py", known)
            for name, path in mods.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
            if len(component) > 1 or v in graph[v]:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def layer_of(module: str, layers=LAYERS) -> int | None:
    """Index of the layer that holds `module` (a full dotted name), None when no layer names it."""
    rel = module[len(ROOT) + 1:] if module != ROOT else ""
    for i, (_, names) in enumerate(layers):
        for name in names:
            if rel == name or (name.endswith(".*") and (rel == name[:-2] or rel.startswith(name[:-1]))):
                return i
    return None


def upward_imports(graph: dict[str, set[str]], layers=LAYERS) -> list[tuple[str, str]]:
    """(importer, imported) for every edge from a layer to a higher one (modules in no layer are
    `test_every_module_has_one_layer`'s to report)."""
    level = {m: layer_of(m, layers) for m in graph}
    return sorted((a, b) for a, targets in graph.items() for b in targets
                  if level[a] is not None and level.get(b) is not None and level[b] > level[a])


def test_graph_sees_the_package():
    graph = import_graph()
    assert f"{ROOT}.data" in graph and f"{ROOT}.models.recgoat" in graph
    # a relative, a function-level and a parent-package edge are all resolved
    assert f"{ROOT}.models.base" in graph[f"{ROOT}.models.recgoat"]
    assert f"{ROOT}.models" in graph[f"{ROOT}.runner"]  # from .models import ... (a package)
    assert f"{ROOT}.tables" in graph[f"{ROOT}.ablations"]  # the function-level import in main()


def test_find_cycles_detects_a_loop():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles in recgoat_lib (move the shared piece to a lower module): " + "; ".join(
        " <-> ".join(c) for c in cycles)


def test_every_module_has_one_layer():
    names = [n for _, ns in LAYERS for n in ns]
    assert len(names) == len(set(names))
    unplaced = [m for m in import_graph() if layer_of(m) is None]
    assert not unplaced, f"modules in no layer of tests/test_imports.py LAYERS (place them): {unplaced}"


def test_upward_imports_are_found():
    layers = (("low", ("a", "p.*")), ("high", ("b",)))
    graph = {f"{ROOT}.a": {f"{ROOT}.p.x"}, f"{ROOT}.p": set(), f"{ROOT}.p.x": {f"{ROOT}.b"}, f"{ROOT}.b": {f"{ROOT}.a"}}
    assert upward_imports(graph, layers) == [(f"{ROOT}.p.x", f"{ROOT}.b")]


def test_no_upward_imports():
    up = upward_imports(import_graph())
    assert not up, "imports from a lower layer into a higher one (see LAYERS): " + "; ".join(
        f"{a} -> {b}" for a, b in up)
