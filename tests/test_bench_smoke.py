"""The benchmark suite runs end to end (quick mode) and reports well-formed results.

Speed is never asserted here: benchmarks measure it (``make bench``); this only
guards against a scenario that crashes or reports nonsense.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = {"B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9", "BX"}


@pytest.mark.timeout(300)
def test_quick_benchmark_run_reports_every_scenario(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "taskloom", "bench", "--quick", "--no-chart", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "| id | scenario |" in proc.stdout  # the Markdown table
    report = json.loads(out.read_text())
    assert report["quick"] is True
    scenarios = {s["id"]: s for s in report["scenarios"]}
    assert set(scenarios) >= EXPECTED
    for sid, s in scenarios.items():
        assert s["error"] is None, f"{sid}: {s['error']}"
        assert s["rows"], f"{sid} reported no rows"
        taskloom_rows = [r for r in s["rows"] if r["impl"].startswith("taskloom")]
        assert taskloom_rows, f"{sid} has no taskloom row"
        assert any(r["value"] is not None and r["value"] > 0 for r in taskloom_rows), sid
        if s["ratio"] is not None:
            assert s["ratio"] > 0, sid
