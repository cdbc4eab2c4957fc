"""B8: p99 event-loop lag while 8 x 0.25 s of pure-Python CPU work runs off the loop.

A ticker coroutine sleeps 1 ms in a loop and records how late each wakeup is
(the lag: what every other coroutine on the loop would wait too). Meanwhile the
loop awaits the B6 work, 8 calls of a pure-Python function that burns about
0.25 s each, all at once, with ``asyncio.to_thread``:

* taskloom: the loop's default executor is a ``tl.HybridExecutor(process_workers=2)``
  and the function is marked ``@tl.cpu_bound``, so ``asyncio.to_thread`` sends it
  to the worker processes (the loop thread never competes for the GIL);
* peer: the same ``asyncio.to_thread`` calls on asyncio's default
  ``ThreadPoolExecutor`` (the threads hold the GIL in 5 ms slices).

Both run on one asyncio loop each, in this process, after a warm-up (worker
processes started). Ratio = taskloom's p99 lag in milliseconds (floor <= 5 ms);
the peer's p99 is in its row.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

import _benchkit as kit

import taskloom as tl

ID = "B8"
TITLE = "p99 event-loop lag while 8 x 0.25 s CPU tasks run (HybridExecutor vs to_thread)"
FLOOR = "<= 5 ms p99 lag (taskloom)"

TICK = 0.001


def _make_burner() -> Callable[[int], int]:
    # A closure, so cloudpickle sends it by value: the worker processes need not
    # import this scenario module.
    def burn(n: int) -> int:
        total = 0
        for i in range(n):
            total += i * i % 7
        return total

    return burn


def _calibrate(burn: Callable[[int], int], seconds: float) -> int:
    n = 20_000
    while True:
        t0 = time.perf_counter()
        burn(n)
        elapsed = time.perf_counter() - t0
        if elapsed > 0.05:
            return max(1, int(n * seconds / elapsed))
        n *= 2


async def _measure(burn: Callable[[int], int], n: int, calls: int) -> tuple[list[float], float]:
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            await asyncio.sleep(TICK)
            lags.append(time.perf_counter() - t0 - TICK)

    tick_task = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    t0 = time.perf_counter()
    await asyncio.gather(*[asyncio.to_thread(burn, n) for _ in range(calls)])
    elapsed = time.perf_counter() - t0
    stop.set()
    await tick_task
    return lags, elapsed


def _p99(values: list[float]) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def _run_side(use_hybrid: bool, burn: Callable[[int], int], n: int, calls: int) -> dict[str, float]:
    async def main() -> tuple[list[float], float]:
        loop = asyncio.get_running_loop()
        if use_hybrid:
            loop.set_default_executor(tl.HybridExecutor(process_workers=kit.WORKERS))
        # Warm up: threads (and worker processes) started before measuring.
        await asyncio.gather(*[asyncio.to_thread(burn, 10) for _ in range(2 * kit.WORKERS)])
        return await _measure(burn, n, calls)

    lags, elapsed = asyncio.run(main())
    return {
        "p99": _p99(lags),
        "p50": statistics.median(lags) if lags else 0.0,
        "max": max(lags) if lags else 0.0,
        "ticks": float(len(lags)),
        "elapsed": elapsed,
    }


def run(quick: bool) -> dict[str, Any]:
    """Measure both sides; see the module docstring."""
    calls, seconds = (2, 0.05) if quick else (8, 0.25)
    burn = tl.cpu_bound(_make_burner())
    n = _calibrate(burn, seconds)
    ours = _run_side(True, burn, n, calls)
    peer = _run_side(False, burn, n, calls)

    def note(side: dict[str, float]) -> str:
        return (
            f"p50 {side['p50'] * 1e3:.3f} ms, max {side['max'] * 1e3:.2f} ms, "
            f"{int(side['ticks'])} ticks; work took {side['elapsed']:.2f} s"
        )

    rows = [
        kit.row(
            "taskloom HybridExecutor + @cpu_bound (asyncio.to_thread)",
            ours["p99"] * 1e3,
            "ms",
            note(ours),
        ),
        kit.row(
            "asyncio.to_thread (default ThreadPoolExecutor)", peer["p99"] * 1e3, "ms", note(peer)
        ),
    ]
    notes = (
        f"{calls} calls x ~{seconds} s of pure-Python work (n={n:,}), 1 ms ticker; "
        f"p99 lag taskloom {ours['p99'] * 1e3:.2f} ms vs to_thread {peer['p99'] * 1e3:.2f} ms."
    )
    return kit.make_result(
        rows,
        ratio=ours["p99"] * 1e3,
        floor=5.0,
        notes=notes,
        lower_is_better=True,
        ratio_unit="ms",
    )


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick=False), indent=2))
