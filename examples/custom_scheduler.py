"""A scheduler written by a user: subclass ``TaskScheduler``, implement its two methods.

``ThreadLimitedScheduler`` runs tasks on at most ``limit`` threads of its own, in
FIFO order - the seed's "limited concurrency" custom scheduler. The shipped
``LimitedConcurrencyScheduler`` does the same on top of another scheduler's
threads. Run it with ``python examples/custom_scheduler.py``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

import taskloom as tl


class ThreadLimitedScheduler(tl.TaskScheduler):
    """Runs its tasks on at most ``limit`` threads of its own, first queued first run."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._queue: deque[tl.Task[Any]] = deque()  # guarded by _lock
        self._threads = 0  # threads draining _queue; guarded by _lock; <= limit
        self._mine = threading.local()  # .active is True on this scheduler's threads

    def queue_task(self, task: tl.Task[Any]) -> None:
        with self._lock:
            self._queue.append(task)
            if self._threads >= self._limit:
                return  # a running thread will pick it up
            self._threads += 1
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        self._mine.active = True
        while True:
            with self._lock:
                if not self._queue:
                    self._threads -= 1
                    return
                task = self._queue.popleft()
            self.try_execute_task(task)

    def try_execute_task_inline(self, task: tl.Task[Any], task_was_previously_queued: bool) -> bool:
        # Only a thread of ours may run a task inline: it already holds one of the slots.
        if not getattr(self._mine, "active", False):
            return False
        if task_was_previously_queued:
            with self._lock:
                try:
                    self._queue.remove(task)
                except ValueError:
                    return False  # another thread took it
        return self.try_execute_task(task)


running = 0
peak = 0
counter_lock = threading.Lock()


def job(i: int) -> int:
    global running, peak
    with counter_lock:
        running += 1
        peak = max(peak, running)
    time.sleep(0.01)
    with counter_lock:
        running -= 1
    return i * i


def use_the_custom_scheduler() -> None:
    scheduler = ThreadLimitedScheduler(limit=2)
    tasks = [tl.start_new(job, i, scheduler=scheduler) for i in range(12)]
    print("custom scheduler results:", tl.when_all(*tasks).result())
    print("peak concurrency:", peak, "(limit 2)")

    # Inside a task, TaskScheduler.current() is the task's scheduler, so a
    # continuation started there runs on it too.
    def where() -> bool:
        return tl.TaskScheduler.current() is scheduler

    print("current() inside the task is ours:", tl.start_new(where, scheduler=scheduler).result())

    # A nested wait on one of our threads runs the queued task inline: no deadlock.
    def nested(depth: int) -> int:
        if depth == 0:
            return 0
        child = tl.start_new(nested, depth - 1)  # current() -> our scheduler
        return child.result() + 1

    print(
        "nested waits 20 deep on 2 threads:", tl.start_new(nested, 20, scheduler=scheduler).result()
    )
    stats: tl.SchedulerStatistics = scheduler.statistics()
    print("base statistics:", stats)


def use_the_shipped_one() -> None:
    global peak
    peak = 0
    limited = tl.LimitedConcurrencyScheduler(3)
    tasks = [tl.start_new(job, i, scheduler=limited) for i in range(12)]
    tl.wait_all(*tasks)
    stats: tl.LimitedConcurrencyStatistics = limited.statistics()
    workers = limited.inner.maximum_concurrency_level
    print(
        f"LimitedConcurrencyScheduler(3) on a {workers}-worker pool:",
        f"peak {peak}, executed {stats.tasks_executed}",
    )


def main() -> None:
    use_the_custom_scheduler()
    use_the_shipped_one()


if __name__ == "__main__":
    main()
