"""The architecture, checked: which package may import which, no import cycle, and no
module over the size ceiling.

Every import counts, those under ``if TYPE_CHECKING:`` and inside functions too: a
cycle hidden from the interpreter is still a coupling a reader has to untangle.

* ``shared`` (the foundation) imports none of the packages built on it;
* ``rest``, ``gateway`` and ``webhooks`` (one per process) import ``shared`` and
  not one another;
* ``botgw`` (the composition root) may import all of them, and nothing imports it;
* only ``shared.store`` talks to Redis (imports ``redis``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("botgw", "shared", "rest", "gateway", "webhooks")
MAX_LINES = 600

# package -> the first-party packages it may import (besides itself)
ALLOWED: dict[str, frozenset[str]] = {
    "shared": frozenset(),
    "rest": frozenset({"shared"}),
    "gateway": frozenset({"shared"}),
    "webhooks": frozenset({"shared"}),
    "botgw": frozenset({"shared", "rest", "gateway", "webhooks"}),
}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _imported(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """(module name, line) of every import in ``path``, relative ones resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base, node.lineno
            for alias in node.names:  # `from pkg import module`
                yield f"{base}.{alias.name}", node.lineno


def _first_party(name: str) -> str | None:
    """The module of ours that ``name`` refers to (its longest known prefix)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in MODULES:
            return candidate
    return None


def _graph() -> dict[str, dict[str, int]]:
    graph: dict[str, dict[str, int]] = {}
    for module, path in MODULES.items():
        edges = graph.setdefault(module, {})
        for name, line in _imported(module, path):
            target = _first_party(name)
            if target is not None and target != module:
                edges.setdefault(target, line)
    return graph


GRAPH = _graph()


def test_the_walk_sees_every_package() -> None:
    assert {m.split(".")[0] for m in MODULES} == set(PACKAGES)
    assert len(MODULES) > 50
    # absolute, relative and `from package import module` imports are all seen
    assert "shared.store.wire" in GRAPH["shared.store"]
    assert "shared.keys" in GRAPH["shared.store.log"]


def test_packages_import_only_what_they_stand_on() -> None:
    wrong = [
        f"{MODULES[module].relative_to(ROOT)}:{line} imports {target}"
        for module, edges in GRAPH.items()
        for target, line in edges.items()
        if (source := module.split(".")[0]) != (dest := target.split(".")[0])
        and dest not in ALLOWED[source]
    ]
    assert wrong == []


def test_only_the_store_talks_to_redis() -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for module, path in MODULES.items()
        for name, line in _imported(module, path)
        if (name == "redis" or name.startswith("redis."))
        and not (module == "shared.store" or module.startswith("shared.store."))
    ]
    assert wrong == []


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
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


def test_no_import_cycle() -> None:
    assert _cycles(GRAPH) == []


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [
        ["a", "b", "c"]
    ]
    assert _cycles({"a": {"b": 1}, "b": {}}) == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_over_the_size_ceiling(module: str) -> None:
    path = MODULES[module]
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, (
        f"{path.relative_to(ROOT)} has {lines} lines (ceiling {MAX_LINES}): split it by concept"
    )
