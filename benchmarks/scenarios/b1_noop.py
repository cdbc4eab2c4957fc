"""B1: 100k no-op tasks, submit all then wait all, vs ThreadPoolExecutor.

Each side submits every task from the main thread, then waits for all of them,
on 2 worker threads. Two idioms per side are measured and each side is credited
with its faster one:

* taskloom: ``tl.run(noop, scheduler=s)`` for each, then ``tl.wait_all(*tasks)``;
  or ``tl.start_new(noop, scheduler=s)`` for each, then ``t.result()`` on each.
* ThreadPoolExecutor: ``ex.submit(noop)`` for each, then
  ``concurrent.futures.wait(futures)``; or ``f.result()`` on each.

Ratio = ThreadPoolExecutor seconds / taskloom seconds (medians of the faster idioms).
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from typing import Any

import _benchkit as kit

import taskloom as tl

ID = "B1"
TITLE = "100k no-op tasks, submit all then wait all"
FLOOR = ">= 5x ThreadPoolExecutor(2)"


def noop() -> None:
    return None


def run(quick: bool) -> dict[str, Any]:
    """Measure both sides; see the module docstring."""
    n = 5_000 if quick else 100_000
    warmup, repeats = (1, 1) if quick else (1, 5)
    sched = tl.WorkStealingScheduler(kit.WORKERS)
    pool = cf.ThreadPoolExecutor(kit.WORKERS)

    def tl_wait_all() -> float:
        run_task = tl.run
        t0 = time.perf_counter()
        tasks = [run_task(noop, scheduler=sched) for _ in range(n)]
        tl.wait_all(*tasks)
        return time.perf_counter() - t0

    def tl_results() -> float:
        start_new = tl.start_new
        t0 = time.perf_counter()
        tasks = [start_new(noop, scheduler=sched) for _ in range(n)]
        for t in tasks:
            t.result()
        return time.perf_counter() - t0

    def tpe_wait() -> float:
        submit = pool.submit
        t0 = time.perf_counter()
        futures = [submit(noop) for _ in range(n)]
        cf.wait(futures)
        return time.perf_counter() - t0

    def tpe_results() -> float:
        submit = pool.submit
        t0 = time.perf_counter()
        futures = [submit(noop) for _ in range(n)]
        for f in futures:
            f.result()
        return time.perf_counter() - t0

    try:
        timings = kit.interleaved(
            {
                "taskloom run + wait_all": tl_wait_all,
                "taskloom start_new + result()": tl_results,
                "ThreadPoolExecutor submit + wait": tpe_wait,
                "ThreadPoolExecutor submit + result()": tpe_results,
            },
            warmup=warmup,
            repeats=repeats,
        )
        stats = sched.statistics()
    finally:
        pool.shutdown(wait=True)
        sched.shutdown(wait=True)

    rows = [
        kit.row(name, t.median, "s", kit.describe(t) + f"; {n / t.median:,.0f} tasks/s")
        for name, t in timings.items()
    ]
    best_tl = min((t.median, name) for name, t in timings.items() if name.startswith("taskloom"))
    best_peer = min(
        (t.median, name) for name, t in timings.items() if not name.startswith("taskloom")
    )
    ratio = best_peer[0] / best_tl[0]
    notes = (
        f"{n:,} tasks per run; median of {repeats} interleaved repeats after {warmup} warm-up "
        f"round(s). Fastest idioms: taskloom '{best_tl[1]}', peer '{best_peer[1]}'. "
        f"taskloom pool after the runs: threads={stats.threads}, "
        f"injected={stats.threads_injected}."
    )
    return kit.make_result(rows, ratio=ratio, floor=5.0, notes=notes)


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick=False), indent=2))
