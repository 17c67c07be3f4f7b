"""The package's layers, read from its source: no import circle between its modules, each layer
imports only the layers below it, and the top level holds few modules.

Every ``import`` counts, also those inside functions or under ``TYPE_CHECKING``: a lazy import
is still a dependency a reader follows.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"glow_lightning": ROOT / "glow_lightning",
           "glow_lightning.callbacks": ROOT / "callbacks"}

# layer -> the layers it may import (besides itself); lowest first
ALLOWED = {
    "errors": set(),
    "ops": {"errors"},
    "grids": set(),
    "flows": {"ops", "errors"},
    "checks": {"errors"},
    "config": {"flows", "ops", "errors", "checks"},
    "evaluate": {"flows", "ops", "errors"},
    "data": {"ops", "errors", "config"},
    "callbacks": {"flows", "ops", "grids", "errors", "config", "data", "evaluate"},
    "train": {"flows", "ops", "grids", "errors", "config", "data", "evaluate", "callbacks"},
    "ablation": {"train", "flows", "ops", "errors", "checks", "config", "data", "callbacks"},
    "commands": {"ablation", "train", "flows", "ops", "grids", "errors", "config", "data",
                 "evaluate", "callbacks"},
    "cli": {"commands", "config", "errors"},
    "__init__": set(),
}


def module_files() -> dict[str, Path]:
    """Dotted module name → file, for the package and the mapped callbacks folder."""
    out = {}
    for package, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([package, *parts])] = path
    return out


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's own modules that ``name`` imports (absolute and relative)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


@functools.cache
def graph() -> dict[str, set[str]]:
    files = module_files()
    return {name: imports_of(name, path, set(files)) for name, path in files.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node], _ = 1, stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node], _ = 2, stack.pop()
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_find_cycle_finds_a_circle_and_only_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_circle_between_modules():
    cycle = find_cycle(graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("module", sorted(module_files()))
def test_each_layer_imports_only_layers_below_it(module):
    own = layer(module)
    assert own in ALLOWED, f"{module}: layer '{own}' has no place in ALLOWED"
    allowed = ALLOWED[own] | {own, "__init__"}  # the package's face (its version) is for all
    wrong = sorted(t for t in graph()[module] if layer(t) not in allowed)
    assert not wrong, f"{module} ({own}) imports {wrong}"


def test_flows_and_ops_never_import_lightning():
    files = module_files()
    for name, path in files.items():
        if layer(name) in ("flows", "ops", "grids", "evaluate"):
            text = path.read_text()
            assert "lightning" not in text.replace("glow_lightning", ""), name


def test_the_package_top_level_holds_at_most_eight_modules():
    top = sorted(p.name for p in (ROOT / "glow_lightning").glob("*.py"))
    assert len(top) <= 8, top
