"""kew_django's imports go one way: nothing imports ``apps``, and no modules import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import kew_django

PACKAGE = Path(kew_django.__file__).parent
APPS = "kew_django.apps"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """Return the dotted modules ``node`` imports, relative ones made absolute."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if base else package
    names = [f"{base}.{alias.name}" for alias in node.names]
    return [name if name in MODULES else base for name in names]  # a submodule, or from its package


def imports_of(module: str) -> set[str]:
    """Return every name ``module`` imports: at the top, in functions, under TYPE_CHECKING."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names.update(imported(module, node))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.add(node.value)  # import_module("..."), import_string("..."), lazy exports
    return names


def kew_django_imports(module: str) -> set[str]:
    """Return the kew_django modules that ``module`` imports (the deepest one a name reaches)."""
    found = set()
    for name in imports_of(module):
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name and name != module and name != "kew_django":
            found.add(name)
    return found


def test_the_test_reads_imports_of_every_form():
    samples = {
        "import kew_django.apps": "kew_django.apps",
        "import kew_django.apps as wiring": "kew_django.apps",
        "from kew_django.apps import KewConfig": "kew_django.apps",
        "from kew_django import apps": "kew_django.apps",
        "from .apps import KewConfig": "kew_django.apps",
        "from . import apps": "kew_django.apps",
        "from ..apps import KewConfig": "kew_django.apps",
    }
    for code, expected in samples.items():
        (node,) = ast.parse(code).body
        assert isinstance(node, ast.Import | ast.ImportFrom)
        module = "kew_django.workers.registry" if code.startswith("from ..") else "kew_django"
        assert expected in imported(module, node), code


def test_no_module_imports_the_app_config():
    offenders = sorted(
        module
        for module in MODULES
        if any(name == APPS or name.startswith(f"{APPS}.") for name in imports_of(module))
    )
    assert offenders == [], f"these modules import {APPS}; use the module-level handlers"


def test_the_app_config_only_wires():
    tree = ast.parse(MODULES[APPS].read_text())
    (config,) = [node for node in tree.body if isinstance(node, ast.ClassDef)]
    methods = [node.name for node in config.body if isinstance(node, ast.FunctionDef)]
    functions = [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]
    assert methods == ["ready"] and functions == [], "apps.py holds no shared objects"
    users = sorted(
        module
        for module, path in MODULES.items()
        if any(
            (isinstance(node, ast.Name) and node.id == "kew_config")
            or (isinstance(node, ast.Attribute) and node.attr == "kew_config")
            or (isinstance(node, ast.alias) and node.name == "kew_config")
            or (isinstance(node, ast.FunctionDef) and node.name == "kew_config")
            for node in ast.walk(ast.parse(path.read_text()))
        )
    )
    assert users == [], "use kew_django.providers.providers, kew_django.workers.registry.consumers"


def test_no_two_modules_import_each_other():
    graph = {module: kew_django_imports(module) for module in MODULES}
    cycles = []
    for start in graph:
        path = find_path(graph, start, start)
        if path and min(path) == start:  # each cycle once, from its smallest module
            cycles.append(" -> ".join(path))
    assert cycles == [], "pass what is needed (callables, values) instead of importing back"


def find_path(graph: dict[str, set[str]], start: str, goal: str) -> list[str] | None:
    """Return a shortest import path from ``start`` back to ``goal``, or None."""
    paths = {module: [start, module] for module in graph[start]}
    frontier = list(graph[start])
    while frontier:
        module = frontier.pop(0)
        if module == goal:
            return paths[module]
        for nxt in sorted(graph[module]):
            if nxt not in paths:
                paths[nxt] = [*paths[module], nxt]
                frontier.append(nxt)
    return None
