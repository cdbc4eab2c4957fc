"""``python -m taskloom`` / the ``taskloom`` script: argument routing of taskloom._cli.

The subcommands' bodies (taskloom._demo, taskloom._bench) are replaced by stubs
here; they are tested on their own.
"""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

from taskloom import _cli


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, object]]:
    recorded: list[tuple[str, object]] = []

    demo = types.ModuleType("taskloom._demo")
    demo.main = lambda: recorded.append(("demo", None))  # type: ignore[attr-defined]
    bench = types.ModuleType("taskloom._bench")

    def bench_main(argv: list[str]) -> int:
        recorded.append(("bench", argv))
        return 7

    bench.main = bench_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "taskloom._demo", demo)
    monkeypatch.setitem(sys.modules, "taskloom._bench", bench)
    return recorded


def test_demo_runs_the_demo(calls: list[tuple[str, object]]) -> None:
    assert _cli.main(["demo"]) == 0
    assert calls == [("demo", None)]


def test_bench_passes_every_argument_through_in_order(calls: list[tuple[str, object]]) -> None:
    argv = ["--quick", "B1", "-n", "3", "--help", "--", "-x"]
    assert _cli.main(["bench", *argv]) == 7
    assert calls == [("bench", argv)]


def test_bench_without_arguments(calls: list[tuple[str, object]]) -> None:
    assert _cli.main(["bench"]) == 7
    assert calls == [("bench", [])]


def test_bad_usage_exits_2(
    calls: list[tuple[str, object]], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc_info:
        _cli.main(["demo", "--unknown"])
    assert exc_info.value.code == 2
    with pytest.raises(SystemExit) as exc_info:
        _cli.main(["no-such-command"])
    assert exc_info.value.code == 2
    assert _cli.main([]) == 2  # no command: usage on stderr
    assert "usage: taskloom" in capsys.readouterr().err
    assert calls == []


def test_exit_codes() -> None:
    assert _cli._exit_code(None) == 0
    assert _cli._exit_code(0) == 0
    assert _cli._exit_code(3) == 3
    assert _cli._exit_code("three") == 1


def test_python_dash_m_taskloom_version() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "taskloom", "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("taskloom ")
