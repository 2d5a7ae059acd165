"""The package's import graph: the library imports no command, and no import cycle.

Read from the source with ``ast`` (every ``import`` statement, the lazy ones inside functions
included), so a cycle that only bites when some function runs is caught too. Imports by name
string (``importlib.import_module`` in the dispatcher) are not edges.
"""

from __future__ import annotations

import ast
from pathlib import Path

from spadelab.cli import COMMANDS

SRC = Path(__file__).resolve().parents[1] / "src"


def module_files() -> dict[str, Path]:
    """{"spadelab.tables.sweep": path, "spadelab.norm": path of norm/__init__.py, ...}."""
    modules = {}
    for path in sorted((SRC / "spadelab").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The spadelab modules ``name`` imports anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from spadelab.tables import sweep` imports the module spadelab.tables.sweep.
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {m for m in found if m.split(".")[0] == "spadelab" and m != name}


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    graph = {name: imported_modules(name, path, modules) for name, path in modules.items()}
    unknown = {(a, b) for a, targets in graph.items() for b in targets if b not in modules}
    assert not unknown, f"imports of spadelab modules that do not exist: {sorted(unknown)}"
    return graph


def test_the_graph_sees_lazy_and_relative_imports() -> None:
    graph = import_graph()
    assert len(graph) > 50 and "spadelab.tables.sweep" in graph
    # sweep's multirun job imports the train command inside a function.
    assert "spadelab.commands.train" in graph["spadelab.tables.sweep"]
    assert "spadelab.paper" in graph["spadelab.tables.spec"]  # `from spadelab.paper import ...`


def test_the_library_imports_no_command() -> None:
    """Commands import the library, never the other way round. The exceptions are commands
    themselves: the dispatcher, ``spadelab/commands/``, and the modules that ``spadelab.cli``
    runs as a command from elsewhere (sweep and report in ``tables/``, studio and study)."""
    entry_points = {module for module, _ in COMMANDS.values()}
    assert {"spadelab.tables.sweep", "spadelab.tables.report"} <= entry_points
    graph = import_graph()
    offenders = {
        name: sorted(m for m in targets if m.startswith("spadelab.commands"))
        for name, targets in graph.items()
        if name != "spadelab.cli"
        and not name.startswith("spadelab.commands")
        and name not in entry_points
    }
    offenders = {name: targets for name, targets in offenders.items() if targets}
    assert not offenders, (
        f"library modules import commands: {offenders}; move what they need into the library "
        "(as the paper's parameter rows live in spadelab/paper.py)"
    )


def test_no_two_modules_import_each_other() -> None:
    graph = import_graph()
    pairs = sorted({tuple(sorted((a, b))) for a in graph for b in graph[a] if a in graph[b]})
    assert not pairs, f"modules importing each other (lazy imports included): {pairs}"


def test_no_import_cycle() -> None:
    """Longer loops too: data flows one way (README, Architecture)."""
    graph = import_graph()
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = path[path.index(name) :] + [name]
            raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
        if name in done:
            return
        for target in sorted(graph[name]):
            visit(target, [*path, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])
