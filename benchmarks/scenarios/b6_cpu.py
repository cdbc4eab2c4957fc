"""B6: 8 x 0.25 s pure-Python CPU tasks on 2 worker processes, vs running them sequentially.

The body (``spin(n)``) is calibrated first so that one call takes about 0.25 s on
this machine. A taskloom round starts 8 such tasks on a ``ProcessScheduler(2)``
(workers already started by a warm-up round) and waits for all of them; the
sequential round calls ``spin`` 8 times on the main thread.

Ratio = sequential seconds / taskloom seconds (medians). On 2 free cores the
ideal is 2x; the floor is 1.8x. Other load on the machine lowers the ratio.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import _benchkit as kit

_HERE = os.path.dirname(os.path.abspath(__file__))
# Kept on sys.path for good (the runner removes the copy it added after import), so
# workers that import their task functions by name (spawned loky workers) find them.
sys.path.append(_HERE)

import _proctasks as pt  # noqa: E402

import taskloom as tl  # noqa: E402

ID = "B6"
TITLE = "8 x 0.25 s pure-Python CPU tasks on processes"
FLOOR = ">= 1.8x sequential on 2 cores"

TASKS = 8


def _calibrate(seconds: float) -> int:
    """The ``spin`` argument that takes about ``seconds`` here."""
    n = 100_000
    while True:
        t0 = time.perf_counter()
        pt.spin(n)
        elapsed = time.perf_counter() - t0
        if elapsed > 0.05:
            return max(1, int(n * seconds / elapsed))
        n *= 2


def run(quick: bool) -> dict[str, Any]:
    """Measure both sides; see the module docstring."""
    per_task = 0.02 if quick else 0.25
    warmup, repeats = (1, 1) if quick else (1, 5)
    n = _calibrate(per_task)
    procs = tl.ProcessScheduler(kit.WORKERS)

    def taskloom_body() -> float:
        t0 = time.perf_counter()
        tasks = [tl.start_new(pt.spin, n, scheduler=procs) for _ in range(TASKS)]
        for t in tasks:
            t.result()
        return time.perf_counter() - t0

    def sequential_body() -> float:
        t0 = time.perf_counter()
        for _ in range(TASKS):
            pt.spin(n)
        return time.perf_counter() - t0

    try:
        timings = kit.interleaved(
            {"taskloom ProcessScheduler(2)": taskloom_body, "sequential": sequential_body},
            warmup=warmup,
            repeats=repeats,
        )
    finally:
        procs.shutdown()
    rows = [kit.row(name, t.median, "s", kit.describe(t)) for name, t in timings.items()]
    ratio = timings["sequential"].median / timings["taskloom ProcessScheduler(2)"].median
    notes = (
        f"{TASKS} tasks of spin({n:,}) (about {per_task} s each, calibrated here); "
        f"median of {repeats} interleaved repeats after {warmup} warm-up round(s); "
        f"os.cpu_count()={os.cpu_count()}."
    )
    return kit.make_result(rows, ratio=ratio, floor=1.8, notes=notes)


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick=False), indent=2))
