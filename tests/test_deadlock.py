"""Deadlock freedom of the work-stealing pool: nested waits, blocked pools, thread injection.

The pool has two ways to add a thread: at once when a worker blocks in a
taskloom wait while work is queued and no worker can take it, and from the
housekeeping tick when queued work has made no progress (workers stuck in
calls the pool cannot see). Tests that target the first path disable the
second by making the tick very slow.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import taskloom as tl
from taskloom import _workstealing
from tests import helpers

WAIT = 60.0


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT) -> bool:
    return helpers.wait_until(predicate, timeout)


@pytest.fixture
def no_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the starvation tick too slow to matter: injection must come from blocking waits."""
    monkeypatch.setattr(_workstealing, "_STARVATION_TICK_SECONDS", 3600.0)


@pytest.fixture
def fast_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_workstealing, "_STARVATION_TICK_SECONDS", 0.02)


@pytest.fixture
def pool2() -> Iterator[tl.WorkStealingScheduler]:
    sched = tl.WorkStealingScheduler(2, thread_name_prefix="dl2")
    yield sched
    sched.shutdown(wait=True)


def _nest(depth: int) -> int:
    if depth == 0:
        return 0
    return tl.start_new(_nest, depth - 1).result() + 1


@pytest.mark.timeout(120)
def test_nested_waits_1000_deep_on_two_workers(pool2: tl.WorkStealingScheduler) -> None:
    assert tl.start_new(_nest, 1000, scheduler=pool2).result(110) == 1000


@pytest.mark.timeout(120)
def test_nested_waits_with_wait_all_fan_out(pool2: tl.WorkStealingScheduler) -> None:
    def tree(depth: int) -> int:
        if depth == 0:
            return 1
        kids = [tl.start_new(tree, depth - 1) for _ in range(3)]
        tl.wait_all(*kids)
        return sum(k.result() for k in kids)

    assert tl.start_new(tree, 6, scheduler=pool2).result(110) == 3**6


def test_wait_all_on_a_fully_blocked_pool_injects_threads(
    no_tick: None, pool2: tl.WorkStealingScheduler
) -> None:
    # Cold inner tasks are started only after both workers block on them, from
    # outside, so they land on the global queue that no worker can serve.
    inner = [tl.Task(lambda i=i: i * i) for i in range(6)]
    both_blocked = threading.Barrier(3, timeout=WAIT)

    def outer(part: list[tl.Task[int]]) -> int:
        both_blocked.wait()
        tl.wait_all(*part, timeout=WAIT)
        return sum(t.result() for t in part)

    o1 = tl.start_new(outer, inner[:3], scheduler=pool2)
    o2 = tl.start_new(outer, inner[3:], scheduler=pool2)
    both_blocked.wait()
    assert wait_until(lambda: pool2.statistics().blocked_threads == 2)
    for t in inner:
        t.start(pool2)
    assert o1.result(WAIT) + o2.result(WAIT) == sum(i * i for i in range(6))
    stats = pool2.statistics()
    assert stats.threads_injected >= 1
    assert stats.threads_started == 2 + stats.threads_injected


def test_blocked_workers_with_queued_work_inject_threads(
    no_tick: None, pool2: tl.WorkStealingScheduler
) -> None:
    # Every outer task waits on work queued behind it on the global queue.
    n = 6
    outers: list[tl.Task[int]] = []
    go = threading.Event()

    def outer(i: int) -> int:
        assert go.wait(WAIT)
        fair = tl.TaskCreationOptions.PREFER_FAIRNESS
        inner = [tl.start_new(lambda j=j: j, options=fair) for j in range(3)]
        tl.wait_all(*inner, timeout=WAIT)
        return i + sum(t.result() for t in inner)

    outers = [tl.start_new(outer, i, scheduler=pool2) for i in range(n)]
    go.set()
    assert [t.result(WAIT) for t in outers] == [i + 3 for i in range(n)]
    assert pool2.statistics().threads_injected >= 1


def test_tasks_stuck_in_foreign_blocking_calls_get_a_thread_from_the_tick(
    fast_tick: None,
) -> None:
    # Both workers block on an Event the pool cannot see; only a task queued
    # behind them sets it. Only the housekeeping tick can add the needed thread.
    sched = tl.WorkStealingScheduler(2, thread_name_prefix="dl-stuck")
    ev = threading.Event()
    try:
        stuck = [tl.start_new(ev.wait, WAIT, scheduler=sched) for _ in range(2)]
        setter = tl.start_new(ev.set, scheduler=sched)
        setter.wait(WAIT)
        assert all(t.result(WAIT) is True for t in stuck)
        assert sched.statistics().threads_injected >= 1
    finally:
        ev.set()
        sched.shutdown(wait=True)


def test_injected_threads_retire_when_idle(no_tick: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_workstealing, "_EXTRA_RETIRE_SECONDS", 0.02)
    sched = tl.WorkStealingScheduler(1, thread_name_prefix="dl-retire")
    try:
        release = tl.TaskCompletionSource[None]()
        entered = threading.Semaphore(0)

        def blocked() -> None:
            entered.release()
            release.task.wait(WAIT)

        tasks = [tl.start_new(blocked, scheduler=sched) for _ in range(4)]
        for _ in range(4):  # all four run at once: three threads were injected
            assert entered.acquire(timeout=WAIT)
        assert sched.statistics().threads == 4
        release.set_result(None)
        tl.wait_all(*tasks, timeout=WAIT)
        assert wait_until(lambda: sched.statistics().threads == 1)
        stats = sched.statistics()
        assert stats.threads_injected == 3
        assert stats.threads_retired == 3
        # A retired thread leaves the pool just before it ends.
        assert wait_until(
            lambda: len([t for t in threading.enumerate() if t.name.startswith("dl-retire")]) == 1
        )
        # The pool still works (and grows again on demand).
        assert tl.start_new(lambda: 7, scheduler=sched).result(WAIT) == 7
    finally:
        sched.shutdown(wait=True)


def test_max_threads_bounds_injection(no_tick: None) -> None:
    sched = tl.WorkStealingScheduler(1, thread_name_prefix="dl-bound", max_threads=3)
    lock = threading.Lock()
    running = 0
    peak = 0
    three_in = threading.Event()
    release = tl.TaskCompletionSource[None]()

    def blocked() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            if running == 3:
                three_in.set()
        try:
            release.task.wait(WAIT)
        finally:
            with lock:
                running -= 1

    try:
        tasks = [tl.start_new(blocked, scheduler=sched) for _ in range(10)]
        assert three_in.wait(WAIT)
        assert wait_until(lambda: sched.statistics().blocked_threads == 3)
        stats = sched.statistics()
        assert stats.threads == 3
        assert stats.global_queue_length == 7  # the rest waits: no fourth thread
        release.set_result(None)
        tl.wait_all(*tasks, timeout=WAIT)
        assert peak == 3
        assert sched.statistics().threads_injected == 2
    finally:
        release.try_set_result(None)
        sched.shutdown(wait=True)


def test_min_workers_pool_grows_back_after_idle_retirement(monkeypatch: Any) -> None:
    monkeypatch.setattr(_workstealing, "_IDLE_RETIRE_SECONDS", 0.02)
    monkeypatch.setattr(_workstealing, "_STARVATION_TICK_SECONDS", 3600.0)
    sched = tl.WorkStealingScheduler(2, min_workers=0, thread_name_prefix="dl-min0")
    try:
        gate = threading.Barrier(2, timeout=WAIT)
        a = tl.start_new(gate.wait, scheduler=sched)
        b = tl.start_new(gate.wait, scheduler=sched)
        tl.wait_all(a, b, timeout=WAIT)
        assert wait_until(lambda: sched.statistics().threads == 0)
        # Both must run at once again: the pool restarts max_workers threads on demand.
        gate.reset()
        a = tl.start_new(gate.wait, scheduler=sched)
        b = tl.start_new(gate.wait, scheduler=sched)
        tl.wait_all(a, b, timeout=WAIT)
        assert sched.statistics().threads_injected == 0
    finally:
        sched.shutdown(wait=True)


def test_a_draining_pool_still_injects_for_blocked_waits(no_tick: None) -> None:
    # Shutdown lets queued work finish; work that blocks on work queued behind it
    # still needs the injected thread it would get before shutdown.
    sched = tl.WorkStealingScheduler(1, thread_name_prefix="dl-drain")
    go = threading.Event()

    def parent() -> int:
        assert go.wait(WAIT)
        fair = tl.start_new(lambda: 5, options=tl.TaskCreationOptions.PREFER_FAIRNESS)
        return fair.result(10)  # a TimeoutError here means no thread was added

    p = tl.start_new(parent, scheduler=sched)
    sched.shutdown(wait=False)
    go.set()
    sched.shutdown(wait=True)
    assert p.result(0) == 5
    assert sched.statistics().threads_injected == 1
    assert [t for t in threading.enumerate() if t.name.startswith("dl-drain")] == []


def test_a_draining_pool_keeps_its_housekeeping_tick(fast_tick: None) -> None:
    sched = tl.WorkStealingScheduler(2, thread_name_prefix="dl-drain-tick")
    ev = threading.Event()
    stuck = [tl.start_new(ev.wait, 10, scheduler=sched) for _ in range(2)]
    setter = tl.start_new(ev.set, scheduler=sched)
    sched.shutdown(wait=False)
    sched.shutdown(wait=True)
    assert setter.is_completed_successfully
    assert [t.result(0) for t in stuck] == [True, True]  # set by the setter, not timed out
    assert [t for t in threading.enumerate() if t.name.startswith("dl-drain-tick")] == []
