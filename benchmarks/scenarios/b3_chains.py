"""B3: 1,000 chains x 100 ``continue_with``, vs ThreadPoolExecutor done-callbacks.

Both sides run 1,000 chains of 101 no-op steps (a root plus 100 continuations)
on 2 worker threads; every step is queued to and runs on the pool, and a step
starts only after the previous one completed.

* taskloom: ``t = tl.run(noop, scheduler=s)``, then 100 times
  ``t = t.continue_with(step, scheduler=s)`` (default options: each
  continuation is queued when its antecedent completes); the chains are built
  while their roots already run; then ``tl.wait_all(*chain_ends)``.
* ThreadPoolExecutor (the closest equivalent of a continuation chain):
  ``ex.submit(noop)``, and a done-callback that submits the next step with the
  completed future as its argument and adds itself to the new future, 100
  times; the last callback of each chain counts down a shared latch.

Ratio = ThreadPoolExecutor seconds / taskloom seconds (medians).
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import threading
import time
from typing import Any

import _benchkit as kit

import taskloom as tl

ID = "B3"
TITLE = "1,000 chains x 100 continue_with"
FLOOR = ">= 3x ThreadPoolExecutor(2) done-callbacks"


def noop() -> None:
    return None


def step(antecedent: object) -> None:
    return None


def run(quick: bool) -> dict[str, Any]:
    """Measure both sides; see the module docstring."""
    chains, length = (100, 20) if quick else (1_000, 100)
    warmup, repeats = (1, 1) if quick else (1, 5)
    steps = chains * (length + 1)
    sched = tl.WorkStealingScheduler(kit.WORKERS)
    pool = cf.ThreadPoolExecutor(kit.WORKERS)

    def tl_chains() -> float:
        run_task = tl.run
        t0 = time.perf_counter()
        ends = []
        for _ in range(chains):
            t = run_task(noop, scheduler=sched)
            for _ in range(length):
                t = t.continue_with(step, scheduler=sched)
            ends.append(t)
        tl.wait_all(*ends)
        return time.perf_counter() - t0

    def tpe_chains() -> float:
        submit = pool.submit
        lock = threading.Lock()
        all_done = threading.Event()
        open_chains = [chains]

        def on_done(left: int, future: cf.Future[None]) -> None:
            if left:
                submit(step, future).add_done_callback(functools.partial(on_done, left - 1))
                return
            with lock:
                open_chains[0] -= 1
                if not open_chains[0]:
                    all_done.set()

        t0 = time.perf_counter()
        for _ in range(chains):
            submit(noop).add_done_callback(functools.partial(on_done, length))
        all_done.wait()
        return time.perf_counter() - t0

    try:
        timings = kit.interleaved(
            {
                "taskloom continue_with chains": tl_chains,
                "ThreadPoolExecutor done-callback chains": tpe_chains,
            },
            warmup=warmup,
            repeats=repeats,
        )
        stats = sched.statistics()
    finally:
        pool.shutdown(wait=True)
        sched.shutdown(wait=True)

    rows = [
        kit.row(name, t.median, "s", kit.describe(t) + f"; {steps / t.median:,.0f} steps/s")
        for name, t in timings.items()
    ]
    tl_time = timings["taskloom continue_with chains"].median
    peer_time = timings["ThreadPoolExecutor done-callback chains"].median
    notes = (
        f"{chains:,} chains x {length} continuations ({steps:,} no-op steps on the pool) per "
        f"run; median of {repeats} interleaved repeats after {warmup} warm-up round(s). "
        f"taskloom pool after the runs: threads={stats.threads}, steals={stats.steals:,}, "
        f"injected={stats.threads_injected}."
    )
    return kit.make_result(rows, ratio=peer_time / tl_time, floor=3.0, notes=notes)


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick=False), indent=2))
