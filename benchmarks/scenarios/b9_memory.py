"""B9: memory per pending task, vs a pending ``concurrent.futures.Future``.

``tracemalloc`` counts the bytes still allocated after creating N objects
(``gc.collect()`` before and after; the list that holds them is allocated
before the baseline, so it is not counted on either side). Measured:

* ``concurrent.futures.Future()``: the peer and the unit of the ratio;
* taskloom, **queued pending** (what the floor applies to: what a user holds
  after ``tl.run``): ``tl.run(noop, scheduler=s)`` on a 2-worker
  ``WorkStealingScheduler`` whose workers are both held by a gate, so every
  task stays ``WAITING_TO_RUN`` in the queue; the queue's share is counted.
  ``max_threads=2`` keeps the pool from injecting a thread that would run them;
* taskloom **cold** ``tl.Task(noop)`` (status ``CREATED``), for context;
* ThreadPoolExecutor(2) **pending submit** (its Future + work item + queue
  entry, workers held by a gate), for context.

Ratio = taskloom queued bytes/task ÷ Future bytes/task; lower is better.
"""

from __future__ import annotations

import concurrent.futures as cf
import gc
import statistics
import threading
import tracemalloc
from collections.abc import Callable
from typing import Any

import _benchkit as kit

import taskloom as tl

ID = "B9"
TITLE = "memory per pending task"
FLOOR = "<= 1.0x a concurrent.futures.Future"


def noop() -> None:
    return None


def _bytes_per_object(make: Callable[[], object], n: int) -> tuple[float, list[object]]:
    """Bytes still allocated per object after ``n`` calls of ``make``; and the objects."""
    holder: list[object] = [None] * n
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(n):
            holder[i] = make()
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    return used / n, holder


def _measure(make: Callable[[], object], n: int, repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        per_object, holder = _bytes_per_object(make, n)
        samples.append(per_object)
        del holder
    return samples


def _held_taskloom(n: int, repeats: int) -> tuple[list[float], str]:
    """Queued-pending taskloom tasks: both workers are held, the tasks wait in the queue."""
    sched = tl.WorkStealingScheduler(kit.WORKERS, max_threads=kit.WORKERS)
    gate = threading.Event()
    running = threading.Semaphore(0)

    def hold() -> None:
        running.release()
        gate.wait()

    holders = [tl.run(hold, scheduler=sched) for _ in range(kit.WORKERS)]
    samples: list[float] = []
    still_queued: list[int] = []
    try:
        for _ in range(kit.WORKERS):
            if not running.acquire(timeout=10.0):
                raise RuntimeError("B9: the pool's workers did not start")
        for _ in range(repeats):
            per_task, tasks = _bytes_per_object(lambda: tl.run(noop, scheduler=sched), n)
            samples.append(per_task)
            still_queued.append(sched.statistics().global_queue_length)
            for t in tasks:
                assert isinstance(t, tl.Task)
                t.cancel()  # leave the queue empty for the next repeat; canceled ones are skipped
            del tasks
    finally:
        gate.set()
        tl.wait_all(*holders, timeout=10.0)
        sched.shutdown(wait=True)
    # Earlier repeats' tasks are canceled but stay in the queue (workers skip them later).
    growth = [b - a for a, b in zip([0, *still_queued], still_queued, strict=False)]
    if all(g == n for g in growth):
        return samples, f"all {n:,} tasks were still queued at each measurement"
    return samples, f"CAUTION: the queue grew by {growth} tasks, not {n:,} each time"


def _held_pool(n: int, repeats: int) -> list[float]:
    """Pending ThreadPoolExecutor submits: both workers are held by a gate."""
    pool = cf.ThreadPoolExecutor(kit.WORKERS)
    gate = threading.Event()
    running = threading.Semaphore(0)

    def hold() -> None:
        running.release()
        gate.wait()

    samples: list[float] = []
    try:
        holders = [pool.submit(hold) for _ in range(kit.WORKERS)]
        for _ in range(kit.WORKERS):
            if not running.acquire(timeout=10.0):
                raise RuntimeError("B9: the executor's workers did not start")
        for _ in range(repeats):
            per_task, futures = _bytes_per_object(lambda: pool.submit(noop), n)
            samples.append(per_task)
            for f in futures:
                assert isinstance(f, cf.Future)
                f.cancel()
            del futures
    finally:
        gate.set()
        cf.wait(holders, timeout=10.0)
        pool.shutdown(wait=True, cancel_futures=True)
    return samples


def run(quick: bool) -> dict[str, Any]:
    """Measure every kind; see the module docstring."""
    n = 2_000 if quick else 20_000
    repeats = 1 if quick else 3
    future = _measure(cf.Future, n, repeats)
    cold = _measure(lambda: tl.Task(noop), n, repeats)
    queued, queued_note = _held_taskloom(n, repeats)
    pool = _held_pool(n, repeats)

    def fig(samples: list[float]) -> float:
        return statistics.median(samples)

    def spread(samples: list[float]) -> str:
        return f"median of {len(samples)}: " + ", ".join(f"{s:.0f}" for s in samples)

    base = fig(future)
    rows = [
        kit.row(
            "taskloom tl.run, queued pending",
            fig(queued),
            "B/task",
            f"{fig(queued) / base:.2f}x Future; {spread(queued)}",
        ),
        kit.row(
            "taskloom tl.Task, cold",
            fig(cold),
            "B/task",
            f"{fig(cold) / base:.2f}x Future; {spread(cold)}",
        ),
        kit.row("concurrent.futures.Future()", base, "B/task", spread(future)),
        kit.row(
            "ThreadPoolExecutor(2) pending submit",
            fig(pool),
            "B/task",
            f"{fig(pool) / base:.2f}x Future; {spread(pool)}",
        ),
    ]
    notes = (
        f"N={n:,} objects per measurement, tracemalloc, median of {repeats}. The floor applies "
        f"to the queued-pending taskloom task; {queued_note}."
    )
    return kit.make_result(
        rows, ratio=fig(queued) / base, floor=1.0, notes=notes, lower_is_better=True
    )


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick=False), indent=2))
