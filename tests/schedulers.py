"""The schedulers the task-model contract suite (``tests/test_contract.py``) runs against.

Each entry of :data:`SCHEDULER_FACTORIES` is a :class:`SchedulerEntry`: calling it
builds a fresh scheduler, ``close(scheduler)`` releases it, and two traits say
which contract tests apply:

* ``in_process`` - task bodies run in this process, so they may close over
  events, locks, lists and context variables. A process scheduler sets it to
  False: only tests written with picklable module-level bodies apply to it.
* ``inlines`` - ``try_execute_task_inline`` runs a task on any calling thread
  (``run_synchronously`` from the test thread, ``EXECUTE_SYNCHRONOUSLY`` on the
  thread that completes a completion source).

A test that needs a trait is marked ``@pytest.mark.scheduler_needs("in_process")``
(or ``"inlining"``); the ``scheduler`` fixture in ``tests/conftest.py`` skips it for
entries that lack the trait. A new scheduler joins the suite by adding an entry.

``ThreadPerTaskScheduler`` is the proof that a user-written scheduler works: it
implements only the two abstract methods of :class:`taskloom.TaskScheduler`.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

import taskloom as tl

__all__ = ["SCHEDULER_FACTORIES", "TRAITS", "SchedulerEntry", "ThreadPerTaskScheduler"]

#: Every trait a test may ask for with ``@pytest.mark.scheduler_needs(...)``.
TRAITS = frozenset({"in_process", "inlining"})


class ThreadPerTaskScheduler(tl.TaskScheduler):
    """A user scheduler: each task runs on a new thread. Only the two abstract methods.

    The threads are remembered (and forgotten once they end) so the test fixture
    can join them; that bookkeeping is the test's, not the scheduler contract's.
    """

    def __init__(self) -> None:
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()

    def queue_task(self, task: tl.Task[Any]) -> None:
        thread = threading.Thread(target=self._run, args=(task,), name="thread-per-task")
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def _run(self, task: tl.Task[Any]) -> None:
        try:
            self.try_execute_task(task)
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def try_execute_task_inline(self, task: tl.Task[Any], task_was_previously_queued: bool) -> bool:
        # A queued task is also claimed atomically by try_execute_task, so whichever
        # of the waiter and the task's own thread gets there first runs it.
        return self.try_execute_task(task)

    def join(self, timeout: float) -> None:
        """Wait for the threads started so far (test helper, not part of the ABC)."""
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)


@dataclasses.dataclass(frozen=True)
class SchedulerEntry:
    """How to build, describe and release one scheduler under test."""

    build: Callable[[], tl.TaskScheduler]
    close: Callable[[tl.TaskScheduler], None] = lambda s: s.shutdown(wait=True)
    in_process: bool = True
    inlines: bool = True

    def __call__(self) -> tl.TaskScheduler:
        return self.build()

    def has(self, trait: str) -> bool:
        """Whether this scheduler has ``trait`` (one of :data:`TRAITS`)."""
        if trait not in TRAITS:
            raise ValueError(f"unknown scheduler trait {trait!r}; known: {sorted(TRAITS)}")
        return self.in_process if trait == "in_process" else self.inlines


def _limited() -> tl.TaskScheduler:
    return tl.LimitedConcurrencyScheduler(2, inner=tl.WorkStealingScheduler(2))


def _close_limited(scheduler: tl.TaskScheduler) -> None:
    assert isinstance(scheduler, tl.LimitedConcurrencyScheduler)
    scheduler.shutdown(wait=True)
    scheduler.inner.shutdown(wait=True)


def _close_thread_per_task(scheduler: tl.TaskScheduler) -> None:
    assert isinstance(scheduler, ThreadPerTaskScheduler)
    scheduler.join(timeout=30)


SCHEDULER_FACTORIES: dict[str, SchedulerEntry] = {
    "workstealing": SchedulerEntry(lambda: tl.WorkStealingScheduler(2)),
    # Inlines only on its own drainer threads, never on an outside caller's thread.
    "limited": SchedulerEntry(_limited, close=_close_limited, inlines=False),
    "custom": SchedulerEntry(ThreadPerTaskScheduler, close=_close_thread_per_task),
    # Bodies run in worker processes: only tests with picklable module-level bodies apply.
    "process": SchedulerEntry(lambda: tl.ProcessScheduler(2), in_process=False, inlines=False),
}
