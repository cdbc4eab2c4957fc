"""The task state machine (DESIGN 1.1-1.6): ``Task``, continuations, children, promises.

A :class:`Task` is a :class:`concurrent.futures.Future` whose status moves along::

    CREATED --start--> WAITING_TO_RUN --scheduler--> RUNNING --body returns-->
        [WAITING_FOR_CHILDREN_TO_COMPLETE] --> RAN_TO_COMPLETION | FAULTED | CANCELED
    WAITING_FOR_ACTIVATION (continuations, promises) --antecedent done--> WAITING_TO_RUN ...

Every status change happens under the task's ``_lock`` and moves forward only;
once final it never changes. The continuation list is swapped out under the same
lock at completion, so a continuation registered concurrently with completion
either lands in the list (and runs from the completer) or sees the final status
(and runs from the registering thread) - exactly once either way.

``_lock`` is one of a fixed set of re-entrant stripe locks shared by many tasks
(a lock per task would be one more object for the garbage collector to track,
and that cost dominates task creation). This is safe because the core never holds
one task's ``_lock`` while taking another's; a stripe is re-entrant so that code
run meanwhile on the same thread (a finalizer started by the garbage collector)
cannot deadlock on a task that shares it.

``concurrent.futures.wait`` / ``as_completed`` reach into ``_condition``,
``_state`` and ``_waiters`` and hold several futures' ``_condition`` at once, so
``_condition`` is a lock of the task's own, made on first use (under the stripe,
so completion either sees it or happens before it exists); completion takes it
to read ``_waiters`` after the final status is set. Methods that ``wait()`` calls
while holding it (``cancelled()``, ``exception()`` on a done task) take no lock.
"""

from __future__ import annotations

import _thread
import concurrent.futures
import contextvars
import inspect
import itertools
import logging
import threading
from collections.abc import Callable, Generator, Iterable, Sequence
from typing import Any, Generic, TypeVar, cast

from . import _context
from ._cancellation import (
    CancellationToken,
    CancellationTokenRegistration,
    CancellationTokenSource,
)
from ._context import ThreadState
from ._enums import TaskContinuationOptions, TaskCreationOptions, TaskStatus
from ._errors import (
    InvalidOperationError,
    OperationCanceledError,
    TaskCanceledError,
    aggregate,
)
from ._scheduler import TaskScheduler
from ._unobserved import ExceptionHolder
from ._util import check_callable, check_enum, check_timeout

__all__ = [
    "Task",
    "TaskCompletionSource",
    "current_task",
    "current_token",
    "from_canceled",
    "from_exception",
    "from_future",
    "from_result",
    "when_all",
    "when_any",
]

T = TypeVar("T")
R = TypeVar("R")

logger = logging.getLogger("taskloom")

# Internal status codes: ints so the hot path compares small ints, not enum members.
_CREATED = 0
_WAITING_FOR_ACTIVATION = 1
_WAITING_TO_RUN = 2
_RUNNING = 3
_WAITING_FOR_CHILDREN = 4
_RAN_TO_COMPLETION = 5  # every status >= this one is final
_CANCELED = 6
_FAULTED = 7
_STATUSES = tuple(TaskStatus)

# Internal flag bits (``Task._flags``). The low bits mirror TaskCreationOptions.
F_PREFER_FAIRNESS = 1
F_LONG_RUNNING = 2
F_ATTACHED = 4
F_DENY_CHILD_ATTACH = 8
F_HIDE_SCHEDULER = 16
F_LAZY_CANCELLATION = 32
F_RUN_CONTINUATIONS_ASYNC = 64
F_UNWRAP = 1 << 8  # a returned Task/Future (or awaitable) becomes this task's outcome
F_CONTINUATION = 1 << 9  # a continue_with/then continuation
F_VALUE_BASED = 1 << 10  # a then() continuation: fn(result, ...)
F_PROMISE = 1 << 11  # no body: completed from outside (completion source, when_*)
F_EXECUTE_SYNCHRONOUSLY = 1 << 12
F_COROUTINE = 1 << 13  # the body is a coroutine function (run on an event loop)
# Set once the task has a parent, a token registration, concurrent.futures waiters or
# attached children: completion then takes the slower path that handles them.
F_RARE = 1 << 14
F_NOT_ON_RAN = 1 << 16
F_NOT_ON_FAULTED = 1 << 17
F_NOT_ON_CANCELED = 1 << 18

_CREATION_MASK = 0xFF
_FILTER_FLAGS = F_NOT_ON_RAN | F_NOT_ON_FAULTED | F_NOT_ON_CANCELED | F_LAZY_CANCELLATION

# A blocking wait or a synchronous continuation may run a task on the waiting
# thread's stack. Each level costs several Python frames; beyond this depth the
# task is queued instead, so nesting never reaches the recursion limit.
MAX_INLINE_DEPTH = 40

# Completing a task runs its continuations on the completing thread, and those may
# complete further tasks at once (then() passing on a fault, filtered continuations,
# when_all/when_any, unwrap, parents of attached children), so a long chain completes
# recursively. Beyond this depth the next continuation runs on a fresh stack, a pool
# thread of the default scheduler (as TPL does when the stack runs short): no chain
# length reaches the recursion limit, and no continuation waits for this stack to unwind.
MAX_COMPLETION_DEPTH = 32

_NONE_TOKEN = CancellationToken.NONE
# The token of a task whose real token is made on first use (see _token_of): it is
# not NONE (identity tells them apart), but like NONE it has no source, so creating
# the task registers nothing. Used by to_thread: most offloaded calls never look
# at their token, and a source per call would cost an allocation the collector tracks.
_LAZY_TOKEN = CancellationToken(None)
_allocate_lock = _thread.allocate_lock
# Stripe locks for Task._lock (see the module docstring); a power of two.
_STRIPES = tuple(_thread.RLock() for _ in range(1024))
_STRIPE_MASK = len(_STRIPES) - 1
_local = _context.local
_copy_context = contextvars.copy_context
_id_counter = itertools.count(1)
_id_lock = threading.Lock()

# Hooks the front-end layer installs (the core stays stdlib-only and loop-agnostic).
# _await_hook(task) -> generator used by Task.__await__.
_await_hook: Callable[[Task[Any]], Generator[Any, None, Any]] | None = None
# _coroutine_hook(scheduler, antecedent) -> the loop scheduler that runs a coroutine
# function body (``scheduler`` if given and valid, else the current or antecedent's
# loop); raises InvalidOperationError when there is none. See _frontend.
_coroutine_hook: Callable[[Any, Task[Any] | None], TaskScheduler] | None = None
# _awaitable_hook(obj) -> Task for an awaitable (coroutine, asyncio future) on a loop thread.
_awaitable_hook: Callable[[Any], Task[Any]] | None = None


class _SyncWaiter:
    """A one-shot wakeup for a thread blocked in ``Task.wait`` (released at most once)."""

    __slots__ = ("lock",)

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lock.acquire()

    def __call__(self, _task: object = None) -> None:
        try:
            self.lock.release()
        except RuntimeError:  # already released: completion and token raced
            pass


def is_coroutine_function(fn: object) -> bool:
    """``inspect.iscoroutinefunction`` with a fast path for plain functions."""
    if type(fn) is _FunctionType:
        if fn.__code__.co_flags & _CO_COROUTINE:
            return True
        if not _HAS_COROUTINE_MARK or getattr(fn, "_is_coroutine_marker", None) is None:
            return False  # (3.12+: inspect.markcoroutinefunction may mark a plain function)
    return inspect.iscoroutinefunction(fn)


_FunctionType = type(is_coroutine_function)
_CO_COROUTINE = inspect.CO_COROUTINE
_HAS_COROUTINE_MARK = hasattr(inspect, "markcoroutinefunction")


def _is_task_like(obj: object) -> bool:
    """True for what an unwrapping task follows: a Future or an awaitable."""
    return isinstance(obj, concurrent.futures.Future) or hasattr(type(obj), "__await__")


def _next_id() -> int:
    with _id_lock:
        return next(_id_counter)


def _ensure_task(obj: object, name: str) -> Task[Any]:
    """A Task for ``obj``: a Task as is, a Future wrapped, an awaitable via the front end."""
    if isinstance(obj, Task):
        return obj
    if isinstance(obj, concurrent.futures.Future):
        return from_future(obj)
    hook = _awaitable_hook
    if hook is not None and (inspect.isawaitable(obj)):
        return hook(obj)
    raise TypeError(
        f"{name} must be a Task, a concurrent.futures.Future or (on an event loop) an "
        f"awaitable, not {type(obj).__name__}"
    )


class Task(concurrent.futures.Future[T]):
    """A unit of work with a result: TPL's ``Task<T>``, PPL's ``task<T>``, a ``Future``.

    ``Task(fn, *args)`` makes a *cold* task; ``start()`` queues it. Most code uses
    :func:`run` or :func:`start_new` instead, which create and start in one go::

        task = tl.run(sum, [1, 2, 3])
        task.continue_with(lambda t: print(t.result()))
        assert task.result() == 6

    It is a :class:`concurrent.futures.Future` (``wait``, ``as_completed``,
    ``asyncio.wrap_future`` accept it) and is awaitable on asyncio, uvloop and trio.
    """

    # Fields every task uses live in slots; the rarely used ones below are class-level
    # defaults, set in the instance __dict__ only by the tasks that need them, so a
    # plain task carries no dict at all.
    __slots__ = (
        # Guards every status transition and _conts. Never held while user code runs.
        "_lock",
        # Internal status code (see _CREATED..._FAULTED); moves forward only.
        "_status",
        # _CREATION_MASK bits of TaskCreationOptions plus the F_* flags above.
        "_flags",
        # The body and its arguments; cleared once the task completes.
        "_fn",
        "_args",
        # contextvars.Context copied when the task was created (None for promises).
        "_ctx",
        "_token",
        # Where the task was queued; set before queue_task.
        "_scheduler",
        # Result once RAN_TO_COMPLETION; once FAULTED/CANCELED, the cached error.
        "_result",
        # None, one continuation, or a list of them; None after completion.
        "_conts",
    )

    # (Annotations only: the slots above hold these.)
    _lock: _thread.RLock
    _status: int
    _flags: int
    _fn: Callable[..., Any] | None
    _args: tuple[Any, ...] | None
    _ctx: contextvars.Context | None
    _token: CancellationToken
    _scheduler: TaskScheduler | None
    _result: Any
    _conts: Any

    _async_state: Any = None
    # Exceptions once FAULTED (or gathered from attached children while they run).
    _excs: list[BaseException] | None = None
    # ExceptionHolder while a fault is unobserved (see _unobserved).
    _holder: ExceptionHolder | None = None
    # Attached parent, and the number of attached children still running (written
    # under _lock; only the body's own thread can add children, so once the body has
    # returned the count can only fall).
    _parent: Task[Any] | None = None
    _children: int = 0
    _token_reg: CancellationTokenRegistration | None = None
    # concurrent.futures' view (see the module docstring): its lock and waiters.
    _cf_lock: _thread.LockType | None = None
    _cf_waiters: list[Any] | None = None
    _id: int = 0
    # A continuation with a cancelable token: its antecedent, until activated or canceled.
    _antecedent: Task[Any] | None = None
    # The operands of a when_all/when_any promise (for & and | flattening).
    _parts: tuple[Any, ...] | None = None

    # -- construction ---------------------------------------------------------------

    def __init__(
        self,
        fn: Callable[..., T],
        /,
        *args: Any,
        state: Any = None,
        token: CancellationToken | None = None,
        options: TaskCreationOptions = TaskCreationOptions.NONE,
    ) -> None:
        check_callable(fn)
        flags = _creation_flags(options, "options")
        _init_task(self, fn, args, state, _check_token(token), flags, _CREATED)

    # -- properties -------------------------------------------------------------------

    @property
    def id(self) -> int:
        """A unique positive integer, assigned on first use."""
        tid = self._id
        if tid == 0:
            with self._lock:
                tid = self._id
                if tid == 0:
                    tid = self._id = _next_id()
        return tid

    @property
    def status(self) -> TaskStatus:
        """The task's current :class:`TaskStatus`."""
        return _STATUSES[self._status]

    @property
    def async_state(self) -> Any:
        """The ``state`` object given when the task was created."""
        return self._async_state

    @property
    def creation_options(self) -> TaskCreationOptions:
        """The :class:`TaskCreationOptions` the task was created with."""
        return TaskCreationOptions(self._flags & _CREATION_MASK & ~F_LAZY_CANCELLATION)

    @property
    def token(self) -> CancellationToken:
        """The cancellation token the task observes (``CancellationToken.NONE`` if none)."""
        return _token_of(self)

    @property
    def is_completed(self) -> bool:
        """True in any final state (ran to completion, faulted or canceled)."""
        return self._status >= _RAN_TO_COMPLETION

    @property
    def is_completed_successfully(self) -> bool:
        """True if the task ran to completion."""
        return self._status == _RAN_TO_COMPLETION

    @property
    def is_faulted(self) -> bool:
        """True if the task ended with an exception."""
        return self._status == _FAULTED

    @property
    def is_canceled(self) -> bool:
        """True if the task ended canceled."""
        return self._status == _CANCELED

    # -- starting ---------------------------------------------------------------------

    def start(self, scheduler: TaskScheduler | None = None) -> None:
        """Queue a cold task to ``scheduler`` (default: ``TaskScheduler.current()``).

        Raises :class:`InvalidOperationError` if the task was already started,
        is a continuation or promise, or has completed (its token was canceled).
        """
        sched = _resolve_scheduler(scheduler)
        with self._lock:
            if self._status != _CREATED or self._flags & (F_CONTINUATION | F_PROMISE):
                raise InvalidOperationError(_cannot_start(self))
            self._status = _WAITING_TO_RUN
        _queue(self, sched)

    def run_synchronously(self, scheduler: TaskScheduler | None = None) -> None:
        """Run a cold task on the calling thread (if the scheduler allows) and wait for it.

        Blocks until the task completes (children included); does not raise the
        task's exception - read it with ``result()`` or ``exception()``.
        """
        sched = _resolve_scheduler(scheduler)
        with self._lock:
            if self._status != _CREATED or self._flags & (F_CONTINUATION | F_PROMISE):
                raise InvalidOperationError(_cannot_start(self))
            self._status = _WAITING_TO_RUN
            self._scheduler = sched
        if not self._try_run_inline(sched, False):
            _queue(self, sched)
        self._wait_core(None, None)

    # -- waiting and results ------------------------------------------------------------

    def wait(self, timeout: float | None = None, token: CancellationToken | None = None) -> bool:
        """Block until the task completes; False if ``timeout`` seconds pass first.

        Raises the task's exception if it faulted (:class:`TaskCanceledError`
        if canceled), also when called after completion. Raises
        :class:`OperationCanceledError` if ``token`` is canceled first. A wait
        from a pool worker may run the task inline if it is still queued there.
        """
        seconds = check_timeout(timeout)
        if token is not None:
            _check_token(token)
        if not self._wait_core(seconds, token):
            return False
        if self._status != _RAN_TO_COMPLETION:
            raise self._outcome_error()
        return True

    def result(self, timeout: float | None = None) -> T:
        """The task's result, blocking up to ``timeout`` seconds (``TimeoutError`` after).

        Raises what the task ended with: its exception (one) or an
        :class:`AggregateError` (several), or :class:`TaskCanceledError`.
        """
        if self._status != _RAN_TO_COMPLETION:
            seconds = None if timeout is None else check_timeout(timeout)
            if not self._wait_core(seconds, None):
                raise TimeoutError(f"{self!r} did not complete within {timeout} seconds")
            if self._status != _RAN_TO_COMPLETION:
                raise self._outcome_error()
        return self._result  # type: ignore[no-any-return]  # (no cast() call: hot path)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The task's exception (``None`` if it ran to completion), blocking like ``result``.

        One exception is returned as is; several as an :class:`AggregateError`.
        A canceled task raises :class:`TaskCanceledError` (Future semantics).
        """
        if self._status < _RAN_TO_COMPLETION:
            seconds = check_timeout(timeout)
            if not self._wait_core(seconds, None):
                raise TimeoutError(f"{self!r} did not complete within {timeout} seconds")
        status = self._status
        if status == _RAN_TO_COMPLETION:
            return None
        if status == _CANCELED:
            raise self._outcome_error()
        return self._outcome_error()

    def _outcome_error(self) -> BaseException:
        """The exception ``result()`` raises for a FAULTED or CANCELED task (marks it observed)."""
        if self._status == _CANCELED:
            err = self._result
            if err is None:
                err = TaskCanceledError(task=self)
                self._result = err
            return cast(BaseException, err)
        self._mark_observed()
        err = self._result
        if err is None:
            excs = self._excs
            assert excs, "a FAULTED task holds at least one exception"
            if len(excs) == 1:
                err = excs[0]
            else:
                err = aggregate("One or more errors occurred.", excs)
            self._result = err
        return cast(BaseException, err)

    def _peek_exception(self) -> BaseException | None:
        """The fault without marking it observed (for the unobserved-exception handler)."""
        excs = self._excs
        if self._status != _FAULTED or not excs:
            return None
        if self._result is not None:
            return cast(BaseException, self._result)
        return excs[0] if len(excs) == 1 else aggregate("One or more errors occurred.", excs)

    def _mark_observed(self) -> None:
        holder = self._holder
        if holder is not None:
            self._holder = None
            holder.task = None

    # -- Future API -----------------------------------------------------------------------

    def done(self) -> bool:
        """True once the task is in a final state."""
        return self._status >= _RAN_TO_COMPLETION

    def cancelled(self) -> bool:
        """True if the task ended ``CANCELED``."""
        return self._status == _CANCELED

    def running(self) -> bool:
        """True while the body runs or the task waits for attached children."""
        return self._status in (_RUNNING, _WAITING_FOR_CHILDREN)

    def cancel(self) -> bool:
        """Cancel the task if it has not started running (Future semantics).

        Returns True if the task is now canceled (or already was), False if it
        is running or has completed otherwise.
        """
        if self._try_cancel():
            return True
        return self._status == _CANCELED

    def add_done_callback(self, fn: Callable[[Task[T]], object]) -> None:
        """Call ``fn(task)`` when the task completes (at once if it already has).

        Runs on the completing thread; exceptions are logged on ``taskloom``.
        """
        check_callable(fn)
        self._add_continuation(_DoneCallback(fn))

    def set_running_or_notify_cancel(self) -> bool:
        """Executor protocol for body-less tasks (completion sources); see Future."""
        if not self._flags & F_PROMISE:
            raise InvalidOperationError("only a promise task can be driven by an executor")
        with self._lock:
            if self._status == _CANCELED:
                return False
            if self._status >= _RAN_TO_COMPLETION or self._status == _RUNNING:
                raise InvalidOperationError(f"{self!r} is already running or done")
            self._status = _RUNNING
        return True

    def set_result(self, result: T) -> None:
        """Complete a promise task (a completion source's task) with ``result``."""
        if not self._flags & F_PROMISE:
            raise InvalidOperationError(
                "use a TaskCompletionSource to complete a task from outside"
            )
        if not self._complete(_RAN_TO_COMPLETION, result, None):
            raise InvalidOperationError(f"{self!r} has already completed")

    def set_exception(self, exception: BaseException | None) -> None:
        """Fault a promise task (a completion source's task) with ``exception``."""
        if not self._flags & F_PROMISE:
            raise InvalidOperationError(
                "use a TaskCompletionSource to complete a task from outside"
            )
        if not isinstance(exception, BaseException):
            raise TypeError(f"exception must be an exception, not {type(exception).__name__}")
        if not self._complete(_FAULTED, None, [exception]):
            raise InvalidOperationError(f"{self!r} has already completed")

    # concurrent.futures.wait()/as_completed() reach into these three (see module doc).

    # (Setters exist only so that type checkers accept tasks where typeshed's protocol for
    # as_completed() wants plain attributes; nothing assigns them.)

    @property
    def _condition(self) -> Any:
        cf_lock = self._cf_lock
        if cf_lock is None:
            self._lock.acquire()
            try:
                cf_lock = self._cf_lock
                if cf_lock is None:
                    cf_lock = self._cf_lock = _allocate_lock()
                    self._flags |= F_RARE  # under _lock: completion will look at the waiters
            finally:
                self._lock.release()
        return cf_lock

    @_condition.setter
    def _condition(self, value: Any) -> None:
        raise AttributeError("a task's _condition is its lock and cannot be replaced")

    @property
    def _state(self) -> str:
        status = self._status
        if status >= _RAN_TO_COMPLETION:
            return "CANCELLED_AND_NOTIFIED" if status == _CANCELED else "FINISHED"
        if status in (_RUNNING, _WAITING_FOR_CHILDREN):
            return "RUNNING"
        return "PENDING"

    @_state.setter
    def _state(self, value: str) -> None:
        raise AttributeError("a task's state changes only through its own transitions")

    @property
    def _waiters(self) -> list[Any]:
        # Only called by concurrent.futures, holding _condition (the _cf_lock).
        waiters = self._cf_waiters
        if waiters is None:
            waiters = self._cf_waiters = []
        return waiters

    @_waiters.setter
    def _waiters(self, value: list[Any]) -> None:
        raise AttributeError("a task's _waiters list cannot be replaced")

    # -- continuations --------------------------------------------------------------------

    def continue_with(
        self,
        fn: Callable[..., R],
        /,
        *args: Any,
        token: CancellationToken | None = None,
        options: TaskContinuationOptions = TaskContinuationOptions.NONE,
        scheduler: TaskScheduler | None = None,
        state: Any = None,
    ) -> Task[R]:
        """Run ``fn(antecedent, *args)`` when this task completes, whatever its outcome.

        ``options`` can restrict when it runs (``ONLY_ON_FAULTED``...: when excluded
        the continuation ends ``CANCELED``) and how (``EXECUTE_SYNCHRONOUSLY`` runs
        it on the completing thread). The default scheduler is
        ``TaskScheduler.current()`` at this call. A coroutine function runs on an
        event loop (``scheduler`` or the loop this task's creator ran on).
        """
        if not callable(fn):
            check_callable(fn)
        flags = (
            F_CONTINUATION if options is _NO_CONTINUATION_OPTIONS else _continuation_flags(options)
        )
        return _make_continuation(self, fn, args, token, flags, scheduler, state)

    def then(
        self,
        fn: Callable[..., Any],
        /,
        *args: Any,
        token: CancellationToken | None = None,
        scheduler: TaskScheduler | None = None,
    ) -> Task[Any]:
        """Value-based continuation (PPL): ``fn(result, *args)`` if this task succeeds.

        If this task faults or is canceled, the returned task ends the same way
        without calling ``fn``. If ``fn`` returns a task or an awaitable, the
        returned task completes with that one's outcome (asynchronous unwrapping).
        """
        check_callable(fn)
        flags = F_CONTINUATION | F_VALUE_BASED | F_UNWRAP
        return _make_continuation(self, fn, (None, *args), token, flags, scheduler, None)

    def unwrap(self) -> Task[Any]:
        """For a ``Task[Task[X]]``: a ``Task[X]`` completing when the inner task does."""
        proxy: Task[Any] = _new_promise()
        self._add_continuation(_UnwrapOuter(proxy))
        return proxy

    def __and__(self, other: object) -> Task[list[Any]]:
        """``t1 & t2 & t3`` is ``when_all(t1, t2, t3)`` (flattened)."""
        return when_all(*_combined_parts(self, _WhenAll), *_combined_parts(other, _WhenAll))

    def __rand__(self, other: object) -> Task[list[Any]]:
        return when_all(*_combined_parts(other, _WhenAll), *_combined_parts(self, _WhenAll))

    def __or__(self, other: object) -> Task[Task[Any]]:
        """``t1 | t2 | t3`` is ``when_any(t1, t2, t3)`` (flattened)."""
        return when_any(*_combined_parts(self, _WhenAny), *_combined_parts(other, _WhenAny))

    def __ror__(self, other: object) -> Task[Task[Any]]:
        return when_any(*_combined_parts(other, _WhenAny), *_combined_parts(self, _WhenAny))

    def __await__(self) -> Generator[Any, None, T]:
        hook = _await_hook
        if hook is None:
            raise InvalidOperationError("the event-loop front end is not loaded")
        return cast(Generator[Any, None, T], hook(self))

    def __repr__(self) -> str:
        fn = self._fn
        body = f" fn={getattr(fn, '__qualname__', type(fn).__name__)}" if fn is not None else ""
        return f"<{type(self).__name__} id={self.id} {self.status.name}{body}>"

    # == internals (schedulers and the other taskloom modules only) =======================

    def _ambient_scheduler(self) -> TaskScheduler | None:
        """What ``TaskScheduler.current()`` returns inside this task's body."""
        if self._flags & F_HIDE_SCHEDULER:
            return None
        return self._scheduler

    def _start_running(self) -> bool:
        """WAITING_TO_RUN -> RUNNING; False if the task was canceled or claimed elsewhere.

        Called by whatever thread is about to run the body (a worker, an inlining
        waiter, a process scheduler's dispatcher). Exactly one caller wins.
        """
        lock = self._lock
        with lock:
            if self._status != _WAITING_TO_RUN:
                return False
            self._status = _RUNNING
        parent = self._parent
        if parent is not None and parent._token.is_cancellation_requested:
            # The parent was canceled before this attached child started: never run it.
            self._finish_body_canceled(parent._token)
            return False
        return True

    def _execute(self, local: ThreadState | None = None) -> bool:
        """Run the body on this thread (via ``TaskScheduler.try_execute_task``).

        The hot path: one lock round-trip to claim the task, the body, one to complete.
        ``local`` is this thread's state when the caller (a pool worker) has it at hand.
        """
        self._lock.acquire()  # (acquire/release: a `with` costs twice as much)
        try:
            if self._status != _WAITING_TO_RUN:
                return False
            self._status = _RUNNING
        finally:
            self._lock.release()
        if self._flags & F_RARE:
            parent = self._parent
            if parent is not None and parent._token.is_cancellation_requested:
                # The parent was canceled before this attached child started: never run it.
                self._finish_body_canceled(parent._token)
                return False
        if local is None:
            local = _local.state
        previous = local.task
        local.task = self
        try:
            result = self._ctx.run(self._fn, *self._args)  # type: ignore[union-attr,misc,arg-type]
        except BaseException as exc:  # noqa: BLE001 - a task records every failure
            local.task = previous
            self._finish_body_error(exc)
        else:
            local.task = previous
            flags = self._flags
            if not flags & (F_UNWRAP | F_RARE):
                # The common case, _complete's success path inlined. Only this thread can
                # finalize a RUNNING task, so the final-state check is not needed.
                lock = self._lock
                lock.acquire()
                assert self._status == _RUNNING
                self._status = _RAN_TO_COMPLETION
                conts = self._conts
                self._conts = None
                self._result = result
                flags = self._flags  # F_RARE may have appeared (concurrent.futures waiters)
                lock.release()
                self._fn = self._args = self._ctx = None
                if conts is not None or flags & F_RARE:
                    self._after_complete(_RAN_TO_COMPLETION, flags, conts)
            elif flags & F_UNWRAP and result is not None and _is_task_like(result):
                if flags & F_COROUTINE:
                    # The coroutine starts on its loop in (a copy of) the task's context.
                    self._ctx.run(self._unwrap_into, result)  # type: ignore[union-attr]
                else:
                    self._unwrap_into(result)
            else:
                self._finish_body(result, None)
        return True

    def _finish_body_error(self, exc: BaseException) -> None:
        if isinstance(exc, OperationCanceledError):
            token = self._token
            if exc.token == token and token.is_cancellation_requested:
                self._finish_body_canceled(token)
                return
        self._finish_body(None, exc)

    def _finish_body_canceled(self, token: CancellationToken) -> None:
        # The body acknowledged cancellation: CANCELED unless children faulted.
        self._finish_body(_CANCELED_MARK, None)

    def _finish_body(self, result: Any, exc: BaseException | None) -> None:
        """The body is over: complete now, or wait for attached children."""
        if self._children == 0 and self._excs is None:
            # No child attached (none can attach any more): complete directly.
            if exc is not None:
                self._complete(_FAULTED, None, [exc])
            elif result is _CANCELED_MARK:
                self._complete(_CANCELED, None, None)
            else:
                self._complete(_RAN_TO_COMPLETION, result, None)
            return
        self._lock.acquire()  # (acquire/release: a `with` costs twice as much)
        try:
            if self._children:
                self._status = _WAITING_FOR_CHILDREN
                self._result = result
                if exc is not None:
                    excs = self._excs
                    if excs is None:
                        self._excs = [exc]
                    else:
                        excs.insert(0, exc)
                return
        finally:
            self._lock.release()
        if exc is not None:
            excs = self._excs
            self._complete(_FAULTED, None, [exc] if excs is None else [exc, *excs])
        elif self._excs:
            self._complete(_FAULTED, None, self._excs)
        elif result is _CANCELED_MARK:
            self._complete(_CANCELED, None, None)
        else:
            self._complete(_RAN_TO_COMPLETION, result, None)

    def _child_completed(self, child: Task[Any]) -> None:
        """Called by an attached child once it is final; may complete this parent."""
        status = child._status
        contribution: BaseException | None = None
        if status == _FAULTED:
            contribution = child._outcome_error()
        elif status == _CANCELED and child._token == self._token and self._token.can_be_canceled:
            contribution = TaskCanceledError(task=child)
        with self._lock:
            if contribution is not None:
                if self._excs is None:
                    self._excs = [contribution]
                else:
                    self._excs.append(contribution)
            self._children -= 1
            assert self._children >= 0, "more child completions than attached children"
            if self._children or self._status != _WAITING_FOR_CHILDREN:
                return
            result = self._result
            excs = self._excs
        if excs:
            self._complete(_FAULTED, None, excs)
        elif result is _CANCELED_MARK:
            self._complete(_CANCELED, None, None)
        else:
            self._complete(_RAN_TO_COMPLETION, result, None)

    def _unwrap_into(self, inner: Any) -> None:
        """The body returned a task/future/awaitable: complete with its outcome later."""
        try:
            inner_task = _ensure_task(inner, "the returned value")
        except BaseException as exc:  # noqa: BLE001
            self._finish_body(None, exc)
            return
        inner_task._add_continuation(_UnwrapInner(self))

    def _complete(self, status: int, result: Any, excs: list[BaseException] | None) -> bool:
        """The one transition into a final state. Returns False if already final.

        Any thread may call it; the continuations it takes out run on this thread.
        """
        self._lock.acquire()  # (acquire/release: a `with` costs twice as much)
        try:
            if self._status >= _RAN_TO_COMPLETION:
                return False
            assert status >= _RAN_TO_COMPLETION
            self._status = status
            conts = self._conts
            self._conts = None
            if status == _RAN_TO_COMPLETION:
                self._result = result
            else:
                self._result = None
                if excs is not None or self._excs is not None:
                    self._excs = excs
                if status == _FAULTED:
                    # Set before the status is visible, so an early observer can clear it.
                    self._holder = ExceptionHolder(self)
            flags = self._flags
        finally:
            self._lock.release()
        self._fn = self._args = self._ctx = None
        self._after_complete(status, flags, conts)
        return True

    def _after_complete(self, status: int, flags: int, conts: Any) -> None:
        """What follows the final transition, outside the lock, on the completing thread."""
        if flags & F_RARE:
            waiters = None
            cf_lock = self._cf_lock
            if cf_lock is not None:
                with cf_lock:  # after the final status: see _condition and the module doc
                    waiters = list(self._cf_waiters or ())
            self._complete_rare(status, waiters)
        if conts is not None:
            if type(conts) is list:
                for cont in conts:
                    self._run_continuation(cont)
            else:
                self._run_continuation(conts)

    def _complete_rare(self, status: int, waiters: list[Any] | None) -> None:
        """The part of completion only tasks with F_RARE need."""
        if self._token_reg is not None:
            self._token_reg.unregister()
            self._token_reg = None
        if waiters:
            for waiter in waiters:
                if status == _RAN_TO_COMPLETION:
                    waiter.add_result(self)
                elif status == _FAULTED:
                    waiter.add_exception(self)
                else:
                    waiter.add_cancelled(self)
        parent = self._parent
        if parent is not None:
            self._parent = None
            _run_nested(parent._child_completed, self)

    def _try_cancel(self) -> bool:
        """Cancel if not started yet (CREATED, WAITING_FOR_ACTIVATION or WAITING_TO_RUN)."""
        if self._status > _WAITING_TO_RUN:
            return False
        return self._complete_if_not_started(_CANCELED, None, None)

    def _complete_if_not_started(
        self, status: int, result: Any, excs: list[BaseException] | None
    ) -> bool:
        self._lock.acquire()  # (acquire/release: a `with` costs twice as much)
        try:
            if self._status > _WAITING_TO_RUN:
                return False
            # Mark RUNNING so _complete's final transition is the only one possible.
            self._status = _RUNNING
        finally:
            self._lock.release()
        return self._complete(status, result, excs)

    def _cancel_from_token(self) -> None:
        if self._try_cancel():
            antecedent = self._antecedent
            if antecedent is not None:
                # A continuation canceled early leaves its antecedent's list at once, so a
                # long-lived antecedent does not keep canceled continuations alive.
                self._antecedent = None
                antecedent._remove_continuation(self)

    # -- continuation plumbing --------------------------------------------------------

    def _add_continuation(self, cont: Any) -> None:
        """Register ``cont`` (a continuation Task or a callable(task)); run now if done."""
        self._lock.acquire()  # (acquire/release: a `with` costs twice as much)
        try:
            if self._status < _RAN_TO_COMPLETION:
                conts = self._conts
                if conts is None:
                    self._conts = cont
                elif type(conts) is list:
                    conts.append(cont)
                else:
                    self._conts = [conts, cont]
                return
        finally:
            self._lock.release()
        self._run_continuation(cont)

    def _remove_continuation(self, cont: Any) -> None:
        self._lock.acquire()  # (acquire/release: a `with` costs twice as much)
        try:
            conts = self._conts
            if conts is cont:
                self._conts = None
            elif type(conts) is list:
                try:
                    conts.remove(cont)
                except ValueError:
                    pass
        finally:
            self._lock.release()

    def _run_continuation(self, cont: Any) -> None:
        if type(cont) is Task or isinstance(cont, Task):
            cont._activate(self)  # queues it, or completes it through _run_nested
            return
        _run_nested(self._call_callback, cont)

    def _call_callback(self, cont: Callable[[Task[Any]], object]) -> None:
        try:
            cont(self)
        except BaseException:
            logger.exception("taskloom: a completion callback of %r raised", self)

    def _activate(self, antecedent: Task[Any]) -> None:
        """Antecedent done: filter, then queue (or run inline) this continuation."""
        if self._status != _WAITING_FOR_ACTIVATION:
            return  # canceled by its token already
        flags = self._flags
        if flags & F_RARE:
            self._antecedent = None
        status = antecedent._status
        if flags & _FILTER_FLAGS and (
            (status == _RAN_TO_COMPLETION and flags & F_NOT_ON_RAN)
            or (status == _FAULTED and flags & F_NOT_ON_FAULTED)
            or (status == _CANCELED and flags & F_NOT_ON_CANCELED)
            or (flags & F_LAZY_CANCELLATION and self._token.is_cancellation_requested)
        ):
            _run_nested(self._complete_if_not_started, _CANCELED, None, None)
            return
        if flags & F_VALUE_BASED:
            if status != _RAN_TO_COMPLETION:
                # then(): take over the antecedent's fault or cancellation without running.
                if status == _FAULTED:
                    antecedent._mark_observed()
                    excs = list(antecedent._excs or ())
                    _run_nested(self._complete_if_not_started, _FAULTED, None, excs)
                else:
                    _run_nested(self._complete_if_not_started, _CANCELED, None, None)
                return
            args = self._args
            self._args = (antecedent._result, *(args[1:] if args else ()))
        else:
            self._args = (antecedent, *(self._args or ()))
        scheduler: TaskScheduler = self._scheduler  # type: ignore[assignment]
        self._lock.acquire()  # (acquire/release: a `with` costs twice as much)
        try:
            if self._status != _WAITING_FOR_ACTIVATION:
                return
            self._status = _WAITING_TO_RUN
            lazy = flags & F_LAZY_CANCELLATION and self._token.can_be_canceled
            if lazy:
                self._flags |= F_RARE  # under _lock: _complete_rare unregisters _token_reg
        finally:
            self._lock.release()
        if lazy:
            # Lazy cancellation only waited for the antecedent: from here on the token
            # cancels the queued continuation as usual (at once, if canceled already).
            self._token_reg = self._token.register(self._cancel_from_token)
            if self._status != _WAITING_TO_RUN:
                return
        if (
            flags & F_EXECUTE_SYNCHRONOUSLY
            and not antecedent._flags & F_RUN_CONTINUATIONS_ASYNC
            and self._try_run_inline(scheduler, False)
        ):
            return
        _queue(self, scheduler)

    def _try_run_inline(self, scheduler: TaskScheduler, previously_queued: bool) -> bool:
        """Offer this task to ``scheduler`` to run on the calling thread (depth-bounded)."""
        local = _local.state
        depth = local.inline_depth
        if depth >= MAX_INLINE_DEPTH:
            return False
        local.inline_depth = depth + 1
        try:
            return bool(scheduler.try_execute_task_inline(self, previously_queued))
        finally:
            local.inline_depth = depth

    def _wait_core(self, timeout: float | None, token: CancellationToken | None) -> bool:
        """Block until final, ``timeout`` passes (False) or ``token`` cancels (raises)."""
        if self._status >= _RAN_TO_COMPLETION:
            return True
        if token is not None:
            token.throw_if_cancellation_requested()
        local = _local.state
        if self._status == _WAITING_TO_RUN:
            scheduler = self._scheduler
            depth = local.inline_depth
            if scheduler is not None and depth < MAX_INLINE_DEPTH:
                local.inline_depth = depth + 1
                try:
                    scheduler.try_execute_task_inline(self, True)
                finally:
                    local.inline_depth = depth
                if self._status >= _RAN_TO_COMPLETION:
                    return True
        loop_scheduler = local.loop_scheduler
        if loop_scheduler is not None:
            loop_scheduler._check_blocking_wait(self)
        waiter = _SyncWaiter()
        self._add_continuation(waiter)
        registration: CancellationTokenRegistration | None = None
        if token is not None and token.can_be_canceled:
            registration = token.register(waiter)
        worker = local.worker
        if worker is not None:
            worker.blocking_enter()
        try:
            if timeout is None:
                waiter.lock.acquire()
            else:
                waiter.lock.acquire(True, timeout)
        finally:
            if worker is not None:
                worker.blocking_exit()
            if registration is not None:
                registration.unregister()
        if self._status >= _RAN_TO_COMPLETION:
            return True
        self._remove_continuation(waiter)
        if token is not None:
            token.throw_if_cancellation_requested()
        return False


_CANCELED_MARK = object()  # body result meaning "acknowledged cancellation"


class _DoneCallback:
    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Any], object]) -> None:
        self.fn = fn

    def __call__(self, task: Task[Any]) -> None:
        try:
            self.fn(task)
        except Exception:
            logger.exception("exception calling callback for %r", task)


class _UnwrapInner:
    """Completes ``outer`` (whose body returned a task) with the inner task's outcome."""

    __slots__ = ("outer",)

    def __init__(self, outer: Task[Any]) -> None:
        self.outer = outer

    def __call__(self, inner: Task[Any]) -> None:
        outer = self.outer
        status = inner._status
        if status == _RAN_TO_COMPLETION:
            outer._finish_body(inner._result, None)
        elif status == _FAULTED:
            inner._mark_observed()
            if outer._flags & F_COROUTINE:
                # The coroutine is the body: OperationCanceledError(own token) cancels.
                outer._finish_body_error(inner._outcome_error())
            else:
                outer._finish_body(None, inner._outcome_error())
        else:
            outer._finish_body(_CANCELED_MARK, None)


class _UnwrapOuter:
    """``task.unwrap()``: when the outer task completes, follow the task it returned."""

    __slots__ = ("proxy",)

    def __init__(self, proxy: Task[Any]) -> None:
        self.proxy = proxy

    def __call__(self, outer: Task[Any]) -> None:
        proxy = self.proxy
        status = outer._status
        if status == _FAULTED:
            outer._mark_observed()
            proxy._complete(_FAULTED, None, list(outer._excs or ()))
        elif status == _CANCELED:
            proxy._complete(_CANCELED, None, None)
        else:
            inner = outer._result
            if inner is None:
                proxy._complete(_CANCELED, None, None)  # TPL: a null inner task cancels
                return
            try:
                inner_task = _ensure_task(inner, "the inner value")
            except TypeError as exc:
                proxy._complete(_FAULTED, None, [exc])
                return
            inner_task._add_continuation(_Transfer(proxy))


class _Transfer:
    """Copy a completed task's outcome onto a promise."""

    __slots__ = ("promise",)

    def __init__(self, promise: Task[Any]) -> None:
        self.promise = promise

    def __call__(self, source: Task[Any]) -> None:
        status = source._status
        if status == _FAULTED:
            source._mark_observed()
            self.promise._complete(_FAULTED, None, list(source._excs or ()))
        elif status == _CANCELED:
            self.promise._complete(_CANCELED, None, None)
        else:
            self.promise._complete(_RAN_TO_COMPLETION, source._result, None)


def _run_nested(fn: Callable[..., object], *args: Any) -> None:
    """Call ``fn(*args)``, which may complete further tasks, with bounded recursion.

    Called on a completing thread for the steps that complete other tasks at once
    (see MAX_COMPLETION_DEPTH). Too deep on this stack, it queues the call to the
    default scheduler instead: a pool thread starts it on a fresh stack, and this
    thread need not unwind first (it may go on to wait for the outcome).
    """
    local = _local.state
    depth = local.completion_depth
    if depth >= MAX_COMPLETION_DEPTH:
        hop: Task[Any] = _new_task(
            fn, args, None, _NONE_TOKEN, F_DENY_CHILD_ATTACH | F_HIDE_SCHEDULER, _WAITING_TO_RUN
        )
        scheduler = TaskScheduler.default()
        hop._scheduler = scheduler
        try:
            scheduler.queue_task(hop)
            return
        except BaseException:  # noqa: BLE001 - no pool (shut down): run it here after all
            pass
    local.completion_depth = depth + 1
    try:
        fn(*args)
    finally:
        local.completion_depth = depth


# == construction helpers =================================================================


def _check_token(token: object) -> CancellationToken:
    if token is None:
        return CancellationToken.NONE
    if not isinstance(token, CancellationToken):
        raise TypeError(f"token must be a CancellationToken or None, not {type(token).__name__}")
    return token


_NO_CREATION_OPTIONS = TaskCreationOptions.NONE


def _creation_flags(options: object, name: str) -> int:
    if options is _NO_CREATION_OPTIONS:
        return 0
    opts = check_enum(options, TaskCreationOptions, name)
    return int(opts._value_)


_NO_CONTINUATION_OPTIONS = TaskContinuationOptions.NONE


def _continuation_flags(options: object) -> int:
    opts = check_enum(options, TaskContinuationOptions, "options")
    value = opts.value if opts else 0
    if value & 0x70000 == 0x70000:
        raise ValueError(
            "options exclude every outcome (NOT_ON_RAN_TO_COMPLETION, NOT_ON_FAULTED and "
            "NOT_ON_CANCELED together): the continuation could never run"
        )
    if value & F_LONG_RUNNING and value & 0x80000:
        raise ValueError("options: LONG_RUNNING and EXECUTE_SYNCHRONOUSLY are mutually exclusive")
    flags = (value & _CREATION_MASK) | F_CONTINUATION
    if value & 0x10000:
        flags |= F_NOT_ON_RAN
    if value & 0x20000:
        flags |= F_NOT_ON_FAULTED
    if value & 0x40000:
        flags |= F_NOT_ON_CANCELED
    if value & 0x80000:
        flags |= F_EXECUTE_SYNCHRONOUSLY
    return flags


def current_scheduler() -> TaskScheduler:
    """``TaskScheduler.current()``, inlined for the hot paths."""
    task: Task[Any] | None = _local.state.task
    if task is not None and not task._flags & F_HIDE_SCHEDULER:
        scheduler = task._scheduler
        if scheduler is not None:
            return scheduler
    return TaskScheduler._default or TaskScheduler.default()


def _resolve_scheduler(scheduler: object) -> TaskScheduler:
    if scheduler is None:
        return current_scheduler()
    # (An MRO scan: isinstance() against the ABC is several times slower.)
    if TaskScheduler not in type(scheduler).__mro__:
        raise TypeError(
            f"scheduler must be a TaskScheduler or None, not {type(scheduler).__name__}"
        )
    return scheduler  # type: ignore[return-value]


def _init_task(
    task: Task[Any],
    fn: Callable[..., Any] | None,
    args: tuple[Any, ...] | None,
    state: Any,
    token: CancellationToken,
    flags: int,
    status: int,
) -> None:
    """Fill the slots of a new task; attach it to its parent; watch its token."""
    task._lock = _STRIPES[id(task) >> 4 & _STRIPE_MASK]
    task._status = status
    task._flags = flags
    task._fn = fn
    task._args = args
    task._ctx = _copy_context() if fn is not None else None
    task._token = token
    task._scheduler = None
    task._result = None
    task._conts = None
    if state is not None:
        task._async_state = state
    if flags & F_ATTACHED or token._source is not None:
        _init_rare(task, token, flags)


def _init_rare(task: Task[Any], token: CancellationToken, flags: int) -> None:
    if flags & F_ATTACHED:
        parent = _local.state.task
        if parent is not None and not parent._flags & F_DENY_CHILD_ATTACH:
            parent._lock.acquire()
            try:
                if parent._status == _RUNNING:
                    parent._children += 1
                    parent._flags |= F_RARE  # under its _lock
                    task._parent = parent
                    task._flags |= F_RARE
            finally:
                parent._lock.release()
    if token._source is not None and not flags & F_LAZY_CANCELLATION:
        if token._source._canceled:
            task._status = _RUNNING
            task._complete(_CANCELED, None, None)
        else:
            task._token_reg = token.register(task._cancel_from_token)
            task._flags |= F_RARE


_task_new = Task.__new__


def _new_task(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    state: Any,
    token: CancellationToken,
    flags: int,
    status: int = _CREATED,
) -> Task[Any]:
    task: Task[Any] = Task.__new__(Task)
    _init_task(task, fn, args, state, token, flags, status)
    return task


def _new_promise(state: Any = None, flags: int = 0) -> Task[Any]:
    task: Task[Any] = Task.__new__(Task)
    _init_task(
        task, None, None, state, CancellationToken.NONE, flags | F_PROMISE, _WAITING_FOR_ACTIVATION
    )
    return task


def _queue(task: Task[Any], scheduler: TaskScheduler) -> None:
    """Hand a WAITING_TO_RUN task to its scheduler; a failing scheduler faults the task."""
    task._scheduler = scheduler
    try:
        scheduler.queue_task(task)
    except BaseException as exc:
        if task._complete_if_not_started(_FAULTED, None, [exc]):
            return
        raise


def start_task(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    *,
    state: Any = None,
    token: CancellationToken,
    flags: int,
    scheduler: TaskScheduler,
) -> Task[Any]:
    """Create and queue a task in one step (``run``, ``start_new``, executors)."""
    # _init_task, inlined: this is the hottest construction path.
    task = _task_new(Task)
    task._lock = _STRIPES[id(task) >> 4 & _STRIPE_MASK]
    task._status = _WAITING_TO_RUN
    task._flags = flags
    task._fn = fn
    task._args = args
    task._ctx = _copy_context()
    task._token = token
    task._result = None
    task._conts = None
    if state is not None:
        task._async_state = state
    if flags & F_ATTACHED or token._source is not None:
        _init_rare(task, token, flags)
        if task._status != _WAITING_TO_RUN:
            return task  # its token was canceled already
    task._scheduler = scheduler
    try:
        scheduler.queue_task(task)
    except BaseException as exc:
        if not task._complete_if_not_started(_FAULTED, None, [exc]):
            raise
    return task


def _make_continuation(
    antecedent: Task[Any],
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    token: CancellationToken | None,
    flags: int,
    scheduler: TaskScheduler | None,
    state: Any,
) -> Task[Any]:
    tok = _NONE_TOKEN if token is None else _check_token(token)
    if is_coroutine_function(fn):
        hook = _coroutine_hook
        if hook is None:
            raise InvalidOperationError("the event-loop front end is not loaded")
        sched = hook(scheduler, antecedent)
        flags |= F_COROUTINE | F_UNWRAP
        cont = _new_task(fn, args, state, tok, flags, _WAITING_FOR_ACTIVATION)
        cont._scheduler = sched
    else:
        sched = _resolve_scheduler(scheduler)
        cont = _new_task(fn, args, state, tok, flags, _WAITING_FOR_ACTIVATION)
        cont._scheduler = sched
    if cont._status != _WAITING_FOR_ACTIVATION:
        return cont  # canceled by its token already
    if tok._source is not None:
        cont._antecedent = antecedent  # so that cancellation can unhook it (_cancel_from_token)
    antecedent._add_continuation(cont)
    if cont._status >= _RAN_TO_COMPLETION:
        antecedent._remove_continuation(cont)  # its token fired while it was being added
    return cont


def _cannot_start(task: Task[Any]) -> str:
    if task._flags & F_CONTINUATION:
        return "start() may not be called on a continuation task"
    if task._flags & F_PROMISE:
        return "start() may not be called on a promise-style task"
    if task._status >= _RAN_TO_COMPLETION:
        return f"start() may not be called on a task that has completed ({task.status.name})"
    return "start() may not be called on a task that was already started"


def _combined_parts(obj: object, kind: type) -> tuple[Any, ...]:
    """The operands of a ``&``/``|`` chain, so ``a & b & c`` flattens to one when_all."""
    if isinstance(obj, Task):
        parts = obj._parts
        if parts is not None and type(parts) is kind:
            return tuple(parts)
        return (obj,)
    return (obj,)


# == current-task context ================================================================


def current_task() -> Task[Any] | None:
    """The task whose body runs on this thread, or None."""
    return cast("Task[Any] | None", _local.state.task)


def current_token() -> CancellationToken:
    """The token of the task running on this thread (``CancellationToken.NONE`` if none)."""
    task = _local.state.task
    return _token_of(task) if task is not None else CancellationToken.NONE


def _token_of(task: Task[Any]) -> CancellationToken:
    """``task._token``, made now (once, under the task's lock) if it is still lazy."""
    token = task._token
    if token is not _LAZY_TOKEN:
        return token
    with task._lock:
        token = task._token
        if token is _LAZY_TOKEN:
            token = task._token = CancellationTokenSource().token
    return token


# == promise-style tasks ==================================================================


class TaskCompletionSource(Generic[T]):
    """A task with no body, completed from outside (TPL ``TaskCompletionSource<T>``).

    ::

        tcs = tl.TaskCompletionSource()
        threading.Timer(0.1, tcs.set_result, [42]).start()
        assert tcs.task.result() == 42

    ``set_*`` on a completed task raise :class:`InvalidOperationError`;
    ``try_set_*`` return False instead.
    """

    __slots__ = ("_task",)

    def __init__(
        self,
        state: Any = None,
        options: TaskCreationOptions = TaskCreationOptions.NONE,
    ) -> None:
        flags = _creation_flags(options, "options")
        if flags & (F_LONG_RUNNING | F_PREFER_FAIRNESS):
            raise ValueError("options: LONG_RUNNING and PREFER_FAIRNESS need a task with a body")
        self._task: Task[T] = _new_promise(state, flags)

    @property
    def task(self) -> Task[T]:
        """The task this source completes."""
        return self._task

    def set_result(self, result: T) -> None:
        """Complete the task with ``result``."""
        if not self.try_set_result(result):
            raise InvalidOperationError("the task has already completed")

    def set_exception(self, exception: BaseException | Iterable[BaseException]) -> None:
        """Fault the task with an exception or an iterable of exceptions."""
        if not self.try_set_exception(exception):
            raise InvalidOperationError("the task has already completed")

    def set_canceled(self, token: CancellationToken | None = None) -> None:
        """End the task ``CANCELED``."""
        if not self.try_set_canceled(token):
            raise InvalidOperationError("the task has already completed")

    def try_set_result(self, result: T) -> bool:
        """Like ``set_result``; False if the task already completed."""
        return self._task._complete_if_not_started(_RAN_TO_COMPLETION, result, None)

    def try_set_exception(self, exception: BaseException | Iterable[BaseException]) -> bool:
        """Like ``set_exception``; False if the task already completed."""
        if isinstance(exception, BaseException):
            excs = [exception]
        elif hasattr(exception, "__iter__") and not isinstance(exception, (str, bytes)):
            excs = list(exception)
            if not excs:
                raise ValueError("exception: the iterable of exceptions is empty")
            for i, exc in enumerate(excs):
                if not isinstance(exc, BaseException):
                    raise TypeError(
                        f"exception[{i}] must be an exception, not {type(exc).__name__}"
                    )
        else:
            raise TypeError(
                "exception must be an exception or an iterable of them, "
                f"not {type(exception).__name__}"
            )
        return self._task._complete_if_not_started(_FAULTED, None, excs)

    def try_set_canceled(self, token: CancellationToken | None = None) -> bool:
        """Like ``set_canceled``; False if the task already completed."""
        tok = _check_token(token)
        task = self._task
        if tok.can_be_canceled:
            task._token = tok
        return task._complete_if_not_started(_CANCELED, None, None)

    def __repr__(self) -> str:
        return f"<TaskCompletionSource {self._task!r}>"


def from_result(value: T) -> Task[T]:
    """A task that has already run to completion with ``value``."""
    task: Task[T] = _new_promise()
    task._complete(_RAN_TO_COMPLETION, value, None)
    return task


def from_exception(exception: BaseException) -> Task[Any]:
    """A task that has already faulted with ``exception``."""
    if not isinstance(exception, BaseException):
        raise TypeError(f"exception must be an exception, not {type(exception).__name__}")
    task: Task[Any] = _new_promise()
    task._complete(_FAULTED, None, [exception])
    return task


def from_canceled(token: CancellationToken | None = None) -> Task[Any]:
    """A task that has already been canceled (``token``, if given, must be canceled)."""
    tok = _check_token(token)
    if token is not None and not tok.is_cancellation_requested:
        raise ValueError("token: from_canceled needs a canceled token")
    task: Task[Any] = _new_promise()
    task._token = tok
    task._complete(_CANCELED, None, None)
    return task


def from_future(future: concurrent.futures.Future[T]) -> Task[T]:
    """A task that completes with ``future``'s outcome (the future itself if a Task)."""
    if isinstance(future, Task):
        return future
    if not isinstance(future, concurrent.futures.Future):
        raise TypeError(f"future must be a concurrent.futures.Future, not {type(future).__name__}")
    task: Task[T] = _new_promise()

    def copy(f: concurrent.futures.Future[T]) -> None:
        if f.cancelled():
            task._complete(_CANCELED, None, None)
            return
        exc = f.exception()
        if exc is not None:
            task._complete(_FAULTED, None, [exc])
        else:
            task._complete(_RAN_TO_COMPLETION, f.result(), None)

    future.add_done_callback(copy)
    return task


# == when_all / when_any =================================================================


class _WhenAll(tuple):  # type: ignore[type-arg]
    """The operand tuple of a when_all promise (type-tagged for ``&`` flattening)."""

    __slots__ = ()


class _WhenAny(tuple):  # type: ignore[type-arg]
    __slots__ = ()


class _WhenAllCounter:
    """Counts antecedents down; the last one completes the promise."""

    __slots__ = ("lock", "promise", "remaining", "tasks")

    def __init__(self, promise: Task[Any], tasks: Sequence[Task[Any]]) -> None:
        self.lock = threading.Lock()
        self.promise = promise
        self.tasks = tasks
        self.remaining = len(tasks)

    def __call__(self, _done: Task[Any]) -> None:
        with self.lock:
            self.remaining -= 1
            if self.remaining:
                return
        _complete_when_all(self.promise, self.tasks)


def _complete_when_all(promise: Task[Any], tasks: Sequence[Task[Any]]) -> None:
    excs: list[BaseException] = []
    canceled = False
    for t in tasks:
        status = t._status
        if status == _FAULTED:
            t._mark_observed()
            excs.extend(t._excs or ())
        elif status == _CANCELED:
            canceled = True
    if excs:
        promise._complete(_FAULTED, None, excs)
    elif canceled:
        promise._complete(_CANCELED, None, None)
    else:
        promise._complete(_RAN_TO_COMPLETION, [t._result for t in tasks], None)


def when_all(*tasks: Any) -> Task[list[Any]]:
    """A task completing when all ``tasks`` have; its result is their results, in order.

    ``FAULTED`` with every exception if any faulted, else ``CANCELED`` if any was
    canceled. Accepts Tasks and ``concurrent.futures.Future`` objects (and, on
    an event-loop thread, awaitables). ``when_all()`` is a completed ``[]``.
    """
    items = _WhenAll(_ensure_task(t, f"tasks[{i}]") for i, t in enumerate(tasks))
    promise: Task[list[Any]] = _new_promise()
    promise._parts = items
    if not items:
        promise._complete(_RAN_TO_COMPLETION, [], None)
        return promise
    counter = _WhenAllCounter(promise, items)
    for t in items:
        t._add_continuation(counter)
    return promise


class _WhenAnyLatch:
    """Completes the promise with the first task done, then leaves the others.

    The losers may live long (a shutdown signal raced against each request): the
    latch must not stay in their continuation lists, holding the promise and the
    winner's result, once the race is decided.
    """

    __slots__ = ("promise", "tasks")

    def __init__(self, promise: Task[Any], tasks: Sequence[Task[Any]]) -> None:
        self.promise = promise
        self.tasks = tasks

    def __call__(self, done: Task[Any]) -> None:
        if self.promise._complete(_RAN_TO_COMPLETION, done, None):
            self.detach()

    def detach(self) -> None:
        """Take this latch off every task still pending (idempotent)."""
        for t in self.tasks:
            if t._status < _RAN_TO_COMPLETION:
                t._remove_continuation(self)


def when_any(*tasks: Any) -> Task[Task[Any]]:
    """A task completing when the first of ``tasks`` does; its result is that task.

    The result is the winning task even if it faulted or was canceled.
    ``when_any()`` with no tasks raises ``ValueError``.
    """
    if not tasks:
        raise ValueError("tasks: when_any needs at least one task")
    items = _WhenAny(_ensure_task(t, f"tasks[{i}]") for i, t in enumerate(tasks))
    promise: Task[Task[Any]] = _new_promise()
    promise._parts = items
    latch = _WhenAnyLatch(promise, items)
    for t in items:
        if promise._status >= _RAN_TO_COMPLETION:
            break
        t._add_continuation(latch)
    if promise._status >= _RAN_TO_COMPLETION:
        latch.detach()  # decided while registering: a later registration may have landed
    return promise
