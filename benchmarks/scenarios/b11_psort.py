"""B11: recursive parallel quicksort with ``parallel_invoke`` on processes vs sequential.

The seed's PPL example (a recursive sort built on ``parallel_invoke``) run where
CPU-bound Python can use both cores: the top split partitions the list around a
pivot, then ``parallel_invoke`` sorts the lower part in a worker process of a
``ProcessScheduler(2)`` while the upper part is sorted on the calling thread (as
``parallel_invoke`` runs its last function there), and the parts are joined.
The sequential side runs the same pure-Python quicksort on the whole list.

Ratio = sequential seconds / parallel seconds (medians); issue 5 asks that the
parallel sort beats the sequential one on 2 cores (ratio > 1).
"""

from __future__ import annotations

import os
import random
import sys
import time
from typing import Any

import _benchkit as kit

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.append(_HERE)  # workers import the task functions by name

import _proctasks as pt  # noqa: E402

import taskloom as tl  # noqa: E402

ID = "B11"
TITLE = "recursive parallel quicksort (parallel_invoke on processes) vs sequential"
FLOOR = "> 1x sequential on 2 cores"


def run(quick: bool) -> dict[str, Any]:
    """Measure both sides; see the module docstring."""
    size = 20_000 if quick else 400_000
    warmup, repeats = (1, 1) if quick else (1, 5)
    rng = random.Random(42)
    items = [rng.randrange(10**9) for _ in range(size)]
    expected = sorted(items)
    procs = tl.ProcessScheduler(kit.WORKERS)

    def parallel() -> float:
        t0 = time.perf_counter()
        pivot = sorted(items[:101])[50]  # a median-of-sample pivot: two similar halves
        lower = [x for x in items if x <= pivot]
        upper = [x for x in items if x > pivot]
        low, high = tl.parallel_invoke(
            lambda: pt.quicksort(lower), lambda: pt.quicksort(upper), scheduler=procs
        )
        result = low + high
        elapsed = time.perf_counter() - t0
        assert result == expected
        return elapsed

    def sequential() -> float:
        t0 = time.perf_counter()
        result = pt.quicksort(items)
        elapsed = time.perf_counter() - t0
        assert result == expected
        return elapsed

    try:
        timings = kit.interleaved(
            {"taskloom parallel_invoke on ProcessScheduler(2)": parallel, "sequential": sequential},
            warmup=warmup,
            repeats=repeats,
        )
    finally:
        procs.shutdown(wait=True)
    rows = [kit.row(name, t.median, "s", kit.describe(t)) for name, t in timings.items()]
    par = timings["taskloom parallel_invoke on ProcessScheduler(2)"].median
    seq = timings["sequential"].median
    return kit.make_result(
        rows,
        ratio=seq / par,
        floor=1.0,
        notes=(
            f"{size:,} random ints, pure-Python quicksort; median of {repeats} interleaved "
            f"repeats after {warmup} warm-up; os.cpu_count()={os.cpu_count()}."
        ),
    )
