"""The structure of `helpers` stays as its package docstring draws it: layers that import only downwards,
no import cycles, no helpers import hidden inside a function, small modules and functions.

The layers (top to bottom, as in `helpers/__init__.py`); a module not listed here fails the test, so a new
module is placed deliberately."""

import ast
import importlib
import re
from pathlib import Path

import pytest

HELPERS = Path(__file__).resolve().parents[1] / "helpers"
LAYERS = {
    "foundations": [r"helpers", r"helpers\.(checks|files|notebook)"],
    "data": [r"helpers\.data(\.(?!__main__)\w+)?"],
    "metrics, graphs and figures": [r"helpers\.(metrics|plots)", r"helpers\.graph(\.\w+)?"],
    "models": [r"helpers\.models(\.\w+)?"],
    "distributed": [r"helpers\.distributed"],
    "training": [r"helpers\.train(\.(?!__main__)\w+)?", r"helpers\.(optim|node_task|speed|hooks)"],
    "front ends": [r"helpers\.(cli|ddp_demo)", r"helpers\.(train|data)\.__main__", r"helpers\.widgets(\.\w+)?",
                   r"helpers\.exercises(\.\w+)?"],
}
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 500, 80


def module_name(path: Path) -> str:
    parts = path.relative_to(HELPERS.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    for index, patterns in enumerate(LAYERS.values()):
        if any(re.fullmatch(p, module) for p in patterns):
            return index
    raise KeyError(f"{module} is in no layer of tests/test_layers.py: place it in one (and in the package map)")


def helpers_imports(tree: ast.Module, modules: set[str]) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module level) for every import of a helpers module in `tree`."""
    top_level = {id(node) for node in tree.body}
    top_level |= {id(n) for node in tree.body if isinstance(node, ast.If) for n in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from helpers.data import series` names a module; `from helpers.data import load_metro` does not
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                     for a in node.names]
        else:
            continue
        found += [(name, node.lineno, id(node) in top_level) for name in names if name.split(".")[0] == "helpers"]
    return found


def problems_of(sources: dict[str, str]) -> list[str]:
    """Every broken rule in a package given as {module name: source}."""
    problems, graph = [], {}
    for module, source in sources.items():
        tree = ast.parse(source)
        graph[module] = set()
        for target, line, top in helpers_imports(tree, set(sources)):
            if not top:
                problems.append(f"{module}:{line} imports {target} inside a function or class")
            if layer_of(target) > layer_of(module):
                problems.append(f"{module}:{line} imports {target}, a layer above it "
                                f"({list(LAYERS)[layer_of(target)]} above {list(LAYERS)[layer_of(module)]})")
            if target != module:
                graph[module].add(target)
    problems += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph)]
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each module that lies on one (depth-first search), ignoring a package's
    `__init__` importing its own submodules back (Python imports a package before its submodules)."""
    found, state = [], {}

    def visit(module, path):
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if module.startswith(target + "."):
                continue  # a submodule importing its package's __init__
            if state.get(target) == "open":
                found.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return found


def package_sources() -> dict[str, str]:
    return {module_name(p): p.read_text(encoding="utf-8") for p in sorted(HELPERS.rglob("*.py"))}


def test_every_module_has_a_layer():
    for module in package_sources():
        layer_of(module)


def test_helpers_imports_point_down_and_make_no_cycle():
    assert problems_of(package_sources()) == []


@pytest.mark.parametrize("source, expected", [
    ("from helpers.train import History\n", "helpers.data.series:1 imports helpers.train, a layer above it"),
    ("def f():\n    from helpers.checks import check_int\n", "inside a function"),
])
def test_the_rules_catch_a_planted_fault(source, expected):
    sources = package_sources()
    sources["helpers.data.series"] = source + sources["helpers.data.series"]
    assert any(expected in p for p in problems_of(sources))


def test_the_cycle_search_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"helpers.data": {"helpers.data.series"}, "helpers.data.series": {"helpers.data"}}) == []


def test_modules_and_functions_are_small():
    big = []
    for module, source in package_sources().items():
        lines = source.count("\n")
        if lines > MAX_MODULE_LINES:
            big.append(f"{module}: {lines} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    big.append(f"{module}.{node.name}: {length} lines")
    assert big == []


@pytest.mark.parametrize("package", ["helpers.data", "helpers.models", "helpers.train", "helpers.widgets"])
def test_a_package_exports_every_public_name_of_its_modules(package):
    """Each package's `__init__` is the one list of its public names: import them from the package."""
    exported = set(importlib.import_module(package).__all__)
    missing = []
    for path in sorted((HELPERS.parent / package.replace(".", "/")).glob("[!_]*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign | ast.AnnAssign):
                names = [t.id for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
                         if isinstance(t, ast.Name)]
            else:
                names = [node.name] if isinstance(node, ast.FunctionDef | ast.ClassDef) else []
            missing += [f"{path.stem}.{n}" for n in names if not n.startswith("_") and n not in exported]
    assert missing == []
