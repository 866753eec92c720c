"""The package's layout rules (docs/ARCHITECTURE.md): small modules, short functions, no import cycle.

A module may pass 400 lines, or a function 80, only with a line ``# layout: <why>`` in the module
(for a function: inside it). Imports count wherever they are written, inside functions too: a
function-level import still makes one module depend on another.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "exgan_cli"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
EXCUSE = "# layout:"


def _modules() -> dict[str, Path]:
    mods = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = path
    return mods


def test_no_module_over_400_lines():
    long = []
    for name, path in _modules().items():
        text = path.read_text()
        if text.count("\n") > MAX_MODULE_LINES and EXCUSE not in text:
            long.append(f"{name}: {text.count(chr(10))} lines")
    assert not long, long


def test_no_function_over_80_lines():
    long = []
    for name, path in _modules().items():
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = lines[node.lineno - 1: node.end_lineno]
                if len(body) > MAX_FUNCTION_LINES and not any(EXCUSE in line for line in body):
                    long.append(f"{name}.{node.name}: {len(body)} lines")
    assert not long, long


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules ``name`` imports, at any depth of its code."""
    is_package = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from pkg import sub` imports the submodule pkg.sub when there is one
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in modules else module for a in node.names]
        else:
            continue
        out.update(t for t in targets if t in modules and t != name)
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert _cycles(graph) == []


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_inference_does_not_import_training_or_evaluation():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    seen, todo = set(), [m for m in modules if m.startswith(("exgan_cli.stages", "exgan_cli.apps", "exgan_cli.api"))]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(graph[m])
    assert not [m for m in seen if m.startswith(("exgan_cli.training", "exgan_cli.evaluation"))]


def test_architecture_map_names_every_module():
    """docs/ARCHITECTURE.md's module map names each module (by file name, in its folder's entry)."""
    text = (PACKAGE.parent / "docs" / "ARCHITECTURE.md").read_text()
    missing = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
               if p.name not in ("__init__.py", "__main__.py") and p.stem not in text]
    assert not missing, missing
