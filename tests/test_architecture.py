"""Imports run one way (docs/ARCHITECTURE.md): every module of tfedge imports only
modules of layers below its own, and no package reaches into another's private
modules. Every import counts, also those inside functions (the lazy ones)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "tfedge"

# Each top-level unit of tfedge (a subpackage or a module at the package root) and its
# layer. A unit imports units of lower layers, and itself; never one of its own layer
# or above. Layer 0 is the shared leaves: small modules that import nothing of tfedge
# but other leaves. docs/ARCHITECTURE.md explains the order.
LAYERS = {
    "errors": 0,
    "_checks": 0,
    "_layers": 0,
    "_progress": 0,
    "_quiet": 0,
    "_table": 0,
    "_version": 0,
    "datasets": 0,
    "codecs": 1,
    "tflite": 1,
    "runtime": 2,
    "keras": 2,
    "pack": 3,
    "convert": 4,
    "budget": 5,
    "fixed_point": 5,
    "_deep_compress": 5,
    "deep_compress": 5,
    "cli": 6,
}
LEAVES = 0

# Lazy re-exports against the direction, each in a package's module `__getattr__`
# (resolved on first use, so importing the package does not import the target):
# (package, unit it re-exports from).
REEXPORTS = {
    ("tfedge.keras", "budget"),  # tfedge.keras.SizeBudget
    ("tfedge.pack", "convert"),  # tfedge.pack.compress
}
# The package module `tfedge` itself is the public facade: it re-exports from every
# layer, lazily, and nothing inside tfedge imports it (import the defining module).
FACADE = "tfedge"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(dotted: str) -> bool:
    rel = Path(*dotted.split("."))
    base = ROOT.parent / rel
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def _imports(path: Path, source: str):
    """(line, imported module, names, inside a module-level __getattr__) for every
    import in `source`, the text of `path`."""
    tree = ast.parse(source, str(path))
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    lazy_lines: set[int] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "__getattr__":
            lazy_lines |= {n.lineno for n in ast.walk(node) if hasattr(n, "lineno")}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, [], node.lineno in lazy_lines
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [a.name for a in node.names]
            yield node.lineno, target, names, node.lineno in lazy_lines


def _targets(target: str, names: list[str]):
    """The tfedge modules an import statement reaches, with the names it takes from
    each (`from tfedge import codecs` reaches the module tfedge.codecs)."""
    if target != FACADE:
        yield target, names
        return
    if not names:
        yield FACADE, []
    for name in names:
        sub = f"{FACADE}.{name}"
        yield (sub, []) if _is_module(sub) else (FACADE, [name])


def _violations(path: Path, source: str | None = None) -> list[str]:
    module = _module_name(path)
    here = module.split(".")[1] if "." in module else FACADE
    if here == FACADE:
        return []
    if here not in LAYERS:
        return [f"{module}: unit {here!r} has no layer in LAYERS (and ARCHITECTURE.md)"]
    out = []
    source = path.read_text() if source is None else source
    for line, target, names, lazy in _imports(path, source):
        if target.split(".")[0] != "tfedge":
            continue
        for mod, taken in _targets(target, names):
            where = f"{path.relative_to(ROOT.parent)}:{line}: {module} imports {mod}"
            if mod == FACADE:
                out.append(f"{where} (the facade): import the defining module")
                continue
            parts = mod.split(".")[1:]
            unit = parts[0]
            if unit not in LAYERS:
                out.append(f"{where}: unit {unit!r} has no layer in LAYERS")
                continue
            if unit == here:
                continue
            upward = LAYERS[unit] >= LAYERS[here] and not (
                LAYERS[unit] == LAYERS[here] == LEAVES
            )
            if upward and not (lazy and (module, unit) in REEXPORTS):
                out.append(
                    f"{where}: layer {LAYERS[here]} may not import layer {LAYERS[unit]}"
                )
            private = [p for p in parts[1:] if p.startswith("_")]
            private += [n for n in taken if n.startswith("_") and n != "__version__"]
            if private and LAYERS[unit] != LEAVES:
                out.append(
                    f"{where}: private {private} of another package; use its "
                    "package's names"
                )
    return out


FILES = sorted(ROOT.rglob("*.py"))
# Where the checks of the check itself pretend their source is: tfedge/runtime, layer 2.
PROBE = ROOT / "runtime" / "_probe.py"


def test_every_unit_has_a_layer():
    units = {p.relative_to(ROOT).parts[0].removesuffix(".py") for p in FILES}
    units.discard("__init__")
    assert sorted(units - set(LAYERS)) == []


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_run_one_way(path):
    assert _violations(path) == []


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("from tfedge.pack import compress_tflite\n", "layer 2 may not import layer 3"),
        ("def f():\n    from tfedge.cli import main\n", "may not import layer 6"),
        ("from tfedge.tflite._model import read\n", "private ['_model']"),
        ("from tfedge.codecs import _payload\n", "private ['_payload']"),
        ("import tfedge\n", "the facade"),
        ("from tfedge import compress\n", "the facade"),
        ("def __getattr__(n):\n    from tfedge.budget import x\n", "may not import"),
    ],
)
def test_the_check_sees_each_kind_of_violation(source, message):
    (problem,) = _violations(PROBE, source)
    assert message in problem


def test_allowed_kinds_pass():
    source = (
        "from tfedge import codecs\n"
        "from tfedge.errors import FormatError\n"
        "from tfedge._quiet import quiet_tf\n"
        "from tfedge.tflite import read\n"
        "from tfedge.runtime._native import native_available\n"
        "from . import _expand\n"
    )
    assert _violations(PROBE, source) == []
