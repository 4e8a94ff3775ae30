"""The import rule that keeps the layers apart, enforced on every module of the product.

    cli -> server -> core -> {models, sources, store, telemetry, viewer} -> the ground floor
    core -> sandbox (the parent side) -> sandbox.protocol <- sandbox.worker (the confined side)

A layer imports only the layers below it (the table below says which peers a layer may use), never
one above; ``sandbox`` imports nothing of ``rlm_mcp``; the confined worker's folder imports nothing of
the sandbox outside itself but the wire protocol, and the parent side nothing of the worker's folder;
and no chain of module imports, lazy ones included, comes back to where it started. Imports under
``if TYPE_CHECKING:`` are annotations only and are not counted.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

GROUND = "ground"
"""``rlm_mcp``'s own top-level modules: config, errors, principals, schemas, files, progress, aws."""

MAY_IMPORT: dict[str, set[str]] = {
    GROUND: set(),
    "testing": {"models", GROUND},  # the wire fakes stand alone; the mock model is a model client
    "models": {GROUND},
    "store": {GROUND},
    "telemetry": {GROUND},
    "sources": {"store", "sandbox", GROUND},  # a source yields the sandbox's Document
    "viewer": {"models", GROUND},
    "core": {"models", "sources", "store", "telemetry", "viewer", "sandbox", "sandbox.protocol", GROUND},
    "server": {"core", "models", "sources", "store", "telemetry", "viewer", "sandbox", "sandbox.protocol", GROUND},
    "cli": {
        "server",
        "core",
        "models",
        "sources",
        "store",
        "telemetry",
        "viewer",
        "sandbox",
        "sandbox.protocol",
        GROUND,
    },
    "main": {"cli"},
    "sandbox": {"sandbox.protocol", "sandbox.worker.main"},  # the parent starts the worker by its module name
    "sandbox.worker": {"sandbox.protocol"},
    "sandbox.protocol": set(),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str | None:
    """The layer a module of the product belongs to; None for anything else (stdlib, third parties)."""
    parts = module.split(".")
    if parts[0] == "sandbox":
        if module == "sandbox.protocol" or module.startswith("sandbox.protocol."):
            return "sandbox.protocol"
        return "sandbox.worker" if parts[1:2] == ["worker"] else "sandbox"
    if parts[0] != "rlm_mcp":
        return None
    if len(parts) == 1:
        return GROUND
    if parts[1] == "__main__":
        return "main"
    return parts[1] if parts[1] in MAY_IMPORT else GROUND


def product_modules() -> dict[str, Path]:
    return {module_name(p): p for package in ("rlm_mcp", "sandbox") for p in sorted((ROOT / package).rglob("*.py"))}


def _annotation_only(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name | ast.Attribute) and ast.unparse(node.test).endswith("TYPE_CHECKING")


def imports_of(path: Path, modules: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """Every product module ``path`` imports (at any depth of the file), with its line."""

    def visit(node: ast.AST) -> Iterator[tuple[str, int]]:
        if isinstance(node, ast.If) and _annotation_only(node):
            for child in node.orelse:
                yield from visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # `from pkg import module` imports the module
                full = f"{node.module}.{alias.name}"
                yield (full if full in modules else node.module), node.lineno
        for child in ast.iter_child_nodes(node):
            yield from visit(child)

    for name, line in visit(ast.parse(path.read_text())):
        if layer_of(name) is not None:
            yield name, line


def test_no_product_module_uses_relative_imports() -> None:
    """Absolute imports only: the rule below reads them, and a reader sees where each name comes from."""
    relative = [
        f"{module_name(path)}:{node.lineno}"
        for path in product_modules().values()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.level
    ]
    assert relative == []


def test_every_layer_imports_only_the_layers_below_it() -> None:
    modules = product_modules()
    crossings: set[str] = set()
    for name, path in modules.items():
        own = layer_of(name)
        assert own in MAY_IMPORT, name
        for imported, line in imports_of(path, modules):
            other = layer_of(imported)
            if other == own or other in MAY_IMPORT[own] or imported in MAY_IMPORT[own]:
                continue
            crossings.add(f"{path.relative_to(ROOT)}:{line} ({own}) imports {imported} ({other})")
    assert sorted(crossings) == []


def circles_in(graph: dict[str, list[str]]) -> list[list[str]]:
    """Every circle a depth-first walk of ``graph`` meets, each as the chain of modules that closes it."""
    state: dict[str, int] = {}
    circles: list[list[str]] = []

    def walk(node: str, trail: list[str]) -> None:
        state[node] = 1
        trail.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                circles.append([*trail[trail.index(nxt) :], nxt])
            elif nxt not in state:
                walk(nxt, trail)
        trail.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            walk(name, [])
    return circles


def test_no_import_circle() -> None:
    modules = product_modules()
    graph = {
        name: sorted({m for m, _ in imports_of(path, modules) if m in modules} - {name})
        for name, path in modules.items()
    }
    # A package's __init__ that re-exports its own modules is part of them, not a circle through them.
    for name in graph:
        graph[name] = [m for m in graph[name] if not name.startswith(m + ".")]
    assert circles_in(graph) == []
    assert circles_in({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c", "a"]]


@pytest.mark.parametrize(
    ("module", "imported", "allowed"),
    [
        ("rlm_mcp.config", "rlm_mcp.server.auth.static", False),
        ("rlm_mcp.telemetry.spans", "rlm_mcp.core.runs.loop", False),
        ("rlm_mcp.core.service", "rlm_mcp.server.app", False),
        ("rlm_mcp.viewer.index", "rlm_mcp.models.pricing", True),
        ("sandbox.host", "sandbox.worker.repl", False),
        ("sandbox.worker.repl", "sandbox.results", False),
        ("sandbox.worker.repl", "sandbox.protocol", True),
        ("sandbox.host", "rlm_mcp.errors", False),
        ("rlm_mcp.cli.entry", "rlm_mcp.server.app", True),
    ],
)
def test_the_rule_tells_a_crossing_from_a_step_down(module: str, imported: str, allowed: bool) -> None:
    """The checker itself: what it would report, so a silent pass above means something."""
    own, other = layer_of(module), layer_of(imported)
    assert (other == own or other in MAY_IMPORT[own] or imported in MAY_IMPORT[own]) is allowed
