"""Every script in ``examples/`` runs, and together they use every public name.

Each example is run as a script with this interpreter, in a fresh process, the
way a reader would run it. The second test keeps the examples complete: a name
added to ``taskloom.__all__`` must be used by at least one example (as
``tl.NAME`` / ``taskloom.NAME``, or imported with ``from taskloom import NAME``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import taskloom

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))


def test_there_are_examples() -> None:
    assert SCRIPTS, f"no examples under {EXAMPLES}"


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS, ids=[path.name for path in SCRIPTS])
def test_example_runs(script: Path) -> None:
    completed = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=EXAMPLES.parent,
    )
    assert completed.returncode == 0, (
        f"{script.name} exited {completed.returncode}\n"
        f"--- stdout ---\n{completed.stdout}\n--- stderr ---\n{completed.stderr}"
    )
    assert completed.stdout.strip(), f"{script.name} printed nothing"


def _names_used(path: Path) -> set[str]:
    """Public taskloom names a script uses: ``tl.X``, ``taskloom.X``, ``from taskloom import X``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    aliases = {"taskloom"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases.update(a.asname or a.name for a in node.names if a.name == "taskloom")
    used: set[str] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
        ):
            used.add(node.attr)
        elif isinstance(node, ast.ImportFrom) and node.module == "taskloom":
            used.update(a.name for a in node.names)
    return used


def test_names_used_sees_attributes_and_imports(tmp_path: Path) -> None:
    script = tmp_path / "sample.py"
    script.write_text(
        "import taskloom as tl\nfrom taskloom import delay\n"
        "x: tl.Task[int] = tl.run(len, 'ab')\n# tl.when_any in a comment does not count\n"
    )
    assert _names_used(script) == {"Task", "run", "delay"}


def test_every_public_name_is_used_by_an_example() -> None:
    used: set[str] = set()
    for script in SCRIPTS:
        used |= _names_used(script)
    missing = sorted(set(taskloom.__all__) - used)
    assert not missing, f"no example in examples/ uses: {missing}"
