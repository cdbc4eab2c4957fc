"""PPL task groups: TaskGroup, StructuredTaskGroup, parallel_invoke (DESIGN 1.10)."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest

import taskloom as tl

# -- the seed's example: parallel_invoke of two functions adding work to one TaskGroup ---------


def test_parallel_invoke_adds_work_to_a_shared_group() -> None:
    messages: list[str] = []
    lock = threading.Lock()

    def print_message(value: object) -> None:
        with lock:
            messages.append(f"Message from task: {value}")

    tasks = tl.TaskGroup()
    tl.parallel_invoke(
        lambda: (tasks.run(print_message, "Hello"), tasks.run(print_message, 42)),
        lambda: tasks.run(print_message, 3.14),
    )
    assert tasks.wait() is tl.TaskGroupStatus.COMPLETED
    assert sorted(messages) == [
        "Message from task: 3.14",
        "Message from task: 42",
        "Message from task: Hello",
    ]


# -- parallel_invoke ----------------------------------------------------------------------------


def parallel_quicksort(items: list[int]) -> list[int]:
    if len(items) <= 32:
        return sorted(items)
    pivot = items[len(items) // 2]
    lower = [x for x in items if x < pivot]
    equal = [x for x in items if x == pivot]
    upper = [x for x in items if x > pivot]
    left, right = tl.parallel_invoke(
        lambda: parallel_quicksort(lower), lambda: parallel_quicksort(upper)
    )
    return [*left, *equal, *right]


def test_recursive_parallel_sort_matches_sorted() -> None:
    rng = random.Random(5)
    items = [rng.randrange(10_000) for _ in range(20_000)]
    assert parallel_quicksort(items) == sorted(items)


def test_nested_parallel_invoke_on_a_small_pool_does_not_deadlock() -> None:
    def fib(n: int) -> int:
        if n < 2:
            return n
        a, b = tl.parallel_invoke(lambda: fib(n - 1), lambda: fib(n - 2))
        return int(a + b)

    with tl.WorkStealingScheduler(max_workers=2) as pool:
        assert tl.start_new(fib, 15, scheduler=pool).result(timeout=50) == 610


def test_parallel_invoke_results_in_order_and_last_runs_here() -> None:
    here = threading.get_ident()

    def slow_a() -> str:
        time.sleep(0.05)
        return "a"

    results = tl.parallel_invoke(slow_a, lambda: "b", threading.get_ident)
    assert results[:2] == ["a", "b"]
    assert results[2] == here
    assert tl.parallel_invoke() == []
    assert tl.parallel_invoke(lambda: 1) == [1]


def test_parallel_invoke_raises_like_when_all() -> None:
    def boom(msg: str) -> None:
        raise ValueError(msg)

    with pytest.raises(ValueError, match="one"):
        tl.parallel_invoke(lambda: 1, lambda: boom("one"))
    barrier = threading.Barrier(2)

    def boom_together(msg: str) -> None:
        barrier.wait(5)  # both run before either fails (else one cancels the other)
        boom(msg)

    with pytest.raises(tl.AggregateError) as info:
        tl.parallel_invoke(lambda: boom_together("x"), lambda: boom_together("y"))
    assert sorted(str(e) for e in info.value.exceptions) == ["x", "y"]


def test_parallel_invoke_failure_cancels_functions_not_started() -> None:
    ran: list[int] = []
    gate = threading.Event()

    def fail() -> None:
        raise KeyError("first")

    with tl.WorkStealingScheduler(max_workers=1) as pool:
        blocker = tl.start_new(gate.wait, 5, scheduler=pool)
        with pytest.raises(KeyError):
            tl.parallel_invoke(*[lambda i=i: ran.append(i) for i in range(5)], fail, scheduler=pool)
        gate.set()
        blocker.result(timeout=10)
    assert ran == []


def test_parallel_invoke_with_a_canceled_token() -> None:
    cts = tl.CancellationTokenSource()
    cts.cancel()
    with pytest.raises(tl.TaskCanceledError):
        tl.parallel_invoke(lambda: 1, lambda: 2, token=cts.token)


def test_parallel_invoke_checks_its_arguments() -> None:
    with pytest.raises(TypeError, match=r"fns\[1\] must be callable"):
        tl.parallel_invoke(lambda: 1, 2)  # type: ignore[arg-type]


# -- TaskGroup --------------------------------------------------------------------------------


def test_group_wait_returns_completed_and_with_waits() -> None:
    done: list[int] = []
    with tl.TaskGroup() as group:
        for i in range(20):
            group.run(done.append, i)
    assert sorted(done) == list(range(20))
    assert group.wait() is tl.TaskGroupStatus.COMPLETED


def test_group_run_returns_tasks_with_results() -> None:
    group = tl.TaskGroup()
    task = group.run(pow, 2, 8)
    assert isinstance(task, tl.Task)
    assert group.wait() is tl.TaskGroupStatus.COMPLETED
    assert task.result() == 256


def test_work_added_after_wait_and_during_wait() -> None:
    group = tl.TaskGroup()
    count = [0]
    lock = threading.Lock()

    def spawn(depth: int) -> None:
        with lock:
            count[0] += 1
        if depth:
            group.run(spawn, depth - 1)
            group.run(spawn, depth - 1)

    group.run(spawn, 6)
    assert group.wait() is tl.TaskGroupStatus.COMPLETED
    assert count[0] == 127
    group.run(spawn, 0)
    assert group.wait() is tl.TaskGroupStatus.COMPLETED
    assert count[0] == 128


def test_failing_task_cancels_unstarted_work_and_wait_raises() -> None:
    ran: list[int] = []
    gate = threading.Event()
    with tl.WorkStealingScheduler(max_workers=1) as pool:
        group = tl.TaskGroup(scheduler=pool)
        group.run(gate.wait, 5)
        group.run(lambda: (_ for _ in ()).throw(ValueError("boom")))
        later = [group.run(ran.append, i) for i in range(10)]
        gate.set()
        with pytest.raises(ValueError, match="boom"):
            group.wait()
        assert ran == []
        assert all(t.is_canceled for t in later)
        # The round is over: the group is usable again.
        assert not group.is_canceling()
        assert group.run(lambda: 7).result(timeout=10) == 7
        assert group.wait() is tl.TaskGroupStatus.COMPLETED


def test_several_failures_raise_an_aggregate() -> None:
    barrier = threading.Barrier(2)

    def fail(msg: str) -> None:
        barrier.wait(5)  # both are running before either fails
        raise ValueError(msg)

    with tl.WorkStealingScheduler(max_workers=2) as pool:
        group = tl.TaskGroup(scheduler=pool)
        group.run(fail, "a")
        group.run(fail, "b")
        with pytest.raises(tl.AggregateError) as info:
            group.wait()
    assert sorted(str(e) for e in info.value.exceptions) == ["a", "b"]


def test_cancel_mid_way() -> None:
    started = threading.Event()
    saw_cancel = threading.Event()
    ran: list[int] = []
    with tl.WorkStealingScheduler(max_workers=1) as pool:
        group = tl.TaskGroup(scheduler=pool)

        def long_running() -> None:
            started.set()
            token = tl.current_token()
            if token.wait(5):
                saw_cancel.set()
                token.throw_if_cancellation_requested()

        running = group.run(long_running)
        queued = [group.run(ran.append, i) for i in range(10)]
        assert started.wait(5)
        assert not group.is_canceling()
        group.cancel()
        assert group.is_canceling()
        assert group.wait() is tl.TaskGroupStatus.CANCELED
    assert saw_cancel.is_set()
    assert running.is_canceled
    assert ran == []
    assert all(t.is_canceled for t in queued)
    assert not group.is_canceling()


def test_group_linked_to_an_outer_token() -> None:
    cts = tl.CancellationTokenSource()
    group = tl.TaskGroup(token=cts.token)
    cts.cancel()
    task = group.run(lambda: 1)
    assert task.is_canceled
    assert group.wait() is tl.TaskGroupStatus.CANCELED


def test_wait_timeout_reports_not_complete() -> None:
    gate = threading.Event()
    group = tl.TaskGroup()
    group.run(gate.wait, 5)
    assert group.wait(timeout=0.05) is tl.TaskGroupStatus.NOT_COMPLETE
    gate.set()
    assert group.wait(timeout=5) is tl.TaskGroupStatus.COMPLETED


def test_run_and_wait_runs_on_the_calling_thread() -> None:
    group = tl.TaskGroup()
    seen: list[int] = []
    group.run(lambda: seen.append(1))
    assert group.run_and_wait(lambda: seen.append(threading.get_ident())) is (
        tl.TaskGroupStatus.COMPLETED
    )
    assert threading.get_ident() in seen
    assert 1 in seen
    with pytest.raises(ZeroDivisionError):
        group.run_and_wait(lambda: 1 / 0)


def test_with_body_error_cancels_the_group() -> None:
    ran: list[int] = []
    gate = threading.Event()

    def body(pool: tl.TaskScheduler) -> None:
        with tl.TaskGroup(scheduler=pool) as group:
            group.run(gate.wait, 5)
            group.run(ran.append, 1)
            gate.set()
            raise RuntimeError("body")

    with tl.WorkStealingScheduler(max_workers=1) as pool, pytest.raises(RuntimeError, match="body"):
        body(pool)
    assert ran == []


def test_task_group_is_thread_safe() -> None:
    group = tl.TaskGroup()
    counter = [0]
    lock = threading.Lock()

    def bump() -> None:
        with lock:
            counter[0] += 1

    def producer() -> None:
        for _ in range(200):
            group.run(bump)

    def waiter() -> None:
        group.wait()

    threads = [threading.Thread(target=producer) for _ in range(4)]
    threads += [threading.Thread(target=waiter) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert group.wait() is tl.TaskGroupStatus.COMPLETED
    assert counter[0] == 800


def test_nested_groups_inside_tasks_do_not_deadlock() -> None:
    def node(depth: int) -> int:
        if depth == 0:
            return 1
        with tl.TaskGroup() as group:
            children = [group.run(node, depth - 1) for _ in range(3)]
        return 1 + sum(c.result() for c in children)

    with tl.WorkStealingScheduler(max_workers=2) as pool:
        assert tl.start_new(node, 5, scheduler=pool).result(timeout=50) == 364


def test_group_checks_its_arguments() -> None:
    with pytest.raises(TypeError, match="token"):
        tl.TaskGroup(token=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="scheduler"):
        tl.TaskGroup(scheduler="x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="fn must be callable"):
        tl.TaskGroup().run(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        tl.TaskGroup().wait(-1)


# -- StructuredTaskGroup ----------------------------------------------------------------------


def test_structured_group_works_on_its_thread() -> None:
    out: list[int] = []
    with tl.StructuredTaskGroup() as group:
        for i in range(5):
            group.run(out.append, i)
    assert sorted(out) == list(range(5))


def test_structured_group_refuses_other_threads_but_cancel() -> None:
    group = tl.StructuredTaskGroup()
    errors: list[BaseException] = []

    def other() -> None:
        for call in (lambda: group.run(print), group.wait, lambda: group.run_and_wait(print)):
            try:
                call()
            except tl.InvalidOperationError as exc:
                errors.append(exc)
        group.cancel()  # allowed from anywhere (PPL)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(10)
    assert len(errors) == 3
    assert group.is_canceling()
    assert group.wait() is tl.TaskGroupStatus.CANCELED


def test_group_tasks_may_cancel_their_group() -> None:
    group = tl.StructuredTaskGroup()
    hits: list[Any] = []

    def canceller() -> None:
        group.cancel()
        hits.append(group.is_canceling())

    group.run(canceller)
    assert group.wait() is tl.TaskGroupStatus.CANCELED
    assert hits == [True]


def test_nested_groups_inside_a_one_thread_executor() -> None:
    # No thread injection there (max_workers is a hard bound): inlining alone must do.
    def fib(n: int) -> int:
        if n < 2:
            return n
        a, b = tl.parallel_invoke(lambda: fib(n - 1), lambda: fib(n - 2))
        return int(a + b)

    with tl.ThreadExecutor(max_workers=1) as ex:
        assert ex.submit(fib, 12).result(timeout=50) == 144
