"""The layers of docs/architecture.md hold: every import in skmm/ looks down, never up or sideways into
another package's private modules. Static (the source is parsed, nothing is imported), so an import inside a
function counts as much as one at the top."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "skmm"

# Lowest first. A module may import its own layer and the layers below it. The core is every private
# top-level module (skmm/_*.py): batching, cache, store, registry, device, files, inputs, tables, targets,
# the training loop, pickling, compatibility.
LAYERS = ["core", "encoders", "fusion", "estimators", "top"]
TOP = {"cli", "dask", "datasets", "demo", "persistence", "__main__", "__init__"}


def _layer(module):
    """The layer of ``skmm.<...>`` (a dotted name without the leading ``skmm``)."""
    first = module.split(".")[0] if module else "__init__"
    if first in TOP:
        return "top"
    if first in ("encoders", "fusion", "estimators"):
        return first
    if first.startswith("_") or first == "performance":
        return "core"
    raise AssertionError(f"skmm.{module} is in no layer: add it to docs/architecture.md and LAYERS")


def _module_name(path):
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path):
    """``(line, imported skmm module without the "skmm." prefix)`` for every import of skmm code in ``path``."""
    yield from _imports_in(_module_name(path), path.name == "__init__.py", path.read_text(encoding="utf-8"))


def _imports_in(name, is_package, source):
    package = name.split(".") if is_package else name.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1] if node.level > 1 else package
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            elif node.module and node.module.split(".")[0] == "skmm":
                target = node.module[len("skmm."):] if node.module != "skmm" else ""
            else:
                continue
            # ``from . import x`` / ``from .. import _registry`` import modules: name them.
            yield from ((node.lineno, f"{target}.{alias.name}".strip(".")) if _is_module(target, alias.name)
                        else (node.lineno, target) for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "skmm":
                    yield node.lineno, alias.name[len("skmm."):] if alias.name != "skmm" else ""


def _upward(importer, imports):
    rank = LAYERS.index(_layer(importer))
    return [f"line {line}: skmm.{target} ({_layer(target)})" for line, target in imports
            if LAYERS.index(_layer(target)) > rank]


def _is_module(package, name):
    base = PACKAGE.joinpath(*package.split(".")) if package else PACKAGE
    return (base / f"{name}.py").exists() or (base / name / "__init__.py").exists()


SOURCES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(PACKAGE)) for p in SOURCES])
def test_imports_only_look_down(path):
    importer = _module_name(path)
    upward = _upward(importer, _imports(path))
    assert not upward, f"skmm.{importer} ({_layer(importer)}) imports from a layer above it: {upward}"


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(PACKAGE)) for p in SOURCES])
def test_no_private_module_of_another_package(path):
    """``skmm.fusion._blocks`` is fusion's own business: other packages use what a package exports."""
    importer = _module_name(path).split(".")
    crossing = []
    for line, target in _imports(path):
        parts = target.split(".")
        private = [i for i, part in enumerate(parts) if part.startswith("_") and i > 0]
        if private and parts[:private[0]] != importer[:private[0]]:
            crossing.append(f"line {line}: skmm.{target}")
    crossing = sorted(set(crossing))
    assert not crossing, f"skmm.{'.'.join(importer)} imports another package's private module: {crossing}"


def test_the_checker_sees_an_upward_import():
    """Relative, absolute and in-function imports are all resolved, and an upward one is named."""
    source = ("import numpy\nfrom ._store import SQLiteStore\n\n\ndef clear():\n"
              "    from .fusion._alignment import clear_fits\n    import skmm.estimators.mlp\n")
    assert _upward("_cache", _imports_in("_cache", False, source)) == [
        "line 6: skmm.fusion._alignment (fusion)", "line 7: skmm.estimators.mlp (estimators)"]
    assert _upward("estimators._net_base", _imports_in("estimators._net_base", False,
                                                       "from ..fusion import ModalityFusion\n")) == []
    assert list(_imports_in("encoders", True, "from .. import _registry\nfrom .image import ImageEncoder\n")) == [
        (1, "_registry"), (2, "encoders.image")]
