"""The tree keeps the shape the brief promises: core knows no plugin, services import no plugin."""

import ast
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(package: str) -> set[tuple[str, str]]:
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found |= {(str(path.relative_to(ROOT)), alias.name) for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add((str(path.relative_to(ROOT)), node.module))
    return found


def test_core_and_services_never_import_plugins() -> None:
    offenders = [
        (path, module)
        for package in ("suite", "services")
        for path, module in imported_modules(package)
        if module == "plugins" or module.startswith(("plugins.", "suite_ticket_router"))
    ]
    assert offenders == []


def test_services_never_import_the_cli_or_app() -> None:
    offenders = [
        (path, module)
        for path, module in imported_modules("services")
        if module.startswith(("suite.cli", "suite.app", "suite.commands", "suite.web"))
    ]
    assert offenders == []


def test_test_module_names_are_unique() -> None:
    # Test folders are not packages, so two test files with one basename cannot both be collected.
    names = Counter(p.name for base in ("tests", "examples") for p in (ROOT / base).rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []


def test_services_never_import_the_core() -> None:
    # Services own their settings (services.settings) and errors (services.errors); the core composes them.
    offenders = [(path, module) for path, module in imported_modules("services") if module.split(".")[0] == "suite"]
    assert offenders == []
