"""The training modules form layers: no import circle, and the loop knows tasks only through their interface."""

from __future__ import annotations

import ast
from pathlib import Path

import services.training

PACKAGE = Path(services.training.__file__).parent
PREFIX = "services.training"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """Every training module ``path`` imports anywhere (function bodies and TYPE_CHECKING blocks too),
    plus the packages that importing them runs."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            if name in known:
                parts = name.split(".")
                found.update(".".join(parts[:i]) for i in range(2, len(parts) + 1))
    return found & known


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    known = set(paths)
    return {name: imported_modules(path, known) - {name} for name, path in paths.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_training_modules_import_each_other_without_a_circle():
    graph = import_graph()
    assert {"services.training.params", "services.training.loop", "services.training.engine"} <= set(graph)
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_params_sit_at_the_bottom_and_the_loop_knows_only_the_task_interface():
    graph = import_graph()
    assert graph["services.training.params"] <= {"services.training"}
    loop = graph["services.training.loop"]
    assert "services.training.task" in loop
    assert not any(name.startswith("services.training.tasks") or name.endswith(".engine") for name in loop)
    tasks = [name for name in graph if name.startswith("services.training.tasks.")]
    assert len(tasks) >= 2
    for task in tasks:
        assert "services.training.engine" not in graph[task] and "services.training.loop" not in graph[task]
