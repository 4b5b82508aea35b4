"""The package's shape: no import cycles among its modules (type-only imports included), no
module over ~900 lines, and no access from the asyncio layer to another object's private
attributes (docs/architecture.md, "Layers and modules")."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "quicish"
MAX_LINES = 900  # a module past it is split by concern
# The exceptions, each with its ceiling and the reason (docs/architecture.md, "Departures").
OVER_MAX = {
    # The public sans-IO API (mostly docstrings), the receive dispatch with the bulk path's
    # shortcut kept in one place, and the explicit wiring of the parts.
    "proto/connection.py": 1000,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, name: str, modules: set[str]) -> set[str]:
    """The package modules ``path`` imports anywhere (also under ``if TYPE_CHECKING:`` and
    inside functions); ``from pkg import name`` counts as importing ``pkg.name`` when that is a
    module, else ``pkg``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in modules else base)
    return {m for m in found if m in modules and m != name}


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    modules = set(files)
    return {name: _imports(path, name, modules) for name, path in files.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_module_over_900_lines() -> None:
    sources = [p for p in PACKAGE.rglob("*") if p.suffix in {".py", ".c", ".h"}]
    long = {
        name: n
        for p in sources
        if (n := len(p.read_text().splitlines()))
        > OVER_MAX.get(name := str(p.relative_to(PACKAGE)), MAX_LINES)
    }
    assert long == {}


def test_the_asyncio_layer_touches_no_other_objects_private_attributes() -> None:
    # ``name._attr`` where name is not self/cls (a module's own private names are fine:
    # they are not attributes of another object).
    pattern = re.compile(r"\b(?!self\b|cls\b)([a-z_][a-z0-9_]*)\._[a-z]")
    offenders = [
        f"{p.name}:{n}: {line.strip()}"
        for p in sorted((PACKAGE / "aio").glob("*.py"))
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line.split("#", 1)[0])
    ]
    assert offenders == []
