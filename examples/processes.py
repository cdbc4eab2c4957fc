"""ProcessScheduler: CPU work in worker processes, crashes, timeouts and big arrays.

Runs a few CPU-bound tasks in parallel, shows that a crashing worker faults only
its own task, stops a runaway task with ``cancel_after``, and round-trips a NumPy
array through shared memory (if NumPy is installed). Run it with
``python examples/processes.py``.
"""

from __future__ import annotations

import os
import time

import taskloom as tl


def count_primes(limit: int) -> int:
    """Pure-Python CPU work: it holds the GIL, so only processes run it in parallel."""
    return sum(all(n % d for d in range(2, int(n**0.5) + 1)) for n in range(2, limit))


def crash() -> None:
    os._exit(3)  # as if the worker segfaulted


def forever() -> None:
    while True:
        time.sleep(0.05)


def main() -> None:
    with tl.ProcessScheduler(max_workers=2) as procs:
        # Parallel work, composed in the parent with when_all and then.
        tasks = [tl.start_new(count_primes, 20_000 + i, scheduler=procs) for i in range(4)]
        print("primes:", tl.when_all(*tasks).then(sum).result())

        # Lambdas and closures travel by cloudpickle.
        base = 10
        print("lambda:", tl.start_new(lambda x: x + base, 5, scheduler=procs).result())

        # A crash faults only its own task; the pool replaces the worker.
        crashed = tl.start_new(crash, scheduler=procs)
        fine = tl.start_new(count_primes, 1_000, scheduler=procs)
        print("crash:", type(crashed.exception()).__name__, "-", crashed.exception())
        print("other task still fine:", fine.result())

        # Exceptions come back with the worker's traceback as __cause__.
        failed = tl.start_new(int, "not a number", scheduler=procs)
        error = failed.exception()
        assert error is not None
        print("error:", repr(error), "| remote traceback attached:", error.__cause__ is not None)

        # A per-task timeout: the running body is killed and the task ends CANCELED.
        cts = tl.CancellationTokenSource()
        cts.cancel_after(0.3)
        runaway = tl.start_new(forever, token=cts.token, scheduler=procs)
        try:
            runaway.wait(10)
        except tl.TaskCanceledError:
            pass
        print("timeout:", runaway.status.name)

        try:
            import numpy as np
        except ImportError:
            print("numpy not installed: skipping the shared-memory demo")
        else:
            data = np.arange(4_000_000, dtype=np.float64)  # 32 MB
            doubled = tl.start_new(np.multiply, data, 2, scheduler=procs).result()
            print("numpy round trip ok:", bool((doubled == data * 2).all()))

        stats: tl.ProcessSchedulerStatistics = procs.statistics()
        print(
            f"stats: completed={stats.tasks_completed} crashes={stats.crashes} "
            f"killed={stats.tasks_killed} restarts={stats.restarts} "
            f"shared_memory_bytes={stats.shared_memory_bytes:,}"
        )


if __name__ == "__main__":
    main()
