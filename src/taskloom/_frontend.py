"""The event-loop front end (DESIGN 1.1, 1.2, 1.3, 1.8): tasks meet coroutines.

Installed into the core at import (the core stays loop-agnostic):

* ``await task`` (``_task._await_hook``) on asyncio, uvloop and trio. The awaiter
  registers itself as a continuation of the task (on asyncio, an
  :class:`~taskloom._loop.AwaitFuture`, which is both the future the coroutine
  waits on and the continuation); when the task completes on some thread, the
  resumption is posted to the awaiting loop's :class:`LoopScheduler` (batched:
  one loop wakeup per burst), whose drain resolves the future with the task's
  outcome or reschedules the trio task, on the loop thread::

      worker thread: task._complete ─▶ AwaitFuture(task) ─▶ LoopScheduler._post(future)
      loop thread:   _drain ─▶ future.resolve() ─▶ set_result / set_exception
                     ─▶ the awaiting coroutine resumes: the result, or what result() raises
      (trio:         _TrioWaiter(task) ─▶ _post(fire) ─▶ trio.lowlevel.reschedule)

  Cancelling the awaiting coroutine removes its continuation; it never cancels
  the task.
* coroutine functions as task bodies and continuations (``_task._coroutine_hook``
  picks the loop scheduler; the body call returns a coroutine, which the
  awaitable hook turns into a task running on that loop, in the task's context);
* awaitables in ``when_all``/``when_any``/``&``/``|``/``then`` unwrapping
  (``_task._awaitable_hook``);
* :func:`to_thread` and :func:`to_process`: offload, await, and cancel the work's
  token when the awaiting coroutine is cancelled.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, TypeVar

from . import _context, _task
from ._cancellation import CancellationToken, CancellationTokenSource
from ._errors import InvalidOperationError
from ._loop import AwaitFuture, LoopScheduler, _get_running_loop, current_or_none
from ._process import ProcessScheduler
from ._scheduler import TaskScheduler
from ._task import (
    _CANCELED,
    _FAULTED,
    _LAZY_TOKEN,
    _RAN_TO_COMPLETION,
    F_DENY_CHILD_ATTACH,
    F_LAZY_CANCELLATION,
    Task,
    _check_token,
    _new_promise,
    _token_of,
    start_task,
)
from ._util import check_callable

__all__ = ["to_process", "to_thread"]

T = TypeVar("T")

_get_ident = threading.get_ident
_local = _context.local


# == await task ==========================================================================


class _TrioWaiter:
    """Resumes one trio awaiter (reschedules its trio task) on the trio thread."""

    __slots__ = ("done", "scheduler", "trio_task")

    def __init__(self, scheduler: LoopScheduler, trio_task: Any) -> None:
        self.scheduler = scheduler
        self.trio_task = trio_task
        # Set on the trio thread by fire() or by the abort callback, whichever runs first.
        self.done = False

    def __call__(self, _task: Task[Any]) -> None:
        # Always posted, even on the trio thread: the awaiter may not have suspended yet.
        self.scheduler._post(self.fire)

    def fire(self) -> None:
        if not self.done:
            self.done = True
            import trio

            trio.lowlevel.reschedule(self.trio_task)


def _await_task(task: Task[T]) -> Generator[Any, None, T]:
    """``Task.__await__``: suspend the awaiting coroutine until ``task`` completes.

    On asyncio/uvloop the awaiter waits on an :class:`AwaitFuture`, which the
    task's completion resolves on the loop thread with the task's outcome.
    """
    if task._status < _RAN_TO_COMPLETION:
        loop = _get_running_loop()
        if loop is not None:
            scheduler = _local.loop_scheduler
            if scheduler is None or scheduler._loop is not loop:
                scheduler = current_or_none()
            future = AwaitFuture(loop=loop)
            future.scheduler = scheduler
            future.task = task
            task._add_continuation(future)
            return future.__await__()
        return _await_on_trio(task)
    return _completed(task)


def _completed(task: Task[T]) -> Generator[Any, None, T]:
    if task._status == _RAN_TO_COMPLETION:
        return task._result  # type: ignore[no-any-return]
    raise task._outcome_error()
    yield  # a generator: the outcome is delivered by StopIteration / the raise


def _await_on_trio(task: Task[T]) -> Generator[Any, None, T]:
    scheduler = current_or_none()
    if scheduler is None:
        raise InvalidOperationError(
            "await on a taskloom Task needs a running asyncio, uvloop or trio event loop"
        )
    import trio

    waiter = _TrioWaiter(scheduler, trio.lowlevel.current_task())

    def abort(_raise_cancel: object) -> trio.lowlevel.Abort:
        # On the trio thread: the awaiter was cancelled. Stop waiting; the task runs on.
        if waiter.done:
            return trio.lowlevel.Abort.FAILED  # pragma: no cover - fire() already rescheduled
        waiter.done = True
        task._remove_continuation(waiter)
        return trio.lowlevel.Abort.SUCCEEDED

    task._add_continuation(waiter)
    yield from trio.lowlevel.wait_task_rescheduled(abort).__await__()
    return (yield from _completed(task))


# == coroutine functions and awaitables ======================================================


def _coroutine_scheduler(scheduler: Any, antecedent: Task[Any] | None) -> TaskScheduler:
    """The loop scheduler that runs a coroutine-function body (``_task._coroutine_hook``).

    ``scheduler`` if given (it must be a :class:`LoopScheduler`); else the loop
    running on this thread; else, for a continuation, the loop its antecedent
    runs on. Otherwise raises :class:`InvalidOperationError`.
    """
    if scheduler is not None:
        if not isinstance(scheduler, TaskScheduler):
            raise TypeError(
                f"scheduler must be a TaskScheduler or None, not {type(scheduler).__name__}"
            )
        if not isinstance(scheduler, LoopScheduler):
            raise InvalidOperationError(
                "a coroutine function runs on an event loop: scheduler must be a "
                f"LoopScheduler, not {type(scheduler).__name__}"
            )
        return scheduler
    current = current_or_none()
    if current is not None:
        return current
    if antecedent is not None:
        origin = antecedent._scheduler
        if isinstance(origin, LoopScheduler) and not origin.is_closed:
            return origin
    raise InvalidOperationError(
        "a coroutine function needs an event loop to run on: call this on a thread "
        "running asyncio, uvloop or trio, or pass scheduler=tl.LoopScheduler(loop)"
    )


def _copy_asyncio_outcome(promise: Task[Any], future: asyncio.Future[Any]) -> None:
    if future.cancelled():
        promise._complete(_CANCELED, None, None)
        return
    exc = future.exception()
    if exc is not None:
        promise._complete(_FAULTED, None, [exc])
    else:
        promise._complete(_RAN_TO_COMPLETION, future.result(), None)


def _from_asyncio_future(future: asyncio.Future[Any], scheduler: LoopScheduler | None) -> Task[Any]:
    promise: Task[Any] = _new_promise()
    # Marks the promise as needing that loop (see LoopScheduler._check_blocking_wait).
    promise._scheduler = scheduler
    future.add_done_callback(lambda f: _copy_asyncio_outcome(promise, f))
    return promise


async def _await_any(awaitable: Awaitable[T]) -> T:
    return await awaitable


async def _run_on_trio(awaitable: Awaitable[Any], promise: Task[Any]) -> None:
    import trio

    try:
        result = await awaitable
    except trio.Cancelled:
        promise._complete(_CANCELED, None, None)  # the trio run is ending
        raise
    except BaseException as exc:  # noqa: BLE001 - recorded on the task
        promise._complete(_FAULTED, None, [exc])
    else:
        promise._complete(_RAN_TO_COMPLETION, result, None)


def _wrap_awaitable(obj: Any) -> Task[Any]:
    """A Task for an awaitable (``_task._awaitable_hook``): runs it on this thread's loop.

    An asyncio future is followed wherever its loop runs; a coroutine or other
    awaitable starts on the loop running here, in a copy of the current context.
    """
    if isinstance(obj, asyncio.Future):
        loop = obj.get_loop()
        known = current_or_none()
        return _from_asyncio_future(
            obj, known if known is not None and known.loop is loop else None
        )
    scheduler = current_or_none()
    if scheduler is None:
        if inspect.iscoroutine(obj):
            obj.close()  # it can never run: do not warn "never awaited" on top of the error
        raise InvalidOperationError(
            "awaitables (coroutines, asyncio futures) can be combined with tasks only on a "
            "thread running an event loop (asyncio, uvloop or trio)"
        )
    coro = obj if inspect.iscoroutine(obj) else _await_any(obj)
    asyncio_loop = scheduler._loop
    if asyncio_loop is not None:
        future = asyncio_loop.create_task(coro)
        running = scheduler._running  # the loop only holds tasks weakly
        running.add(future)
        future.add_done_callback(running.discard)
        return _from_asyncio_future(future, scheduler)
    import contextvars

    import trio

    promise: Task[Any] = _new_promise()
    promise._scheduler = scheduler
    trio.lowlevel.spawn_system_task(
        _run_on_trio, coro, promise, name=repr(coro), context=contextvars.copy_context()
    )
    return promise


# == offloading ============================================================================


def to_thread(
    fn: Callable[..., T], /, *args: Any, token: CancellationToken | None = None
) -> Coroutine[Any, Any, T]:
    """Run ``fn(*args)`` on the default (work-stealing) scheduler; await the result.

    The faster, cancellable ``asyncio.to_thread`` / ``anyio.to_thread.run_sync``
    for asyncio, uvloop and trio::

        data = await tl.to_thread(read_file, path, token=cts.token)

    ``fn`` sees the caller's ``contextvars`` and, through :func:`current_token`,
    a token linked to ``token``. Raises what ``fn`` raised (a canceled task:
    :class:`TaskCanceledError`). If the awaiting coroutine is cancelled (asyncio
    cancellation or an anyio/trio cancel scope), the task's token is canceled:
    work still queued never starts, running work may observe the token; the
    coroutine does not wait for it. Bad arguments raise ``TypeError`` at the call.
    """
    check_callable(fn)
    scheduler = TaskScheduler._default or TaskScheduler.default()
    return _offload(fn, args, None if token is None else _check_token(token), scheduler, True)


def to_process(
    fn: Callable[..., T], /, *args: Any, token: CancellationToken | None = None
) -> Coroutine[Any, Any, T]:
    """Run ``fn(*args)`` in a worker process (a shared :class:`ProcessScheduler`); await it.

    ``fn`` and its arguments travel by cloudpickle (lambdas and closures too);
    the result or exception comes back. The shared scheduler has
    ``os.cpu_count()`` workers, started on first use::

        digest = await tl.to_process(hash_file, path)

    If the awaiting coroutine is cancelled, or ``token`` is canceled, the task's
    token is canceled: queued work never starts, running work is terminated (its
    worker process is killed and replaced) and the task ends ``CANCELED``; the
    coroutine does not wait for that. contextvars do not cross into processes.
    """
    check_callable(fn)
    scheduler = _process_scheduler()
    checked = None if token is None else _check_token(token)
    return _offload(fn, args, checked, scheduler, False)


async def _offload(
    fn: Callable[..., T],
    args: tuple[Any, ...],
    token: CancellationToken | None,
    scheduler: TaskScheduler,
    lazy_token: bool,
) -> T:
    """The coroutine behind ``to_thread``/``to_process``: start, await, cancel if cancelled.

    Without ``token``, only this coroutine can cancel the work. ``lazy_token``
    (threads) then gives the task a token made on first use (most calls never
    look at it); otherwise (processes, whose scheduler watches the token from
    the start) a plain source whose token the task does not register on, since
    a queued task is canceled directly below.
    """
    cts: CancellationTokenSource | None
    if token is not None:
        cts = CancellationTokenSource.create_linked(token)
        task_token = cts.token
        flags = F_DENY_CHILD_ATTACH
    elif lazy_token:
        cts = None
        task_token = _LAZY_TOKEN
        flags = F_DENY_CHILD_ATTACH
    else:
        cts = CancellationTokenSource()
        task_token = cts.token
        flags = F_DENY_CHILD_ATTACH | F_LAZY_CANCELLATION
    task: Task[T] = start_task(fn, args, token=task_token, flags=flags, scheduler=scheduler)
    try:
        return await task
    except BaseException:
        if task._status < _RAN_TO_COMPLETION:
            # The awaiter was cancelled: so is the work. Queued, it never starts;
            # running, its token is canceled (a process worker is terminated).
            task._try_cancel()
            source = cts if cts is not None else _token_of(task)._source
            assert source is not None
            source.cancel()
        raise
    finally:
        if token is not None:
            assert cts is not None
            cts.close()


_process_default: ProcessScheduler | None = None
_process_default_lock = threading.Lock()


def _process_scheduler() -> ProcessScheduler:
    """The process scheduler ``to_process`` uses (created on first use)."""
    global _process_default
    scheduler = _process_default
    if scheduler is None:
        with _process_default_lock:
            scheduler = _process_default
            if scheduler is None:
                scheduler = _process_default = ProcessScheduler()
    return scheduler


# == installation ===========================================================================

_task._await_hook = _await_task
_task._coroutine_hook = _coroutine_scheduler
_task._awaitable_hook = _wrap_awaitable
