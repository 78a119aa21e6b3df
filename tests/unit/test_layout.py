"""The house rules of `src/app`, checked on the source: no import cycles, a pure analysis layer, small files."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
APP = SRC / "app"
MAX_FILE_LINES = 500
MAX_TOP_LEVEL_ENTRIES = 18  # LAYOUT.md: later capabilities take a folder (workers/ beside agents/, a web desk)
ANALYSIS_MAY_IMPORT = ("src.app.schemas", "src.app.config", "src.app.analysis")


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in SRC.rglob("*.py")}


def imports_of(path: Path) -> set[str]:
    """Every `src.*` module a file imports, at module level or inside functions (lazy imports are edges too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("src."))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("src."):
            found.add(node.module)
            found.update(
                f"{node.module}.{alias.name}" for alias in node.names if f"{node.module}.{alias.name}" in MODULES
            )
    return {name for name in found if name in MODULES}


GRAPH = {name: imports_of(path) - {name} for name, path in MODULES.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path that ends where it starts, or None (iterative depth-first search)."""
    state: dict[str, int] = {}
    for root in sorted(graph):
        if state.get(root):
            continue
        stack: list[tuple[str, list[str]]] = [(root, sorted(graph[root]))]
        path = [root]
        state[root] = 1
        while stack:
            node, todo = stack[-1]
            if not todo:
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            nxt = todo.pop()
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, sorted(graph[nxt])))
    return None


def test_no_module_of_src_takes_part_in_an_import_cycle() -> None:
    assert find_cycle(GRAPH) is None, " -> ".join(find_cycle(GRAPH) or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("name", sorted(name for name in MODULES if name.startswith("src.app.analysis")))
def test_analysis_is_pure(name: str) -> None:
    outside = sorted(other for other in GRAPH[name] if not other.startswith(ANALYSIS_MAY_IMPORT))
    assert outside == [], f"{name} imports {outside}: analysis/ may import only schemas, config and itself"


def test_no_file_is_longer_than_the_limit() -> None:
    long = {
        str(path.relative_to(SRC)): n
        for path in SRC.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_FILE_LINES
    }
    assert long == {}


def test_the_package_top_stays_small() -> None:
    entries = sorted(p.name for p in APP.iterdir() if p.name not in {"__init__.py", "__pycache__"})
    assert len(entries) <= MAX_TOP_LEVEL_ENTRIES, entries
