"""The package's layout (README, "Layout"): layers that import only downwards, no import cycles,
no imports of the package inside functions, and short functions.

    python -m pytest -q tests/integration/test_layout.py        # the import graph and the longest functions
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.helpers import ROOT

PKG = ROOT / "fbctrl"

# Layers, lowest first: a module may import its own layer and the layers below it, never above.
LAYERS = [
    {"fbctrl.paths", "fbctrl.fmt", "fbctrl.cli", "fbctrl.interrupts"},
    {"fbctrl.core"},
    {"fbctrl.learning"},
    {"fbctrl.analysis"},
    {"fbctrl.perf"},
    {"fbctrl.experiments"},
    {"fbctrl.viz"},
    {"fbctrl.book"},
    {"fbctrl.__main__"},
]
MAX_LINES = 60
# Measured hot paths allowed to be longer (python -m fbctrl bench: splitting them costs time per step).
LONG_OK = {"fbctrl.core.bptt:loss_and_grads"}


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        parts = p.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def _resolve(mod: str, node: ast.ImportFrom, is_pkg: bool) -> list[str]:
    """Absolute fbctrl module names an ``from ... import ...`` refers to."""
    if node.level:
        base = mod.split(".")
        base = base[: len(base) - node.level + (1 if is_pkg else 0)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if not target.startswith("fbctrl"):
        return []
    # "from .x import name": name may be a submodule
    return [target] + [f"{target}.{a.name}" for a in node.names]


def import_graph() -> tuple[dict[str, set[str]], list[str]]:
    """{module: fbctrl modules it imports} and the imports made inside functions."""
    mods = _modules()
    graph, inner = {}, []
    for name, path in mods.items():
        tree = ast.parse(path.read_text())
        deps = set()
        funcs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        in_func = {id(s) for f in funcs for s in ast.walk(f) if isinstance(s, (ast.Import, ast.ImportFrom))}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                targets = [t for t in _resolve(name, node, path.name == "__init__.py") if t in mods]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name in mods]
            else:
                continue
            if targets and id(node) in in_func:
                inner.append(f"{name}: {ast.unparse(node)}")
            deps.update(t for t in targets if t != name)
        graph[name] = deps
    return graph, inner


def _layer(mod: str) -> int:
    for i, layer in enumerate(LAYERS):
        if any(mod == p or mod.startswith(p + ".") for p in layer):
            return i
    return -1   # fbctrl itself (the package's __init__)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle found by depth-first search (empty: the graph is a DAG)."""
    found, state, stack = [], {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                found.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    return found


def function_lengths() -> list[tuple[int, str]]:
    """(lines, "module:function") of every function, longest first."""
    rows = []
    for name, path in _modules().items():
        for n in ast.walk(ast.parse(path.read_text())):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                rows.append((n.end_lineno - n.lineno + 1, f"{name}:{n.name}"))
    return sorted(rows, reverse=True)


def test_every_module_has_a_layer():
    assert [m for m in _modules() if m != "fbctrl" and _layer(m) < 0] == []


def test_no_import_cycles():
    graph, _ = import_graph()
    # the package __init__ files re-export their modules: the cycle check is about modules
    assert cycles(graph) == []


def test_layers_import_only_downwards():
    graph, _ = import_graph()
    bad = [f"{m} (layer {_layer(m)}) imports {d} (layer {_layer(d)})"
           for m, deps in graph.items() for d in deps
           if _layer(d) > _layer(m) and not (m.endswith("__init__") or d == m.rsplit(".", 1)[0])]
    assert bad == []


def test_no_package_imports_inside_functions():
    _, inner = import_graph()
    assert inner == []


def test_no_long_functions():
    long = [f"{name} ({n} lines)" for n, name in function_lengths() if n > MAX_LINES and name not in LONG_OK]
    assert long == [], f"functions over {MAX_LINES} lines (split them, or list a measured hot path in LONG_OK)"


def test_the_checker_sees_a_cycle_and_an_upward_import():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert _layer("fbctrl.book.data") > _layer("fbctrl.core.model")


if __name__ == "__main__":
    for n, name in function_lengths()[:10]:
        print(f"{n:4d}  {name}{'  (LONG_OK)' if name in LONG_OK else ''}")


# ---- the README's trees ------------------------------------------------------------------------

NAME = re.compile(r"^( *)([\w.]+(?:/[\w.]+)*/?(?:, [\w.]+)*)(?:,|  |$)")


def readme_tree(top: str) -> set[str]:
    """The files and leaf folders the README's "Layout" tree of ``top`` ('fbctrl' or 'tests')
    lists: one name per line (or a comma-separated list), two spaces of indentation per level."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```text\n(.*?)```", text[text.index("## Layout"):], re.S)
    block = next(b for b in blocks if b.startswith(f"{top}/\n"))
    out, folders = set(), []
    for line in block.splitlines()[1:]:
        m = NAME.match(line)
        if not m or not any("." in n or n.endswith("/") for n in m.group(2).split(", ")):
            continue                                   # a description's continuation
        depth = len(m.group(1)) // 2 - 1
        folders = folders[:depth]
        for name in m.group(2).split(", "):
            if name.endswith("/"):
                folders.append(name.rstrip("/"))
                out.add("/".join([top, *folders]) + "/")
            else:
                out.add("/".join([top, *folders, name]))
    leaves = {p for p in out if p.endswith("/") and not any(q != p and q.startswith(p) for q in out)}
    return {p for p in out if not p.endswith("/")} | leaves


def files_of(top: str, leaf_folders: set[str]) -> set[str]:
    out = set()
    for p in (ROOT / top).rglob("*"):
        rel = p.relative_to(ROOT).as_posix()
        if not p.is_file() or "__pycache__" in p.parts or p.name == "__init__.py" or p.suffix in (".pyc", ".so"):
            continue
        leaf = next((f for f in leaf_folders if rel.startswith(f)), None)
        out.add(leaf or rel)
    return out


@pytest.mark.parametrize("top", ["fbctrl", "tests"])
def test_the_readme_tree_lists_every_file_and_nothing_else(top):
    listed = readme_tree(top)
    actual = files_of(top, {p for p in listed if p.endswith("/")})
    assert not actual - listed, f"in {top}/ but not in README's Layout: {sorted(actual - listed)}"
    assert not listed - actual, f"in README's Layout but not in {top}/: {sorted(listed - actual)}"
