"""The task-model contract (DESIGN 1.1-1.7), run against every scheduler in ``tests/schedulers.py``.

Tests that take the ``scheduler`` fixture run once per registered scheduler; the
rest exercise scheduler-independent parts (tokens, completion sources, the
unobserved-exception handler). Intermediate states are observed with events and
completion sources, never with sleeps: a gate (``threading.Event``) holds a body
in ``RUNNING`` until the test releases it. Every blocking call has a generous
bound (:data:`WAIT`) so a broken implementation fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import gc
import logging
import threading
import traceback
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import taskloom as tl
from taskloom import TaskContinuationOptions as TCO
from taskloom import TaskCreationOptions as TCR
from taskloom import TaskStatus as S
from tests.helpers import HoldingScheduler

#: Bound on every wait that is expected to succeed (a loaded 2-core machine is slow).
WAIT = 30.0

needs_in_process = pytest.mark.scheduler_needs("in_process")
needs_inlining = pytest.mark.scheduler_needs("in_process", "inlining")
# For tests whose bodies are picklable and touch no shared state: every scheduler.
any_scheduler = pytest.mark.scheduler_needs()

# Nearly every contract test's body closes over events or lists.
pytestmark = needs_in_process


def eventually(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    """Wait until ``predicate()`` holds, for state changes that have no wakeup of their own."""
    pause = threading.Event()
    deadline = threading.Event()
    timer = threading.Timer(timeout, deadline.set)
    timer.start()
    try:
        while not predicate():
            assert not deadline.is_set(), "condition not reached in time"
            pause.wait(0.001)
    finally:
        timer.cancel()


def collect_until(predicate: Callable[[], bool]) -> None:
    """``gc.collect()`` until ``predicate()`` holds (bounded).

    A waiter wakes while the thread that completed a task may still hold it in a
    local variable for a moment; once that thread unwinds the task is garbage.
    """
    pause = threading.Event()
    for _ in range(1000):
        gc.collect()
        if predicate():
            return
        pause.wait(0.01)
    raise AssertionError("still reachable long after the test let go of it")


def gated(gate: threading.Event, started: threading.Event | None = None, value: Any = None) -> Any:
    """A body that signals ``started``, waits for ``gate`` and returns ``value``."""
    if started is not None:
        started.set()
    assert gate.wait(WAIT), "the test never opened the gate"
    return value


def status(task: tl.Task[Any]) -> S:
    """``task.status`` read afresh (a property mypy would otherwise keep narrowed)."""
    return task.status


def boom(message: str = "boom") -> None:
    raise ValueError(message)


# == statuses and transitions =============================================================


def test_cold_task_runs_only_when_started(scheduler: tl.TaskScheduler) -> None:
    ran = threading.Event()
    task = tl.Task(ran.set)
    assert task.status is S.CREATED
    assert not task.done()
    assert not task.running()
    assert not task.is_completed
    assert not ran.is_set()
    task.start(scheduler)
    assert task.wait(WAIT)
    assert ran.is_set()
    assert status(task) is S.RAN_TO_COMPLETION


def test_waiting_to_run_until_the_scheduler_runs_it() -> None:
    holder = HoldingScheduler()
    task = tl.Task(lambda: 7)
    task.start(holder)
    assert task.status is S.WAITING_TO_RUN
    assert not task.running()
    assert not task.done()
    assert holder.release() == [True]
    assert status(task) is S.RAN_TO_COMPLETION
    assert task.result() == 7


def test_running_is_observed_while_the_body_runs(scheduler: tl.TaskScheduler) -> None:
    gate, started = threading.Event(), threading.Event()
    task = tl.start_new(gated, gate, started, "v", scheduler=scheduler)
    assert started.wait(WAIT)
    assert task.status is S.RUNNING
    assert task.running()
    assert not task.done()
    gate.set()
    assert task.result(WAIT) == "v"
    assert status(task) is S.RAN_TO_COMPLETION
    assert not task.running()


def test_waiting_for_children_after_the_body_returns(scheduler: tl.TaskScheduler) -> None:
    gate = threading.Event()
    children: list[tl.Task[Any]] = []

    def parent() -> str:
        children.append(
            tl.start_new(gated, gate, options=TCR.ATTACHED_TO_PARENT, scheduler=scheduler)
        )
        return "parent"

    task = tl.start_new(parent, scheduler=scheduler)
    eventually(lambda: task.status is not S.RUNNING and task.status is not S.WAITING_TO_RUN)
    assert task.status is S.WAITING_FOR_CHILDREN_TO_COMPLETE
    assert task.running()
    assert not task.done()
    assert not task.wait(0.01)
    gate.set()
    assert task.result(WAIT) == "parent"
    assert children[0].is_completed_successfully


def test_continuation_and_promise_wait_for_activation(scheduler: tl.TaskScheduler) -> None:
    tcs: tl.TaskCompletionSource[int] = tl.TaskCompletionSource()
    cont = tcs.task.continue_with(lambda a: a.result() * 2, scheduler=scheduler)
    assert tcs.task.status is S.WAITING_FOR_ACTIVATION
    assert cont.status is S.WAITING_FOR_ACTIVATION
    tcs.set_result(21)
    assert cont.result(WAIT) == 42


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (lambda: 1, S.RAN_TO_COMPLETION),
        (boom, S.FAULTED),
    ],
    ids=["ran", "faulted"],
)
@any_scheduler
def test_final_states_and_is_properties(
    scheduler: tl.TaskScheduler, body: Callable[[], Any], status: S
) -> None:
    task = tl.start_new(body, scheduler=scheduler)
    eventually(lambda: task.is_completed)
    assert task.status is status
    assert task.done()
    assert task.is_completed
    assert task.is_completed_successfully == (status is S.RAN_TO_COMPLETION)
    assert task.is_faulted == (status is S.FAULTED)
    assert not task.is_canceled
    assert not task.cancelled()
    task.exception()  # observed


@any_scheduler
def test_canceled_final_state_and_is_properties(scheduler: tl.TaskScheduler) -> None:
    with tl.CancellationTokenSource() as cts:
        cts.cancel()
        task = tl.start_new(lambda: 1, token=cts.token, scheduler=scheduler)
    assert task.status is S.CANCELED
    assert task.is_canceled
    assert task.cancelled()
    assert task.is_completed
    assert task.done()
    assert not task.is_faulted
    assert not task.is_completed_successfully


# == start, run_synchronously, id, async_state ===============================================


@any_scheduler
def test_double_start_raises(scheduler: tl.TaskScheduler) -> None:
    task = tl.Task(lambda: 1)
    task.start(scheduler)
    with pytest.raises(tl.InvalidOperationError, match=r"already started|completed"):
        task.start(scheduler)
    with pytest.raises(tl.InvalidOperationError):
        task.run_synchronously(scheduler)
    assert task.result(WAIT) == 1


def test_start_is_refused_for_continuations_promises_and_hot_tasks(
    scheduler: tl.TaskScheduler,
) -> None:
    tcs: tl.TaskCompletionSource[int] = tl.TaskCompletionSource()
    cont = tcs.task.continue_with(lambda a: None, scheduler=scheduler)
    with pytest.raises(tl.InvalidOperationError, match="continuation"):
        cont.start(scheduler)
    with pytest.raises(tl.InvalidOperationError, match="promise"):
        tcs.task.start(scheduler)
    hot = tl.start_new(lambda: 1, scheduler=scheduler)
    with pytest.raises(tl.InvalidOperationError):
        hot.start(scheduler)
    tcs.set_result(0)
    assert cont.wait(WAIT)
    assert hot.wait(WAIT)


@needs_inlining
def test_run_synchronously_runs_on_the_calling_thread(scheduler: tl.TaskScheduler) -> None:
    task = tl.Task(threading.get_ident)
    task.run_synchronously(scheduler)
    assert task.is_completed
    assert task.result() == threading.get_ident()


@any_scheduler
def test_run_synchronously_completes_before_returning(scheduler: tl.TaskScheduler) -> None:
    task = tl.Task(lambda: 5)
    task.run_synchronously(scheduler)
    assert task.status is S.RAN_TO_COMPLETION
    assert task.result() == 5
    failing = tl.Task(boom)
    failing.run_synchronously(scheduler)  # does not raise the body's exception
    assert failing.is_faulted
    assert isinstance(failing.exception(), ValueError)


@any_scheduler
def test_ids_are_unique_positive_and_stable(scheduler: tl.TaskScheduler) -> None:
    tasks = [tl.start_new(lambda: None, scheduler=scheduler) for _ in range(100)]
    tasks += [tl.Task(lambda: None) for _ in range(10)]
    tasks.append(tl.from_result(None))
    ids = [t.id for t in tasks]
    assert all(i > 0 for i in ids)
    assert len(set(ids)) == len(ids)
    assert [t.id for t in tasks] == ids
    assert tl.wait_all(*tasks[:100], timeout=WAIT)


def test_async_state_is_the_state_argument(scheduler: tl.TaskScheduler) -> None:
    state = object()
    assert tl.start_new(lambda: None, state=state, scheduler=scheduler).async_state is state
    assert tl.Task(lambda: None, state="s").async_state == "s"
    assert tl.Task(lambda: None).async_state is None
    tcs: tl.TaskCompletionSource[None] = tl.TaskCompletionSource(state=state)
    assert tcs.task.async_state is state
    cont = tl.from_result(1).continue_with(lambda a: None, state=state, scheduler=scheduler)
    assert cont.async_state is state
    assert cont.wait(WAIT)


@any_scheduler
def test_creation_options_are_reported(scheduler: tl.TaskScheduler) -> None:
    opts = TCR.HIDE_SCHEDULER | TCR.PREFER_FAIRNESS
    task = tl.start_new(lambda: None, options=opts, scheduler=scheduler)
    assert task.creation_options == opts
    assert tl.Task(lambda: None).creation_options == TCR.NONE
    assert task.wait(WAIT)


# == wait, result, exception ================================================================


@any_scheduler
def test_wait_returns_true_and_raises_the_fault_every_time(scheduler: tl.TaskScheduler) -> None:
    assert tl.start_new(lambda: 1, scheduler=scheduler).wait(WAIT) is True
    task = tl.start_new(boom, "first", scheduler=scheduler)
    with pytest.raises(ValueError, match="first") as first:
        task.wait(WAIT)
    with pytest.raises(ValueError, match="first") as again:
        task.wait(WAIT)  # after completion too
    assert first.value is again.value


def test_wait_on_a_canceled_task_raises_task_canceled(scheduler: tl.TaskScheduler) -> None:
    task = tl.Task(lambda: 1)
    assert task.cancel()
    with pytest.raises(tl.TaskCanceledError) as info:
        task.wait(WAIT)
    assert info.value.task is task
    assert isinstance(info.value, concurrent.futures.CancelledError)
    with pytest.raises(tl.TaskCanceledError):
        task.result()
    with pytest.raises(tl.TaskCanceledError):
        task.exception()  # Future semantics: a canceled task has no exception to return


def test_wait_times_out_with_false(scheduler: tl.TaskScheduler) -> None:
    gate = threading.Event()
    task = tl.start_new(gated, gate, scheduler=scheduler)
    assert task.wait(0) is False
    assert task.wait(0.05) is False
    with pytest.raises(TimeoutError):
        task.result(timeout=0.01)
    with pytest.raises(TimeoutError):
        task.exception(timeout=0.01)
    gate.set()
    assert task.wait(WAIT) is True


def test_wait_raises_operation_canceled_for_a_canceled_token(scheduler: tl.TaskScheduler) -> None:
    gate = threading.Event()
    task = tl.start_new(gated, gate, scheduler=scheduler)
    with tl.CancellationTokenSource() as cts:
        cts.cancel()
        with pytest.raises(tl.OperationCanceledError) as info:
            task.wait(WAIT, cts.token)
        assert info.value.token == cts.token
    # canceled while waiting, from another thread
    with tl.CancellationTokenSource() as cts:
        threading.Timer(0.05, cts.cancel).start()
        with pytest.raises(tl.OperationCanceledError):
            task.wait(WAIT, cts.token)
    assert not task.is_completed  # the waited-on task is not affected
    gate.set()
    assert task.wait(WAIT, tl.CancellationToken.NONE)


def test_a_single_fault_is_raised_as_itself_with_its_traceback(
    scheduler: tl.TaskScheduler,
) -> None:
    def failing_body() -> None:
        raise KeyError("k")

    task = tl.start_new(failing_body, scheduler=scheduler)
    exc = task.exception(WAIT)
    assert isinstance(exc, KeyError)
    with pytest.raises(KeyError) as info:
        task.result()
    assert info.value is exc
    names = [frame.name for frame in traceback.extract_tb(exc.__traceback__)]
    assert "failing_body" in names


def test_several_faults_are_one_aggregate_error(scheduler: tl.TaskScheduler) -> None:
    def parent() -> None:
        for msg in ("a", "b"):
            tl.start_new(boom, msg, options=TCR.ATTACHED_TO_PARENT, scheduler=scheduler)
        raise KeyError("own")

    task = tl.start_new(parent, scheduler=scheduler)
    agg = task.exception(WAIT)
    assert isinstance(agg, tl.AggregateError)
    assert isinstance(agg.exceptions[0], KeyError)  # its own exception first
    assert sorted(str(e) for e in agg.exceptions[1:]) == ["a", "b"]
    with pytest.raises(tl.AggregateError) as info:
        task.result()
    assert info.value is agg
    with pytest.raises(tl.AggregateError) as waited:
        task.wait()
    assert waited.value is agg


@any_scheduler
def test_several_faults_with_a_base_exception_are_a_base_exception_group() -> None:
    """Regression: an ExceptionGroup cannot hold KeyboardInterrupt; result() raised TypeError."""
    tcs: tl.TaskCompletionSource[int] = tl.TaskCompletionSource()
    errors = [KeyboardInterrupt(), ValueError("v")]
    tcs.set_exception(errors)
    with pytest.raises(BaseExceptionGroup) as info:
        tcs.task.result()
    assert list(info.value.exceptions) == errors
    assert tcs.task.exception() is info.value
    with pytest.raises(BaseExceptionGroup) as waited:
        tl.wait_all(tl.from_exception(SystemExit(1)), tl.from_exception(KeyError("k")))
    assert [type(e) for e in waited.value.exceptions] == [SystemExit, KeyError]


def test_exception_of_a_successful_task_is_none(scheduler: tl.TaskScheduler) -> None:
    task = tl.start_new(lambda: 3, scheduler=scheduler)
    assert task.exception(WAIT) is None
    assert task.result() == 3


# == cancel() ===============================================================================


def test_cancel_before_start(scheduler: tl.TaskScheduler) -> None:
    ran = threading.Event()
    task = tl.Task(ran.set)
    assert task.cancel() is True
    assert task.status is S.CANCELED
    assert task.cancel() is True  # already canceled
    with pytest.raises(tl.InvalidOperationError, match="completed"):
        task.start(scheduler)
    assert not ran.is_set()


def test_cancel_of_a_queued_task_wins_over_the_scheduler() -> None:
    holder = HoldingScheduler()
    ran = threading.Event()
    task = tl.Task(ran.set)
    task.start(holder)
    assert task.cancel() is True
    assert holder.release() == [False]
    assert task.status is S.CANCELED
    assert not ran.is_set()


def test_cancel_while_running_fails_and_the_task_completes(scheduler: tl.TaskScheduler) -> None:
    gate, started = threading.Event(), threading.Event()
    task = tl.start_new(gated, gate, started, 9, scheduler=scheduler)
    assert started.wait(WAIT)
    assert task.cancel() is False
    assert task.status is S.RUNNING
    gate.set()
    assert task.result(WAIT) == 9
    assert task.cancel() is False  # completed


# == continuations =========================================================================

_OUTCOMES = ("ran", "faulted", "canceled")

# option -> the antecedent outcomes it lets the continuation run on
_FILTERS: dict[TCO, set[str]] = {
    TCO.NONE: {"ran", "faulted", "canceled"},
    TCO.NOT_ON_RAN_TO_COMPLETION: {"faulted", "canceled"},
    TCO.NOT_ON_FAULTED: {"ran", "canceled"},
    TCO.NOT_ON_CANCELED: {"ran", "faulted"},
    TCO.ONLY_ON_RAN_TO_COMPLETION: {"ran"},
    TCO.ONLY_ON_FAULTED: {"faulted"},
    TCO.ONLY_ON_CANCELED: {"canceled"},
}


def _complete(tcs: tl.TaskCompletionSource[int], outcome: str) -> None:
    if outcome == "ran":
        tcs.set_result(1)
    elif outcome == "faulted":
        tcs.set_exception(ValueError("antecedent"))
    else:
        tcs.set_canceled()


@pytest.mark.parametrize("outcome", _OUTCOMES)
@pytest.mark.parametrize("option", list(_FILTERS), ids=lambda o: o.name)
def test_continuation_filters(scheduler: tl.TaskScheduler, option: TCO, outcome: str) -> None:
    tcs: tl.TaskCompletionSource[int] = tl.TaskCompletionSource()
    seen: list[tl.Task[int]] = []
    cont = tcs.task.continue_with(seen.append, options=option, scheduler=scheduler)
    _complete(tcs, outcome)
    if outcome in _FILTERS[option]:
        assert cont.wait(WAIT)
        assert seen == [tcs.task]
    else:
        with pytest.raises(tl.TaskCanceledError):
            cont.wait(WAIT)
        assert cont.status is S.CANCELED
        assert seen == []
    if outcome == "faulted":
        tcs.task.exception()


@pytest.mark.parametrize("outcome", _OUTCOMES)
@any_scheduler
def test_continuation_on_an_already_completed_task(
    scheduler: tl.TaskScheduler, outcome: str
) -> None:
    tcs: tl.TaskCompletionSource[int] = tl.TaskCompletionSource()
    _complete(tcs, outcome)
    cont = tcs.task.continue_with(lambda a, x: (a.status, x), "arg", scheduler=scheduler)
    assert cont.result(WAIT) == (tcs.task.status, "arg")
    if outcome == "faulted":
        tcs.task.exception()


def test_continuation_runs_on_the_given_scheduler(scheduler: tl.TaskScheduler) -> None:
    cont = tl.from_result(1).continue_with(
        lambda a: tl.TaskScheduler.current(), scheduler=scheduler
    )
    assert cont.result(WAIT) is scheduler


def test_execute_synchronously_runs_on_the_thread_of_the_antecedent(
    scheduler: tl.TaskScheduler,
) -> None:
    gate = threading.Event()

    def antecedent() -> int:
        gate.wait(WAIT)
        return threading.get_ident()

    task = tl.start_new(antecedent, scheduler=scheduler)
    cont = task.continue_with(
        lambda a: (a.result(), threading.get_ident()),
        options=TCO.EXECUTE_SYNCHRONOUSLY,
        scheduler=scheduler,
    )
    gate.set()
    body_thread, cont_thread = cont.result(WAIT)
    assert cont_thread == body_thread


@needs_inlining
def test_execute_synchronously_runs_on_the_completing_thread(scheduler: tl.TaskScheduler) -> None:
    tcs: tl.TaskCompletionSource[int] = tl.TaskCompletionSource()
    cont = tcs.task.continue_with(
        lambda a: threading.get_ident(), options=TCO.EXECUTE_SYNCHRONOUSLY, scheduler=scheduler
    )
    completer = threading.Thread(target=tcs.set_result, args=(1,))
    completer.start()
    completer.join(WAIT)
    assert cont.is_completed  # it ran inside set_result
    assert cont.result() == completer.ident


@pytest.mark.parametrize("where", ["antecedent", "continuation"])
def test_run_continuations_asynchronously(scheduler: tl.TaskScheduler, where: str) -> None:
    """The antecedent's RUN_CONTINUATIONS_ASYNCHRONOUSLY beats the continuation's
    EXECUTE_SYNCHRONOUSLY: completing it never runs a continuation inline."""
    opts = TCR.RUN_CONTINUATIONS_ASYNCHRONOUSLY
    gate = threading.Event()
    if where == "antecedent":
        tcs: tl.TaskCompletionSource[int] = tl.TaskCompletionSource(options=opts)
        antecedent = tcs.task
    else:
        tcs = tl.TaskCompletionSource()
        antecedent = tcs.task.continue_with(
            lambda a: a.result(),
            options=TCO.RUN_CONTINUATIONS_ASYNCHRONOUSLY | TCO.EXECUTE_SYNCHRONOUSLY,
            scheduler=scheduler,
        )
        assert antecedent.creation_options & opts

    def cont_body(a: tl.Task[int]) -> int:
        assert gate.wait(WAIT)
        return threading.get_ident()

    cont = antecedent.continue_with(
        cont_body, options=TCO.EXECUTE_SYNCHRONOUSLY, scheduler=scheduler
    )
    tcs.set_result(1)  # would block forever on the gate if the continuation ran inline
    assert antecedent.wait(WAIT)
    gate.set()
    assert cont.result(WAIT) != threading.get_ident()


def test_lazy_cancellation_waits_for_the_antecedent(scheduler: tl.TaskScheduler) -> None:
    gate, started = threading.Event(), threading.Event()
    antecedent = tl.start_new(gated, gate, started, scheduler=scheduler)
    assert started.wait(WAIT)
    ran: list[int] = []
    with tl.CancellationTokenSource() as cts:
        eager = antecedent.continue_with(
            lambda a: ran.append(1), token=cts.token, scheduler=scheduler
        )
        lazy = antecedent.continue_with(
            lambda a: ran.append(2),
            token=cts.token,
            options=TCO.LAZY_CANCELLATION,
            scheduler=scheduler,
        )
        cts.cancel()
        assert eager.status is S.CANCELED  # completes before its antecedent
        assert not lazy.is_completed  # does not
        gate.set()
        assert antecedent.wait(WAIT)
        with pytest.raises(tl.TaskCanceledError):
            lazy.wait(WAIT)
    assert ran == []


def test_continuation_attached_to_parent(scheduler: tl.TaskScheduler) -> None:
    tcs: tl.TaskCompletionSource[int] = tl.TaskCompletionSource()

    def parent() -> str:
        tcs.task.continue_with(
            lambda a: a.result(), options=TCO.ATTACHED_TO_PARENT, scheduler=scheduler
        )
        return "p"

    task = tl.start_new(parent, scheduler=scheduler)
    eventually(lambda: status(task) is S.WAITING_FOR_CHILDREN_TO_COMPLETE)
    tcs.set_result(1)
    assert task.result(WAIT) == "p"


def test_continuation_hide_scheduler(scheduler: tl.TaskScheduler) -> None:
    cont = tl.from_result(1).continue_with(
        lambda a: tl.TaskScheduler.current(), options=TCO.HIDE_SCHEDULER, scheduler=scheduler
    )
    assert cont.result(WAIT) is tl.TaskScheduler.default()


def test_continuation_with_a_canceled_token_never_runs(scheduler: tl.TaskScheduler) -> None:
    with tl.CancellationTokenSource() as cts:
        cts.cancel()
        cont = tl.from_result(1).continue_with(
            lambda a: 1 / 0, token=cts.token, scheduler=scheduler
        )
    assert cont.status is S.CANCELED


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sync", [False, True], ids=["queued", "synchronous"])
def test_chain_of_a_thousand_continuations(scheduler: tl.TaskScheduler, sync: bool) -> None:
    tcs: tl.TaskCompletionSource[int] = tl.TaskCompletionSource()
    task: tl.Task[int] = tcs.task
    opts = TCO.EXECUTE_SYNCHRONOUSLY if sync else TCO.NONE
    for _ in range(1000):
        task = task.continue_with(lambda a: a.result() + 1, options=opts, scheduler=scheduler)
    tcs.set_result(0)
    assert task.result(WAIT * 2) == 1000


@pytest.mark.timeout(120)
@any_scheduler
def test_chain_of_a_thousand_thens(scheduler: tl.TaskScheduler) -> None:
    task = tl.start_new(lambda: 0, scheduler=scheduler)
    for _ in range(1000):
        task = task.then(lambda v: v + 1, scheduler=scheduler)
    assert task.result(WAIT * 2) == 1000


_SYNCHRONOUS_LINKS: dict[str, Callable[[tl.Task[Any], tl.TaskScheduler], tl.Task[Any]]] = {
    # each link completes on the thread that completes the one before it
    "then_passing_a_fault": lambda t, s: t.then(lambda v: v, scheduler=s),
    "filtered_out": lambda t, s: t.continue_with(
        lambda a: a, options=TCO.ONLY_ON_RAN_TO_COMPLETION, scheduler=s
    ),
    "when_all": lambda t, s: tl.when_all(t),
    "when_any": lambda t, s: tl.when_any(t).unwrap(),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("link", list(_SYNCHRONOUS_LINKS))
def test_long_chains_completing_synchronously_do_not_overflow_the_stack(
    scheduler: tl.TaskScheduler, link: str
) -> None:
    """Regression: past ~300 links these chains hit RecursionError and never completed."""
    tcs: tl.TaskCompletionSource[int] = tl.TaskCompletionSource()
    task: tl.Task[Any] = tcs.task
    for _ in range(2000):
        task = _SYNCHRONOUS_LINKS[link](task, scheduler)
    tcs.set_exception(KeyError("root"))
    expected: type[BaseException] = tl.TaskCanceledError if link == "filtered_out" else KeyError
    with pytest.raises(expected):
        task.wait(WAIT * 2)


@pytest.mark.timeout(120)
def test_attached_children_nested_a_thousand_deep(scheduler: tl.TaskScheduler) -> None:
    """Regression: the leaf's completion cascades up 1000 waiting parents at once."""
    gate = threading.Event()
    levels: list[tl.Task[Any]] = []
    lock = threading.Lock()

    def level(depth: int) -> int:
        if depth == 0:
            assert gate.wait(WAIT)
            return 0
        child = tl.start_new(level, depth - 1, options=TCR.ATTACHED_TO_PARENT, scheduler=scheduler)
        with lock:
            levels.append(child)
        return depth

    root = tl.start_new(level, 1000, scheduler=scheduler)
    with lock:
        levels.append(root)
    eventually(lambda: len(levels) == 1001)
    waiting = S.WAITING_FOR_CHILDREN_TO_COMPLETE
    eventually(lambda: sum(status(t) is waiting for t in levels) == 1000)
    gate.set()  # now the leaf completes, and with it every parent, one after the other
    assert root.result(WAIT * 2) == 1000
    assert all(t.is_completed_successfully for t in levels)


def test_many_continuations_on_one_antecedent(scheduler: tl.TaskScheduler) -> None:
    tcs: tl.TaskCompletionSource[int] = tl.TaskCompletionSource()
    conts = [
        tcs.task.continue_with(lambda a, i: a.result() + i, i, scheduler=scheduler)
        for i in range(300)
    ]
    tcs.set_result(1000)
    assert tl.wait_all(*conts, timeout=WAIT)
    assert [c.result() for c in conts] == [1000 + i for i in range(300)]


def test_run_unwraps_a_returned_task_and_start_new_does_not(scheduler: tl.TaskScheduler) -> None:
    def make_inner() -> tl.Task[int]:
        return tl.start_new(lambda: 5, scheduler=scheduler)

    assert tl.run(make_inner, scheduler=scheduler).result(WAIT) == 5
    inner = tl.start_new(make_inner, scheduler=scheduler).result(WAIT)
    assert isinstance(inner, tl.Task)
    assert inner.result(WAIT) == 5
    fut: concurrent.futures.Future[str] = concurrent.futures.Future()
    follows = tl.run(lambda: fut, scheduler=scheduler)
    assert not follows.wait(0.01)
    fut.set_result("from the future")
    assert follows.result(WAIT) == "from the future"


def test_continue_with_does_not_unwrap(scheduler: tl.TaskScheduler) -> None:
    inner = tl.from_result(5)
    outer = tl.from_result(1).continue_with(lambda a: inner, scheduler=scheduler)
    assert outer.result(WAIT) is inner
    assert outer.unwrap().result(WAIT) == 5


def test_continuation_reading_the_fault_observes_it(scheduler: tl.TaskScheduler) -> None:
    task = tl.start_new(boom, "seen", scheduler=scheduler)
    cont = task.continue_with(lambda a: str(a.exception()), scheduler=scheduler)
    assert cont.result(WAIT) == "seen"


# == then ==================================================================================


@any_scheduler
def test_then_passes_the_value_and_extra_args(scheduler: tl.TaskScheduler) -> None:
    task = tl.start_new(lambda: 20, scheduler=scheduler).then(
        lambda v, a, b: v + a + b, 1, 2, scheduler=scheduler
    )
    assert task.result(WAIT) == 23


@any_scheduler
def test_then_takes_over_a_fault_without_calling_fn(scheduler: tl.TaskScheduler) -> None:
    called: list[object] = []
    task = tl.start_new(boom, "origin", scheduler=scheduler)
    chained = task.then(called.append, scheduler=scheduler).then(called.append, scheduler=scheduler)
    exc = chained.exception(WAIT)
    assert isinstance(exc, ValueError)
    assert str(exc) == "origin"
    assert chained.is_faulted
    assert called == []


def test_then_takes_over_a_cancellation_without_calling_fn(scheduler: tl.TaskScheduler) -> None:
    called: list[object] = []
    chained = tl.from_canceled().then(called.append, scheduler=scheduler)
    with pytest.raises(tl.TaskCanceledError):
        chained.wait(WAIT)
    assert chained.is_canceled
    assert called == []


def test_then_unwraps_a_returned_task(scheduler: tl.TaskScheduler) -> None:
    gate = threading.Event()
    inner_holder: list[tl.Task[Any]] = []

    def start_inner(v: int) -> tl.Task[int]:
        inner = tl.start_new(gated, gate, None, v * 10, scheduler=scheduler)
        inner_holder.append(inner)
        return inner

    task = tl.from_result(4).then(start_inner, scheduler=scheduler)
    eventually(lambda: bool(inner_holder))
    assert not task.wait(0.01)  # follows the inner task, not the function's return
    gate.set()
    assert task.result(WAIT) == 40


@pytest.mark.parametrize("outcome", ["faulted", "canceled"])
def test_then_unwrapping_takes_the_inner_outcome(scheduler: tl.TaskScheduler, outcome: str) -> None:
    inner: tl.Task[Any] = (
        tl.from_exception(KeyError("inner")) if outcome == "faulted" else tl.from_canceled()
    )
    task = tl.from_result(1).then(lambda v: inner, scheduler=scheduler)
    if outcome == "faulted":
        assert isinstance(task.exception(WAIT), KeyError)
    else:
        with pytest.raises(tl.TaskCanceledError):
            task.wait(WAIT)


# == unwrap ================================================================================


def test_unwrap(scheduler: tl.TaskScheduler) -> None:
    outer = tl.start_new(
        lambda: tl.start_new(lambda: "in", scheduler=scheduler), scheduler=scheduler
    )
    assert outer.unwrap().result(WAIT) == "in"
    faulted_outer = tl.start_new(boom, "out", scheduler=scheduler).unwrap()
    assert str(faulted_outer.exception(WAIT)) == "out"
    faulted_inner = tl.start_new(lambda: tl.from_exception(KeyError("in")), scheduler=scheduler)
    faulted_inner = faulted_inner.unwrap()
    assert isinstance(faulted_inner.exception(WAIT), KeyError)
    canceled_inner = tl.start_new(tl.from_canceled, scheduler=scheduler).unwrap()
    with pytest.raises(tl.TaskCanceledError):
        canceled_inner.wait(WAIT)


# == when_all / when_any and the operators ==================================================


def test_when_all_results_in_argument_order(scheduler: tl.TaskScheduler) -> None:
    gates = [threading.Event() for _ in range(3)]
    tasks = [tl.start_new(gated, g, None, i, scheduler=scheduler) for i, g in enumerate(gates)]
    both = tl.when_all(*tasks)
    for g in reversed(gates):
        assert not both.is_completed
        g.set()
    assert both.result(WAIT) == [0, 1, 2]


@any_scheduler
def test_when_all_faults_with_every_exception(scheduler: tl.TaskScheduler) -> None:
    tasks = [
        tl.start_new(boom, "x", scheduler=scheduler),
        tl.start_new(lambda: 1, scheduler=scheduler),
        tl.start_new(boom, "y", scheduler=scheduler),
        tl.from_canceled(),
    ]
    combined = tl.when_all(*tasks)
    agg = combined.exception(WAIT)
    assert isinstance(agg, tl.AggregateError)
    assert sorted(str(e) for e in agg.exceptions) == ["x", "y"]
    assert combined.is_faulted


def test_when_all_is_canceled_if_one_is_canceled_and_none_faulted() -> None:
    combined = tl.when_all(tl.from_result(1), tl.from_canceled())
    assert combined.is_canceled
    assert tl.when_all().result() == []


@any_scheduler
def test_when_all_accepts_plain_futures(scheduler: tl.TaskScheduler) -> None:
    fut: concurrent.futures.Future[int] = concurrent.futures.Future()
    combined = tl.when_all(tl.start_new(lambda: 1, scheduler=scheduler), fut)
    fut.set_result(2)
    assert combined.result(WAIT) == [1, 2]


def test_when_any_result_is_the_winning_task_even_if_it_faulted(
    scheduler: tl.TaskScheduler,
) -> None:
    gate = threading.Event()
    slow = tl.start_new(gated, gate, scheduler=scheduler)
    fast = tl.start_new(boom, "fast", scheduler=scheduler)
    first = tl.when_any(slow, fast)
    assert first.result(WAIT) is fast
    assert first.is_completed_successfully
    gate.set()
    assert slow.wait(WAIT)
    fast.exception()


@any_scheduler
def test_when_any_lets_go_of_long_lived_losers(scheduler: tl.TaskScheduler) -> None:
    """Regression: the decided race stayed in the losers' continuation lists (a leak)."""
    shutdown_signal: tl.TaskCompletionSource[None] = tl.TaskCompletionSource()
    winners: weakref.WeakSet[tl.Task[Any]] = weakref.WeakSet()
    for _ in range(50):
        work = tl.start_new(lambda: bytearray(10_000), scheduler=scheduler)
        first = tl.when_any(work, shutdown_signal.task)
        assert first.result(WAIT) is work
        either = work | shutdown_signal.task
        assert either.result(WAIT) is work
        winners.add(work)
    del work, first, either
    collect_until(lambda: len(winners) == 0)  # nothing reachable from the signal keeps them
    shutdown_signal.set_result(None)


def test_and_operator_flattens(scheduler: tl.TaskScheduler) -> None:
    a, b, c = (tl.start_new(lambda i=i: i, scheduler=scheduler) for i in range(3))
    assert ((a & b) & c).result(WAIT) == [0, 1, 2]
    assert (a & (b & c)).result(WAIT) == [0, 1, 2]
    assert (a & b & c & a).result(WAIT) == [0, 1, 2, 0]


def test_or_operator_flattens(scheduler: tl.TaskScheduler) -> None:
    gate = threading.Event()
    a = tl.start_new(gated, gate, scheduler=scheduler)
    b = tl.start_new(gated, gate, scheduler=scheduler)
    c = tl.from_result("c")
    assert ((a | b) | c).result(WAIT) is c  # the task itself, not a nested when_any
    assert (c | (a | b)).result(WAIT) is c
    gate.set()
    assert tl.wait_all(a, b, timeout=WAIT)


# == wait_all / wait_any ==================================================================


def test_wait_all(scheduler: tl.TaskScheduler) -> None:
    gate = threading.Event()
    tasks = [tl.start_new(gated, gate, scheduler=scheduler) for _ in range(2)]
    assert tl.wait_all(*tasks, timeout=0.02) is False
    gate.set()
    assert tl.wait_all(*tasks, timeout=WAIT) is True
    assert tl.wait_all() is True


@any_scheduler
def test_wait_all_raises_like_when_all(scheduler: tl.TaskScheduler) -> None:
    one = tl.start_new(boom, "one", scheduler=scheduler)
    with pytest.raises(ValueError, match="one"):
        tl.wait_all(one, tl.start_new(lambda: 1, scheduler=scheduler), timeout=WAIT)
    two = tl.start_new(boom, "two", scheduler=scheduler)
    with pytest.raises(tl.AggregateError) as info:
        tl.wait_all(one, two, tl.from_canceled(), timeout=WAIT)
    assert sorted(str(e) for e in info.value.exceptions) == ["one", "two"]
    with pytest.raises(tl.TaskCanceledError):
        tl.wait_all(tl.from_result(1), tl.from_canceled())


def test_wait_all_with_a_canceled_token(scheduler: tl.TaskScheduler) -> None:
    gate = threading.Event()
    task = tl.start_new(gated, gate, scheduler=scheduler)
    with tl.CancellationTokenSource() as cts:
        cts.cancel_after(0.02)
        with pytest.raises(tl.OperationCanceledError):
            tl.wait_all(task, timeout=WAIT, token=cts.token)
    gate.set()
    assert task.wait(WAIT)


def test_wait_any(scheduler: tl.TaskScheduler) -> None:
    gate = threading.Event()
    slow = tl.start_new(gated, gate, scheduler=scheduler)
    assert tl.wait_any(slow, timeout=0.02) == -1
    failing = tl.start_new(boom, scheduler=scheduler)
    assert tl.wait_any(slow, failing, timeout=WAIT) == 1  # does not raise
    with tl.CancellationTokenSource() as cts:
        cts.cancel()
        with pytest.raises(tl.OperationCanceledError):
            tl.wait_any(slow, token=cts.token)
    gate.set()
    assert slow.wait(WAIT)
    assert tl.wait_any(slow, failing) == 0
    failing.exception()


# == delay and the from_* constructors =======================================================


def test_delay_completes_and_is_cancelable() -> None:
    assert tl.delay(0.01).wait(WAIT)
    assert tl.delay(0).is_completed_successfully
    with tl.CancellationTokenSource() as cts:
        long = tl.delay(3600, token=cts.token)
        assert not long.is_completed
        cts.cancel()
        assert long.is_canceled
        # a token canceled before the call wins, even over a zero delay (as in TPL)
        assert tl.delay(0, token=cts.token).is_canceled
        assert tl.delay(3600, token=cts.token).is_canceled


def test_delays_share_one_timer_thread() -> None:
    tl.delay(0.001).wait(WAIT)  # the timer thread exists from here on
    before = threading.active_count()
    with tl.CancellationTokenSource() as cts:
        delays = [tl.delay(3600, token=cts.token) for _ in range(100)]
        assert threading.active_count() <= before + 3  # not one per delay
        cts.cancel()
    assert all(d.is_canceled for d in delays)


def test_from_constructors() -> None:
    assert tl.from_result(3).result() == 3
    assert tl.from_result(3).status is S.RAN_TO_COMPLETION
    err = KeyError("e")
    faulted = tl.from_exception(err)
    assert faulted.is_faulted
    assert faulted.exception() is err
    assert tl.from_canceled().is_canceled
    with tl.CancellationTokenSource() as cts:
        cts.cancel()
        canceled = tl.from_canceled(cts.token)
        with pytest.raises(tl.TaskCanceledError) as info:
            canceled.result()
        assert info.value.token == cts.token
    done = tl.completed_task()
    assert done.is_completed_successfully
    assert done.result() is None
    assert tl.completed_task() is done


# == TaskCompletionSource ==================================================================


def test_completion_source_set_result_once() -> None:
    tcs: tl.TaskCompletionSource[int] = tl.TaskCompletionSource()
    assert not tcs.task.is_completed
    tcs.set_result(1)
    assert tcs.task.result() == 1
    with pytest.raises(tl.InvalidOperationError, match="already completed"):
        tcs.set_result(2)
    with pytest.raises(tl.InvalidOperationError):
        tcs.set_exception(ValueError())
    with pytest.raises(tl.InvalidOperationError):
        tcs.set_canceled()
    assert tcs.try_set_result(3) is False
    assert tcs.try_set_exception(ValueError()) is False
    assert tcs.try_set_canceled() is False
    assert tcs.task.result() == 1


def test_completion_source_try_methods() -> None:
    tcs: tl.TaskCompletionSource[int] = tl.TaskCompletionSource()
    assert tcs.try_set_result(5) is True
    assert tcs.task.result() == 5
    tcs2: tl.TaskCompletionSource[int] = tl.TaskCompletionSource()
    assert tcs2.try_set_canceled() is True
    assert tcs2.task.is_canceled
    tcs3: tl.TaskCompletionSource[int] = tl.TaskCompletionSource()
    assert tcs3.try_set_exception(KeyError("k")) is True
    assert isinstance(tcs3.task.exception(), KeyError)


def test_completion_source_set_exception_with_an_iterable() -> None:
    tcs: tl.TaskCompletionSource[int] = tl.TaskCompletionSource()
    errors = (ValueError("a"), KeyError("b"))
    tcs.set_exception(e for e in errors)
    agg = tcs.task.exception()
    assert isinstance(agg, tl.AggregateError)
    assert agg.exceptions == errors
    single: tl.TaskCompletionSource[int] = tl.TaskCompletionSource()
    single.set_exception([errors[0]])
    assert single.task.exception() is errors[0]


def test_completion_source_set_canceled_with_token() -> None:
    with tl.CancellationTokenSource() as cts:
        tcs: tl.TaskCompletionSource[int] = tl.TaskCompletionSource()
        tcs.set_canceled(cts.token)
        with pytest.raises(tl.TaskCanceledError) as info:
            tcs.task.result()
        assert info.value.token == cts.token


def test_completion_source_completed_from_another_thread_wakes_waiters() -> None:
    tcs: tl.TaskCompletionSource[str] = tl.TaskCompletionSource()
    threading.Timer(0.01, tcs.set_result, ["late"]).start()
    assert tcs.task.result(WAIT) == "late"


# == children ===============================================================================


def test_ten_attached_children_complete_before_the_parent(scheduler: tl.TaskScheduler) -> None:
    done: list[int] = []
    lock = threading.Lock()

    def child(i: int) -> None:
        with lock:
            done.append(i)

    def parent() -> None:
        for i in range(10):
            tl.start_new(child, i, options=TCR.ATTACHED_TO_PARENT, scheduler=scheduler)

    task = tl.start_new(parent, scheduler=scheduler)
    finished_with = task.continue_with(lambda a: sorted(done), scheduler=scheduler)
    assert task.wait(WAIT)
    assert sorted(done) == list(range(10))
    assert finished_with.result(WAIT) == list(range(10))


def test_detached_children_are_independent(scheduler: tl.TaskScheduler) -> None:
    gate = threading.Event()
    children: list[tl.Task[Any]] = []

    def parent() -> str:
        children.append(tl.start_new(gated, gate, scheduler=scheduler))
        children.append(tl.start_new(boom, scheduler=scheduler))
        return "parent"

    task = tl.start_new(parent, scheduler=scheduler)
    assert task.result(WAIT) == "parent"  # neither waits for nor takes faults from them
    assert not children[0].is_completed
    gate.set()
    assert children[0].wait(WAIT)
    assert children[1].exception(WAIT) is not None


def test_parent_takes_child_exceptions_and_faults(scheduler: tl.TaskScheduler) -> None:
    def parent() -> int:
        tl.start_new(boom, "child", options=TCR.ATTACHED_TO_PARENT, scheduler=scheduler)
        return 1

    task = tl.start_new(parent, scheduler=scheduler)
    with pytest.raises(ValueError, match="child"):
        task.wait(WAIT)
    assert task.is_faulted


def test_attached_child_canceled_with_the_parents_token(scheduler: tl.TaskScheduler) -> None:
    with tl.CancellationTokenSource() as cts:

        def child() -> None:
            cts.cancel()
            cts.token.throw_if_cancellation_requested()

        def parent() -> None:
            tl.start_new(
                child, token=cts.token, options=TCR.ATTACHED_TO_PARENT, scheduler=scheduler
            )

        task = tl.start_new(parent, token=cts.token, scheduler=scheduler)
        agg = task.exception(WAIT)
    assert isinstance(agg, tl.TaskCanceledError)
    assert task.is_faulted


@pytest.mark.parametrize("how", ["deny_option", "run"])
def test_deny_child_attach(scheduler: tl.TaskScheduler, how: str) -> None:
    gate = threading.Event()
    children: list[tl.Task[Any]] = []

    def parent() -> str:
        children.append(
            tl.start_new(gated, gate, options=TCR.ATTACHED_TO_PARENT, scheduler=scheduler)
        )
        children.append(tl.start_new(boom, options=TCR.ATTACHED_TO_PARENT, scheduler=scheduler))
        return "p"

    if how == "run":
        task = tl.run(parent, scheduler=scheduler)
    else:
        task = tl.start_new(parent, options=TCR.DENY_CHILD_ATTACH, scheduler=scheduler)
    assert task.result(WAIT) == "p"  # did not wait for the gated child, nor take the fault
    assert not children[0].is_completed
    gate.set()
    assert children[0].wait(WAIT)
    children[1].exception(WAIT)


def test_child_never_runs_if_the_parent_was_canceled_before_it_started(
    scheduler: tl.TaskScheduler,
) -> None:
    holder = HoldingScheduler()  # keeps the child queued while the parent cancels
    ran = threading.Event()
    children: list[tl.Task[Any]] = []
    with tl.CancellationTokenSource() as cts:

        def parent() -> None:
            children.append(tl.start_new(ran.set, options=TCR.ATTACHED_TO_PARENT, scheduler=holder))
            cts.cancel()
            cts.token.throw_if_cancellation_requested()

        task = tl.start_new(parent, token=cts.token, scheduler=scheduler)
        eventually(lambda: task.status is S.WAITING_FOR_CHILDREN_TO_COMPLETE)
        assert holder.release() == [False]
    assert children[0].is_canceled
    assert not ran.is_set()
    with pytest.raises(tl.TaskCanceledError):
        task.wait(WAIT)


# == cancellation tokens ===================================================================


def test_token_source_cancel() -> None:
    with tl.CancellationTokenSource() as cts:
        token = cts.token
        assert token.can_be_canceled
        assert not cts.is_cancellation_requested
        assert not token.is_cancellation_requested
        cts.cancel()
        assert cts.is_cancellation_requested
        assert token.is_cancellation_requested
        cts.cancel()  # idempotent
        assert token == cts.token
        assert token != tl.CancellationToken.NONE


def test_token_none() -> None:
    none = tl.CancellationToken.NONE
    assert not none.can_be_canceled
    assert not none.is_cancellation_requested
    assert none.wait(0.001) is False
    none.throw_if_cancellation_requested()
    with pytest.raises(tl.InvalidOperationError):
        none.wait()


@pytest.mark.parametrize("how", ["cancel_after", "delay"])
def test_cancel_after(how: str) -> None:
    cts = tl.CancellationTokenSource(0.02) if how == "delay" else tl.CancellationTokenSource()
    with cts:
        if how == "cancel_after":
            cts.cancel_after(0.02)
        assert cts.token.wait(WAIT) is True
        assert cts.is_cancellation_requested


@contextlib.contextmanager
def timer_thread_held() -> Iterator[None]:
    """Keep the shared timer thread busy: no timer fires until the block ends.

    Checks that a timer does *not* fire then cannot fail because the machine is
    slow: a timer replaced or released inside the block is overdue when it ends.
    """
    inside, gate = threading.Event(), threading.Event()
    holder = tl.CancellationTokenSource()

    def hold() -> None:
        inside.set()
        gate.wait(WAIT)

    holder.token.register(hold)
    holder.cancel_after(0)  # its callbacks run on the timer thread
    assert inside.wait(WAIT)
    try:
        yield
        threading.Event().wait(0.02)  # let short timers set inside become overdue
    finally:
        gate.set()
        holder.close()


def test_cancel_after_is_replaced_by_a_later_call() -> None:
    with tl.CancellationTokenSource() as cts:
        with timer_thread_held():
            cts.cancel_after(0.01)
            cts.cancel_after(3600)
        assert cts.token.wait(0.2) is False  # the overdue first timer was replaced
    with tl.CancellationTokenSource() as cts:
        cts.cancel_after(3600)
        cts.cancel_after(0.01)
        assert cts.token.wait(WAIT) is True


def test_linked_sources() -> None:
    with tl.CancellationTokenSource() as a, tl.CancellationTokenSource() as b:
        linked = tl.CancellationTokenSource.create_linked(
            a.token, b.token, tl.CancellationToken.NONE
        )
        assert not linked.is_cancellation_requested
        b.cancel()
        assert linked.is_cancellation_requested
        assert not a.is_cancellation_requested
        own = tl.CancellationTokenSource.create_linked(a.token)
        own.cancel()
        assert not a.is_cancellation_requested  # a link goes one way
        linked.close()
        own.close()


def test_linked_to_an_already_canceled_token() -> None:
    with tl.CancellationTokenSource() as a:
        a.cancel()
        with tl.CancellationTokenSource.create_linked(a.token) as linked:
            assert linked.is_cancellation_requested


def test_close_and_context_manager() -> None:
    with timer_thread_held(), tl.CancellationTokenSource() as cts:
        cts.cancel_after(0.01)
    # closed: the timer was released, so it never fires (though overdue)
    assert not cts.token.wait(0.2)
    with pytest.raises(tl.InvalidOperationError, match="closed"):
        cts.cancel()
    with tl.CancellationTokenSource() as a:
        linked = tl.CancellationTokenSource.create_linked(a.token)
        linked.close()
        a.cancel()
        assert not linked.is_cancellation_requested  # close removed the link
    done = tl.CancellationTokenSource()
    done.cancel()
    done.close()
    assert done.token.is_cancellation_requested  # the token keeps its state


def test_register_and_unregister() -> None:
    calls: list[str] = []
    with tl.CancellationTokenSource() as cts:
        first = cts.token.register(lambda: calls.append("first"))
        removed = cts.token.register(lambda: calls.append("removed"))
        cts.token.register(lambda: calls.append("last"))
        assert removed.unregister() is True
        assert removed.unregister() is False
        cts.cancel()
        assert calls == ["last", "first"]  # most recently registered first
        assert first.unregister() is False  # already ran
        cts.token.register(lambda: calls.append("late"))  # runs at once, here
        assert calls == ["last", "first", "late"]


def test_register_on_token_none_never_runs() -> None:
    registration = tl.CancellationToken.NONE.register(lambda: 1 / 0)
    assert registration.unregister() is False


def test_failing_callbacks_are_aggregated_after_all_ran() -> None:
    calls: list[int] = []
    with tl.CancellationTokenSource() as cts:
        cts.token.register(lambda: calls.append(1))
        cts.token.register(boom)
        cts.token.register(lambda: calls.append(3))
        with pytest.raises(tl.AggregateError) as info:
            cts.cancel()
    assert calls == [3, 1]
    assert isinstance(info.value.exceptions[0], ValueError)


def test_throw_if_cancellation_requested_and_wait() -> None:
    with tl.CancellationTokenSource() as cts:
        cts.token.throw_if_cancellation_requested()
        assert cts.token.wait(0.01) is False
        threading.Timer(0.01, cts.cancel).start()
        assert cts.token.wait(WAIT) is True
        with pytest.raises(tl.OperationCanceledError) as info:
            cts.token.throw_if_cancellation_requested()
        assert info.value.token == cts.token


def test_a_task_whose_token_is_canceled_before_start_never_runs(
    scheduler: tl.TaskScheduler,
) -> None:
    ran = threading.Event()
    with tl.CancellationTokenSource() as cts:
        cold = tl.Task(ran.set, token=cts.token)
        cts.cancel()
        assert cold.is_canceled
        with pytest.raises(tl.InvalidOperationError):
            cold.start(scheduler)
        hot = tl.start_new(ran.set, token=cts.token, scheduler=scheduler)
        assert hot.is_canceled
    assert not ran.is_set()


def test_a_queued_task_is_canceled_by_its_token() -> None:
    holder = HoldingScheduler()
    ran = threading.Event()
    with tl.CancellationTokenSource() as cts:
        task = tl.start_new(ran.set, token=cts.token, scheduler=holder)
        assert task.status is S.WAITING_TO_RUN
        cts.cancel()
        assert task.is_canceled
        assert holder.release() == [False]
    assert not ran.is_set()


def test_operation_canceled_with_own_token_cancels_the_task(scheduler: tl.TaskScheduler) -> None:
    with tl.CancellationTokenSource() as cts:

        def body() -> None:
            cts.cancel()
            tl.current_token().throw_if_cancellation_requested()

        task = tl.start_new(body, token=cts.token, scheduler=scheduler)
        with pytest.raises(tl.TaskCanceledError):
            task.wait(WAIT)
        assert task.status is S.CANCELED


def test_operation_canceled_with_another_token_faults(scheduler: tl.TaskScheduler) -> None:
    with tl.CancellationTokenSource() as own, tl.CancellationTokenSource() as other:
        other.cancel()
        task = tl.start_new(
            other.token.throw_if_cancellation_requested, token=own.token, scheduler=scheduler
        )
        assert isinstance(task.exception(WAIT), tl.OperationCanceledError)
        assert task.is_faulted
        # its own token, but not canceled: a fault too
        lying = tl.start_new(
            lambda: (_ for _ in ()).throw(tl.OperationCanceledError(token=own.token)),
            token=own.token,
            scheduler=scheduler,
        )
        assert lying.exception(WAIT) is not None
        assert lying.is_faulted


def test_a_running_task_that_ignores_its_token_runs_to_completion(
    scheduler: tl.TaskScheduler,
) -> None:
    gate, started = threading.Event(), threading.Event()
    with tl.CancellationTokenSource() as cts:
        task = tl.start_new(gated, gate, started, "done", token=cts.token, scheduler=scheduler)
        assert started.wait(WAIT)
        cts.cancel()
        gate.set()
        assert task.result(WAIT) == "done"


def test_current_token_inside_and_outside(scheduler: tl.TaskScheduler) -> None:
    assert tl.current_token() == tl.CancellationToken.NONE
    with tl.CancellationTokenSource() as cts:
        task = tl.start_new(tl.current_token, token=cts.token, scheduler=scheduler)
        assert task.result(WAIT) == cts.token
    assert (
        tl.start_new(tl.current_token, scheduler=scheduler).result(WAIT)
        == tl.CancellationToken.NONE
    )


# == TaskFactory ===========================================================================


def test_task_factory_defaults_apply(scheduler: tl.TaskScheduler) -> None:
    with tl.CancellationTokenSource() as cts:
        factory = tl.TaskFactory(
            token=cts.token, creation_options=TCR.PREFER_FAIRNESS, scheduler=scheduler
        )
        assert factory.token == cts.token
        assert factory.scheduler is scheduler
        task = factory.start_new(lambda: (tl.TaskScheduler.current(), tl.current_token()))
        assert task.result(WAIT) == (scheduler, cts.token)
        assert task.creation_options == TCR.PREFER_FAIRNESS


def test_task_factory_per_call_overrides(scheduler: tl.TaskScheduler) -> None:
    other = HoldingScheduler()
    with tl.CancellationTokenSource() as cts:
        factory = tl.TaskFactory(
            token=cts.token, creation_options=TCR.PREFER_FAIRNESS, scheduler=scheduler
        )
        task = factory.start_new(
            lambda: (tl.TaskScheduler.current(), tl.current_token()),
            token=None,
            options=TCR.NONE,
            scheduler=other,
            state="st",
        )
        assert task.status is S.WAITING_TO_RUN  # on the override scheduler
        assert other.release() == [True]
        assert task.result() == (other, tl.CancellationToken.NONE)
        assert task.creation_options == TCR.NONE
        assert task.async_state == "st"


def test_task_factory_continue_when_all_and_any(scheduler: tl.TaskScheduler) -> None:
    factory = tl.TaskFactory(scheduler=scheduler)
    gate = threading.Event()
    tasks: list[tl.Task[Any]] = [
        factory.start_new(lambda: 1),
        factory.start_new(boom),
        factory.start_new(gated, gate),
    ]
    first = factory.continue_when_any(tasks[:2], lambda t: t)
    assert first.result(WAIT) in tasks[:2]
    every = factory.continue_when_all(tasks, lambda ts: [t.status for t in ts])
    assert not every.wait(0.01)
    gate.set()
    assert every.result(WAIT) == [S.RAN_TO_COMPLETION, S.FAULTED, S.RAN_TO_COMPLETION]
    assert (
        every.continue_with(lambda a: tl.TaskScheduler.current(), scheduler=scheduler).result(WAIT)
        is scheduler
    )
    tasks[1].exception()


def test_task_factory_continuation_options_default(scheduler: tl.TaskScheduler) -> None:
    with tl.CancellationTokenSource() as cts:
        factory = tl.TaskFactory(
            token=cts.token, continuation_options=TCO.LAZY_CANCELLATION, scheduler=scheduler
        )
        gate = threading.Event()
        task = factory.start_new(gated, gate, token=None)
        lazy = factory.continue_when_all([task], lambda ts: None)
        cts.cancel()
        assert not lazy.is_completed  # LAZY_CANCELLATION came from the factory
        gate.set()
        with pytest.raises(tl.TaskCanceledError):
            lazy.wait(WAIT)


def test_task_factory_from_future() -> None:
    factory = tl.TaskFactory()
    fut: concurrent.futures.Future[int] = concurrent.futures.Future()
    task = factory.from_future(fut)
    assert isinstance(task, tl.Task)
    assert not task.is_completed
    fut.set_result(8)
    assert task.result(WAIT) == 8
    assert factory.from_future(task) is task
    failed: concurrent.futures.Future[int] = concurrent.futures.Future()
    failed.set_exception(KeyError("f"))
    assert isinstance(tl.from_future(failed).exception(), KeyError)
    canceled: concurrent.futures.Future[int] = concurrent.futures.Future()
    canceled.cancel()
    assert tl.from_future(canceled).is_canceled


# == context, current task, current scheduler ===============================================

_var: contextvars.ContextVar[str] = contextvars.ContextVar("_var", default="unset")


def test_contextvars_flow_into_tasks_and_not_back(scheduler: tl.TaskScheduler) -> None:
    token = _var.set("outer")
    try:

        def body() -> str:
            seen = _var.get()
            _var.set("inner")
            return seen

        assert tl.start_new(body, scheduler=scheduler).result(WAIT) == "outer"
        assert _var.get() == "outer"
        cont = tl.from_result(1).continue_with(lambda a: _var.get(), scheduler=scheduler)
        assert cont.result(WAIT) == "outer"
        synchronous = tl.Task(body)
        synchronous.run_synchronously(scheduler)
        assert synchronous.result() == "outer"
        assert _var.get() == "outer"
    finally:
        _var.reset(token)


def test_each_task_sees_the_context_it_was_created_in(scheduler: tl.TaskScheduler) -> None:
    tasks = []
    for i in range(5):
        ctx = contextvars.copy_context()
        ctx.run(_var.set, f"v{i}")
        tasks.append(ctx.run(tl.start_new, _var.get, scheduler=scheduler))
    assert [t.result(WAIT) for t in tasks] == [f"v{i}" for i in range(5)]


def test_current_task(scheduler: tl.TaskScheduler) -> None:
    assert tl.current_task() is None
    task = tl.start_new(tl.current_task, scheduler=scheduler)
    assert task.result(WAIT) is task
    cont = task.continue_with(lambda a: tl.current_task(), scheduler=scheduler)
    assert cont.result(WAIT) is cont
    assert tl.current_task() is None


def test_current_scheduler_inside_a_task(scheduler: tl.TaskScheduler) -> None:
    assert tl.TaskScheduler.current() is tl.TaskScheduler.default()
    task = tl.start_new(tl.TaskScheduler.current, scheduler=scheduler)
    assert task.result(WAIT) is scheduler
    hidden = tl.start_new(tl.TaskScheduler.current, options=TCR.HIDE_SCHEDULER, scheduler=scheduler)
    assert hidden.result(WAIT) is tl.TaskScheduler.default()


def test_children_default_to_the_parents_scheduler(scheduler: tl.TaskScheduler) -> None:
    def parent() -> tl.TaskScheduler:
        return tl.start_new(tl.TaskScheduler.current).result(WAIT)

    assert tl.start_new(parent, scheduler=scheduler).result(WAIT) is scheduler


# == unobserved exceptions ===================================================================


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, BaseException]] = []

    def __call__(self, task: tl.Task[Any], exc: BaseException) -> None:
        self.calls.append((task.id, exc))


def _finish_unobserved(task: tl.Task[Any]) -> None:
    """Wait for ``task`` without observing its exception."""
    done = threading.Event()
    task.add_done_callback(lambda _t: done.set())
    assert done.wait(WAIT)


def test_set_unobserved_exception_handler_returns_the_previous() -> None:
    first, second = _Recorder(), _Recorder()
    assert tl.set_unobserved_exception_handler(first) is None  # the default
    try:
        assert tl.set_unobserved_exception_handler(second) is first
        assert tl.set_unobserved_exception_handler(None) is second
    finally:
        tl.set_unobserved_exception_handler(None)


@any_scheduler
def test_an_unobserved_fault_reaches_the_handler(scheduler: tl.TaskScheduler) -> None:
    recorder = _Recorder()
    tl.set_unobserved_exception_handler(recorder)
    try:
        task = tl.start_new(boom, "unseen", scheduler=scheduler)
        _finish_unobserved(task)
        task_id = task.id
        del task
        collect_until(lambda: any(tid == task_id for tid, _ in recorder.calls))
        mine = [exc for tid, exc in recorder.calls if tid == task_id]
        assert len(mine) == 1
        assert isinstance(mine[0], ValueError)
        assert str(mine[0]) == "unseen"
    finally:
        tl.set_unobserved_exception_handler(None)


def _observe(task: tl.Task[Any], how: str) -> None:
    if how == "exception":
        task.exception()
    elif how == "result":
        with pytest.raises(ValueError):
            task.result()
    elif how == "wait":
        with pytest.raises(ValueError):
            task.wait()
    elif how == "continuation":
        task.continue_with(lambda a: a.exception()).wait(WAIT)
    else:
        tl.when_all(task).exception(WAIT)


@pytest.mark.parametrize("how", ["exception", "result", "wait", "continuation", "when_all"])
@any_scheduler
def test_an_observed_fault_does_not_reach_the_handler(
    scheduler: tl.TaskScheduler, how: str
) -> None:
    recorder = _Recorder()
    tl.set_unobserved_exception_handler(recorder)
    try:
        task = tl.start_new(boom, scheduler=scheduler)
        _finish_unobserved(task)
        _observe(task, how)
        task_id = task.id
        collected = weakref.ref(task)
        del task
        collect_until(lambda: collected() is None)  # it was collected, and yet not reported
        assert [tid for tid, _ in recorder.calls if tid == task_id] == []
    finally:
        tl.set_unobserved_exception_handler(None)


def test_a_failing_handler_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    def failing_handler(task: tl.Task[Any], exc: BaseException) -> None:
        raise RuntimeError("handler broke")

    tl.set_unobserved_exception_handler(failing_handler)
    try:
        with caplog.at_level(logging.ERROR, logger="taskloom"):
            task = tl.from_exception(KeyError("lost"))
            del task
            gc.collect()
    finally:
        tl.set_unobserved_exception_handler(None)
    assert any(
        r.exc_info is not None and str(r.exc_info[1]) == "handler broke" for r in caplog.records
    )


def test_the_default_handler_logs_on_the_taskloom_logger(caplog: pytest.LogCaptureFixture) -> None:
    tl.set_unobserved_exception_handler(None)
    with caplog.at_level(logging.ERROR, logger="taskloom"):
        task = tl.from_exception(KeyError("logged"))
        task_repr = repr(task)
        del task
        gc.collect()
    records = [r for r in caplog.records if r.name == "taskloom" and task_repr in r.getMessage()]
    assert len(records) == 1
    assert records[0].exc_info is not None
    assert isinstance(records[0].exc_info[1], KeyError)


# == concurrent.futures and asyncio interop ===================================================


@any_scheduler
def test_a_task_is_a_concurrent_future(scheduler: tl.TaskScheduler) -> None:
    task = tl.start_new(lambda: 1, scheduler=scheduler)
    assert isinstance(task, concurrent.futures.Future)
    assert task.result(WAIT) == 1


@any_scheduler
def test_futures_wait_all_completed(scheduler: tl.TaskScheduler) -> None:
    tasks = [tl.start_new(lambda i=i: i, scheduler=scheduler) for i in range(5)]
    done, not_done = concurrent.futures.wait(tasks, timeout=WAIT)
    assert done == set(tasks)
    assert not not_done


def test_futures_wait_first_completed(scheduler: tl.TaskScheduler) -> None:
    gate = threading.Event()
    slow = tl.start_new(gated, gate, scheduler=scheduler)
    fast = tl.start_new(lambda: 1, scheduler=scheduler)
    done, not_done = concurrent.futures.wait(
        [slow, fast], timeout=WAIT, return_when=concurrent.futures.FIRST_COMPLETED
    )
    assert fast in done
    assert slow in not_done
    gate.set()
    assert slow.wait(WAIT)


def test_futures_wait_first_exception(scheduler: tl.TaskScheduler) -> None:
    gate = threading.Event()
    slow = tl.start_new(gated, gate, scheduler=scheduler)
    ok = tl.start_new(lambda: 1, scheduler=scheduler)
    assert ok.wait(WAIT)
    failing = tl.start_new(boom, scheduler=scheduler)
    done, not_done = concurrent.futures.wait(
        [slow, ok, failing], timeout=WAIT, return_when=concurrent.futures.FIRST_EXCEPTION
    )
    assert failing in done
    assert ok in done
    assert not_done == {slow}
    gate.set()
    done, _ = concurrent.futures.wait(
        [slow, tl.from_canceled()], timeout=WAIT, return_when=concurrent.futures.ALL_COMPLETED
    )
    assert len(done) == 2
    failing.exception()


def test_futures_wait_first_exception_with_an_earlier_fault() -> None:
    pending: tl.TaskCompletionSource[int] = tl.TaskCompletionSource()
    faulted = tl.from_exception(KeyError("early"))
    done, not_done = concurrent.futures.wait(
        [pending.task, faulted], timeout=WAIT, return_when=concurrent.futures.FIRST_EXCEPTION
    )
    assert done == {faulted}
    assert not_done == {pending.task}
    canceled_only = tl.from_canceled()
    done, not_done = concurrent.futures.wait(
        [pending.task, canceled_only], timeout=0.01, return_when=concurrent.futures.FIRST_EXCEPTION
    )
    assert not_done == {pending.task}  # a cancellation is not an exception: it timed out


def test_futures_as_completed_follows_completion_order(scheduler: tl.TaskScheduler) -> None:
    # two gated bodies at most: the limited scheduler runs two at a time
    gates = [threading.Event() for _ in range(2)]
    tasks = [tl.start_new(gated, g, None, i, scheduler=scheduler) for i, g in enumerate(gates)]
    tcs: tl.TaskCompletionSource[int] = tl.TaskCompletionSource()
    order = []
    futures: list[concurrent.futures.Future[int]] = [*tasks, tcs.task]
    iterator = concurrent.futures.as_completed(futures, timeout=WAIT)
    for release in (gates[1].set, lambda: tcs.set_result(2), gates[0].set):
        release()
        order.append(next(iterator).result())
    assert order == [1, 2, 0]


@any_scheduler
def test_asyncio_wrap_future(scheduler: tl.TaskScheduler) -> None:
    ok = tl.start_new(lambda: "value", scheduler=scheduler)
    failing = tl.start_new(boom, "async", scheduler=scheduler)

    async def main() -> tuple[str, BaseException | None]:
        value = await asyncio.wait_for(asyncio.wrap_future(ok), WAIT)
        try:
            await asyncio.wait_for(asyncio.wrap_future(failing), WAIT)
        except ValueError as exc:
            return value, exc
        return value, None

    value, exc = asyncio.run(main())
    assert value == "value"
    assert isinstance(exc, ValueError)
    assert str(exc) == "async"


def test_add_done_callback(scheduler: tl.TaskScheduler) -> None:
    seen: list[tl.Task[int]] = []
    done = threading.Event()
    task = tl.start_new(lambda: 1, scheduler=scheduler)

    def callback(t: tl.Task[int]) -> None:
        seen.append(t)
        done.set()

    task.add_done_callback(callback)
    assert done.wait(WAIT)
    late: list[tl.Task[int]] = []
    task.add_done_callback(late.append)  # at once, on this thread
    assert seen == [task]
    assert late == [task]


def test_a_failing_done_callback_is_logged_not_swallowed(
    scheduler: tl.TaskScheduler, caplog: pytest.LogCaptureFixture
) -> None:
    after = threading.Event()
    task = tl.start_new(lambda: 1, scheduler=scheduler)
    with caplog.at_level(logging.ERROR, logger="taskloom"):
        task.add_done_callback(lambda t: boom("in callback"))
        task.add_done_callback(lambda t: after.set())
        assert after.wait(WAIT)  # a failing callback does not stop the next one
        assert task.result(WAIT) == 1
    errors = [r for r in caplog.records if r.name == "taskloom" and r.exc_info]
    assert any(str(r.exc_info[1]) == "in callback" for r in errors if r.exc_info)


def test_a_continuation_canceled_by_its_token_leaves_its_antecedent(
    scheduler: tl.TaskScheduler,
) -> None:
    # A long-lived antecedent (a shutdown signal, say) must not keep every continuation
    # that was canceled early alive until it completes.
    signal: tl.TaskCompletionSource[int] = tl.TaskCompletionSource()
    refs = []
    for _ in range(50):
        with tl.CancellationTokenSource() as cts:
            cont = signal.task.continue_with(lambda t: None, token=cts.token, scheduler=scheduler)
            cts.cancel()
        assert cont.status is S.CANCELED
        refs.append(weakref.ref(cont))
        del cont
    gc.collect()
    assert all(r() is None for r in refs)
    survivor = signal.task.continue_with(lambda t: t.result() + 1, scheduler=scheduler)
    signal.set_result(1)
    assert survivor.result(WAIT) == 2


@any_scheduler
def test_concurrent_futures_waits_race_completion_without_losing_a_wakeup(
    scheduler: tl.TaskScheduler,
) -> None:
    # Tasks share stripe locks; concurrent.futures holds several tasks' _condition at once
    # from two threads while the tasks complete: every wait must see every completion.
    def waiter(tasks: list[tl.Task[int]], out: list[int]) -> None:
        done, not_done = concurrent.futures.wait(tasks, timeout=WAIT)
        out.append(len(done) if not not_done else -1)
        out.append(sum(1 for _ in concurrent.futures.as_completed(tasks, timeout=WAIT)))

    for _ in range(20):
        tasks = [tl.start_new(pow, i, 2, scheduler=scheduler) for i in range(64)]
        outs: list[list[int]] = [[], []]
        threads = [
            threading.Thread(target=waiter, args=(tasks[k::2] + tasks[:8], outs[k]))
            for k in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
        assert outs == [[36, 36], [36, 36]]  # 32 of one parity + 4 more of the first 8
