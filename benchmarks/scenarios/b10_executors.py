"""BX: the executors through the ``concurrent.futures`` API (B1 and B5, via ``submit``).

* Threads (as B1): 100k no-op ``submit`` calls from the main thread, then a wait on
  all of them, on 2 threads: ``tl.ThreadExecutor(2)`` vs ``ThreadPoolExecutor(2)``.
  Each side is credited with the faster of ``concurrent.futures.wait(fs)`` and
  ``f.result()`` on each.
* Processes (as B5): 20k tiny tasks submitted one by one to 2 worker processes:
  ``tl.ProcessExecutor(2)`` vs ``ProcessPoolExecutor(2)``, then ``f.result()`` on each.

Ratio = the thread peer's seconds / taskloom's (the B1 comparison, floor 5x as
B1's); the process ratio is in its rows and notes (B5's floor is 3x).
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from typing import Any

import _benchkit as kit

import taskloom as tl

ID = "BX"
TITLE = "executor submit throughput: ThreadExecutor (as B1), ProcessExecutor (as B5)"
FLOOR = ">= 5x ThreadPoolExecutor(2) (threads, as B1); >= 3x ProcessPoolExecutor(2) (as B5)"


def noop() -> None:
    return None


def tiny(x: int) -> int:
    return x + 1


def _thread_side(n: int, warmup: int, repeats: int) -> dict[str, kit.Timings]:
    ours = tl.ThreadExecutor(kit.WORKERS)
    peer = cf.ThreadPoolExecutor(kit.WORKERS)

    def body(ex: cf.Executor, results: bool) -> float:
        submit = ex.submit
        t0 = time.perf_counter()
        futures = [submit(noop) for _ in range(n)]
        if results:
            for f in futures:
                f.result()
        else:
            cf.wait(futures)
        return time.perf_counter() - t0

    try:
        return kit.interleaved(
            {
                "taskloom ThreadExecutor submit + wait": lambda: body(ours, False),
                "taskloom ThreadExecutor submit + result()": lambda: body(ours, True),
                "ThreadPoolExecutor submit + wait": lambda: body(peer, False),
                "ThreadPoolExecutor submit + result()": lambda: body(peer, True),
            },
            warmup=warmup,
            repeats=repeats,
        )
    finally:
        ours.shutdown()
        peer.shutdown()


def _process_side(n: int, warmup: int, repeats: int) -> dict[str, kit.Timings]:
    ours = tl.ProcessExecutor(kit.WORKERS)
    peer = cf.ProcessPoolExecutor(kit.WORKERS)

    def body(ex: cf.Executor) -> float:
        submit = ex.submit
        t0 = time.perf_counter()
        futures = [submit(tiny, i) for i in range(n)]
        for f in futures:
            f.result()
        return time.perf_counter() - t0

    try:
        return kit.interleaved(
            {
                "taskloom ProcessExecutor submit + result()": lambda: body(ours),
                "ProcessPoolExecutor submit + result()": lambda: body(peer),
            },
            warmup=warmup,
            repeats=repeats,
        )
    finally:
        ours.shutdown()
        peer.shutdown()


def _best(timings: dict[str, kit.Timings], ours: bool) -> tuple[float, str]:
    return min((t.median, k) for k, t in timings.items() if k.startswith("taskloom") == ours)


def run(quick: bool) -> dict[str, Any]:
    """Measure both comparisons; see the module docstring."""
    n_threads = 5_000 if quick else 100_000
    n_procs = 300 if quick else 20_000
    warmup, repeats = (1, 1) if quick else (1, 5)
    rows = []
    threads = _thread_side(n_threads, warmup, repeats)
    rows += [
        kit.row(k, t.median, "s", kit.describe(t) + f"; {n_threads / t.median:,.0f} tasks/s")
        for k, t in threads.items()
    ]
    ratio = _best(threads, False)[0] / _best(threads, True)[0]
    notes = f"threads: {n_threads:,} no-op tasks, ratio {ratio:.2f}x."
    procs = _process_side(n_procs, warmup, max(1, repeats - 2))
    rows += [
        kit.row(k, t.median, "s", kit.describe(t) + f"; {n_procs / t.median:,.0f} tasks/s")
        for k, t in procs.items()
    ]
    proc_ratio = _best(procs, False)[0] / _best(procs, True)[0]
    notes += f" processes: {n_procs:,} tiny tasks, ratio {proc_ratio:.2f}x (B5 floor 3x)."
    return kit.make_result(rows, ratio=ratio, floor=5.0, notes=notes)


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick=False), indent=2))
