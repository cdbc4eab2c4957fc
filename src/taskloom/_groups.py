"""PPL task groups (DESIGN 1.10): ``TaskGroup``, ``StructuredTaskGroup``, ``parallel_invoke``.

Data flow::

    group.run(fn) --start_new(token=group token)--> scheduler --> fn runs on a worker
        task completes --_on_done (completing thread)--> FAULTED? cancel the group's
        source: every task not started yet ends CANCELED through its token
    group.wait() --walks the group's task list, blocking on each (Task._wait_core: a
        pool thread inlines work still in its own deque, or the pool injects a
        thread)--> all final: take the list, raise the faults, else report status

A group's tasks are ordinary tasks with the group's token, so running work sees
``tl.current_token()`` canceled when the group is canceled. Nested groups
inside tasks do not deadlock: a waiting pool thread runs its own queued work.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._cancellation import CancellationToken, CancellationTokenSource
from ._compose import start_new
from ._errors import (
    AggregateError,
    InvalidOperationError,
    OperationCanceledError,
    TaskCanceledError,
    aggregate,
)
from ._task import _CANCELED, _FAULTED, _RAN_TO_COMPLETION, Task, _check_token
from ._util import check_callable, check_timeout

if TYPE_CHECKING:
    from ._scheduler import TaskScheduler

__all__ = ["StructuredTaskGroup", "TaskGroup", "TaskGroupStatus", "parallel_invoke"]


class TaskGroupStatus(enum.Enum):
    """What :meth:`TaskGroup.wait` reports (PPL ``task_group_status``)."""

    #: The tasks have not all completed (``wait`` timed out).
    NOT_COMPLETE = "not_complete"
    #: Every task ran to completion.
    COMPLETED = "completed"
    #: The group was canceled; tasks that had not started never ran.
    CANCELED = "canceled"


class _NoLock:
    """Stands in for a lock where only one thread touches the state (StructuredTaskGroup)."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NO_LOCK = _NoLock()


def _raise_faults(faults: list[BaseException]) -> None:
    if len(faults) == 1:
        raise faults[0]
    if faults:
        raise aggregate("One or more errors occurred.", faults)


class TaskGroup:
    """Tasks waited on, and canceled, together; thread-safe (PPL ``task_group``).

    ::

        with tl.TaskGroup() as group:  # `with` waits on exit
            for url in urls:
                group.run(fetch, url)

    Any thread may ``run`` more work (also after ``wait``), ``wait``, or
    ``cancel``. A task that fails cancels the group: work that has not started
    never runs, running work sees ``tl.current_token()`` canceled, and
    ``wait`` raises the failure (several as an :class:`AggregateError`).
    ``token`` links the group to an outer cancellation; ``scheduler`` (default
    ``TaskScheduler.current()`` at each ``run``) runs the tasks.
    """

    def __init__(
        self, token: CancellationToken | None = None, scheduler: TaskScheduler | None = None
    ) -> None:
        from ._scheduler import TaskScheduler

        self._parent_token = _check_token(token)
        if scheduler is not None and not isinstance(scheduler, TaskScheduler):
            raise TypeError(
                f"scheduler must be a TaskScheduler or None, not {type(scheduler).__name__}"
            )
        self._scheduler = scheduler
        self._lock: Any = threading.Lock()
        # Guarded by _lock: the source whose token the current tasks carry (replaced
        # by wait() once a canceled round is over) and those tasks, in run order.
        self._cts = self._new_source()
        self._tasks: list[Task[Any]] = []

    def _new_source(self) -> CancellationTokenSource:
        if self._parent_token.can_be_canceled:
            return CancellationTokenSource.create_linked(self._parent_token)
        return CancellationTokenSource()

    def _check_thread(self) -> None:
        """Any thread may use a TaskGroup (StructuredTaskGroup overrides this)."""

    def run(self, fn: Callable[..., Any], /, *args: Any) -> Task[Any]:
        """Start ``fn(*args)`` as a task of this group and return it.

        If the group is canceled, the task is canceled before it starts (it
        never runs). Does not block.
        """
        self._check_thread()
        check_callable(fn)
        with self._lock:
            cts = self._cts
            task = start_new(fn, *args, token=cts.token, scheduler=self._scheduler)
            self._tasks.append(task)
        task._add_continuation(_CancelOnFault(cts))
        return task

    def run_and_wait(self, fn: Callable[..., Any], /, *args: Any) -> TaskGroupStatus:
        """Run ``fn(*args)`` on the calling thread, then :meth:`wait` for the whole group.

        If ``fn`` raises, the group is canceled, its tasks are waited for, and
        the exception is raised (with the tasks' faults, as an
        :class:`AggregateError`, if they failed too).
        """
        self._check_thread()
        check_callable(fn)
        token = self._cts.token
        if token.is_cancellation_requested:
            return self.wait()
        try:
            fn(*args)
        except OperationCanceledError as exc:
            if exc.token != token or not token.is_cancellation_requested:
                return self._fail_and_wait(exc)
        except BaseException as exc:  # noqa: BLE001 - re-raised by _fail_and_wait
            return self._fail_and_wait(exc)
        return self.wait()

    def _fail_and_wait(self, exc: BaseException) -> TaskGroupStatus:
        self.cancel()
        try:
            self.wait()
        except Exception as faults:  # noqa: BLE001 - re-raised, merged with exc
            others = list(faults.exceptions) if isinstance(faults, AggregateError) else [faults]
            raise aggregate("One or more errors occurred.", [exc, *others]) from None
        raise exc

    def wait(self, timeout: float | None = None) -> TaskGroupStatus:
        """Block until every task of the group has completed, including tasks added meanwhile.

        Returns ``COMPLETED``, or ``CANCELED`` if the group was canceled;
        raises the failure of a task that faulted (several: an
        :class:`AggregateError`). After a canceled or failed round the group
        is usable again. ``timeout`` (seconds, default none) returns
        ``NOT_COMPLETE`` if it passes first, leaving the tasks running. A wait
        on a pool thread runs the group's queued work inline where it can.
        """
        self._check_thread()
        seconds = check_timeout(timeout)
        deadline = None if seconds is None else time.monotonic() + seconds
        tasks: list[Task[Any]] | None = None
        index = 0
        while True:
            with self._lock:
                if self._tasks is not tasks:
                    # First pass, or another waiter ended the round: walk the new list.
                    tasks = self._tasks
                    index = 0
                if index >= len(tasks):
                    cts = self._cts
                    self._tasks = []
                    canceled = cts.is_cancellation_requested
                    if canceled:
                        self._cts = self._new_source()
                    break
                task = tasks[index]
            index += 1
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not task._wait_core(remaining, None):
                return TaskGroupStatus.NOT_COMPLETE
        if canceled:
            cts.close()  # replaced above; releases its link to the outer token
        faults: list[BaseException] = []
        for t in tasks:
            status = t._status
            if status == _FAULTED:
                faults.append(t._outcome_error())
            elif status == _CANCELED:
                canceled = True
            else:
                assert status == _RAN_TO_COMPLETION, "wait() saw every task final"
        _raise_faults(faults)
        return TaskGroupStatus.CANCELED if canceled else TaskGroupStatus.COMPLETED

    def cancel(self) -> None:
        """Cancel the group: tasks not started never run; running ones see their token canceled.

        Any thread may call it, including the group's own tasks. ``wait`` then
        returns ``CANCELED`` (unless a task faulted).
        """
        with self._lock:
            cts = self._cts
        cts.cancel()

    def is_canceling(self) -> bool:
        """True from ``cancel()`` (or a task's failure) until ``wait`` has seen the round end."""
        return self._cts.is_cancellation_requested

    @property
    def token(self) -> CancellationToken:
        """The token the group's current tasks carry (canceled by :meth:`cancel`)."""
        return self._cts.token

    def __enter__(self) -> TaskGroup:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Wait for the group; if the ``with`` body raised, cancel the group first."""
        if exc is not None:
            self.cancel()
        self.wait()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} tasks={len(self._tasks)} canceling={self.is_canceling()}>"


class _CancelOnFault:
    """Continuation of each group task: a fault cancels the rest of the group."""

    __slots__ = ("cts",)

    def __init__(self, cts: CancellationTokenSource) -> None:
        self.cts = cts

    def __call__(self, task: Task[Any]) -> None:
        if task._status == _FAULTED:
            self.cts._do_cancel()


class StructuredTaskGroup(TaskGroup):
    """A :class:`TaskGroup` for its creating thread only (PPL ``structured_task_group``).

    ``run``, ``wait`` and ``run_and_wait`` from another thread raise
    :class:`InvalidOperationError`; ``cancel`` and ``is_canceling`` work from
    any thread (its tasks may cancel it). With one thread touching its state it
    takes no lock.
    """

    def __init__(
        self, token: CancellationToken | None = None, scheduler: TaskScheduler | None = None
    ) -> None:
        super().__init__(token, scheduler)
        self._owner = threading.get_ident()
        self._lock = _NO_LOCK

    def _check_thread(self) -> None:
        if threading.get_ident() != self._owner:
            raise InvalidOperationError(
                "a StructuredTaskGroup may only be used from the thread that created it"
            )


def parallel_invoke(
    *fns: Callable[[], Any],
    token: CancellationToken | None = None,
    scheduler: TaskScheduler | None = None,
) -> list[Any]:
    """Run the functions in parallel and return their results in order (PPL ``parallel_invoke``).

    The last function runs on the calling thread, the others as tasks. A
    failure cancels the functions that have not started; then the call raises
    like ``when_all(...).result()``: the exception, an :class:`AggregateError`
    of several, or :class:`TaskCanceledError` if canceled (``token``). Blocks
    until all are done; from a pool thread, queued work runs inline, so nested
    calls do not deadlock::

        left, right = tl.parallel_invoke(lambda: sort(a[:mid]), lambda: sort(a[mid:]))
    """
    for i, fn in enumerate(fns):
        check_callable(fn, f"fns[{i}]")
    tok = _check_token(token)
    if not fns:
        return []
    cts = (
        CancellationTokenSource.create_linked(tok)
        if tok.can_be_canceled
        else CancellationTokenSource()
    )
    try:
        tasks = [start_new(fn, token=cts.token, scheduler=scheduler) for fn in fns[:-1]]
        on_fault = _CancelOnFault(cts)
        for task in tasks:
            task._add_continuation(on_fault)
        own_result: Any = None
        own_error: BaseException | None = None
        canceled_here = False
        if cts.is_cancellation_requested:
            canceled_here = True
        else:
            try:
                own_result = fns[-1]()
            except OperationCanceledError as exc:
                if exc.token == cts.token and cts.is_cancellation_requested:
                    canceled_here = True
                else:
                    own_error = exc
                    cts._do_cancel()
            except BaseException as exc:  # noqa: BLE001 - raised below with the others
                own_error = exc
                cts._do_cancel()
        for task in tasks:
            task._wait_core(None, None)
    finally:
        cts.close()
    faults: list[BaseException] = []
    canceled: Task[Any] | None = None
    results: list[Any] = []
    for task in tasks:
        status = task._status
        if status == _FAULTED:
            faults.append(task._outcome_error())
        elif status == _CANCELED and canceled is None:
            canceled = task
        results.append(task._result)
    if own_error is not None:
        faults.append(own_error)
    _raise_faults(faults)
    if canceled is not None:
        canceled.result()  # raises its TaskCanceledError
    if canceled_here:
        raise TaskCanceledError(token=cts.token)
    results.append(own_result)
    return results
