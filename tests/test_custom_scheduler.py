"""User-written schedulers: implementing only the two abstract methods is enough.

``ThreadPerTask`` is the docs example; ``UserLimited`` is the limited-concurrency
scheduler a user would write after the TPL sample (a queue, a lock, a count of
running helper threads).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import pytest

import taskloom as tl

WAIT = 30.0


class ThreadPerTask(tl.TaskScheduler):
    def queue_task(self, task: tl.Task[Any]) -> None:
        threading.Thread(target=self.try_execute_task, args=(task,)).start()

    def try_execute_task_inline(self, task: tl.Task[Any], task_was_previously_queued: bool) -> bool:
        return not task_was_previously_queued and self.try_execute_task(task)


class UserLimited(tl.TaskScheduler):
    """At most ``limit`` helper threads; each runs queued tasks until the queue is empty."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.lock = threading.Lock()
        self.queue: deque[tl.Task[Any]] = deque()
        self.helpers = 0  # guarded by lock
        self.local = threading.local()

    def queue_task(self, task: tl.Task[Any]) -> None:
        with self.lock:
            self.queue.append(task)
            if self.helpers >= self.limit:
                return
            self.helpers += 1
        threading.Thread(target=self._helper).start()

    def _helper(self) -> None:
        self.local.helper = True
        while True:
            with self.lock:
                if not self.queue:
                    self.helpers -= 1
                    return
                task = self.queue.popleft()
            self.try_execute_task(task)

    def try_execute_task_inline(self, task: tl.Task[Any], task_was_previously_queued: bool) -> bool:
        if not getattr(self.local, "helper", False):
            return False
        if task_was_previously_queued:
            with self.lock:
                try:
                    self.queue.remove(task)
                except ValueError:
                    return False
        return self.try_execute_task(task)


@pytest.fixture(params=["thread_per_task", "user_limited"])
def sched(request: pytest.FixtureRequest) -> tl.TaskScheduler:
    if request.param == "thread_per_task":
        return ThreadPerTask()
    return UserLimited(2)


def test_run_and_start_new(sched: tl.TaskScheduler) -> None:
    assert tl.run(lambda: 1 + 1, scheduler=sched).result(WAIT) == 2
    t = tl.start_new(lambda x: x * 3, 5, scheduler=sched, state="s")
    assert t.result(WAIT) == 15
    assert t.async_state == "s"
    assert tl.start_new(tl.TaskScheduler.current, scheduler=sched).result(WAIT) is sched


def test_cold_task_start_and_wait(sched: tl.TaskScheduler) -> None:
    t = tl.Task(lambda: "cold")
    assert t.status == tl.TaskStatus.CREATED
    t.start(sched)
    assert t.wait(WAIT)
    assert t.result() == "cold"


def test_run_synchronously_uses_inline_execution(sched: tl.TaskScheduler) -> None:
    t = tl.Task(lambda: threading.current_thread().name)
    t.run_synchronously(sched)
    me = threading.current_thread().name
    if isinstance(sched, ThreadPerTask):
        assert t.result() == me  # not queued before: the scheduler runs it inline
    else:
        assert t.result() != me  # UserLimited inlines only on its own helpers


def test_continuations_chain(sched: tl.TaskScheduler) -> None:
    t = tl.start_new(lambda: 2, scheduler=sched)
    chain = (
        t.continue_with(lambda a: a.result() + 1, scheduler=sched)
        .then(lambda v: v * 10, scheduler=sched)
        .continue_with(lambda a: tl.TaskScheduler.current(), scheduler=sched)
    )
    assert chain.result(WAIT) is sched
    assert t.continue_with(lambda a: a.result(), scheduler=sched).result(WAIT) == 2


def test_continuation_inherits_the_current_scheduler(sched: tl.TaskScheduler) -> None:
    def body() -> tl.TaskScheduler:
        # Registered inside a task: defaults to TaskScheduler.current(), i.e. ours.
        cont = tl.completed_task().continue_with(lambda _a: tl.TaskScheduler.current())
        return cont.result(WAIT)

    assert tl.start_new(body, scheduler=sched).result(WAIT) is sched


def test_execute_synchronously_continuation(sched: tl.TaskScheduler) -> None:
    tcs = tl.TaskCompletionSource[int]()
    cont = tcs.task.continue_with(
        lambda a: (a.result(), threading.current_thread().name),
        options=tl.TaskContinuationOptions.EXECUTE_SYNCHRONOUSLY,
        scheduler=sched,
    )
    tcs.set_result(7)
    value, thread = cont.result(WAIT)
    assert value == 7
    if isinstance(sched, ThreadPerTask):
        assert thread == threading.current_thread().name


def test_when_all_when_any_and_wait_all(sched: tl.TaskScheduler) -> None:
    tasks = [tl.start_new(lambda i=i: i * i, scheduler=sched) for i in range(8)]
    assert tl.when_all(*tasks).result(WAIT) == [i * i for i in range(8)]
    assert tl.wait_all(*tasks, timeout=WAIT)
    winner = tl.when_any(*tasks).result(WAIT)
    assert winner in tasks
    assert tl.wait_any(*tasks, timeout=WAIT) >= 0


def test_nested_waits_and_attached_children(sched: tl.TaskScheduler) -> None:
    done: list[int] = []
    lock = threading.Lock()

    def child(i: int) -> None:
        with lock:
            done.append(i)

    def parent() -> int:
        for i in range(5):
            tl.start_new(child, i, options=tl.TaskCreationOptions.ATTACHED_TO_PARENT)
        inner = tl.start_new(lambda: 40)
        return inner.result(WAIT) + 2

    p = tl.start_new(parent, scheduler=sched)
    assert p.result(WAIT) == 42
    assert sorted(done) == list(range(5))  # the parent waited for its attached children


def test_faults_and_cancellation(sched: tl.TaskScheduler) -> None:
    def boom() -> None:
        raise KeyError("boom")

    t = tl.start_new(boom, scheduler=sched)
    with pytest.raises(KeyError):
        t.result(WAIT)
    cts = tl.CancellationTokenSource()
    cts.cancel()
    canceled = tl.start_new(lambda: 1, token=cts.token, scheduler=sched)
    assert canceled.is_canceled


def test_try_execute_task_refuses_a_task_of_another_scheduler() -> None:
    mine = ThreadPerTask()
    other = UserLimited(1)
    gate = threading.Event()
    foreign = tl.start_new(gate.wait, WAIT, scheduler=other)
    try:
        with pytest.raises(tl.InvalidOperationError):
            mine.try_execute_task(foreign)
        with pytest.raises(tl.InvalidOperationError):
            mine.try_execute_task(tl.Task(lambda: None))  # never queued anywhere
    finally:
        gate.set()
    assert foreign.result(WAIT) is True


def test_try_execute_task_runs_a_task_only_once() -> None:
    class Collecting(tl.TaskScheduler):
        def __init__(self) -> None:
            self.queued: list[tl.Task[Any]] = []

        def queue_task(self, task: tl.Task[Any]) -> None:
            self.queued.append(task)

        def try_execute_task_inline(
            self, task: tl.Task[Any], task_was_previously_queued: bool
        ) -> bool:
            return False

    sched = Collecting()
    calls: list[int] = []
    t = tl.start_new(calls.append, 1, scheduler=sched)
    assert t.status == tl.TaskStatus.WAITING_TO_RUN
    assert sched.queued == [t]
    assert sched.try_execute_task(t) is True
    assert sched.try_execute_task(t) is False
    assert calls == [1]
    assert t.is_completed_successfully

    # A task canceled while queued is never run.
    cts = tl.CancellationTokenSource()
    t2 = tl.start_new(calls.append, 2, token=cts.token, scheduler=sched)
    cts.cancel()
    assert sched.try_execute_task(t2) is False
    assert t2.is_canceled
    assert calls == [1]


def test_default_members_of_a_user_scheduler() -> None:
    sched = ThreadPerTask()
    assert sched.maximum_concurrency_level > 1_000_000
    stats = sched.statistics()
    assert stats == tl.SchedulerStatistics(sched.id, sched.maximum_concurrency_level)
    with sched as entered:
        assert entered is sched  # shutdown() is a no-op by default
    assert tl.start_new(lambda: 1, scheduler=sched).result(WAIT) == 1


def test_only_the_two_methods_are_abstract() -> None:
    assert tl.TaskScheduler.__abstractmethods__ == frozenset(
        {"queue_task", "try_execute_task_inline"}
    )

    class Incomplete(tl.TaskScheduler):
        def queue_task(self, task: tl.Task[Any]) -> None:
            pass

    with pytest.raises(TypeError):
        Incomplete()  # type: ignore[abstract]


def test_a_raising_queue_task_faults_the_task() -> None:
    class Refusing(tl.TaskScheduler):
        def queue_task(self, task: tl.Task[Any]) -> None:
            raise RuntimeError("full")

        def try_execute_task_inline(
            self, task: tl.Task[Any], task_was_previously_queued: bool
        ) -> bool:
            return False

    t = tl.start_new(lambda: 1, scheduler=Refusing())
    assert t.is_faulted
    assert isinstance(t.exception(), RuntimeError)
