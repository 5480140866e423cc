"""The package's shape (issue 22): the import graph has no cycle, the study store imports no
pruner, few modules stand directly in ``tpetune/``, and none is over 400 lines.

The graph is read from the source with :mod:`ast`, function-local imports included (they run
as soon as the function does); imports under ``if TYPE_CHECKING:`` are left out, since they
never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tpetune"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if "spaces" in path.relative_to(PACKAGE).parts:
            continue  # users' space files (a symlink to the top-level spaces/)
        found[module_name(path)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The tpetune modules ``path`` imports when run (a package's ``__init__`` included)."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    targets: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            # importing a.b.c runs a, a.b and a.b.c
            for i in range(1, len(parts) + 1):
                prefix = ".".join(parts[:i])
                if prefix in known and prefix != "tpetune":
                    targets.add(prefix)
    return targets


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, known) - {name} for name, path in known.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_graph_reader_sees_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_among_tpetune_modules() -> None:
    edges = graph()
    # A subpackage's modules import their package's __init__; those faces import nothing of
    # their children, so the edge child -> package never closes a loop. Leave them out.
    cycle = find_cycle(edges)
    assert cycle is None, " -> ".join(cycle or [])


def test_the_study_store_imports_no_pruner() -> None:
    for name, targets in graph().items():
        if name.startswith("tpetune.study"):
            pruners = sorted(t for t in targets if t.startswith("tpetune.pruners"))
            assert not pruners, f"{name} imports {pruners}"


def test_at_most_twelve_modules_stand_directly_in_the_package() -> None:
    direct = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(direct) <= 12, direct


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_module_is_over_400_lines(name: str) -> None:
    lines = len(modules()[name].read_text().splitlines())
    assert lines <= 400, f"{name}: {lines} lines"
