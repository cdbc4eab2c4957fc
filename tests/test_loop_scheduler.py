"""LoopScheduler (DESIGN 1.7): work runs on the loop thread, FIFO, batched wakeups, clean close.

Async tests run on asyncio, uvloop and trio (anyio's pytest plugin); the tests of
a loop's lifetime start their own loops on their own threads.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import anyio
import pytest
import trio

import taskloom as tl

pytestmark = pytest.mark.anyio


def _in_thread(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on a fresh thread and return its result (re-raising its exception)."""
    out: list[Any] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # noqa: BLE001 - re-raised on the test thread
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(20)
    assert not thread.is_alive()
    if errors:
        raise errors[0]
    return out[0]


# -- identity ---------------------------------------------------------------------------


async def test_one_scheduler_per_loop() -> None:
    sched = tl.LoopScheduler.current()
    assert tl.LoopScheduler() is sched
    assert tl.TaskScheduler.from_current_loop() is sched
    assert tl.LoopScheduler(sched.loop) is sched
    assert sched.maximum_concurrency_level == 1
    assert isinstance(sched.statistics(), tl.LoopSchedulerStatistics)
    assert not sched.is_closed


async def test_loop_of_another_thread_is_another_scheduler() -> None:
    here = tl.LoopScheduler.current()

    async def other() -> tl.LoopScheduler:
        return tl.LoopScheduler.current()

    there = await anyio.to_thread.run_sync(lambda: asyncio.run(other()))
    assert there is not here


def test_off_loop_is_an_error() -> None:
    with pytest.raises(tl.InvalidOperationError, match="event loop"):
        tl.LoopScheduler.current()
    with pytest.raises(tl.InvalidOperationError, match="event loop"):
        tl.LoopScheduler()
    with pytest.raises(tl.InvalidOperationError, match="event loop"):
        tl.TaskScheduler.from_current_loop()


def test_bad_loop_argument() -> None:
    with pytest.raises(TypeError, match="loop must be"):
        tl.LoopScheduler(42)
    loop = asyncio.new_event_loop()
    loop.close()
    with pytest.raises(tl.InvalidOperationError, match="closed"):
        tl.LoopScheduler(loop)


# -- running work on the loop ----------------------------------------------------------------


async def test_tasks_run_on_the_loop_thread_in_fifo_order() -> None:
    sched = tl.LoopScheduler.current()
    loop_thread = threading.get_ident()
    order: list[int] = []
    threads: set[int] = set()

    def record(i: int) -> None:
        order.append(i)
        threads.add(threading.get_ident())

    def queue_from_worker() -> list[tl.Task[None]]:
        return [tl.start_new(record, i, scheduler=sched) for i in range(500)]

    from_worker = await tl.to_thread(queue_from_worker)
    from_loop = [tl.start_new(record, i, scheduler=sched) for i in range(500, 1000)]
    await tl.when_all(*from_worker, *from_loop)
    assert order == list(range(1000))
    assert threads == {loop_thread}


async def test_queue_task_never_runs_inline_on_the_loop_thread() -> None:
    sched = tl.LoopScheduler.current()
    ran: list[str] = []
    task = tl.start_new(ran.append, "body", scheduler=sched)
    ran.append("after start_new")
    await task
    assert ran == ["after start_new", "body"]


async def test_a_burst_of_completions_costs_one_wakeup() -> None:
    sched = tl.LoopScheduler.current()
    # Park the loop until a worker has queued the whole burst: every post after
    # the first finds a wakeup already pending.
    queued = threading.Event()
    ran: list[int] = []

    def burst() -> None:
        for i in range(1000):
            tl.start_new(ran.append, i, scheduler=sched)
        queued.set()

    before = sched.statistics()
    threading.Thread(target=burst).start()
    assert queued.wait(10)  # blocks the loop thread on purpose
    done = tl.start_new(lambda: None, scheduler=sched)
    await done
    after = sched.statistics()
    assert ran == list(range(1000))
    assert after.wakeups - before.wakeups == 1
    assert after.items - before.items >= 1001  # (+1 on trio: the awaiter resumes via the queue)
    assert after.queue_length == 0


async def test_execute_synchronously_inlines_only_on_the_loop_thread() -> None:
    sched = tl.LoopScheduler.current()
    loop_thread = threading.get_ident()
    sync = tl.TaskContinuationOptions.EXECUTE_SYNCHRONOUSLY

    # Completed on a worker: the continuation is marshaled to the loop thread.
    gate = threading.Event()
    antecedent = tl.run(gate.wait, 5)
    cont = antecedent.continue_with(lambda _: threading.get_ident(), options=sync, scheduler=sched)
    gate.set()
    assert await cont == loop_thread

    # Completed on the loop thread itself: it runs inline, before set_result returns.
    tcs: tl.TaskCompletionSource[int] = tl.TaskCompletionSource()
    inline = tcs.task.continue_with(lambda t: t.result() + 1, options=sync, scheduler=sched)
    tcs.set_result(1)
    assert inline.is_completed
    assert inline.result() == 2


async def test_a_blocking_wait_runs_queued_loop_work_inline_on_the_loop_thread() -> None:
    sched = tl.LoopScheduler.current()
    task = tl.start_new(lambda: threading.get_ident(), scheduler=sched)
    # Plain (not coroutine) work queued to this loop can run inline on its thread.
    assert task.result(timeout=5) == threading.get_ident()


async def test_blocking_wait_on_work_that_needs_the_loop_raises() -> None:
    async def later() -> int:
        await anyio.sleep(0.01)
        return 1

    coro_task = tl.run(later)
    with pytest.raises(tl.InvalidOperationError, match="use `await"):
        coro_task.result()
    with pytest.raises(tl.InvalidOperationError, match="use `await"):
        coro_task.wait(timeout=1)
    # A when_all over loop work needs the loop too.
    with pytest.raises(tl.InvalidOperationError):
        tl.when_all(coro_task, tl.from_result(2)).result()
    assert await coro_task == 1
    # Thread work does not need the loop: a (short) blocking wait is allowed.
    assert tl.run(lambda: 3).result(timeout=5) == 3


def test_blocking_waits_are_allowed_after_the_loop_stopped() -> None:
    async def main() -> tl.Task[int]:
        tl.LoopScheduler.current()
        return tl.run(lambda: 5)

    task = asyncio.run(main())
    assert task.result(timeout=5) == 5  # same thread, no loop running: no error


# -- the loop's lifetime ---------------------------------------------------------------------


def _ran_after_close(sched: tl.LoopScheduler) -> tuple[tl.Task[int], list[int]]:
    ran: list[int] = []

    def body() -> int:
        ran.append(1)
        return 1

    return tl.start_new(body, scheduler=sched), ran


def test_work_after_asyncio_run_ends_faults_clearly() -> None:
    async def main() -> tl.LoopScheduler:
        return tl.LoopScheduler.current()

    sched = _in_thread(lambda: asyncio.run(main()))
    assert sched.is_closed
    task, ran = _ran_after_close(sched)
    with pytest.raises(tl.InvalidOperationError, match="closed"):
        task.result(timeout=5)
    assert ran == []


def test_work_after_a_trio_run_ends_faults_clearly() -> None:
    async def main() -> tl.LoopScheduler:
        return tl.LoopScheduler.current()

    sched = _in_thread(lambda: trio.run(main))
    assert sched.is_closed
    task, ran = _ran_after_close(sched)
    with pytest.raises(tl.InvalidOperationError, match="closed"):
        task.result(timeout=5)
    assert ran == []


def test_a_loop_closed_with_work_queued_fails_that_work() -> None:
    loop = asyncio.new_event_loop()
    sched = tl.LoopScheduler(loop)  # from another thread: the loop never runs again
    queued = [tl.start_new(lambda: 1, scheduler=sched) for _ in range(3)]
    assert sched.statistics().queue_length == 3
    loop.close()  # without shutdown_asyncgens(): the pending wakeup dies with it
    late = tl.start_new(lambda: 1, scheduler=sched)
    for task in [*queued, late]:
        assert isinstance(task.exception(timeout=5), tl.InvalidOperationError)
    assert sched.is_closed


def test_awaiters_of_work_queued_to_a_closed_loop_do_not_hang() -> None:
    # The awaiter runs on another loop; the work was queued to a loop that then ended.
    async def capture() -> tl.LoopScheduler:
        return tl.LoopScheduler.current()

    dead = _in_thread(lambda: asyncio.run(capture()))

    async def await_it() -> str:
        try:
            await tl.start_new(lambda: 1, scheduler=dead)
        except tl.InvalidOperationError as exc:
            return str(exc)
        return "no error"

    assert "closed" in asyncio.run(await_it())


def test_work_queued_from_another_thread_runs_when_the_loop_runs() -> None:
    loop = asyncio.new_event_loop()
    try:
        sched = tl.LoopScheduler(loop)
        task = tl.start_new(threading.get_ident, scheduler=sched)

        async def main() -> int:
            return await task

        assert loop.run_until_complete(main()) == threading.get_ident()
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
    assert sched.is_closed
