"""The scheduler interface (DESIGN 1.7): two abstract methods, everything else built on them.

A scheduler receives tasks through :meth:`TaskScheduler.queue_task` and runs each
with :meth:`TaskScheduler.try_execute_task`, on whatever thread it likes. A
blocking wait may offer it a task to run inline on the waiting thread through
:meth:`TaskScheduler.try_execute_task_inline`; the scheduler may refuse.
"""

from __future__ import annotations

import abc
import dataclasses
import itertools
import os
import sys
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Self

from . import _context
from ._errors import InvalidOperationError

if TYPE_CHECKING:
    from ._task import Task

__all__ = ["SchedulerStatistics", "TaskScheduler"]

_ids = itertools.count(1)
_ids_lock = threading.Lock()


@dataclasses.dataclass(frozen=True)
class SchedulerStatistics:
    """A snapshot of a scheduler's counters. Schedulers extend it with their own fields."""

    scheduler_id: int
    maximum_concurrency_level: int


class TaskScheduler(abc.ABC):
    """Where tasks run. Subclass it and implement the two abstract methods.

    A minimal scheduler that runs every task on a thread of its own::

        class ThreadPerTask(tl.TaskScheduler):
            def queue_task(self, task):
                threading.Thread(target=self.try_execute_task, args=(task,)).start()

            def try_execute_task_inline(self, task, task_was_previously_queued):
                return not task_was_previously_queued and self.try_execute_task(task)
    """

    _scheduler_id: int
    _default: ClassVar[TaskScheduler | None] = None
    _default_factory: ClassVar[Callable[[], TaskScheduler] | None] = None
    _default_lock: ClassVar[threading.Lock] = threading.Lock()
    # Set by the event-loop front end: returns the loop scheduler of the running loop.
    _loop_lookup: ClassVar[Callable[[], TaskScheduler | None] | None] = None

    def __new__(cls, *args: Any, **kwargs: Any) -> TaskScheduler:
        self = super().__new__(cls)
        with _ids_lock:
            self._scheduler_id = next(_ids)
        return self

    # -- the two methods a scheduler must provide -------------------------------

    @abc.abstractmethod
    def queue_task(self, task: Task[Any]) -> None:
        """Accept ``task`` for execution; run it later with :meth:`try_execute_task`.

        Called on the thread that starts the task (or completes its antecedent).
        Must not block for long and must not run the task inline.
        """

    @abc.abstractmethod
    def try_execute_task_inline(self, task: Task[Any], task_was_previously_queued: bool) -> bool:
        """Try to run ``task`` on the calling thread now; return whether it ran.

        ``task_was_previously_queued`` is true when ``task`` was already passed to
        :meth:`queue_task` (a blocking wait offering to run it): the scheduler
        must then take it out of its queue before running it, or refuse.
        """

    # -- built on top ------------------------------------------------------------

    def try_execute_task(self, task: Task[Any]) -> bool:
        """Run ``task`` on the calling thread if it is still waiting to run.

        The one way a scheduler runs a task. Returns False if the task was
        already run, inlined elsewhere or canceled.
        """
        if task._scheduler is not self:
            raise InvalidOperationError(
                "try_execute_task: the task was not queued to this scheduler"
            )
        return task._execute()

    @property
    def maximum_concurrency_level(self) -> int:
        """How many tasks this scheduler may run at once (unbounded by default)."""
        return sys.maxsize

    @property
    def id(self) -> int:
        """A unique positive integer identifying this scheduler."""
        return self._scheduler_id

    def statistics(self) -> SchedulerStatistics:
        """A frozen snapshot of this scheduler's counters."""
        return SchedulerStatistics(self.id, self.maximum_concurrency_level)

    def shutdown(self, wait: bool = True) -> None:  # noqa: B027 - optional hook
        """Release the scheduler's threads or processes (nothing to do by default)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown(wait=True)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} id={self.id}>"

    # -- ambient schedulers --------------------------------------------------------

    @classmethod
    def default(cls) -> TaskScheduler:
        """The process-wide default scheduler (a :class:`WorkStealingScheduler`).

        Created on first use; its threads start when the first task is queued.
        """
        scheduler = TaskScheduler._default
        if scheduler is not None:
            return scheduler
        with TaskScheduler._default_lock:
            if TaskScheduler._default is None:
                factory = TaskScheduler._default_factory
                if factory is None:
                    raise InvalidOperationError("no default scheduler is registered")
                TaskScheduler._default = factory()
            return TaskScheduler._default

    @classmethod
    def current(cls) -> TaskScheduler:
        """The scheduler of the task running on this thread, else :meth:`default`.

        A task created with ``HIDE_SCHEDULER`` makes ``current()`` return the
        default inside its body.
        """
        task: Task[Any] | None = _context.local.task
        if task is not None:
            scheduler = task._ambient_scheduler()
            if scheduler is not None:
                return scheduler
        return cls.default()

    @classmethod
    def from_current_loop(cls) -> TaskScheduler:
        """The loop scheduler of the event loop running on this thread.

        Raises :class:`InvalidOperationError` when no event loop runs here.
        """
        lookup = TaskScheduler._loop_lookup
        scheduler = lookup() if lookup is not None else None
        if scheduler is None:
            raise InvalidOperationError(
                "from_current_loop() must be called on a thread running an event loop"
            )
        return scheduler


def _after_fork_in_child() -> None:
    # The parent's default scheduler has no threads in a forked child: make a new one
    # on first use. The locks may have been held by a parent thread at the fork.
    global _ids_lock
    _ids_lock = threading.Lock()
    TaskScheduler._default_lock = threading.Lock()
    TaskScheduler._default = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def set_default_factory(factory: Callable[[], TaskScheduler]) -> None:
    """Register the default scheduler's constructor (done by the schedulers layer)."""
    TaskScheduler._default_factory = factory


def reset_default(scheduler: TaskScheduler | None) -> TaskScheduler | None:
    """Replace the default scheduler (tests and embedders); returns the previous one."""
    with TaskScheduler._default_lock:
        previous, TaskScheduler._default = TaskScheduler._default, scheduler
    return previous
