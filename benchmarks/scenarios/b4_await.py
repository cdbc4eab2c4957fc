"""B4: 20k concurrent awaits of no-op thread work, on asyncio, uvloop and trio.

Each loop runs, in one process and interleaved round by round (see ``_benchkit``):

* asyncio and uvloop: ``await tl.to_thread(noop)`` vs ``asyncio.to_thread(noop)``,
  ``loop.run_in_executor(None, noop)`` and ``anyio.to_thread.run_sync(noop)``;
* trio: ``await tl.to_thread(noop)`` vs ``anyio.to_thread.run_sync(noop)`` and
  ``trio.to_thread.run_sync(noop)``.

20k coroutines start at once (``asyncio.gather`` / a trio nursery) and each awaits
one call. Every side has :data:`_benchkit.WORKERS` threads: taskloom's default
scheduler is a ``WorkStealingScheduler(max_workers=WORKERS)``, the loop's default
executor a ``ThreadPoolExecutor(WORKERS)`` (asyncio's own default is
``min(32, cpu_count + 4)``), anyio's and trio's thread limiters are set to
``WORKERS`` tokens (their defaults are 40). Also measured: the sequential
round-trip latency (one await at a time) and, from ``LoopScheduler.statistics()``,
taskloom's loop wakeups per completed task.

Ratio = the smallest, over the three loops, of the peer's seconds / taskloom's,
where the peer is ``asyncio.to_thread`` on asyncio and uvloop and
``anyio.to_thread.run_sync`` on trio (floor 3x).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Awaitable, Callable
from typing import Any

import _benchkit as kit
import anyio
import anyio.to_thread
import trio

import taskloom as tl
from taskloom import _scheduler

ID = "B4"
TITLE = "20k concurrent awaits of no-op thread work (asyncio, uvloop, trio)"
FLOOR = ">= 3x asyncio.to_thread (asyncio, uvloop); >= 3x anyio.to_thread.run_sync (trio)"
FLOOR_RATIO = 3.0

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dev dependency
    uvloop = None


def noop() -> None:
    return None


# Wakeups / items of taskloom's loop scheduler over the measured concurrent runs.
_wakeup_counts: dict[str, list[int]] = {}

Offload = Callable[[Callable[[], None]], Awaitable[Any]]


def _asyncio_offloads() -> dict[str, Offload]:
    def run_in_executor(fn: Callable[[], None]) -> Awaitable[Any]:
        return asyncio.get_running_loop().run_in_executor(None, fn)

    return {
        "taskloom to_thread": tl.to_thread,
        "asyncio.to_thread": asyncio.to_thread,
        "run_in_executor(None)": run_in_executor,
        "anyio.to_thread.run_sync": anyio.to_thread.run_sync,
    }


def _trio_offloads() -> dict[str, Offload]:
    return {
        "taskloom to_thread": tl.to_thread,
        "anyio.to_thread.run_sync": anyio.to_thread.run_sync,
        "trio.to_thread.run_sync": trio.to_thread.run_sync,
    }


async def _asyncio_concurrent(loop_name: str, impl: str, offload: Offload, n: int) -> float:
    anyio.to_thread.current_default_thread_limiter().total_tokens = kit.WORKERS
    sched = tl.LoopScheduler.current()
    before = sched.statistics()
    t0 = time.perf_counter()
    await asyncio.gather(*[offload(noop) for _ in range(n)])
    elapsed = time.perf_counter() - t0
    if impl.startswith("taskloom"):
        after = sched.statistics()
        counts = _wakeup_counts.setdefault(loop_name, [0, 0])
        counts[0] += after.wakeups - before.wakeups
        counts[1] += n
    return elapsed


async def _trio_concurrent(impl: str, offload: Offload, n: int) -> float:
    anyio.to_thread.current_default_thread_limiter().total_tokens = kit.WORKERS
    trio.to_thread.current_default_thread_limiter().total_tokens = kit.WORKERS
    sched = tl.LoopScheduler.current()
    before = sched.statistics()
    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(offload, noop)
    elapsed = time.perf_counter() - t0
    if impl.startswith("taskloom"):
        after = sched.statistics()
        counts = _wakeup_counts.setdefault("trio", [0, 0])
        counts[0] += after.wakeups - before.wakeups
        counts[1] += n
    return elapsed


async def _sequential(offload: Offload, n: int, on_trio: bool = False) -> float:
    anyio.to_thread.current_default_thread_limiter().total_tokens = kit.WORKERS
    if on_trio:
        trio.to_thread.current_default_thread_limiter().total_tokens = kit.WORKERS
    t0 = time.perf_counter()
    for _ in range(n):
        await offload(noop)
    return (time.perf_counter() - t0) / n


def _measure_asyncio_loop(
    loop_name: str,
    factory: Callable[[], asyncio.AbstractEventLoop] | None,
    n: int,
    latency_n: int,
    warmup: int,
    repeats: int,
) -> tuple[dict[str, kit.Timings], dict[str, kit.Timings]]:
    with (
        asyncio.Runner(loop_factory=factory) as runner,
        concurrent.futures.ThreadPoolExecutor(kit.WORKERS) as pool,
    ):
        runner.get_loop().set_default_executor(pool)
        offloads = _asyncio_offloads()
        concurrent_bodies = {
            impl: (
                lambda impl=impl, off=off: runner.run(_asyncio_concurrent(loop_name, impl, off, n))
            )
            for impl, off in offloads.items()
        }
        latency_bodies = {
            impl: (lambda off=off: runner.run(_sequential(off, latency_n)))
            for impl, off in offloads.items()
        }
        _wakeup_counts.pop(loop_name, None)
        conc = kit.interleaved(concurrent_bodies, warmup=warmup, repeats=repeats)
        lat = kit.interleaved(latency_bodies, warmup=warmup, repeats=repeats)
    return conc, lat


def _measure_trio(
    n: int, latency_n: int, warmup: int, repeats: int
) -> tuple[dict[str, kit.Timings], dict[str, kit.Timings]]:
    offloads = _trio_offloads()
    concurrent_bodies = {
        impl: (lambda impl=impl, off=off: trio.run(_trio_concurrent, impl, off, n))
        for impl, off in offloads.items()
    }
    latency_bodies = {
        impl: (lambda off=off: trio.run(_sequential, off, latency_n, True))
        for impl, off in offloads.items()
    }
    _wakeup_counts.pop("trio", None)
    conc = kit.interleaved(concurrent_bodies, warmup=warmup, repeats=repeats)
    lat = kit.interleaved(latency_bodies, warmup=warmup, repeats=repeats)
    return conc, lat


def run(quick: bool) -> dict[str, Any]:
    """Measure every loop; see the module docstring."""
    n = 2_000 if quick else 20_000
    latency_n = 200 if quick else 2_000
    warmup, repeats = (0, 1) if quick else (1, 5)
    previous = _scheduler.reset_default(tl.WorkStealingScheduler(max_workers=kit.WORKERS))
    loops: dict[str, tuple[dict[str, kit.Timings], dict[str, kit.Timings]]] = {}
    try:
        loops["asyncio"] = _measure_asyncio_loop("asyncio", None, n, latency_n, warmup, repeats)
        if uvloop is not None:
            loops["uvloop"] = _measure_asyncio_loop(
                "uvloop", uvloop.new_event_loop, n, latency_n, warmup, repeats
            )
        loops["trio"] = _measure_trio(n, latency_n, warmup, repeats)
    finally:
        ours = _scheduler.reset_default(previous)
        if ours is not None:
            ours.shutdown(wait=True)

    rows = []
    ratios: dict[str, float] = {}
    notes = []
    for loop_name, (conc, lat) in loops.items():
        for impl, t in conc.items():
            rows.append(
                kit.row(
                    f"{impl} [{loop_name}]",
                    t.median,
                    "s",
                    kit.describe(t) + f"; {n / t.median:,.0f} awaits/s",
                )
            )
        for impl, t in lat.items():
            rows.append(
                kit.row(
                    f"{impl} [{loop_name}] sequential round trip",
                    t.median * 1e6,
                    "us",
                    kit.describe(t, 1e6, "us"),
                )
            )
        peer = "anyio.to_thread.run_sync" if loop_name == "trio" else "asyncio.to_thread"
        ratio = conc[peer].median / conc["taskloom to_thread"].median
        ratios[loop_name] = ratio
        latency_ratio = lat[peer].median / lat["taskloom to_thread"].median
        wakeups, items = _wakeup_counts.get(loop_name, [0, 0])
        per_task = wakeups / items if items else float("nan")
        rows.append(kit.row(f"taskloom [{loop_name}] loop wakeups per task", per_task, "wakeups"))
        notes.append(
            f"{loop_name}: {ratio:.2f}x {peer} concurrent, {latency_ratio:.2f}x sequential, "
            f"{per_task:.4f} loop wakeups per task"
        )
    worst = min(ratios.values())
    return kit.make_result(
        rows,
        ratio=worst,
        floor=FLOOR_RATIO,
        notes=(
            f"{n:,} concurrent awaits, {kit.WORKERS} worker threads on every side. "
            + "; ".join(notes)
            + ". Ratio = the lowest of the three loops."
        ),
    )


if __name__ == "__main__":  # pragma: no cover - manual runs
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
