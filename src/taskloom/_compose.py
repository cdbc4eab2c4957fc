"""Creating and composing tasks (DESIGN 1.3): ``run``, ``start_new``, ``TaskFactory``,
``wait_all``/``wait_any``, ``delay``; ``when_*`` and ``from_*`` live in the core and
are re-exported here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from . import _task, _timer
from ._cancellation import CancellationToken
from ._enums import TaskContinuationOptions, TaskCreationOptions
from ._errors import InvalidOperationError, TaskCanceledError, aggregate
from ._scheduler import TaskScheduler
from ._task import (
    _CANCELED,
    _FAULTED,
    _NO_CREATION_OPTIONS,
    _RAN_TO_COMPLETION,
    F_COROUTINE,
    F_DENY_CHILD_ATTACH,
    F_UNWRAP,
    Task,
    _check_token,
    _continuation_flags,
    _creation_flags,
    _ensure_task,
    _new_promise,
    _resolve_scheduler,
    _SyncWaiter,
    current_scheduler,
    from_future,
    is_coroutine_function,
    start_task,
    when_all,
    when_any,
)
from ._util import check_callable, check_timeout

__all__ = [
    "TaskFactory",
    "completed_task",
    "delay",
    "run",
    "start_new",
    "wait_all",
    "wait_any",
]

T = TypeVar("T")

_UNSET: Any = object()
_NONE_TOKEN = CancellationToken.NONE


def _coroutine_scheduler(scheduler: TaskScheduler | None) -> TaskScheduler:
    hook = _task._coroutine_hook
    if hook is None:
        raise InvalidOperationError("the event-loop front end is not loaded")
    return hook(scheduler, None)


def run(
    fn: Callable[..., Any],
    /,
    *args: Any,
    token: CancellationToken | None = None,
    scheduler: TaskScheduler | None = None,
) -> Task[Any]:
    """Run ``fn(*args)`` on the default scheduler and return its task (TPL ``Task.Run``).

    Children cannot attach to it (``DENY_CHILD_ATTACH``). If ``fn`` returns a task
    or an awaitable, the returned task completes with that one's outcome. A
    coroutine function runs on the current event loop (or the loop scheduler
    given); from a thread with no loop it needs an explicit loop scheduler.
    """
    if not callable(fn):
        check_callable(fn)
    tok = _NONE_TOKEN if token is None else _check_token(token)
    flags = F_DENY_CHILD_ATTACH | F_UNWRAP
    if is_coroutine_function(fn):
        sched = _coroutine_scheduler(scheduler)
        flags |= F_COROUTINE
    elif scheduler is None:
        sched = TaskScheduler._default or TaskScheduler.default()
    else:
        sched = _resolve_scheduler(scheduler)
    return start_task(fn, args, token=tok, flags=flags, scheduler=sched)


def start_new(
    fn: Callable[..., T],
    /,
    *args: Any,
    token: CancellationToken | None = None,
    options: TaskCreationOptions = TaskCreationOptions.NONE,
    scheduler: TaskScheduler | None = None,
    state: Any = None,
) -> Task[T]:
    """Create and start a task (TPL ``TaskFactory.StartNew``) with full control.

    ``scheduler`` defaults to ``TaskScheduler.current()``; ``state`` becomes the
    task's ``async_state``; ``options`` may attach it to the running task,
    make it long-running, and so on. A coroutine function runs on an event
    loop, as with :func:`run`.
    """
    if not callable(fn):
        check_callable(fn)
    tok = _NONE_TOKEN if token is None else _check_token(token)
    flags = 0 if options is _NO_CREATION_OPTIONS else _creation_flags(options, "options")
    if is_coroutine_function(fn):
        sched = _coroutine_scheduler(scheduler)
        flags |= F_COROUTINE | F_UNWRAP
    elif scheduler is None:
        sched = current_scheduler()
    else:
        sched = _resolve_scheduler(scheduler)
    return start_task(fn, args, state=state, token=tok, flags=flags, scheduler=sched)


_completed: Task[None] | None = None


def completed_task() -> Task[None]:
    """A task that has already run to completion with ``None`` (shared)."""
    global _completed
    task = _completed
    if task is None:
        task = _completed = _task.from_result(None)
    return task


def delay(seconds: float, token: CancellationToken | None = None) -> Task[None]:
    """A task that completes after ``seconds`` (``CANCELED`` if ``token`` is canceled first).

    Timers share one thread; no thread is made per delay.
    """
    value = check_timeout(seconds, "seconds")
    tok = _check_token(token)
    promise: Task[None] = _new_promise()
    if tok.is_cancellation_requested:  # canceled first, even for a zero delay (as in TPL)
        promise._token = tok
        promise._complete(_CANCELED, None, None)
        return promise
    if value is None:
        if not tok.can_be_canceled:
            return promise  # never completes
    elif value == 0:
        promise._complete(_RAN_TO_COMPLETION, None, None)
        return promise
    handle = (
        _timer.schedule(value, lambda: promise._complete(_RAN_TO_COMPLETION, None, None))
        if value is not None
        else None
    )
    if tok.can_be_canceled:
        promise._token = tok

        def on_cancel() -> None:
            if handle is not None:
                handle.cancel()
            promise._complete(_CANCELED, None, None)

        registration = tok.register(on_cancel)
        promise.add_done_callback(lambda _t: registration.unregister())
    return promise


def _as_tasks(tasks: Iterable[Any]) -> list[Task[Any]]:
    items = list(tasks)
    for i, t in enumerate(items):
        if type(t) is not Task:
            items[i] = _ensure_task(t, f"tasks[{i}]")
    return items


def _raise_outcome(tasks: list[Task[Any]]) -> None:
    """Raise what ``when_all(*tasks).result()`` would raise, if anything."""
    excs: list[BaseException] = []
    canceled: Task[Any] | None = None
    for t in tasks:
        status = t._status
        if status == _FAULTED:
            t._mark_observed()
            excs.extend(t._excs or ())
        elif status == _CANCELED and canceled is None:
            canceled = t
    if len(excs) == 1:
        raise excs[0]
    if excs:
        raise aggregate("One or more errors occurred.", excs)
    if canceled is not None:
        raise TaskCanceledError(task=canceled)


def wait_all(
    *tasks: Any, timeout: float | None = None, token: CancellationToken | None = None
) -> bool:
    """Block until every task completes; False if ``timeout`` seconds pass first.

    Then raises as ``when_all(*tasks).result()`` would: the exception, an
    :class:`AggregateError` of several, or :class:`TaskCanceledError`. Raises
    :class:`OperationCanceledError` if ``token`` is canceled first. Waiting on a
    pool worker runs queued tasks inline or lets the pool inject threads, so
    nested waits do not deadlock.
    """
    seconds = check_timeout(timeout)
    if token is not None:
        _check_token(token)
    items = _as_tasks(tasks)
    deadline = None if seconds is None else time.monotonic() + seconds
    all_succeeded = True
    for t in items:
        status = t._status
        if status < _RAN_TO_COMPLETION:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not t._wait_core(remaining, token):
                return False
            status = t._status
        if status != _RAN_TO_COMPLETION:
            all_succeeded = False
    if not all_succeeded:
        _raise_outcome(items)
    return True


def wait_any(
    *tasks: Any, timeout: float | None = None, token: CancellationToken | None = None
) -> int:
    """Block until one task completes; its index, or -1 if ``timeout`` passes first.

    Does not raise the task's exception. Raises :class:`OperationCanceledError`
    if ``token`` is canceled first and ``ValueError`` for no tasks.
    """
    seconds = check_timeout(timeout)
    tok = _check_token(token)
    items = _as_tasks(tasks)
    if not items:
        raise ValueError("tasks: wait_any needs at least one task")
    for i, t in enumerate(items):
        if t.done():
            return i
    tok.throw_if_cancellation_requested()
    waiter = _SyncWaiter()
    for t in items:
        t._add_continuation(waiter)
    registration = tok.register(waiter) if tok.can_be_canceled else None
    try:
        waiter.lock.acquire(True, -1 if seconds is None else seconds)
    finally:
        if registration is not None:
            registration.unregister()
        for t in items:
            t._remove_continuation(waiter)
    for i, t in enumerate(items):
        if t.done():
            return i
    tok.throw_if_cancellation_requested()
    return -1


def _call_with_result(antecedent: Task[Any], fn: Callable[..., Any], *args: Any) -> Any:
    return fn(antecedent.result(), *args)


class _AllCompleted:
    """Completes a promise with the list of tasks once each has completed (any outcome)."""

    __slots__ = ("lock", "promise", "remaining", "tasks")

    def __init__(self, promise: Task[Any], tasks: list[Task[Any]]) -> None:
        import threading

        self.lock = threading.Lock()
        self.promise = promise
        self.tasks = tasks
        self.remaining = len(tasks)

    def __call__(self, _done: Task[Any]) -> None:
        with self.lock:
            self.remaining -= 1
            if self.remaining:
                return
        self.promise._complete(_RAN_TO_COMPLETION, list(self.tasks), None)


class TaskFactory:
    """Creates tasks with shared defaults (TPL ``TaskFactory``).

    Every argument left out of a call takes the factory's default::

        factory = tl.TaskFactory(token=cts.token, scheduler=limited)
        t = factory.start_new(work, 1)  # cts.token, on `limited`
        done = factory.continue_when_all([t], lambda ts: len(ts))
    """

    def __init__(
        self,
        token: CancellationToken | None = None,
        creation_options: TaskCreationOptions = TaskCreationOptions.NONE,
        continuation_options: TaskContinuationOptions = TaskContinuationOptions.NONE,
        scheduler: TaskScheduler | None = None,
    ) -> None:
        self._token = _check_token(token)
        _creation_flags(creation_options, "creation_options")
        self._creation_options = creation_options
        self._check_when_options(continuation_options, "continuation_options")
        self._continuation_options = continuation_options
        if scheduler is not None and not isinstance(scheduler, TaskScheduler):
            raise TypeError(
                f"scheduler must be a TaskScheduler or None, not {type(scheduler).__name__}"
            )
        self._scheduler = scheduler

    @staticmethod
    def _check_when_options(options: object, name: str) -> None:
        if not isinstance(options, TaskContinuationOptions):
            raise TypeError(
                f"{name} must be a TaskContinuationOptions, not {type(options).__name__}"
            )
        _continuation_flags(options)

    @property
    def token(self) -> CancellationToken:
        """The default token."""
        return self._token

    @property
    def creation_options(self) -> TaskCreationOptions:
        """The default creation options."""
        return self._creation_options

    @property
    def continuation_options(self) -> TaskContinuationOptions:
        """The default continuation options."""
        return self._continuation_options

    @property
    def scheduler(self) -> TaskScheduler | None:
        """The default scheduler (``None``: ``TaskScheduler.current()`` at each call)."""
        return self._scheduler

    def start_new(
        self,
        fn: Callable[..., T],
        /,
        *args: Any,
        token: CancellationToken | None = _UNSET,
        options: TaskCreationOptions = _UNSET,
        scheduler: TaskScheduler | None = _UNSET,
        state: Any = None,
    ) -> Task[T]:
        """Like :func:`start_new`, with this factory's defaults for what is left out."""
        return start_new(
            fn,
            *args,
            token=self._token if token is _UNSET else token,
            options=self._creation_options if options is _UNSET else options,
            scheduler=self._scheduler if scheduler is _UNSET else scheduler,
            state=state,
        )

    def _continue(
        self,
        promise: Task[Any],
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        token: Any,
        options: Any,
        scheduler: Any,
    ) -> Task[Any]:
        opts = self._continuation_options if options is _UNSET else options
        self._check_when_options(opts, "options")
        if opts.value & 0x70000:
            raise ValueError(
                "options: the NOT_ON_*/ONLY_ON_* filters are not valid for "
                "continue_when_all/continue_when_any"
            )
        return promise.continue_with(
            _call_with_result,
            fn,
            *args,
            token=self._token if token is _UNSET else token,
            options=opts,
            scheduler=self._scheduler if scheduler is _UNSET else scheduler,
        )

    def continue_when_all(
        self,
        tasks: Iterable[Any],
        fn: Callable[..., T],
        /,
        *args: Any,
        token: CancellationToken | None = _UNSET,
        options: TaskContinuationOptions = _UNSET,
        scheduler: TaskScheduler | None = _UNSET,
    ) -> Task[T]:
        """When every task has completed (any outcome), run ``fn(list_of_tasks, *args)``."""
        check_callable(fn)
        items = _as_tasks(tasks)
        if not items:
            raise ValueError("tasks: continue_when_all needs at least one task")
        promise: Task[list[Task[Any]]] = _new_promise()
        counter = _AllCompleted(promise, items)
        for t in items:
            t._add_continuation(counter)
        return self._continue(promise, fn, args, token, options, scheduler)

    def continue_when_any(
        self,
        tasks: Iterable[Any],
        fn: Callable[..., T],
        /,
        *args: Any,
        token: CancellationToken | None = _UNSET,
        options: TaskContinuationOptions = _UNSET,
        scheduler: TaskScheduler | None = _UNSET,
    ) -> Task[T]:
        """When the first task completes, run ``fn(first_completed_task, *args)``."""
        check_callable(fn)
        items = _as_tasks(tasks)
        if not items:
            raise ValueError("tasks: continue_when_any needs at least one task")
        return self._continue(when_any(*items), fn, args, token, options, scheduler)

    def from_future(self, future: Any) -> Task[Any]:
        """A task mirroring ``future`` (a ``concurrent.futures.Future``, or an asyncio
        future/awaitable on a loop thread)."""
        return _ensure_task(future, "future") if not isinstance(future, Task) else future

    def __repr__(self) -> str:
        return (
            f"<TaskFactory token={self._token!r} creation_options={self._creation_options!r} "
            f"continuation_options={self._continuation_options!r} scheduler={self._scheduler!r}>"
        )


__all__ += ["from_future", "when_all", "when_any"]
