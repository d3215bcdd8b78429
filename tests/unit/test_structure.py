"""The code's shape: no import cycles between our modules, and no command lines inside shared/.

The import graph covers every import statement, including those inside functions and under
TYPE_CHECKING: an import moved into a function still makes the two modules depend on each other,
it only hides the cycle from the interpreter.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("shared", "functions", "cli")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files() -> dict[str, Path]:
    """Our modules by dotted name: the packages in SOURCES and the entry module main.py."""
    files = {module_name(p): p for top in SOURCES for p in sorted((ROOT / top).rglob("*.py"))}
    files["main"] = ROOT / "main.py"
    return files


def _absolute(node: ast.ImportFrom, path: Path, module: str) -> str:
    """The module a `from ... import` reads from, relative imports resolved."""
    if not node.level:
        return node.module or ""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
    return ".".join([*anchor, node.module] if node.module else anchor)


def imported_names(path: Path, module: str) -> Iterator[str]:
    """Every name an import statement anywhere in the file imports: `import a.b` gives a.b, `from a
    import b` gives a.b (a submodule, if it is one) and a."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, path, module)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of ours it imports. `from a import b` is an edge to a.b when b is a
    module of ours, else to a."""
    files = source_files()
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names if alias.name in files}
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(node, path, module)
                for alias in node.names:
                    name = f"{base}.{alias.name}"
                    if name in files:
                        targets.add(name)
                    elif base in files:
                        targets.add(base)
        targets.discard(module)
        graph[module] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path of modules (first == last), or None. Depth-first search with colours."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_graph_sees_imports_inside_functions() -> None:
    graph = import_graph()
    assert "shared.bootstrap" in graph["functions.refine.main"]
    assert "shared.adapters.duckdb_warehouse" in graph["shared.bootstrap"]  # imported inside build_warehouse
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_command_lines_in_shared() -> None:
    """argparse belongs in cli/: shared/ is what the functions run."""
    offenders = sorted(
        module
        for module, path in source_files().items()
        if module.startswith("shared")
        and any(name == "argparse" or name.startswith("argparse.") for name in imported_names(path, module))
    )
    assert offenders == [], f"modules under shared/ importing argparse: {', '.join(offenders)}"
