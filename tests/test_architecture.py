"""The layering of docs/architecture.md holds: every import of a package module (run-time
or TYPE_CHECKING) points to a module listed above the importer; no module of the package
is imported inside a function; public names report ``cancelable_rx`` as their module.
(That an asyncio program never imports trio is checked in test_loop.py.)"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import cancelable_rx

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "cancelable_rx"


def _layers() -> list[str]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = text.split("<!-- layers -->", 1)[1].split("<!-- /layers -->", 1)[0]
    return re.findall(r"^\d+\. `([\w.]+)`", block, re.M)


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _target(importer: str, is_package: bool, node: ast.ImportFrom, known: set[str]) -> list[str]:
    if node.level == 0:
        base = node.module or ""
        if not base.startswith("cancelable_rx"):
            return []
    else:
        parts = importer.split(".") if is_package else importer.split(".")[:-1]
        parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join(parts + ([node.module] if node.module else []))
    found = []
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        found.append(sub if sub in known else base)
    return found


def _short(name: str) -> str:
    return name.removeprefix("cancelable_rx.") if name != "cancelable_rx" else name


def _imports() -> dict[str, list[tuple[str, int, bool]]]:
    files = sorted(PKG.rglob("*.py"))
    known = {_module_name(f) for f in files}
    result: dict[str, list[tuple[str, int, bool]]] = {}
    for f in files:
        name = _module_name(f)
        tree = ast.parse(f.read_text())
        in_function = {
            id(n)
            for fn in ast.walk(tree)
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
            for n in ast.walk(fn)
        }
        edges = []
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                for target in _target(name, f.name == "__init__.py", node, known):
                    edges.append((target, node.lineno, id(node) in in_function))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("cancelable_rx"):
                        edges.append((alias.name, node.lineno, id(node) in in_function))
        result[name] = edges
    return result


def test_every_module_is_in_the_layer_list() -> None:
    layers = _layers()
    modules = {_short(m) for m in _imports()}
    assert sorted(modules - set(layers)) == [], "modules missing from docs/architecture.md's layer list"
    assert sorted(set(layers) - modules) == [], "layers naming modules that do not exist"


def test_imports_point_down_the_layers() -> None:
    rank = {name: i for i, name in enumerate(_layers())}
    upward = []
    for importer, edges in _imports().items():
        for target, line, _ in edges:
            if rank[_short(target)] >= rank[_short(importer)]:
                upward.append(f"{_short(importer)}:{line} imports {_short(target)}")
    assert not upward, "imports that do not point down the layers: " + "; ".join(upward)


def test_no_package_import_inside_a_function() -> None:
    inside = [f"{_short(m)}:{line}" for m, edges in _imports().items() for _, line, in_fn in edges if in_fn]
    assert not inside, inside


def test_public_names_report_the_public_module() -> None:
    wrong = []
    for name in cancelable_rx.__all__:
        obj = getattr(cancelable_rx, name)
        module = getattr(obj, "__module__", None)
        if isinstance(obj, type) or (callable(obj) and hasattr(obj, "__qualname__") and module and module.startswith("cancelable_rx")):
            if module != "cancelable_rx":
                wrong.append(f"{name}: {module}")
    assert not wrong, wrong
    assert repr(cancelable_rx.TimeoutCancelation) == "<class 'cancelable_rx.TimeoutCancelation'>"
