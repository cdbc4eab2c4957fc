"""Bad input is refused at the call, with an error that names the argument (DESIGN 1.6).

Each case is a call that must raise at once - ``TypeError`` for a wrong kind of
value, ``ValueError`` for a wrong value, ``InvalidOperationError`` for a call
the object's state forbids - never later on a worker thread. The deliberately
wrong values are typed ``Any`` so the type checker lets them through, as it
would for an untyped caller.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

import pytest

import taskloom as tl
from taskloom import TaskContinuationOptions as TCO
from taskloom import TaskCreationOptions as TCR

WAIT = 30.0

NOT_CALLABLE: Any = 42
NAN: Any = math.nan
TEXT: Any = "1"
TRUE: Any = True
SOURCE_NOT_TOKEN: Any = tl.CancellationTokenSource()
NOT_A_SCHEDULER: Any = "default"
AN_INT: Any = 4


def _pending() -> tl.Task[Any]:
    """A task that never completes by itself (a completion source's)."""
    return tl.TaskCompletionSource[Any]().task


def _done() -> tl.Task[int]:
    return tl.from_result(1)


Case = tuple[Callable[[], object], type[BaseException], str]

# -- non-callables ----------------------------------------------------------------------

NON_CALLABLES: dict[str, Case] = {
    "Task": (lambda: tl.Task(NOT_CALLABLE), TypeError, r"fn must be callable, not int"),
    "run": (lambda: tl.run(NOT_CALLABLE), TypeError, r"fn must be callable"),
    "start_new": (lambda: tl.start_new(NOT_CALLABLE), TypeError, r"fn must be callable"),
    "continue_with": (
        lambda: _pending().continue_with(NOT_CALLABLE),
        TypeError,
        r"fn must be callable",
    ),
    "then": (lambda: _pending().then(NOT_CALLABLE), TypeError, r"fn must be callable"),
    "add_done_callback": (
        lambda: _pending().add_done_callback(NOT_CALLABLE),
        TypeError,
        r"fn must be callable",
    ),
    "factory.start_new": (
        lambda: tl.TaskFactory().start_new(NOT_CALLABLE),
        TypeError,
        r"fn must be callable",
    ),
    "continue_when_all": (
        lambda: tl.TaskFactory().continue_when_all([_done()], NOT_CALLABLE),
        TypeError,
        r"fn must be callable",
    ),
    "continue_when_any": (
        lambda: tl.TaskFactory().continue_when_any([_done()], NOT_CALLABLE),
        TypeError,
        r"fn must be callable",
    ),
    "token.register": (
        lambda: tl.CancellationTokenSource().token.register(NOT_CALLABLE),
        TypeError,
        r"callback must be callable",
    ),
    "unobserved_handler": (
        lambda: tl.set_unobserved_exception_handler(NOT_CALLABLE),
        TypeError,
        r"handler must be callable or None",
    ),
    "aggregate.handle": (
        lambda: tl.AggregateError("m", [ValueError()]).handle(NOT_CALLABLE),
        TypeError,
        r"predicate must be callable",
    ),
}

# -- timeouts and delays -----------------------------------------------------------------

TIMEOUTS: dict[str, Case] = {
    "wait-negative": (lambda: _pending().wait(-1), ValueError, r"timeout must be >= 0"),
    "wait-nan": (lambda: _pending().wait(NAN), ValueError, r"timeout must not be NaN"),
    "wait-text": (lambda: _pending().wait(TEXT), TypeError, r"timeout must be a number"),
    "wait-bool": (lambda: _pending().wait(TRUE), TypeError, r"timeout must be a number"),
    "result-negative": (lambda: _pending().result(-0.5), ValueError, r"timeout must be >= 0"),
    "result-nan": (lambda: _pending().result(NAN), ValueError, r"timeout must not be NaN"),
    "exception-negative": (lambda: _pending().exception(-1), ValueError, r"timeout"),
    "exception-text": (lambda: _pending().exception(TEXT), TypeError, r"timeout"),
    "wait_all-negative": (
        lambda: tl.wait_all(_pending(), timeout=-1),
        ValueError,
        r"timeout must be >= 0",
    ),
    "wait_all-nan": (lambda: tl.wait_all(timeout=NAN), ValueError, r"timeout must not be NaN"),
    "wait_any-negative": (
        lambda: tl.wait_any(_pending(), timeout=-1),
        ValueError,
        r"timeout must be >= 0",
    ),
    "wait_any-text": (lambda: tl.wait_any(_done(), timeout=TEXT), TypeError, r"timeout"),
    "delay-negative": (lambda: tl.delay(-1), ValueError, r"seconds must be >= 0"),
    "delay-nan": (lambda: tl.delay(NAN), ValueError, r"seconds must not be NaN"),
    "delay-text": (lambda: tl.delay(TEXT), TypeError, r"seconds must be a number"),
    "delay-bool": (lambda: tl.delay(TRUE), TypeError, r"seconds must be a number.*not bool"),
    "source-delay-nan": (
        lambda: tl.CancellationTokenSource(delay=NAN),
        ValueError,
        r"delay must not be NaN",
    ),
    "cancel_after-negative": (
        lambda: tl.CancellationTokenSource().cancel_after(-1),
        ValueError,
        r"delay must be >= 0",
    ),
    "cancel_after-nan": (
        lambda: tl.CancellationTokenSource().cancel_after(NAN),
        ValueError,
        r"delay must not be NaN",
    ),
    "cancel_after-infinite": (
        lambda: tl.CancellationTokenSource().cancel_after(math.inf),
        ValueError,
        r"delay must be finite",
    ),
    "source-delay-negative": (
        lambda: tl.CancellationTokenSource(delay=-2),
        ValueError,
        r"delay must be >= 0",
    ),
    "token.wait-negative": (
        lambda: tl.CancellationTokenSource().token.wait(-1),
        ValueError,
        r"timeout must be >= 0",
    ),
}

# -- options of the wrong enum, or that make no sense -----------------------------------------

OPTIONS: dict[str, Case] = {
    "Task-continuation-options": (
        lambda: tl.Task(print, options=TCO.NONE),  # type: ignore[arg-type]
        TypeError,
        r"options must be a TaskCreationOptions, not TaskContinuationOptions",
    ),
    "start_new-continuation-options": (
        lambda: tl.start_new(print, options=TCO.LAZY_CANCELLATION),  # type: ignore[arg-type]
        TypeError,
        r"options must be a TaskCreationOptions",
    ),
    "start_new-int": (
        lambda: tl.start_new(print, options=AN_INT),
        TypeError,
        r"options must be a TaskCreationOptions, not int",
    ),
    "continue_with-creation-options": (
        lambda: _pending().continue_with(print, options=TCR.ATTACHED_TO_PARENT),  # type: ignore[arg-type]
        TypeError,
        r"options must be a TaskContinuationOptions, not TaskCreationOptions",
    ),
    "completion-source-continuation-options": (
        lambda: tl.TaskCompletionSource(options=TCO.NONE),  # type: ignore[arg-type]
        TypeError,
        r"options must be a TaskCreationOptions",
    ),
    "completion-source-long-running": (
        lambda: tl.TaskCompletionSource(options=TCR.LONG_RUNNING),
        ValueError,
        r"options: LONG_RUNNING and PREFER_FAIRNESS need a task with a body",
    ),
    "factory-creation-options": (
        lambda: tl.TaskFactory(creation_options=TCO.NONE),  # type: ignore[arg-type]
        TypeError,
        r"creation_options must be a TaskCreationOptions",
    ),
    "factory-continuation-options": (
        lambda: tl.TaskFactory(continuation_options=TCR.NONE),  # type: ignore[arg-type]
        TypeError,
        r"continuation_options must be a TaskContinuationOptions",
    ),
    "factory.start_new-continuation-options": (
        lambda: tl.TaskFactory().start_new(print, options=TCO.NONE),  # type: ignore[arg-type]
        TypeError,
        r"options must be a TaskCreationOptions",
    ),
    "excludes-every-outcome": (
        lambda: _pending().continue_with(
            print,
            options=TCO.NOT_ON_RAN_TO_COMPLETION | TCO.NOT_ON_FAULTED | TCO.NOT_ON_CANCELED,
        ),
        ValueError,
        r"options exclude every outcome",
    ),
    "only-on-faulted-and-only-on-canceled": (
        lambda: _pending().continue_with(print, options=TCO.ONLY_ON_FAULTED | TCO.ONLY_ON_CANCELED),
        ValueError,
        r"options exclude every outcome",
    ),
    "long-running-and-synchronous": (
        lambda: _pending().continue_with(
            print, options=TCO.LONG_RUNNING | TCO.EXECUTE_SYNCHRONOUSLY
        ),
        ValueError,
        r"options: LONG_RUNNING and EXECUTE_SYNCHRONOUSLY are mutually exclusive",
    ),
    "continue_when_all-with-a-filter": (
        lambda: tl.TaskFactory().continue_when_all(
            [_done()], print, options=TCO.ONLY_ON_RAN_TO_COMPLETION
        ),
        ValueError,
        r"options: the NOT_ON_\*/ONLY_ON_\* filters are not valid",
    ),
    "continue_when_all-creation-options": (
        lambda: tl.TaskFactory().continue_when_all([_done()], print, options=TCR.NONE),  # type: ignore[arg-type]
        TypeError,
        r"options must be a TaskContinuationOptions, not TaskCreationOptions",
    ),
    "factory-excluding-default": (
        lambda: tl.TaskFactory(
            continuation_options=TCO.ONLY_ON_FAULTED | TCO.NOT_ON_FAULTED,
        ),
        ValueError,
        r"options exclude every outcome",
    ),
}

# -- tokens and schedulers of the wrong type -----------------------------------------------------

TYPES: dict[str, Case] = {
    "Task-token": (
        lambda: tl.Task(print, token=SOURCE_NOT_TOKEN),
        TypeError,
        r"token must be a CancellationToken or None, not CancellationTokenSource",
    ),
    "start_new-token": (
        lambda: tl.start_new(print, token=SOURCE_NOT_TOKEN),
        TypeError,
        r"token must be a CancellationToken",
    ),
    "run-token": (lambda: tl.run(print, token=AN_INT), TypeError, r"token must be a"),
    "continue_with-token": (
        lambda: _pending().continue_with(print, token=AN_INT),
        TypeError,
        r"token must be a CancellationToken",
    ),
    "then-token": (lambda: _pending().then(print, token=AN_INT), TypeError, r"token must be"),
    "then-scheduler": (
        lambda: _pending().then(print, scheduler=NOT_A_SCHEDULER),
        TypeError,
        r"scheduler must be a TaskScheduler",
    ),
    "factory.start_new-token": (
        lambda: tl.TaskFactory().start_new(print, token=AN_INT),
        TypeError,
        r"token must be a CancellationToken or None, not int",
    ),
    "factory.start_new-scheduler": (
        lambda: tl.TaskFactory().start_new(print, scheduler=NOT_A_SCHEDULER),
        TypeError,
        r"scheduler must be a TaskScheduler",
    ),
    "create_linked-source": (
        lambda: tl.CancellationTokenSource.create_linked(SOURCE_NOT_TOKEN),
        TypeError,
        r"tokens\[0\] must be a CancellationToken, not CancellationTokenSource",
    ),
    "wait-token": (
        lambda: _pending().wait(0, token=SOURCE_NOT_TOKEN),
        TypeError,
        r"token must be a CancellationToken",
    ),
    "wait_all-token": (
        lambda: tl.wait_all(_pending(), token=AN_INT),
        TypeError,
        r"token must be",
    ),
    "wait_any-token": (
        lambda: tl.wait_any(_pending(), token=AN_INT),
        TypeError,
        r"token must be",
    ),
    "delay-token": (lambda: tl.delay(1, token=AN_INT), TypeError, r"token must be"),
    "factory-token": (lambda: tl.TaskFactory(token=AN_INT), TypeError, r"token must be"),
    "set_canceled-token": (
        lambda: tl.TaskCompletionSource[int]().set_canceled(AN_INT),
        TypeError,
        r"token must be",
    ),
    "create_linked": (
        lambda: tl.CancellationTokenSource.create_linked(tl.CancellationToken.NONE, AN_INT),
        TypeError,
        r"tokens\[1\] must be a CancellationToken, not int",
    ),
    "start-scheduler": (
        lambda: tl.Task(print).start(NOT_A_SCHEDULER),
        TypeError,
        r"scheduler must be a TaskScheduler or None, not str",
    ),
    "run_synchronously-scheduler": (
        lambda: tl.Task(print).run_synchronously(NOT_A_SCHEDULER),
        TypeError,
        r"scheduler must be a TaskScheduler",
    ),
    "start_new-scheduler": (
        lambda: tl.start_new(print, scheduler=NOT_A_SCHEDULER),
        TypeError,
        r"scheduler must be a TaskScheduler",
    ),
    "run-scheduler": (
        lambda: tl.run(print, scheduler=NOT_A_SCHEDULER),
        TypeError,
        r"scheduler must be a TaskScheduler",
    ),
    "continue_with-scheduler": (
        lambda: _pending().continue_with(print, scheduler=NOT_A_SCHEDULER),
        TypeError,
        r"scheduler must be a TaskScheduler",
    ),
    "factory-scheduler": (
        lambda: tl.TaskFactory(scheduler=NOT_A_SCHEDULER),
        TypeError,
        r"scheduler must be a TaskScheduler",
    ),
    "limited-max_concurrency-zero": (
        lambda: tl.LimitedConcurrencyScheduler(0),
        ValueError,
        r"max_concurrency must be >= 1",
    ),
    "limited-max_concurrency-text": (
        lambda: tl.LimitedConcurrencyScheduler(TEXT),
        TypeError,
        r"max_concurrency must be an int",
    ),
    "limited-inner": (
        lambda: tl.LimitedConcurrencyScheduler(1, inner=NOT_A_SCHEDULER),
        TypeError,
        r"inner must be a TaskScheduler",
    ),
    "workstealing-max_workers": (
        lambda: tl.WorkStealingScheduler(0),
        ValueError,
        r"max_workers must be >= 1",
    ),
    "workstealing-max_workers-bool": (
        lambda: tl.WorkStealingScheduler(TRUE),
        TypeError,
        r"max_workers must be an int, not bool",
    ),
    "workstealing-thread_name_prefix": (
        lambda: tl.WorkStealingScheduler(1, thread_name_prefix=AN_INT),
        TypeError,
        r"thread_name_prefix must be a str",
    ),
    "workstealing-min_workers": (
        lambda: tl.WorkStealingScheduler(1, 2),
        ValueError,
        r"min_workers must not exceed max_workers",
    ),
}

# -- tasks, completion sources, composition ------------------------------------------------------

COMPOSITION: dict[str, Case] = {
    "when_any-empty": (lambda: tl.when_any(), ValueError, r"tasks: when_any needs at least one"),
    "wait_any-empty": (lambda: tl.wait_any(), ValueError, r"tasks: wait_any needs at least one"),
    "continue_when_all-empty": (
        lambda: tl.TaskFactory().continue_when_all([], print),
        ValueError,
        r"tasks: continue_when_all needs at least one",
    ),
    "continue_when_any-empty": (
        lambda: tl.TaskFactory().continue_when_any([], print),
        ValueError,
        r"tasks: continue_when_any needs at least one",
    ),
    "when_all-not-a-task": (
        lambda: tl.when_all(_done(), AN_INT),
        TypeError,
        r"tasks\[1\] must be a Task, a concurrent.futures.Future",
    ),
    "when_any-not-a-task": (lambda: tl.when_any(AN_INT), TypeError, r"tasks\[0\] must be a Task"),
    "wait_all-not-a-task": (lambda: tl.wait_all(TEXT), TypeError, r"tasks\[0\] must be a Task"),
    "wait_all-a-list-instead-of-tasks": (
        lambda: tl.wait_all([_done()]),
        TypeError,
        r"tasks\[0\] must be a Task.*not list",
    ),
    "and-not-a-task": (lambda: _done() & AN_INT, TypeError, r"tasks\[1\] must be a Task"),
    "from_canceled-uncanceled-token": (
        lambda: tl.from_canceled(tl.CancellationTokenSource().token),
        ValueError,
        r"token: from_canceled needs a canceled token",
    ),
    "from_canceled-token-none": (
        lambda: tl.from_canceled(tl.CancellationToken.NONE),
        ValueError,
        r"token: from_canceled needs a canceled token",
    ),
    "from_exception-not-an-exception": (
        lambda: tl.from_exception(TEXT),
        TypeError,
        r"exception must be an exception, not str",
    ),
    "from_future-not-a-future": (
        lambda: tl.from_future(AN_INT),
        TypeError,
        r"future must be a concurrent.futures.Future, not int",
    ),
    "set_exception-not-an-exception": (
        lambda: tl.TaskCompletionSource[int]().set_exception(TEXT),
        TypeError,
        r"exception must be an exception or an iterable of them, not str",
    ),
    "set_exception-empty-iterable": (
        lambda: tl.TaskCompletionSource[int]().set_exception([]),
        ValueError,
        r"exception: the iterable of exceptions is empty",
    ),
    "set_exception-iterable-with-a-non-exception": (
        lambda: tl.TaskCompletionSource[int]().set_exception([ValueError(), AN_INT]),
        TypeError,
        r"exception\[1\] must be an exception, not int",
    ),
    "token-none-wait-forever": (
        lambda: tl.CancellationToken.NONE.wait(),
        tl.InvalidOperationError,
        r"CancellationToken.NONE is never canceled",
    ),
}

ALL_CASES = {**NON_CALLABLES, **TIMEOUTS, **OPTIONS, **TYPES, **COMPOSITION}


@pytest.mark.parametrize("name", list(ALL_CASES))
def test_bad_input_is_refused_at_the_call(name: str) -> None:
    call, error, message = ALL_CASES[name]
    with pytest.raises(error, match=message):
        call()


def test_bad_input_does_not_start_anything() -> None:
    """A refused call leaves nothing behind: the body never runs anywhere."""
    ran = threading.Event()
    with pytest.raises(TypeError, match=r"token must be"):
        tl.start_new(ran.set, token=SOURCE_NOT_TOKEN)
    with pytest.raises(TypeError, match=r"options must be"):
        tl.start_new(ran.set, options=AN_INT)
    antecedent = tl.TaskCompletionSource[int]()
    with pytest.raises(ValueError, match=r"exclude every outcome"):
        antecedent.task.continue_with(
            lambda a: ran.set(), options=TCO.ONLY_ON_FAULTED | TCO.NOT_ON_FAULTED
        )
    antecedent.set_result(1)  # had a continuation been registered, it would run now
    assert tl.delay(0.01).wait(WAIT)
    assert not ran.is_set()


# -- state errors: InvalidOperationError ----------------------------------------------------------


def test_starting_a_task_twice() -> None:
    task = tl.Task(lambda: 1)
    task.start()
    with pytest.raises(tl.InvalidOperationError, match=r"start\(\) may not be called on a task"):
        task.start()
    assert task.result(WAIT) == 1
    with pytest.raises(tl.InvalidOperationError, match=r"start\(\) may not be called"):
        task.start()


def test_run_synchronously_twice_or_after_start() -> None:
    task = tl.Task(lambda: 1)
    task.run_synchronously()
    with pytest.raises(tl.InvalidOperationError, match=r"may not be called"):
        task.run_synchronously()
    with pytest.raises(tl.InvalidOperationError, match=r"may not be called"):
        task.start()


def test_starting_hot_or_body_less_tasks() -> None:
    hot = tl.run(lambda: 1)
    with pytest.raises(tl.InvalidOperationError, match=r"start\(\) may not be called"):
        hot.start()
    with pytest.raises(tl.InvalidOperationError, match=r"promise-style task"):
        tl.TaskCompletionSource[int]().task.start()
    with pytest.raises(tl.InvalidOperationError, match=r"continuation task"):
        _pending().continue_with(print).start()
    with pytest.raises(tl.InvalidOperationError, match=r"promise-style task"):
        tl.from_result(1).run_synchronously()
    assert hot.result(WAIT) == 1


def test_set_result_twice() -> None:
    tcs = tl.TaskCompletionSource[int]()
    tcs.set_result(1)
    with pytest.raises(tl.InvalidOperationError, match=r"the task has already completed"):
        tcs.set_result(2)
    with pytest.raises(tl.InvalidOperationError, match=r"already completed"):
        tcs.set_exception(ValueError())
    with pytest.raises(tl.InvalidOperationError, match=r"already completed"):
        tcs.set_canceled()
    assert tcs.task.result() == 1


def test_future_setters_are_refused_on_tasks_with_a_body() -> None:
    task = tl.run(lambda: 1)
    with pytest.raises(tl.InvalidOperationError, match=r"use a TaskCompletionSource"):
        task.set_result(2)
    with pytest.raises(tl.InvalidOperationError, match=r"use a TaskCompletionSource"):
        task.set_exception(ValueError())
    assert task.result(WAIT) == 1


def test_a_closed_source_cannot_be_canceled() -> None:
    cts = tl.CancellationTokenSource()
    cts.close()
    with pytest.raises(tl.InvalidOperationError, match=r"the CancellationTokenSource is closed"):
        cts.cancel()
    with pytest.raises(tl.InvalidOperationError, match=r"closed"):
        cts.cancel_after(1)


def test_try_execute_task_on_a_foreign_task() -> None:
    scheduler = tl.WorkStealingScheduler(1)
    try:
        task = tl.Task(lambda: 1)
        with pytest.raises(tl.InvalidOperationError, match=r"not queued to this scheduler"):
            scheduler.try_execute_task(task)
    finally:
        scheduler.shutdown()


def test_queueing_to_a_shut_down_scheduler_faults_or_refuses() -> None:
    scheduler = tl.WorkStealingScheduler(1)
    scheduler.shutdown()
    task = tl.start_new(lambda: 1, scheduler=scheduler)
    with pytest.raises(tl.InvalidOperationError, match=r"shut down"):
        task.result(WAIT)
