"""``python -m taskloom demo`` runs its whole tour, passes its own checks and exits 0."""

from __future__ import annotations

import subprocess
import sys

import pytest

from taskloom import _demo


@pytest.mark.slow
def test_python_dash_m_taskloom_demo() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "taskloom", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    out = completed.stdout
    assert completed.returncode == 0, f"--- stdout ---\n{out}\n--- stderr ---\n{completed.stderr}"
    for number, (title, _section) in enumerate(_demo.SECTIONS, 1):
        assert f"{number}. {title}" in out, f"section {title!r} missing from the output"
    assert "fib(18) = 2584" in out
    assert "N = 100, total = " in out
    assert "task.status = CANCELED" in out
    assert "stolen from another worker" in out
    assert "FAILED" not in out
    assert f"demo complete: {len(_demo.SECTIONS)} sections, all checks passed" in out


def test_a_failing_check_makes_the_demo_fail(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(report: _demo.Report) -> None:
        report.check(False, "something that does not hold")

    monkeypatch.setattr(_demo, "SECTIONS", [("Broken on purpose", broken)])
    assert _demo.main() == 1
    out = capsys.readouterr().out
    assert "FAILED: DemoCheckFailed: something that does not hold" in out
    assert "demo FAILED in Broken on purpose" in out
