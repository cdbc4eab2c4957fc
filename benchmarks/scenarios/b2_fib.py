"""B2: fork-join fib(25) with child tasks, cutoff none, vs ThreadPoolExecutor (deadlocks).

Every call of ``fib`` is a task: fib(25) is 242,785 tasks. Two legitimate
taskloom forms are measured and the faster one is the headline figure:

* **blocking join**: each call starts its two children with ``tl.start_new``
  and joins them with ``a.result() + b.result()``. A join on a child still in
  the worker's own deque runs it inline; a worker blocked on a stolen child
  lets the pool inject a thread (that is the design: nested waits never
  deadlock), so more than 2 threads may exist; the notes say how many.
* **continuation join** (non-blocking): each call starts its children with
  ``tl.run`` and returns ``tl.when_all(a, b).then(add)``; ``run`` unwraps it.
  Only the fib calls are counted as tasks, not the when_all/then helpers.

The peer, ThreadPoolExecutor(2) doing the same recursion with nested
``submit`` + ``result()``, deadlocks as soon as both workers wait on queued
children. It runs with a bounded wait; on timeout a stop flag makes any call
that still starts return at once and ``shutdown(cancel_futures=True)`` cancels
the queued children, which unblocks the waiting workers so the pool exits.
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import threading
import time
from typing import Any

import _benchkit as kit

import taskloom as tl

ID = "B2"
TITLE = "fork-join fib(25), every call a child task"
FLOOR = ">= 150k tasks/s (ThreadPoolExecutor: deadlocks)"

FLOOR_TASKS_PER_SECOND = 150_000.0


def fib_value(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def fib_calls(n: int) -> int:
    """Calls made by the naive recursion: C(n) = C(n-1) + C(n-2) + 1 = 2 fib(n+1) - 1."""
    return 2 * fib_value(n + 1) - 1


def _add(results: list[int]) -> int:
    return results[0] + results[1]


def run(quick: bool) -> dict[str, Any]:
    """Measure taskloom's two forms, then show the peer deadlocking; see the module docstring."""
    n = 15 if quick else 25
    warmup_n = 12 if quick else 20
    repeats = 1 if quick else 3
    peer_timeout = 0.5 if quick else 2.0
    calls = fib_calls(n)
    expected = fib_value(n)

    blocking_sched = tl.WorkStealingScheduler(kit.WORKERS)
    cps_sched = tl.WorkStealingScheduler(kit.WORKERS)

    def fib_blocking(k: int) -> int:
        if k < 2:
            return k
        a = tl.start_new(fib_blocking, k - 1, scheduler=blocking_sched)
        b = tl.start_new(fib_blocking, k - 2, scheduler=blocking_sched)
        return a.result() + b.result()

    def fib_cps(k: int) -> Any:
        if k < 2:
            return k
        a = tl.run(fib_cps, k - 1, scheduler=cps_sched)
        b = tl.run(fib_cps, k - 2, scheduler=cps_sched)
        return tl.when_all(a, b).then(_add, scheduler=cps_sched)

    def run_blocking(k: int) -> float:
        t0 = time.perf_counter()
        value = tl.start_new(fib_blocking, k, scheduler=blocking_sched).result()
        elapsed = time.perf_counter() - t0
        assert value == fib_value(k), value
        return elapsed

    def run_cps(k: int) -> float:
        t0 = time.perf_counter()
        value = tl.run(fib_cps, k, scheduler=cps_sched).result()
        elapsed = time.perf_counter() - t0
        assert value == fib_value(k), value
        return elapsed

    try:
        # Warm-up on a smaller tree (code paths, allocator, injected threads).
        run_blocking(warmup_n)
        run_cps(warmup_n)
        timings = kit.interleaved(
            {
                "taskloom start_new + result() join": lambda: run_blocking(n),
                "taskloom run + when_all().then() join": lambda: run_cps(n),
            },
            warmup=0,
            repeats=repeats,
        )
        blocking_stats = blocking_sched.statistics()
        cps_stats = cps_sched.statistics()
    finally:
        blocking_sched.shutdown(wait=True)
        cps_sched.shutdown(wait=True)

    rows = [
        kit.row(name, calls / t.median, "tasks/s", kit.describe(t)) for name, t in timings.items()
    ]
    best_rate, best_name = max((calls / t.median, name) for name, t in timings.items())

    peer_row, peer_note = _run_peer(n, peer_timeout, expected)
    rows.append(peer_row)
    notes = (
        f"fib({n}) = {expected:,}: {calls:,} tasks per run; median of {repeats} interleaved "
        f"repeats after a fib({warmup_n}) warm-up. Headline: '{best_name}'. Threads in the "
        f"blocking-join pool after the runs: {blocking_stats.threads} "
        f"({blocking_stats.threads_injected} injected while workers were blocked; "
        f"{blocking_stats.inlined:,} joins ran inline, {blocking_stats.steals:,} steals); "
        f"continuation-join pool: {cps_stats.threads} threads, "
        f"{cps_stats.threads_injected} injected. {peer_note}"
    )
    return kit.make_result(
        rows,
        ratio=best_rate,
        floor=FLOOR_TASKS_PER_SECOND,
        notes=notes,
        ratio_unit="tasks/s",
    )


def _run_peer(n: int, timeout: float, expected: int) -> tuple[dict[str, Any], str]:
    """ThreadPoolExecutor(2), nested submit + result(): record whether it deadlocks."""
    stop = threading.Event()
    started = itertools.count()  # next() is atomic in CPython; the figure is informational
    pool = cf.ThreadPoolExecutor(kit.WORKERS)

    def fib_tpe(k: int) -> int:
        if stop.is_set():
            raise cf.CancelledError("benchmark stopped the deadlocked recursion")
        next(started)
        if k < 2:
            return k
        a = pool.submit(fib_tpe, k - 1)
        b = pool.submit(fib_tpe, k - 2)
        return a.result() + b.result()

    t0 = time.perf_counter()
    top = pool.submit(fib_tpe, n)
    try:
        value = top.result(timeout=timeout)
    except cf.TimeoutError:
        value = None
    elapsed = time.perf_counter() - t0
    stop.set()
    pool.shutdown(wait=False, cancel_futures=True)
    threads: set[threading.Thread] = getattr(pool, "_threads", set())
    for thread in threads:
        thread.join(timeout=5.0)
    stuck = sum(thread.is_alive() for thread in threads)
    calls_started = next(started)
    if value is None:
        note = (
            f"deadlocked: no result within {timeout:g} s; {calls_started:,} of "
            f"{fib_calls(n):,} calls had started"
        )
        row = kit.row("ThreadPoolExecutor(2) nested submit + result()", None, "tasks/s", note)
        summary = f"ThreadPoolExecutor(2): {note}" + (
            f"; {stuck} pool threads did not exit" if stuck else "; its threads were released."
        )
        return row, summary
    assert value == expected, value
    rate = fib_calls(n) / elapsed
    note = f"completed in {elapsed:.3g} s (no deadlock at this size)"
    return (
        kit.row("ThreadPoolExecutor(2) nested submit + result()", rate, "tasks/s", note),
        f"ThreadPoolExecutor(2): {note}.",
    )


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick=False), indent=2))
