"""B5: 20k tiny process tasks submitted one by one, vs ProcessPoolExecutor, loky and pebble.

Every pool has 2 worker processes, started before timing (a warm-up round runs
first). A round submits ``tiny(i)`` 20,000 times from the main thread, one call
per task, then collects every result:

* taskloom: ``tl.start_new(tiny, i, scheduler=procs)``, then ``t.result()`` on each;
* ``concurrent.futures.ProcessPoolExecutor(2)``: ``submit``, then ``f.result()``;
* ``loky.ProcessPoolExecutor(2)``: the same;
* ``pebble.ProcessPool(2)``: ``schedule``, then ``f.result()``.

Ratio = ProcessPoolExecutor seconds / taskloom seconds (medians). Quick mode runs
1,000 tasks against ProcessPoolExecutor only (loky and pebble start slowly).
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import _benchkit as kit

_HERE = os.path.dirname(os.path.abspath(__file__))
# Kept on sys.path for good (the runner removes the copy it added after import), so
# workers that import their task functions by name (spawned loky workers) find them.
sys.path.append(_HERE)

import _proctasks as pt  # noqa: E402

import taskloom as tl  # noqa: E402

ID = "B5"
TITLE = "20k tiny process tasks submitted one by one"
FLOOR = ">= 3x ProcessPoolExecutor(2)"


def _futures_body(submit: Callable[[int], Any], n: int) -> Callable[[], float]:
    def body() -> float:
        t0 = time.perf_counter()
        futures = [submit(i) for i in range(n)]
        for f in futures:
            f.result()
        return time.perf_counter() - t0

    return body


def run(quick: bool) -> dict[str, Any]:
    """Measure every pool; see the module docstring."""
    n = 1_000 if quick else 20_000
    warmup, repeats = (1, 1) if quick else (1, 5)
    tiny = pt.tiny
    procs = tl.ProcessScheduler(kit.WORKERS)
    ppe = cf.ProcessPoolExecutor(kit.WORKERS)
    closers: list[Callable[[], None]] = [procs.shutdown, ppe.shutdown]

    def taskloom_body() -> float:
        start_new = tl.start_new
        t0 = time.perf_counter()
        tasks = [start_new(tiny, i, scheduler=procs) for i in range(n)]
        for t in tasks:
            t.result()
        return time.perf_counter() - t0

    bodies: dict[str, Callable[[], float]] = {
        "taskloom ProcessScheduler": taskloom_body,
        "ProcessPoolExecutor": _futures_body(lambda i: ppe.submit(tiny, i), n),
    }
    missing = []
    if not quick:
        try:
            import loky

            loky_pool = loky.ProcessPoolExecutor(kit.WORKERS)
            closers.append(loky_pool.shutdown)
            bodies["loky"] = _futures_body(lambda i: loky_pool.submit(tiny, i), n)
        except ImportError:
            missing.append("loky")
        try:
            import pebble

            pebble_pool = pebble.ProcessPool(max_workers=kit.WORKERS)

            def close_pebble() -> None:
                pebble_pool.close()  # type: ignore[no-untyped-call]
                pebble_pool.join()

            closers.append(close_pebble)
            bodies["pebble"] = _futures_body(lambda i: pebble_pool.schedule(tiny, args=(i,)), n)
        except ImportError:
            missing.append("pebble")
    try:
        timings = kit.interleaved(bodies, warmup=warmup, repeats=repeats)
        stats = procs.statistics()
    finally:
        for close in closers:
            close()

    rows = [
        kit.row(name, t.median, "s", kit.describe(t) + f"; {n / t.median:,.0f} tasks/s")
        for name, t in timings.items()
    ]
    ours = timings["taskloom ProcessScheduler"].median
    ratio = timings["ProcessPoolExecutor"].median / ours
    others = ", ".join(
        f"{name} {t.median / ours:.1f}x"
        for name, t in timings.items()
        if name not in ("taskloom ProcessScheduler", "ProcessPoolExecutor")
    )
    notes = (
        f"{n:,} tasks per round, 2 worker processes per pool; median of {repeats} "
        f"interleaved repeats after {warmup} warm-up round(s). taskloom vs the others: "
        f"{others or 'not run'}{'; missing: ' + ', '.join(missing) if missing else ''}. "
        f"taskloom crashes={stats.crashes}, workers={stats.workers_alive}."
    )
    return kit.make_result(rows, ratio=ratio, floor=3.0, notes=notes)


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick=False), indent=2))
