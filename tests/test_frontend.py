"""The event-loop front end (DESIGN 1.1-1.3, 1.8) on asyncio, uvloop and trio.

``await task``, coroutine functions as tasks and continuations, awaitables in
``when_all``/``when_any``, ``to_thread`` and its cancellation, contextvars.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
import trio

import taskloom as tl
from taskloom import _scheduler
from tests.helpers import HoldingScheduler

pytestmark = pytest.mark.anyio

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _fail(exc: BaseException) -> Any:
    raise exc


# -- await task --------------------------------------------------------------------------------


async def test_await_returns_the_result_on_the_loop_thread() -> None:
    loop_thread = threading.get_ident()
    task = tl.run(lambda: threading.get_ident())
    worker_thread = await task
    assert worker_thread != loop_thread
    assert threading.get_ident() == loop_thread
    assert await tl.from_result(5) == 5  # already completed: no suspension needed


async def test_await_raises_exactly_what_result_raises() -> None:
    error = ValueError("boom")
    task = tl.run(_fail, error)
    with pytest.raises(ValueError, match="boom") as caught:
        await task
    assert caught.value is error
    with pytest.raises(ValueError) as again:
        task.result()
    assert again.value is error

    several = tl.when_all(tl.run(_fail, KeyError("a")), tl.run(_fail, KeyError("b")))
    with pytest.raises(tl.AggregateError) as agg:
        await several
    assert agg.value is several.exception()
    assert len(agg.value.exceptions) == 2


async def test_a_task_that_raised_stop_iteration_does_not_hang_its_awaiter() -> None:
    task = tl.run(_fail, StopIteration(1))
    with pytest.raises(RuntimeError, match="StopIteration") as caught:
        await task
    assert isinstance(caught.value.__cause__, StopIteration)


async def test_awaiting_a_canceled_task_raises_task_canceled_error() -> None:
    cts = tl.CancellationTokenSource()
    cts.cancel()
    task = tl.run(lambda: 1, token=cts.token)
    with pytest.raises(tl.TaskCanceledError) as caught:
        await task
    assert isinstance(caught.value, Exception)
    assert not isinstance(caught.value, asyncio.CancelledError)
    # It is an ordinary exception: the enclosing scope is not cancelled by it.
    await anyio.sleep(0)


async def test_cancelling_the_awaiter_does_not_cancel_the_task() -> None:
    gate = threading.Event()
    task = tl.run(lambda: gate.wait(10) and "done")
    with anyio.move_on_after(0.05) as scope:
        await task
    assert scope.cancelled_caught
    assert not task.is_canceled
    gate.set()
    assert await task == "done"


async def test_a_cancelled_awaiter_stops_waiting_at_once() -> None:
    tcs: tl.TaskCompletionSource[int] = tl.TaskCompletionSource()
    with anyio.CancelScope() as scope:
        scope.cancel()
        await tcs.task
    assert scope.cancelled_caught
    tcs.set_result(1)  # resuming nobody is harmless
    await anyio.sleep(0.01)
    assert await tcs.task == 1


@pytest.mark.timeout(120)
async def test_ten_thousand_concurrent_awaits() -> None:
    results: list[int] = []

    async def one(i: int) -> None:
        results.append(await tl.run(int, i))

    async with anyio.create_task_group() as group:
        for i in range(10_000):
            group.start_soon(one, i)
    assert sorted(results) == list(range(10_000))
    stats = tl.LoopScheduler.current().statistics()
    assert stats.wakeups < stats.items  # completions shared wakeups


async def test_many_awaiters_of_one_task() -> None:
    tcs: tl.TaskCompletionSource[str] = tl.TaskCompletionSource()
    seen: list[str] = []

    async def waiter() -> None:
        seen.append(await tcs.task)

    async with anyio.create_task_group() as group:
        for _ in range(1000):
            group.start_soon(waiter)
        await anyio.sleep(0.01)
        threading.Thread(target=tcs.set_result, args=("v",)).start()
    assert seen == ["v"] * 1000


async def test_loops_in_several_threads_await_the_same_task() -> None:
    tcs: tl.TaskCompletionSource[int] = tl.TaskCompletionSource()
    started = threading.Barrier(3)

    async def on_asyncio() -> tuple[int, int]:
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
        return await tcs.task, threading.get_ident()

    async def on_trio() -> tuple[int, int]:
        await trio.to_thread.run_sync(started.wait, 10)
        return await tcs.task, threading.get_ident()

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        a = pool.submit(asyncio.run, on_asyncio())
        b = pool.submit(trio.run, on_trio)
        await tl.to_thread(started.wait, 10)
        tcs.set_result(7)
        here = await tcs.task
        (va, ta), (vb, tb) = a.result(20), b.result(20)
    assert here == va == vb == 7
    assert len({ta, tb, threading.get_ident()}) == 3


def test_await_without_a_loop_is_an_error() -> None:
    coro = tl.from_result(1).__await__()
    # Completed tasks need no loop; pending ones do.
    with pytest.raises(StopIteration):
        next(coro)
    pending = tl.TaskCompletionSource[int]().task.__await__()
    with pytest.raises(tl.InvalidOperationError, match="event loop"):
        next(pending)


# -- coroutine functions as tasks and continuations ------------------------------------------


async def _loop_thread_and_value(x: int) -> tuple[int, int]:
    await anyio.sleep(0.001)
    return threading.get_ident(), x * 2


async def test_run_async_fn_runs_on_this_loop() -> None:
    task = tl.run(_loop_thread_and_value, 21)
    assert isinstance(task, tl.Task)
    thread, value = await task
    assert (thread, value) == (threading.get_ident(), 42)
    assert task.status is tl.TaskStatus.RAN_TO_COMPLETION
    # ... and it composes like any task.
    doubled = await task.then(lambda r: r[1] * 2)
    assert doubled == 84


async def test_run_async_fn_faults_and_cancels_like_a_task() -> None:
    async def fails() -> None:
        await anyio.sleep(0)
        raise KeyError("k")

    with pytest.raises(KeyError):
        await tl.run(fails)

    cts = tl.CancellationTokenSource()

    async def acknowledges(token: tl.CancellationToken) -> None:
        await anyio.sleep(0)
        cts.cancel()
        token.throw_if_cancellation_requested()

    task = tl.run(acknowledges, cts.token, token=cts.token)
    with pytest.raises(tl.TaskCanceledError):
        await task
    assert task.is_canceled


def test_run_async_fn_off_loop_needs_a_loop_scheduler() -> None:
    async def f() -> int:
        return 1

    with pytest.raises(tl.InvalidOperationError, match="LoopScheduler"):
        tl.run(f)
    with pytest.raises(tl.InvalidOperationError, match="LoopScheduler"):
        tl.run(f, scheduler=tl.TaskScheduler.default())


async def test_run_async_fn_from_another_thread_with_a_loop_scheduler() -> None:
    sched = tl.LoopScheduler.current()

    def from_worker() -> tl.Task[tuple[int, int]]:
        return tl.run(_loop_thread_and_value, 1, scheduler=sched)

    task = await tl.to_thread(from_worker)
    assert await task == (threading.get_ident(), 2)


async def test_async_continuations_run_on_the_loop_and_unwrap() -> None:
    loop_thread = threading.get_ident()

    async def cont(antecedent: tl.Task[int]) -> tuple[int, int]:
        await anyio.sleep(0)
        return threading.get_ident(), antecedent.result() + 1

    unwrapped: Any = await tl.run(lambda: 1).continue_with(cont)  # typed as the coroutine
    assert unwrapped == (loop_thread, 2)
    assert await tl.run(lambda: 3).then(_loop_thread_and_value) == (loop_thread, 6)
    failed = tl.run(_fail, ValueError("no")).then(_loop_thread_and_value)
    with pytest.raises(ValueError, match="no"):
        await failed


async def test_async_continuation_created_off_loop_uses_the_antecedents_loop() -> None:
    sched = tl.LoopScheduler.current()
    on_loop = tl.start_new(lambda: True, scheduler=sched)  # runs on this loop

    def chain_from_worker() -> tl.Task[Any]:
        return on_loop.then(_double_on_loop)

    cont = await tl.to_thread(chain_from_worker)
    assert await cont == (threading.get_ident(), True)

    # An antecedent with no loop and no loop scheduler given: a clear error.
    plain = tl.from_result(1)
    with pytest.raises(tl.InvalidOperationError, match="event loop"):
        await tl.to_thread(plain.then, _double_on_loop)


async def _double_on_loop(value: bool) -> tuple[int, bool]:
    await anyio.sleep(0)
    return threading.get_ident(), value


async def test_continuation_marshaled_to_the_loop_sees_the_coroutines_context() -> None:
    request_id.set("req-7")
    sched = tl.LoopScheduler.current()
    seen = await tl.run(time.sleep, 0.001).continue_with(
        lambda _: (request_id.get(), threading.get_ident()), scheduler=sched
    )
    assert seen == ("req-7", threading.get_ident())


# -- awaitables in when_all / when_any ---------------------------------------------------------


async def test_when_all_mixes_tasks_futures_and_coroutines() -> None:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(lambda: "future")
        awaitables: list[Any] = [tl.run(lambda: "task"), future, _loop_thread_and_value(1)]
        if _on_asyncio():
            awaitables.append(asyncio.ensure_future(asyncio.sleep(0, "asyncio")))
        results = await tl.when_all(*awaitables)
    assert results[:3] == ["task", "future", (threading.get_ident(), 2)]
    if _on_asyncio():
        assert results[3] == "asyncio"


async def test_when_any_and_operators_accept_coroutines() -> None:
    async def slow() -> str:
        await anyio.sleep(5)
        return "slow"

    winner = await tl.when_any(tl.run(lambda: "fast"), slow())
    assert winner.result() == "fast"
    assert await (tl.from_result(1) & _loop_thread_and_value(2)) == [
        1,
        (threading.get_ident(), 4),
    ]
    first = await (tl.delay(5) | _loop_thread_and_value(1))
    assert first.result() == (threading.get_ident(), 2)


async def test_then_unwraps_a_returned_coroutine_or_asyncio_future() -> None:
    assert await tl.run(lambda: 2).then(lambda v: tl.run(int, v + 1)) == 3

    async def add_one(v: int) -> int:
        return v + 1

    sched = tl.LoopScheduler.current()
    # A sync continuation on the loop returning a coroutine: started on the loop.
    assert await tl.from_result(4).then(lambda v: add_one(v), scheduler=sched) == 5


def test_awaitables_off_loop_are_a_clear_error() -> None:
    async def f() -> int:
        return 1

    with pytest.raises(tl.InvalidOperationError, match="event loop"):
        tl.when_all(f())


async def test_faulted_and_canceled_awaitables() -> None:
    async def fails() -> None:
        raise OSError("io")

    with pytest.raises(OSError, match="io"):
        await tl.when_all(fails())
    if _on_asyncio():
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        fut.cancel()
        with pytest.raises(tl.TaskCanceledError):
            await tl.when_all(fut)


# -- to_thread -----------------------------------------------------------------------------------


async def test_to_thread_returns_and_raises() -> None:
    assert await tl.to_thread(sum, [1, 2, 3]) == 6
    with pytest.raises(ZeroDivisionError):
        await tl.to_thread(lambda: 1 / 0)
    with pytest.raises(TypeError, match="callable"):
        await tl.to_thread(42)  # type: ignore[arg-type]


def test_offload_arguments_are_checked_at_the_call() -> None:
    with pytest.raises(TypeError, match="callable"):
        _ = tl.to_thread(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="token"):
        _ = tl.to_thread(print, token="nope")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        _ = tl.to_process(None)  # type: ignore[arg-type]


async def test_cancelled_awaiters_leave_no_continuations_behind() -> None:
    tcs: tl.TaskCompletionSource[int] = tl.TaskCompletionSource()
    for _ in range(100):
        with anyio.move_on_after(0.001):
            await tcs.task
    assert not tcs.task._conts  # every cancelled awaiter unregistered itself
    tcs.set_result(1)
    assert await tcs.task == 1


async def test_to_thread_sees_the_coroutines_contextvars() -> None:
    request_id.set("req-1")
    assert await tl.to_thread(request_id.get) == "req-1"

    def set_in_thread() -> str:
        request_id.set("changed in thread")
        return request_id.get()

    assert await tl.to_thread(set_in_thread) == "changed in thread"
    assert request_id.get() == "req-1"  # the thread ran in a copy


async def test_to_thread_token_is_linked() -> None:
    cts = tl.CancellationTokenSource()
    started = threading.Event()

    def work() -> bool:
        started.set()
        return tl.current_token().wait(10)

    async with anyio.create_task_group() as group:

        async def cancel_later() -> None:
            await tl.to_thread(started.wait, 10)
            cts.cancel()

        group.start_soon(cancel_later)
        assert await tl.to_thread(work, token=cts.token) is True


async def test_cancelling_the_awaiter_cancels_running_work() -> None:
    started = threading.Event()
    observed = threading.Event()

    def work() -> None:
        started.set()
        if tl.current_token().wait(10):
            observed.set()

    with anyio.CancelScope() as scope:

        async def cancel_when_started() -> None:
            await tl.to_thread(started.wait, 10)
            scope.cancel()

        async with anyio.create_task_group() as group:
            group.start_soon(cancel_when_started)
            await tl.to_thread(work)
    assert scope.cancelled_caught
    assert await tl.to_thread(observed.wait, 10)


async def test_work_that_looks_at_its_token_after_the_awaiter_left_sees_it_canceled() -> None:
    gate = threading.Event()
    seen: list[bool] = []

    def work() -> None:
        gate.wait(10)  # the awaiter is cancelled meanwhile
        seen.append(tl.current_token().is_cancellation_requested)

    started = threading.Event()

    def work_started() -> None:
        started.set()
        work()

    with anyio.CancelScope() as scope:

        async def cancel_when_started() -> None:
            await tl.to_thread(started.wait, 10)
            scope.cancel()

        async with anyio.create_task_group() as group:
            group.start_soon(cancel_when_started)
            await tl.to_thread(work_started)
    gate.set()
    await tl.to_thread(lambda: None)
    for _ in range(100):
        if seen:
            break
        await anyio.sleep(0.01)
    assert seen == [True]


async def test_the_token_of_offloaded_work_is_stable() -> None:
    def tokens() -> tuple[tl.CancellationToken, tl.CancellationToken, bool]:
        task = tl.current_task()
        assert task is not None
        return tl.current_token(), task.token, tl.current_token().can_be_canceled

    first, second, cancelable = await tl.to_thread(tokens)
    assert first == second
    assert cancelable
    assert not first.is_cancellation_requested


_HoldingScheduler = HoldingScheduler


@pytest.fixture
def holding_default() -> Iterator[_HoldingScheduler]:
    holding = _HoldingScheduler()
    previous = _scheduler.reset_default(holding)
    try:
        yield holding
    finally:
        _scheduler.reset_default(previous)


async def test_cancelling_the_awaiter_means_queued_work_never_starts(
    holding_default: _HoldingScheduler,
) -> None:
    ran: list[int] = []
    with anyio.move_on_after(0.02) as scope:
        await tl.to_thread(ran.append, 1)
    assert scope.cancelled_caught
    (task,) = holding_default.held
    assert task.is_canceled
    assert holding_default.release() == [False]
    assert ran == []


# -- to_process -----------------------------------------------------------------------------------


def _pid_and_square(x: int) -> tuple[int, int]:
    import os

    return os.getpid(), x * x


def _sleep_then(path: str, seconds: float) -> None:
    import pathlib

    time.sleep(seconds)
    pathlib.Path(path).write_text("finished")


@pytest.mark.timeout(120)
async def test_to_process_runs_in_another_process() -> None:
    import os

    pid, square = await tl.to_process(_pid_and_square, 7)
    assert square == 49
    assert pid != os.getpid()
    with pytest.raises(ZeroDivisionError):
        await tl.to_process(lambda: 1 / 0)


@pytest.mark.timeout(120)
async def test_cancelling_the_awaiter_terminates_process_work(tmp_path: Any) -> None:
    marker = tmp_path / "marker"
    await tl.to_process(_pid_and_square, 1)  # workers started
    with anyio.move_on_after(0.3) as scope:
        await tl.to_process(_sleep_then, str(marker), 1.0)
    assert scope.cancelled_caught
    await anyio.sleep(1.5)
    assert not marker.exists()  # the worker was killed before it could finish
    # The scheduler replaced the worker: later work still runs.
    assert (await tl.to_process(_pid_and_square, 3))[1] == 9
