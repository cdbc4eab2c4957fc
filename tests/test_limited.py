"""LimitedConcurrencyScheduler: a bound on running tasks, FIFO order, inlining, statistics."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import taskloom as tl
from tests import helpers

WAIT = 30.0


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT) -> bool:
    return helpers.wait_until(predicate, timeout)


@pytest.fixture
def inner() -> Iterator[tl.WorkStealingScheduler]:
    sched = tl.WorkStealingScheduler(4, thread_name_prefix="lim-inner")
    yield sched
    sched.shutdown(wait=True)


class Gauge:
    """Counts bodies running at once; records the peak."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.entered = 0

    def __enter__(self) -> None:
        with self.lock:
            self.running += 1
            self.entered += 1
            self.peak = max(self.peak, self.running)

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.running -= 1


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_never_more_than_max_concurrency_running(
    inner: tl.WorkStealingScheduler, limit: int
) -> None:
    lim = tl.LimitedConcurrencyScheduler(limit, inner)
    gauge = Gauge()
    gate = threading.Event()
    n = 10

    def body(i: int) -> int:
        with gauge:
            assert gate.wait(WAIT)
        return i

    tasks = [tl.start_new(body, i, scheduler=lim) for i in range(n)]
    # `limit` bodies are in, the rest wait in the limiter (not on the inner pool,
    # which has idle threads to spare).
    assert wait_until(lambda: gauge.entered == limit and lim.statistics().queued == n - limit)
    stats = lim.statistics()
    assert stats.running_drainers == limit
    assert gauge.running == limit
    gate.set()
    assert [t.result(WAIT) for t in tasks] == list(range(n))
    assert gauge.peak == limit
    assert wait_until(lambda: lim.statistics().running_drainers == 0)
    assert lim.statistics().tasks_executed == n


def test_many_short_tasks_respect_the_bound(inner: tl.WorkStealingScheduler) -> None:
    lim = tl.LimitedConcurrencyScheduler(2, inner)
    gauge = Gauge()

    def body() -> None:
        with gauge:
            time.sleep(0)  # let other threads in, if the limiter would allow them

    tasks = [tl.start_new(body, scheduler=lim) for _ in range(500)]
    tl.wait_all(*tasks, timeout=WAIT)
    assert gauge.peak <= 2
    assert gauge.entered == 500


def test_fifo_order(inner: tl.WorkStealingScheduler) -> None:
    lim = tl.LimitedConcurrencyScheduler(1, inner)
    gate = threading.Event()
    order: list[int] = []
    blocker = tl.start_new(gate.wait, WAIT, scheduler=lim)
    tasks = [tl.start_new(order.append, i, scheduler=lim) for i in range(10)]
    gate.set()
    tl.wait_all(blocker, *tasks, timeout=WAIT)
    assert order == list(range(10))


def test_tasks_started_inside_go_to_the_same_limiter(inner: tl.WorkStealingScheduler) -> None:
    lim = tl.LimitedConcurrencyScheduler(2, inner)

    def parent() -> tuple[tl.TaskScheduler, tl.TaskScheduler]:
        child = tl.start_new(tl.TaskScheduler.current)
        return tl.TaskScheduler.current(), child.result(WAIT)

    assert tl.start_new(parent, scheduler=lim).result(WAIT) == (lim, lim)


def test_wait_on_a_pending_task_inlines_on_the_drainer(inner: tl.WorkStealingScheduler) -> None:
    # With one slot, the parent holds it while waiting: only inlining avoids a deadlock.
    lim = tl.LimitedConcurrencyScheduler(1, inner)

    def parent() -> tuple[str, str]:
        child = tl.start_new(lambda: threading.current_thread().name)
        return threading.current_thread().name, child.result(WAIT)

    me, child_thread = tl.start_new(parent, scheduler=lim).result(WAIT)
    assert me == child_thread
    assert lim.statistics().inlined == 1


def test_no_inlining_off_the_drainer_threads(inner: tl.WorkStealingScheduler) -> None:
    lim = tl.LimitedConcurrencyScheduler(1, inner)
    gate = threading.Event()
    blocker = tl.start_new(gate.wait, WAIT, scheduler=lim)
    t = tl.start_new(lambda: threading.current_thread().name, scheduler=lim)
    assert not lim.try_execute_task_inline(t, True)
    assert not t.wait(0.01)  # this thread must not take the slot the blocker holds
    # Not on a drainer of this limiter either: a task of the inner pool.
    other = tl.start_new(lambda: lim.try_execute_task_inline(t, True), scheduler=inner)
    assert other.result(WAIT) is False
    gate.set()
    assert t.result(WAIT) != threading.current_thread().name
    blocker.wait(WAIT)
    assert lim.statistics().inlined == 0


def test_run_synchronously_from_outside_is_queued(inner: tl.WorkStealingScheduler) -> None:
    lim = tl.LimitedConcurrencyScheduler(1, inner)
    t = tl.Task(lambda: threading.current_thread().name)
    t.run_synchronously(lim)
    assert t.result() != threading.current_thread().name


def test_default_inner_is_the_default_scheduler() -> None:
    lim = tl.LimitedConcurrencyScheduler(2)
    assert lim.inner is tl.TaskScheduler.default()
    assert lim.maximum_concurrency_level == 2
    assert tl.start_new(lambda: 41 + 1, scheduler=lim).result(WAIT) == 42


def test_limiter_over_a_limiter(inner: tl.WorkStealingScheduler) -> None:
    outer = tl.LimitedConcurrencyScheduler(3, inner)
    lim = tl.LimitedConcurrencyScheduler(1, outer)
    gauge = Gauge()

    def body() -> None:
        with gauge:
            time.sleep(0)

    tl.wait_all(*[tl.start_new(body, scheduler=lim) for _ in range(50)], timeout=WAIT)
    assert gauge.peak == 1


def test_continuations_and_when_all_on_the_limiter(inner: tl.WorkStealingScheduler) -> None:
    lim = tl.LimitedConcurrencyScheduler(2, inner)
    first = tl.start_new(lambda: 2, scheduler=lim)
    second = first.continue_with(lambda a: a.result() * 10, scheduler=lim)
    third = second.then(lambda v: v + 1, scheduler=lim)
    both = tl.when_all(first, third)
    assert both.result(WAIT) == [2, 21]


def test_inner_shut_down_faults_the_task_instead_of_hanging() -> None:
    dead = tl.WorkStealingScheduler(1)
    dead.shutdown()
    lim = tl.LimitedConcurrencyScheduler(2, dead)
    t = tl.start_new(lambda: 1, scheduler=lim)
    assert t.is_faulted  # at once; it used to wait forever for a drainer
    with pytest.raises(tl.InvalidOperationError, match="shut down"):
        t.result(WAIT)
    stats = lim.statistics()
    assert (stats.queued, stats.running_drainers) == (0, 0)


def test_statistics_are_a_frozen_snapshot(inner: tl.WorkStealingScheduler) -> None:
    lim = tl.LimitedConcurrencyScheduler(3, inner)
    stats = lim.statistics()
    assert isinstance(stats, tl.LimitedConcurrencyStatistics)
    assert (stats.scheduler_id, stats.maximum_concurrency_level) == (lim.id, 3)
    assert (stats.queued, stats.running_drainers, stats.tasks_executed, stats.inlined) == (
        0,
        0,
        0,
        0,
    )
    with pytest.raises(AttributeError):
        stats.queued = 1  # type: ignore[misc]


def test_tasks_executed_counts_while_a_drainer_keeps_running(
    inner: tl.WorkStealingScheduler,
) -> None:
    lim = tl.LimitedConcurrencyScheduler(1, inner)
    gate = threading.Event()
    first = [tl.start_new(lambda: None, scheduler=lim) for _ in range(5)]
    blocker = tl.start_new(gate.wait, WAIT, scheduler=lim)
    tl.wait_all(*first, timeout=WAIT)
    # The drainer is still busy (with the blocker) but has counted the five tasks
    # (each just after it completed).
    assert wait_until(lambda: lim.statistics().tasks_executed == 5)
    assert lim.statistics().running_drainers == 1
    gate.set()
    blocker.wait(WAIT)


@pytest.mark.parametrize(
    ("args", "error", "name"),
    [
        ((0,), ValueError, "max_concurrency"),
        ((-1,), ValueError, "max_concurrency"),
        ((1.5,), TypeError, "max_concurrency"),
        ((True,), TypeError, "max_concurrency"),
        (("2",), TypeError, "max_concurrency"),
        ((2, "pool"), TypeError, "inner"),
    ],
)
def test_bad_arguments(args: tuple[Any, ...], error: type[Exception], name: str) -> None:
    with pytest.raises(error, match=name):
        tl.LimitedConcurrencyScheduler(*args)
