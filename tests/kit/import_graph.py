"""The package's import graph, read from the source: its layers, imports that reach up, cycles.

Every import counts, at module level or inside a function (a lazy import still ties two modules
together). ``python -m tests.kit.import_graph`` prints the summary the README quotes.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "review_ingest"
PACKAGE_DIR = Path(__file__).resolve().parents[2] / "plugins" / PACKAGE

#: Lowest first. A module may import its own sub-package and any lower layer; nothing above,
#: nothing beside (``store``, ``quality`` and ``sources`` do not know each other).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors",),
    ("settings",),
    ("core",),
    ("store", "quality", "sources"),
    ("privacy", "notify"),
    ("pipeline",),
    ("backoffice",),
    ("tasks", "web"),
    ("cli",),
)


@dataclass(frozen=True)
class Graph:
    modules: tuple[str, ...]
    edges: frozenset[tuple[str, str]]

    def part(self, module: str) -> str:
        """``review_ingest.core.reading`` -> ``core``; ``review_ingest.cli`` -> ``cli``."""
        return module.split(".")[1] if module != PACKAGE else PACKAGE

    def layer(self, module: str) -> int:
        part = self.part(module)
        for rank, parts in enumerate(LAYERS):
            if part in parts:
                return rank
        raise KeyError(f"{module}: its sub-package {part!r} has no layer")

    def wrong_way(self) -> list[tuple[str, str]]:
        """Imports that reach up a layer, or across to a sibling sub-package of the same layer."""
        return sorted(
            (a, b)
            for a, b in self.edges
            if self.part(a) != self.part(b) and self.layer(b) >= self.layer(a)
        )

    def cycles(self) -> list[list[str]]:
        """Groups of modules that import each other, directly or not."""
        reach = {module: self._reachable(module) for module in self.modules}
        groups = {
            frozenset({a} | {m for m in reach[a] if a in reach[m]})
            for a in self.modules
            if a in reach[a]
        }
        return sorted(sorted(group) for group in groups)

    def _reachable(self, start: str) -> set[str]:
        """Every module ``start`` imports, directly or through others."""
        seen: set[str] = set()
        todo = [b for a, b in self.edges if a == start]
        while todo:
            module = todo.pop()
            if module not in seen:
                seen.add(module)
                todo.extend(b for a, b in self.edges if a == module)
        return seen

    def per_layer(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        packages = {m.rsplit(".", 1)[0] for m in self.modules}
        for module in self.modules:
            if module not in packages:
                counts[self.part(module)] += 1
        return dict(counts)


def module_name(path: Path, root: Path = PACKAGE_DIR) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def read_graph(root: Path = PACKAGE_DIR) -> Graph:
    """Every module of the package and the package modules it imports."""
    paths = sorted(p for p in root.rglob("*.py") if "static" not in p.parts)
    modules = {module_name(p, root): p for p in paths}
    edges: set[tuple[str, str]] = set()
    for name, path in modules.items():
        for target in _imports(path, name, modules):
            if target != name:
                edges.add((name, target))
    return Graph(tuple(sorted(modules)), frozenset(edges))


def _imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The package modules ``path`` imports: ``from a.b import c`` is ``a.b.c`` when that is
    a module, else ``a.b``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith(PACKAGE))
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:
                base = ".".join(name.split(".")[: -node.level] + [node.module])
            if not base.startswith(PACKAGE):
                continue
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.add(child if child in modules else base)
    return {m for m in found if m in modules}


def summary(graph: Graph) -> str:
    layers = " < ".join(
        " | ".join(f"{p} ({graph.per_layer().get(p, 1)})" for p in parts) for parts in LAYERS
    )
    lines = [f"modules: {len(graph.modules)}; layers, lowest first: {layers}"]
    wrong = graph.wrong_way()
    lines.append(f"imports that reach up or across: {len(wrong)}")
    lines += [f"  {a} -> {b}" for a, b in wrong]
    cycles = graph.cycles()
    lines.append(f"cycles: {len(cycles)}")
    lines += ["  " + " <-> ".join(group) for group in cycles]
    return "\n".join(lines)


if __name__ == "__main__":
    print(summary(read_graph()))
