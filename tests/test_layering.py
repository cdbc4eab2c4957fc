"""Layers import downward only (DESIGN §2, STYLE rule 3).

Every module under ``src/taskloom/`` is parsed with :mod:`ast` (nothing is
imported), and each ``import``/``from ... import`` of a taskloom module, absolute
(``taskloom.x``) or relative (``.x``), anywhere in the file (module level, inside
functions, classes, ``try`` blocks ...) must name a module of the same or a lower
layer. Imports under ``if TYPE_CHECKING:`` are exempt: they never run, and
annotations may mention types from any layer. ``importlib.import_module("taskloom.x")``
with a literal name counts as an import too.

A new module must be added to :data:`LAYERS` (or match :data:`LAYER_PREFIXES`);
until it is, these tests fail and say so. Modules listed here that do not exist
yet are simply not checked.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "taskloom"
SRC = Path(__file__).resolve().parents[1] / "src" / PACKAGE

CORE, SCHEDULERS, COMPOSITION, JOBS, TOP = range(5)
LAYER_NAMES = {
    CORE: "core",
    SCHEDULERS: "schedulers",
    COMPOSITION: "composition/front end/executors/groups",
    JOBS: "jobs",
    TOP: "CLI/package root",
}

#: Layer of each top-level module or subpackage of ``taskloom``, by name
#: (``"__init__"`` is the package itself). A submodule of a subpackage has its
#: subpackage's layer: ``taskloom._process._worker`` is in ``_process``'s layer.
LAYERS: dict[str, int] = {
    # 0. core: task state machine, options, cancellation, errors, scheduler ABC; stdlib only
    "_errors": CORE,
    "_enums": CORE,
    "_cancellation": CORE,
    "_timer": CORE,
    "_task": CORE,
    "_scheduler": CORE,
    "_context": CORE,
    "_util": CORE,
    "_unobserved": CORE,
    # 1. schedulers
    "_workstealing": SCHEDULERS,
    "_limited": SCHEDULERS,
    "_loop": SCHEDULERS,
    "_process": SCHEDULERS,
    # 2. composition, front end, executors, groups (and the dask scheduler, which may use them)
    "_compose": COMPOSITION,
    "_frontend": COMPOSITION,
    "_executors": COMPOSITION,
    "_groups": COMPOSITION,
    "dask": COMPOSITION,
    # 3. jobs
    "jobs": JOBS,
    # 4. CLI and package root
    "_cli": TOP,
    "_demo": TOP,
    "_bench": TOP,
    "__main__": TOP,
    "__init__": TOP,
}

#: Families of modules named by prefix, e.g. ``_jobs_manager``.
LAYER_PREFIXES: dict[str, int] = {
    "_jobs": JOBS,
}

HOW_TO_FIX_UNKNOWN = (
    "add it to LAYERS (or LAYER_PREFIXES) in tests/test_layering.py, "
    "in the layer DESIGN.md §2 gives it"
)


def layer_of(module: str) -> int | None:
    """The layer of ``module`` (a dotted name such as ``taskloom._process._worker``)."""
    parts = module.split(".")
    assert parts[0] == PACKAGE, module
    if len(parts) == 1:
        return LAYERS["__init__"]
    top = parts[1]
    if top in LAYERS:
        return LAYERS[top]
    for prefix, layer in LAYER_PREFIXES.items():
        if top.startswith(prefix):
            return layer
    return None


def describe_layer(layer: int) -> str:
    return f"layer {layer} ({LAYER_NAMES[layer]})"


@dataclass(frozen=True)
class SourceModule:
    name: str  # dotted, e.g. "taskloom._process._worker"
    path: Path
    is_package: bool  # an __init__.py


def discover(root: Path = SRC) -> list[SourceModule]:
    """Every Python module under ``root`` (the ``taskloom`` package directory)."""
    if not root.is_dir():
        return []
    modules = []
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        modules.append(SourceModule(".".join(parts), path, is_package))
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    if isinstance(test, ast.Attribute):
        return test.attr == "TYPE_CHECKING"
    return False


def _is_ours(name: str) -> bool:
    return name == PACKAGE or name.startswith(PACKAGE + ".")


class ImportCollector(ast.NodeVisitor):
    """Collects ``(line, imported taskloom module)`` pairs from one module's AST."""

    def __init__(self, module: str, *, is_package: bool, known_modules: frozenset[str]) -> None:
        self.module = module
        # The package that relative imports are relative to.
        self.package = module if is_package else module.rpartition(".")[0]
        self.known_modules = known_modules
        self.imports: list[tuple[int, str]] = []
        self.errors: list[str] = []

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            # The `if TYPE_CHECKING:` body never runs; its `else:` does.
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if _is_ours(alias.name):
                self.imports.append((node.lineno, alias.name))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 0:
            if node.module is None or not _is_ours(node.module):
                return
            base = node.module
        else:
            package_parts = self.package.split(".")
            if node.level > len(package_parts):
                self.errors.append(
                    f"line {node.lineno}: relative import goes above the top-level package"
                )
                return
            base = ".".join(package_parts[: len(package_parts) - node.level + 1])
            if node.module:
                base = f"{base}.{node.module}"
        for alias in node.names:
            candidate = f"{base}.{alias.name}"
            if alias.name != "*" and self._is_submodule(base, candidate):
                self.imports.append((node.lineno, candidate))
            else:
                # A name defined in `base` (for the root: something `__init__` exports).
                self.imports.append((node.lineno, base))

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if (
            name == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and _is_ours(node.args[0].value)
        ):
            self.imports.append((node.lineno, node.args[0].value))
        self.generic_visit(node)

    def _is_submodule(self, base: str, candidate: str) -> bool:
        if candidate in self.known_modules:
            return True
        # `from taskloom import jobs` names a module even before jobs.py exists.
        return base == PACKAGE and layer_of(candidate) is not None


def layering_problems(
    module: str,
    source: str,
    *,
    is_package: bool = False,
    known_modules: frozenset[str] = frozenset(),
) -> list[str]:
    """Everything wrong with the taskloom imports of one module's ``source``."""
    own_layer = layer_of(module)
    if own_layer is None:
        return [f"{module} has no layer: {HOW_TO_FIX_UNKNOWN}"]
    collector = ImportCollector(module, is_package=is_package, known_modules=known_modules)
    collector.visit(ast.parse(source, filename=module))
    problems = list(collector.errors)
    for line, target in collector.imports:
        target_layer = layer_of(target)
        if target_layer is None:
            problems.append(f"line {line}: imports unknown module {target}: {HOW_TO_FIX_UNKNOWN}")
        elif target_layer > own_layer:
            problems.append(
                f"line {line}: {module} ({describe_layer(own_layer)}) imports {target} "
                f"({describe_layer(target_layer)}); layers import downward only. Move the "
                "import under `if TYPE_CHECKING:` if it is only for annotations, or move "
                "the code to the right layer."
            )
    return problems


MODULES = discover()
KNOWN = frozenset(m.name for m in MODULES)


def test_every_module_has_a_layer() -> None:
    unknown = [m.name for m in MODULES if layer_of(m.name) is None]
    assert not unknown, f"modules without a layer: {unknown}: {HOW_TO_FIX_UNKNOWN}"


@pytest.mark.parametrize("module", MODULES, ids=[m.name for m in MODULES])
def test_imports_point_downward(module: SourceModule) -> None:
    problems = layering_problems(
        module.name,
        module.path.read_text(encoding="utf-8"),
        is_package=module.is_package,
        known_modules=KNOWN,
    )
    assert not problems, f"{module.path}:\n  " + "\n  ".join(problems)


# --------------------------------------------------------------------------- the checker itself


def _problems(module: str, source: str, *, is_package: bool = False) -> list[str]:
    known = frozenset({"taskloom._process._worker", "taskloom._process._pipe", "taskloom._mystery"})
    return layering_problems(module, source, is_package=is_package, known_modules=known)


def test_checker_flags_upward_imports_anywhere() -> None:
    source = """
from __future__ import annotations
import os
from ._errors import TaskloomError

def later():
    try:
        from taskloom import _frontend
    except ImportError:
        pass

class C:
    import taskloom.jobs
"""
    problems = _problems("taskloom._task", source)
    assert len(problems) == 2, problems
    assert problems[0].startswith("line 8:"), problems
    assert "taskloom._frontend" in problems[0]
    assert problems[1].startswith("line 13:"), problems
    assert "taskloom.jobs" in problems[1]


def test_checker_exempts_type_checking_but_not_its_else() -> None:
    source = """
import typing
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from ._groups import TaskGroup
if typing.TYPE_CHECKING:
    import taskloom.jobs
else:
    from . import _executors
"""
    problems = _problems("taskloom._scheduler", source)
    assert len(problems) == 1, problems
    assert "taskloom._executors" in problems[0]


def test_checker_resolves_relative_and_root_imports() -> None:
    # From inside a subpackage, `..` is the taskloom package itself.
    source = "from .. import _errors\nfrom ._pipe import Pipe\nfrom . import _worker\n"
    assert _problems("taskloom._process._worker", source) == []
    assert _problems("taskloom._process", source, is_package=True) == []
    # A name from the package root is an import of `taskloom/__init__` (the top layer).
    problems = _problems("taskloom._loop", "from taskloom import run\nfrom . import run\n")
    assert len(problems) == 2, problems
    assert all("imports taskloom (layer 4" in p for p in problems)
    assert "above the top-level package" in _problems("taskloom._loop", "from ... import x")[0]


def test_checker_sees_import_module_with_a_literal_name() -> None:
    source = "import importlib\nm = importlib.import_module('taskloom._groups')\n"
    assert "taskloom._groups" in _problems("taskloom._limited", source)[0]


def test_checker_reports_unknown_modules() -> None:
    assert "has no layer" in _problems("taskloom._mystery", "")[0]
    problems = _problems("taskloom._cli", "from taskloom import _mystery\nimport taskloom._x\n")
    assert len(problems) == 2, problems
    assert all("unknown module" in p and "LAYERS" in p for p in problems)


def test_checker_allows_same_and_lower_layers() -> None:
    source = (
        "from ._compose import when_all\n"
        "from ._workstealing import W\n"
        "from ._jobs_manager import J\n"
    )
    assert _problems("taskloom.jobs", source) == []
    assert _problems("taskloom._jobs_manager", source) == []
    assert _problems("taskloom", source, is_package=True) == []
    assert _problems("taskloom.dask", source)[0].startswith("line 3")
