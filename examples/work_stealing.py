"""The default scheduler: global vs local queues, stealing, inlining, long-running work.

Ports the seed's "global queue vs local queues" example: a task started from a
non-worker thread goes to the global FIFO queue; a task started inside a running
task goes to that worker's local deque. ``statistics()`` shows where work went.
Run it with ``python examples/work_stealing.py``.
"""

from __future__ import annotations

import threading
import time

import taskloom as tl


def fib(n: int) -> int:
    """Fork-join Fibonacci: each call forks a child task for one half (no cutoff below 12)."""
    if n < 12:
        return n if n < 2 else fib(n - 1) + fib(n - 2)
    left = tl.start_new(fib, n - 1)  # from a worker: pushed onto its local deque
    right = fib(n - 2)
    return left.result() + right  # inlined here if nobody stole it yet


def show(title: str, stats: tl.WorkStealingStatistics) -> None:
    print(f"{title}:")
    print(
        f"  executed={stats.tasks_executed} global_dequeues={stats.global_dequeues} "
        f"local_pushes={stats.local_pushes} local_pops={stats.local_pops} "
        f"steals={stats.steals} inlined={stats.inlined}"
    )
    print(
        f"  threads={stats.threads} started={stats.threads_started} "
        f"injected={stats.threads_injected} long_running={stats.long_running}"
    )


def main() -> None:
    with tl.WorkStealingScheduler(max_workers=2, thread_name_prefix="demo") as pool:
        # Top-level work from the main thread: global queue.
        tasks = [tl.start_new(pow, 3, n, scheduler=pool) for n in range(20)]
        tl.wait_all(*tasks)
        show("20 tasks from the main thread (global queue)", pool.statistics())

        # Work started inside a task: the worker's local deque; idle workers steal.
        result = tl.start_new(fib, 22, scheduler=pool).result()
        print("fib(22) =", result)
        show("after fork-join fib(22) (local deques, inlined waits)", pool.statistics())

        # A fan-out whose children release the GIL (sleep, I/O): the idle worker steals.
        def fan_out() -> int:
            children = [tl.start_new(time.sleep, 0.01) for _ in range(8)]
            tl.wait_all(*children)
            return len(children)

        tl.start_new(fan_out, scheduler=pool).result()
        show("after a fan-out of 8 sleeping children (steals)", pool.statistics())

        # PREFER_FAIRNESS sends a task started on a worker to the global queue instead.
        def spawn_fair() -> int:
            fair = tl.start_new(
                lambda: 1, options=tl.TaskCreationOptions.PREFER_FAIRNESS
            )  # current() is `pool` here
            return fair.result()

        before = pool.statistics().local_pushes
        tl.start_new(spawn_fair, scheduler=pool).result()
        print("PREFER_FAIRNESS: local pushes added:", pool.statistics().local_pushes - before)

        # LONG_RUNNING: a dedicated thread outside the pool.
        name = tl.start_new(
            lambda: threading.current_thread().name,
            options=tl.TaskCreationOptions.LONG_RUNNING,
            scheduler=pool,
        ).result()
        print("LONG_RUNNING ran on:", name)

        # Thread injection: every worker blocks on work that is queued behind them.
        gate = tl.TaskCompletionSource[None]()
        blockers = [tl.start_new(gate.task.wait, 5, scheduler=pool) for _ in range(2)]
        opener = tl.start_new(gate.set_result, None, scheduler=pool)  # needs a third thread
        tl.wait_all(opener, *blockers, timeout=10)
        show("after every worker blocked (a thread was injected)", pool.statistics())

    default = tl.TaskScheduler.default()
    print("default scheduler:", type(default).__name__, "with", default.maximum_concurrency_level)


if __name__ == "__main__":
    main()
