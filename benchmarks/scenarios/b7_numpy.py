"""B7: a 100 MB NumPy array to a worker process and back, vs ProcessPoolExecutor.

A round sends a 100 MB ``float64`` array to ``identity`` in a worker and waits for
the array it returns (so 100 MB travel each way); both pools have 2 workers,
started by a warm-up round. The result is checked against the input once,
outside the timing. taskloom sends the buffer through shared memory (one copy
in, a zero-copy mapping out, each way); ``ProcessPoolExecutor`` pickles it
through a pipe.

Ratio = ProcessPoolExecutor seconds / taskloom seconds (medians).
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import sys
import time
from typing import Any

import _benchkit as kit
import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
# Kept on sys.path for good (the runner removes the copy it added after import), so
# workers that import their task functions by name (spawned loky workers) find them.
sys.path.append(_HERE)

import _proctasks as pt  # noqa: E402

import taskloom as tl  # noqa: E402

ID = "B7"
TITLE = "100 MB NumPy array to a process and back"
FLOOR = ">= 3x ProcessPoolExecutor(2)"


def run(quick: bool) -> dict[str, Any]:
    """Measure both sides; see the module docstring."""
    megabytes = 8 if quick else 100
    warmup, repeats = (1, 1) if quick else (1, 5)
    data = np.arange(megabytes * 1024 * 1024 // 8, dtype=np.float64)
    procs = tl.ProcessScheduler(kit.WORKERS)
    ppe = cf.ProcessPoolExecutor(kit.WORKERS)

    def taskloom_body() -> float:
        t0 = time.perf_counter()
        result = tl.start_new(pt.identity, data, scheduler=procs).result()
        elapsed = time.perf_counter() - t0
        del result
        return elapsed

    def ppe_body() -> float:
        t0 = time.perf_counter()
        result = ppe.submit(pt.identity, data).result()
        elapsed = time.perf_counter() - t0
        del result
        return elapsed

    try:
        same = np.array_equal(tl.start_new(pt.identity, data, scheduler=procs).result(), data)
        timings = kit.interleaved(
            {"taskloom ProcessScheduler": taskloom_body, "ProcessPoolExecutor": ppe_body},
            warmup=warmup,
            repeats=repeats,
        )
        shm = procs.statistics().shared_memory_bytes
    finally:
        procs.shutdown()
        ppe.shutdown()
    rows = [
        kit.row(name, t.median, "s", kit.describe(t) + f"; {2 * megabytes / t.median:,.0f} MB/s")
        for name, t in timings.items()
    ]
    ratio = timings["ProcessPoolExecutor"].median / timings["taskloom ProcessScheduler"].median
    notes = (
        f"{megabytes} MB float64 array, there and back; median of {repeats} interleaved "
        f"repeats after {warmup} warm-up round(s). Round trip equal to the input: {same}. "
        f"taskloom bytes through shared memory: {shm:,}."
    )
    return kit.make_result(rows, ratio=ratio if same else None, floor=3.0, notes=notes)


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick=False), indent=2))
