"""The simulator's modules import each other in one direction: no circle, and the world never the HTTP side.

Read from the source (every import, those under ``TYPE_CHECKING`` included), so a circle that
only type checkers follow is caught too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import feishu_simulator

PACKAGE = Path(feishu_simulator.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that ``path`` imports (a package's re-exports of its own children aside)."""
    name = module_name(path)
    here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = ".".join(here[: len(here) - node.level + 1] + ([node.module] if node.module else []))
            found |= {base} if node.module else {f"{base}.{a.name}" for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {m for m in found & modules if m != name and not m.startswith(name + ".")}


def graph() -> dict[str, set[str]]:
    paths = list(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, modules) for p in paths}


def test_no_import_circle() -> None:
    edges = graph()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        assert module not in path, "import circle: " + " -> ".join([*path[path.index(module) :], module])
        if module not in done:
            for imported in sorted(edges[module]):
                visit(imported, [*path, module])
            done.add(module)

    for module in sorted(edges):
        visit(module, [])


def test_the_world_does_not_import_the_http_side() -> None:
    edges = graph()
    world = {m for m in edges if m.startswith("feishu_simulator.world")}
    assert world and all(not any(i.startswith("feishu_simulator.api") for i in edges[m]) for m in world)
    assert "feishu_simulator.world.records" in edges and not edges["feishu_simulator.world.records"]
