"""WorkStealingScheduler queues: global FIFO, local LIFO, stealing, fairness, inlining.

Order is only observable while the workers are held, so these tests park the
pool's threads on a gate (a ``threading.Event`` the pool cannot see) and use
``max_threads`` equal to ``max_workers`` where a housekeeping injection would
blur the order.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import taskloom as tl
from taskloom import _workstealing

WAIT = 30.0  # generous bound for any single wait in these tests (never reached when green)


@pytest.fixture
def pool1() -> Iterator[tl.WorkStealingScheduler]:
    """One worker, never more threads: the order of execution is the order of dequeues."""
    sched = tl.WorkStealingScheduler(1, thread_name_prefix="ws1", max_threads=1)
    yield sched
    sched.shutdown(wait=True)


@pytest.fixture
def pool2() -> Iterator[tl.WorkStealingScheduler]:
    sched = tl.WorkStealingScheduler(2, thread_name_prefix="ws2", max_threads=2)
    yield sched
    sched.shutdown(wait=True)


def _final_stats(sched: tl.WorkStealingScheduler) -> tl.WorkStealingStatistics:
    """Counters once every worker has finished its bookkeeping (after a drain)."""
    sched.shutdown(wait=True)
    return sched.statistics()


def test_seed_example_top_level_goes_global_nested_and_child_go_local(
    pool1: tl.WorkStealingScheduler,
) -> None:
    # Seed 004: taskA (top level) is queued on the global queue; taskB (nested)
    # and taskC (attached child) are started inside it and go to its local queue.
    lines: list[str] = []
    inner: list[tl.Task[Any]] = []

    def task_a() -> None:
        lines.append("I was enqueued on the thread pool's global queue.")
        task_b = tl.Task(lambda: lines.append("I was enqueued on the local queue."))
        task_c = tl.Task(
            lambda: lines.append("I was enqueued on the local queue, too."),
            options=tl.TaskCreationOptions.ATTACHED_TO_PARENT,
        )
        task_b.start()
        task_c.start()
        inner.extend((task_b, task_c))

    task_a_ = tl.start_new(task_a, scheduler=pool1)
    task_a_.wait(WAIT)  # task_c is attached: task_a completes after it
    inner[0].wait(WAIT)
    stats = _final_stats(pool1)
    assert stats.global_dequeues == 1
    assert stats.local_pushes == 2
    assert stats.local_pops == 2
    assert stats.tasks_executed == 3
    assert lines[0] == "I was enqueued on the thread pool's global queue."
    # One worker pops its local queue LIFO: taskC was pushed last, so it runs first.
    assert lines[1:] == [
        "I was enqueued on the local queue, too.",
        "I was enqueued on the local queue.",
    ]


def test_global_queue_is_fifo(pool1: tl.WorkStealingScheduler) -> None:
    gate = threading.Event()
    order: list[int] = []
    blocker = tl.start_new(gate.wait, WAIT, scheduler=pool1)
    tasks = [tl.start_new(order.append, i, scheduler=pool1) for i in range(8)]
    stats = pool1.statistics()
    assert stats.global_queue_length >= 8  # all queued behind the blocker
    gate.set()
    tl.wait_all(blocker, *tasks, timeout=WAIT)
    assert order == list(range(8))
    stats = _final_stats(pool1)
    assert stats.global_dequeues == 9
    assert stats.local_pushes == 0


def test_local_queue_is_lifo(pool1: tl.WorkStealingScheduler) -> None:
    order: list[int] = []
    children: list[tl.Task[Any]] = []

    def parent() -> None:
        children.extend(tl.start_new(order.append, i) for i in range(6))
        # Nothing ran yet: the only worker is busy here.
        assert order == []

    tl.start_new(parent, scheduler=pool1).wait(WAIT)
    tl.wait_all(*children, timeout=WAIT)
    assert order == [5, 4, 3, 2, 1, 0]
    stats = _final_stats(pool1)
    assert (stats.global_dequeues, stats.local_pushes, stats.local_pops) == (1, 6, 6)


def test_own_deque_before_global_queue_and_prefer_fairness(
    pool1: tl.WorkStealingScheduler,
) -> None:
    # A worker takes from its own deque (LIFO) before the global queue (FIFO);
    # PREFER_FAIRNESS sends a task started on a worker to the global queue.
    order: list[str] = []
    children: list[tl.Task[Any]] = []
    fair = tl.TaskCreationOptions.PREFER_FAIRNESS

    def parent() -> None:
        children.append(tl.start_new(order.append, "fair1", options=fair))
        children.append(tl.start_new(order.append, "local1"))
        children.append(tl.start_new(order.append, "fair2", options=fair))
        children.append(tl.start_new(order.append, "local2"))

    tl.start_new(parent, scheduler=pool1).wait(WAIT)
    tl.wait_all(*children, timeout=WAIT)
    assert order == ["local2", "local1", "fair1", "fair2"]
    stats = _final_stats(pool1)
    assert stats.local_pushes == 2
    assert stats.local_pops == 2
    assert stats.global_dequeues == 3  # parent + the two fair children


def test_idle_worker_steals_fifo_from_a_blocked_worker(pool2: tl.WorkStealingScheduler) -> None:
    release = threading.Event()
    order: list[int] = []
    children: list[tl.Task[Any]] = []
    pushed = threading.Event()
    threads: set[str] = set()

    def child(i: int) -> None:
        threads.add(threading.current_thread().name)
        order.append(i)

    def parent() -> str:
        children.extend(tl.start_new(child, i) for i in range(20))
        pushed.set()
        # Blocked in a call the pool cannot see: only the other worker can run the children.
        assert release.wait(WAIT)
        return threading.current_thread().name

    p = tl.start_new(parent, scheduler=pool2)
    assert pushed.wait(WAIT)
    tl.wait_all(*children, timeout=WAIT)
    release.set()
    parent_thread = p.result(WAIT)
    assert parent_thread not in threads
    assert len(threads) == 1
    assert order == list(range(20))  # stolen from the far end: FIFO
    stats = _final_stats(pool2)
    assert stats.steals == 20
    assert stats.local_pushes == 20
    assert stats.local_pops == 0


def test_long_running_gets_a_dedicated_thread(pool1: tl.WorkStealingScheduler) -> None:
    long_running = tl.TaskCreationOptions.LONG_RUNNING

    def where() -> tuple[str, bool]:
        return threading.current_thread().name, tl.TaskScheduler.current() is pool1

    pool_thread = tl.start_new(lambda: threading.current_thread().name, scheduler=pool1).result(
        WAIT
    )
    name, sees_pool = tl.start_new(where, options=long_running, scheduler=pool1).result(WAIT)
    assert name != pool_thread
    assert "long-running" in name
    assert sees_pool

    # Also from inside a worker: the worker's deque is bypassed.
    def parent() -> tuple[str, str]:
        mine = threading.current_thread().name
        return mine, tl.start_new(where, options=long_running).result(WAIT)[0]

    mine, theirs = tl.start_new(parent, scheduler=pool1).result(WAIT)
    assert mine == pool_thread
    assert theirs != mine
    assert "long-running" in theirs
    stats = _final_stats(pool1)
    assert stats.long_running == 2
    assert stats.local_pushes == 0
    assert stats.threads_started == 1


def test_long_running_does_not_start_the_pool() -> None:
    sched = tl.WorkStealingScheduler(2, thread_name_prefix="ws-lr-only")
    try:
        t = tl.start_new(
            lambda: threading.current_thread().name,
            options=tl.TaskCreationOptions.LONG_RUNNING,
            scheduler=sched,
        )
        assert t.result(WAIT) == "ws-lr-only-long-running"
        assert sched.statistics().threads_started == 0
    finally:
        sched.shutdown(wait=True)


# -- inlining ----------------------------------------------------------------------------


def test_wait_on_task_in_own_deque_runs_it_inline(pool1: tl.WorkStealingScheduler) -> None:
    def parent() -> tuple[str, str, Any]:
        child = tl.start_new(lambda: threading.current_thread().name)
        assert child.status == tl.TaskStatus.WAITING_TO_RUN
        name = child.result(WAIT)  # the only worker is us: without inlining, a deadlock
        return threading.current_thread().name, name, tl.current_task()

    me, child_thread, current = tl.start_new(parent, scheduler=pool1).result(WAIT)
    assert child_thread == me
    assert current is not None  # the parent is current again after the inline run
    stats = _final_stats(pool1)
    assert stats.inlined == 1
    assert stats.local_pushes == 1
    assert stats.local_pops == 0


def test_wait_inlines_a_task_below_the_top_of_own_deque(pool1: tl.WorkStealingScheduler) -> None:
    def parent() -> list[str]:
        first = tl.start_new(lambda: "first")
        later = [tl.start_new(lambda: "later") for _ in range(3)]
        got = [first.result(WAIT)]  # at the bottom of the deque, still ours
        got += [t.result(WAIT) for t in later]
        return got

    assert tl.start_new(parent, scheduler=pool1).result(WAIT) == ["first"] + ["later"] * 3
    assert _final_stats(pool1).inlined == 4


def test_task_in_global_queue_is_not_inlined_from_a_worker() -> None:
    sched = tl.WorkStealingScheduler(1, thread_name_prefix="ws-gq", max_threads=2)
    try:

        def parent() -> tuple[str, str]:
            fair = tl.start_new(
                lambda: threading.current_thread().name,
                options=tl.TaskCreationOptions.PREFER_FAIRNESS,
            )
            # Not in our deque: no inline; the pool injects a thread since we block.
            return threading.current_thread().name, fair.result(WAIT)

        mine, other = tl.start_new(parent, scheduler=sched).result(WAIT)
        assert mine != other
        stats = _final_stats(sched)
        assert stats.inlined == 0
        assert stats.threads_injected == 1
    finally:
        sched.shutdown(wait=True)


def test_task_in_another_workers_deque_is_not_inlined(monkeypatch: pytest.MonkeyPatch) -> None:
    # The owner is stuck in a call the pool cannot see, so the thread that runs
    # the task comes from the housekeeping tick (made fast here).
    monkeypatch.setattr(_workstealing, "_STARVATION_TICK_SECONDS", 0.02)
    sched = tl.WorkStealingScheduler(2, thread_name_prefix="ws-other", max_threads=3)
    both_running = threading.Barrier(2, timeout=WAIT)
    x_ready = threading.Event()
    release = threading.Event()
    holder: list[tl.Task[str]] = []
    try:

        def owner() -> str:
            both_running.wait()
            holder.append(tl.start_new(lambda: threading.current_thread().name))
            x_ready.set()
            assert release.wait(WAIT)
            return threading.current_thread().name

        def waiter() -> tuple[str, str]:
            both_running.wait()
            assert x_ready.wait(WAIT)
            return threading.current_thread().name, holder[0].result(WAIT)

        t_owner = tl.start_new(owner, scheduler=sched)
        t_waiter = tl.start_new(waiter, scheduler=sched)
        waiter_thread, x_thread = t_waiter.result(WAIT)
        release.set()
        owner_thread = t_owner.result(WAIT)
        assert x_thread not in (waiter_thread, owner_thread)
        stats = _final_stats(sched)
        assert stats.inlined == 0
        assert stats.steals == 1
        assert stats.threads_injected == 1
    finally:
        release.set()
        sched.shutdown(wait=True)


def test_wait_from_a_non_pool_thread_does_not_run_a_queued_task(
    pool1: tl.WorkStealingScheduler,
) -> None:
    gate = threading.Event()
    blocker = tl.start_new(gate.wait, WAIT, scheduler=pool1)
    t = tl.start_new(lambda: threading.current_thread().name, scheduler=pool1)
    assert not t.wait(0.01)  # queued behind the blocker and not taken by this thread
    gate.set()
    assert t.result(WAIT) != threading.current_thread().name
    blocker.wait(WAIT)
    assert _final_stats(pool1).inlined == 0


def test_cold_task_run_synchronously_runs_on_the_calling_thread(
    pool1: tl.WorkStealingScheduler,
) -> None:
    t = tl.Task(lambda: threading.current_thread().name)
    t.run_synchronously(pool1)
    assert t.result() == threading.current_thread().name
    assert pool1.statistics().threads_started == 0


# -- statistics and arguments -------------------------------------------------------------


def test_statistics_snapshot_is_frozen_and_describes_the_pool(
    pool2: tl.WorkStealingScheduler,
) -> None:
    stats = pool2.statistics()
    assert isinstance(stats, tl.WorkStealingStatistics)
    assert isinstance(stats, tl.SchedulerStatistics)
    assert stats.scheduler_id == pool2.id
    assert stats.maximum_concurrency_level == pool2.maximum_concurrency_level == 2
    assert stats.threads == 0
    with pytest.raises(AttributeError):
        stats.threads = 5  # type: ignore[misc]
    tl.start_new(lambda: None, scheduler=pool2).wait(WAIT)
    stats = pool2.statistics()
    assert stats.threads == 2
    assert len(stats.local_queue_lengths) == 2


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"max_workers": 0}, ValueError, "max_workers"),
        ({"max_workers": 1.5}, TypeError, "max_workers"),
        ({"max_workers": True}, TypeError, "max_workers"),
        ({"max_workers": 2, "min_workers": -1}, ValueError, "min_workers"),
        ({"max_workers": 2, "min_workers": 3}, ValueError, "min_workers"),
        ({"max_workers": 4, "max_threads": 2}, ValueError, "max_threads"),
        ({"max_workers": 2, "max_threads": "8"}, TypeError, "max_threads"),
        ({"thread_name_prefix": 3}, TypeError, "thread_name_prefix"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], error: type[Exception], name: str) -> None:
    with pytest.raises(error, match=name):
        tl.WorkStealingScheduler(**kwargs)


@pytest.mark.timeout(120)
def test_inline_attempts_racing_thieves() -> None:
    # A waiter looks into its own deque while an idle worker steals from it; with a
    # tiny switch interval the two interleave at every bytecode. Every wait must
    # either inline the child or block until the thief ran it - never raise.
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    sched = tl.WorkStealingScheduler(2, thread_name_prefix="ws-race", max_threads=2)
    try:

        def parent(rounds: int) -> int:
            total = 0
            for i in range(rounds):
                kids = [tl.start_new(int, i) for _ in range(2)]
                total += kids[0].result(WAIT) + kids[1].result(WAIT)
            return total

        parents = [tl.start_new(parent, 1500, scheduler=sched) for _ in range(2)]
        assert [p.result(100) for p in parents] == [2 * sum(range(1500))] * 2
        stats = _final_stats(sched)
        assert stats.inlined + stats.steals + stats.local_pops == stats.local_pushes
    finally:
        sys.setswitchinterval(previous)
        sched.shutdown(wait=True)
