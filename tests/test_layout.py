"""utils/ is in layers, and every import runs down: no circle, no package importing one above it.

The layers, lowest first, are those of utils/__init__.py's docstring. An import inside a function counts
as much as one at the top: a circle hidden in a function is still a circle.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
METHOD = {"utils.errors", "utils.unix", "utils.unix_settings", "utils.losses", "utils.distillers"}
PACKAGES = ["process", "data", "runs", "training", "teachers", "table", "tools"]
ENTRY_POINTS = {"bench", "computation", "digits_comparison", "graph_check", "jobs", "runlist", "summary", "torchrun",
                "synthetic", "synthetic_imagenet", "sync_check", "dali_check"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict:
    return {module_name(path): path for path in sorted((ROOT / "utils").rglob("*.py"))}


def imported_modules(path: Path, known: set) -> set:
    """Every utils module the file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in known else node.module)
    return {name for name in found if name in known and name != "utils"}


def layer(module: str) -> int:
    if module in METHOD:
        return 0
    parts = module.split(".")
    if len(parts) == 2 and parts[1] in ENTRY_POINTS:
        return len(PACKAGES) + 1
    if len(parts) >= 2 and parts[1] in PACKAGES:
        return PACKAGES.index(parts[1]) + 1
    raise AssertionError(f"{module} is in no layer: put it in a package of utils/ (see utils/__init__.py)")


def package(module: str) -> str:
    return "method" if module in METHOD else ".".join(module.split(".")[:2])


def import_graph() -> dict:
    modules = all_modules()
    return {name: imported_modules(path, set(modules)) for name, path in modules.items()}


def upward_imports(graph: dict) -> list:
    return [f"{importer} imports {imported}" for importer, imports in graph.items() for imported in imports
            if package(importer) != package(imported) and layer(imported) >= layer(importer)]


def find_circle(graph: dict):
    """One import circle as a list of modules, or None."""
    visiting, done = [], set()

    def visit(module):
        if module in visiting:
            return visiting[visiting.index(module):] + [module]
        if module in done:
            return None
        visiting.append(module)
        for imported in sorted(graph.get(module, ())):
            circle = visit(imported)
            if circle:
                return circle
        visiting.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        circle = visit(module)
        if circle:
            return circle
    return None


def test_every_module_has_a_layer():
    for module in all_modules():
        if module != "utils":
            layer(module)


def test_imports_run_down():
    assert upward_imports(import_graph()) == []


def test_no_import_circle():
    assert find_circle(import_graph()) is None


def test_the_checks_see_a_circle_and_an_upward_import():
    graph = import_graph()
    graph["utils.data.imagenet_recipe"] = graph["utils.data.imagenet_recipe"] | {"utils.data.imagenet"}
    assert find_circle(graph) is not None
    graph["utils.runs.checkpoint"] = {"utils.training.trainer"}
    assert upward_imports(graph) == ["utils.runs.checkpoint imports utils.training.trainer"]


@pytest.mark.parametrize("name", PACKAGES)
def test_each_package_says_what_it_holds_and_may_import(name):
    doc = ast.get_docstring(ast.parse((ROOT / "utils" / name / "__init__.py").read_text()))
    assert doc and "May import:" in doc
    below = PACKAGES[:PACKAGES.index(name)]
    assert all(f"utils.{lower}" in doc for lower in below) or "every other part of utils" in doc


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_entry_points_only_call_their_module(name):
    """python -m utils.<name> keeps working, and its file holds no logic of its own."""
    tree = ast.parse((ROOT / "utils" / f"{name}.py").read_text())
    imports = [node for node in tree.body if isinstance(node, ast.ImportFrom)]
    assert {node.module for node in imports} - {"utils.process.cli"} and len(tree.body) == len(imports) + 2
    assert all(node.names[0].name in ("main", "run_main") for node in imports)


def test_models_do_not_import_utils():
    for path in (ROOT / "models").rglob("*.py"):
        assert not {name for name in imported_modules(path, set(all_modules()))}, path
