"""The package's import structure: no import circle, no private name imported across modules.

The graph is read from the source with :mod:`ast` (every ``import`` statement, including the
lazy ones inside functions), so it covers imports that only run on some code paths.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / "ferlab").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, str | None]]:
    """(module imported, name imported from it or None) for every ferlab import of a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, None) for a in node.names if a.name.startswith("ferlab")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            if not base.startswith("ferlab"):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                # "from ferlab.x import y" imports the module ferlab.x.y when y is a module.
                found.append((sub, None) if sub in modules else (base, alias.name))
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for target, _ in _imports(name, path, modules):
            while target not in modules and "." in target:
                target = target.rpartition(".")[0]
            if target != name:
                targets.add(target)
        graph[name] = targets
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle (as a path of modules), or None. A package's own ``__init__`` is left
    out of its submodules' edges: importing ``ferlab.x.y`` runs ``ferlab.x`` first anyway."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if node.startswith(nxt + "."):
                continue  # a submodule importing its own package's __init__
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_graph_is_read():
    graph = _graph()
    assert "ferlab.inference.model" in graph
    assert "ferlab.inference.preprocess" in graph["ferlab.inference.model"]


def test_no_import_circle_in_the_package():
    circle = _cycle(_graph())
    assert circle is None, "import circle: " + " -> ".join(circle or [])


def test_no_private_name_is_imported_from_another_module():
    modules = _modules()
    crossing = []
    for name, path in modules.items():
        for target, imported in _imports(name, path, modules):
            if imported and imported.startswith("_") and not imported.startswith("__"):
                crossing.append(f"{name} imports {target}.{imported}")
            elif imported is None and target.rpartition(".")[2].startswith("_"):
                # private modules are for their own package only
                owner = target.rpartition(".")[0]
                if not (name == owner or name.startswith(owner + ".")):
                    crossing.append(f"{name} imports the private module {target}")
    assert not crossing, "\n".join(crossing)


def test_the_circle_finder_finds_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
