"""The public API is exported exactly once, documented, and mentioned in docs/ (STYLE rule 1).

Modelled on httpx's ``tests/test_exported_members.py``.

``taskloom.__all__`` is kept in the order ruff's RUF022 ("isort-style") sorts it,
so that ``ruff check --fix`` and this test agree: SCREAMING_CASE constants first,
then CamelCase classes, then everything else (functions, modules, dunders), each
group in natural order (``B2`` before ``B10``), case-sensitively.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
from pathlib import Path

import pytest

import taskloom

DOCS = Path(__file__).resolve().parents[1] / "docs"
EXPORTED: list[str] = list(getattr(taskloom, "__all__", []))


def isort_style_key(name: str) -> tuple[int, list[str | int]]:
    """The sort key of ruff's RUF022 for one ``__all__`` entry."""
    if len(name) > 1 and name.isupper():
        group = 0  # CONSTANT
    elif name[:1].isupper():
        group = 1  # Class
    else:
        group = 2  # function, module, _private, __dunder__
    natural: list[str | int] = [
        int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)
    ]
    return group, natural


def test_isort_style_key_matches_ruff() -> None:
    # What `ruff check --select RUF022 --fix` produced for these names.
    expected = ["B2", "B10", "TASK_X", "AggregateError", "Task", "__version__", "jobs", "run"]
    shuffled = expected[4:] + expected[:4]
    assert sorted(shuffled, key=isort_style_key) == expected


def test_all_is_defined() -> None:
    assert hasattr(taskloom, "__all__"), "taskloom/__init__.py must define __all__"
    assert EXPORTED, "taskloom.__all__ is empty"
    assert all(isinstance(name, str) for name in EXPORTED)


def test_all_is_sorted() -> None:
    assert sorted(EXPORTED, key=isort_style_key) == EXPORTED, (
        "sort taskloom.__all__ (`ruff check --select RUF022 --fix src/taskloom/__init__.py`)"
    )


def test_all_has_no_duplicates() -> None:
    duplicates = sorted({name for name in EXPORTED if EXPORTED.count(name) > 1})
    assert not duplicates, f"listed more than once in taskloom.__all__: {duplicates}"


def test_every_exported_name_exists() -> None:
    missing = [name for name in EXPORTED if not hasattr(taskloom, name)]
    assert not missing, f"in taskloom.__all__ but not defined: {missing}"


def _defined_by_taskloom(obj: object) -> bool:
    module = getattr(obj, "__module__", None)
    return isinstance(module, str) and (module == "taskloom" or module.startswith("taskloom."))


def test_every_public_class_and_function_is_exported() -> None:
    unexported = sorted(
        name
        for name, obj in vars(taskloom).items()
        if not name.startswith("_")
        and (inspect.isclass(obj) or inspect.isroutine(obj))
        and _defined_by_taskloom(obj)
        and name not in EXPORTED
    )
    assert not unexported, (
        f"public in the taskloom package but not in __all__: {unexported} "
        "(export them, or import them under a private alias)"
    )


def _doc_of(obj: object) -> str | None:
    """The docstring that documents ``obj``: its own, or its class's for an instance."""
    if inspect.isclass(obj):
        doc = obj.__doc__
        if doc and dataclasses.is_dataclass(obj) and doc.startswith(f"{obj.__name__}("):
            return None  # the signature dataclasses writes when there is no docstring
        return doc
    if inspect.isroutine(obj) or isinstance(obj, types.ModuleType):
        return obj.__doc__
    # Enum members, constants, singletons: their class says what they are.
    return _doc_of(type(obj))


@pytest.mark.parametrize("name", EXPORTED)
def test_every_exported_name_has_a_docstring(name: str) -> None:
    obj = getattr(taskloom, name, None)
    assert obj is not None, f"taskloom.{name} is not defined"
    doc = _doc_of(obj)
    assert doc, f"taskloom.{name} has no docstring"
    assert doc.strip(), f"taskloom.{name} has an empty docstring"


def _docs_text() -> str:
    files = sorted(DOCS.rglob("*.md"))
    assert files, f"no Markdown files under {DOCS}"
    return "\n".join(path.read_text(encoding="utf-8") for path in files)


def test_every_exported_name_is_in_the_docs() -> None:
    text = _docs_text()
    undocumented = [
        name for name in EXPORTED if not re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", text)
    ]
    assert not undocumented, f"never mentioned under docs/: {undocumented}"
