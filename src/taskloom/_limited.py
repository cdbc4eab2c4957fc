"""``LimitedConcurrencyScheduler``: at most N tasks of it run at once, on another scheduler.

Data flow::

    queue_task --> _pending (FIFO deque) --> up to N drainer tasks on ``inner``
    each drainer: popleft + try_execute_task, until _pending is empty

Only ``_lock`` guards ``_running`` (the number of live drainers); ``_pending``
is a deque shared by producers (append) and drainers (popleft).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections import deque
from typing import TYPE_CHECKING, Any

from ._cancellation import CancellationToken
from ._scheduler import SchedulerStatistics, TaskScheduler
from ._task import _FAULTED, _WAITING_TO_RUN, F_DENY_CHILD_ATTACH, _new_task

if TYPE_CHECKING:
    from ._task import Task

__all__ = ["LimitedConcurrencyScheduler", "LimitedConcurrencyStatistics"]


@dataclasses.dataclass(frozen=True)
class LimitedConcurrencyStatistics(SchedulerStatistics):
    """Counters of a :class:`LimitedConcurrencyScheduler`."""

    queued: int
    running_drainers: int
    tasks_executed: int
    inlined: int


class _Drainer(threading.local):
    owner: LimitedConcurrencyScheduler | None = None


_drainer = _Drainer()


def _after_fork_in_child() -> None:
    # The forking thread may have been draining a limiter; in the child it is not.
    _drainer.owner = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class LimitedConcurrencyScheduler(TaskScheduler):
    """Runs its tasks on ``inner`` (default: the default scheduler), at most N at once.

    ::

        io_limit = tl.LimitedConcurrencyScheduler(4)
        tasks = [tl.start_new(download, url, scheduler=io_limit) for url in urls]
    """

    def __init__(self, max_concurrency: int, inner: TaskScheduler | None = None) -> None:
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
            raise TypeError(f"max_concurrency must be an int, not {type(max_concurrency).__name__}")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if inner is not None and not isinstance(inner, TaskScheduler):
            raise TypeError(f"inner must be a TaskScheduler or None, not {type(inner).__name__}")
        self._max = max_concurrency
        self._inner = inner
        self._pending: deque[Task[Any]] = deque()
        self._lock = threading.Lock()
        self._running = 0  # live drainers; guarded by _lock; 0 <= _running <= _max
        self._executed = 0  # guarded by _lock
        self._inlined = 0

    @property
    def inner(self) -> TaskScheduler:
        """The scheduler whose threads run this scheduler's tasks."""
        return self._inner if self._inner is not None else TaskScheduler.default()

    @property
    def maximum_concurrency_level(self) -> int:
        """``max_concurrency``."""
        return self._max

    def queue_task(self, task: Task[Any]) -> None:
        """Queue ``task``; start a drainer on the inner scheduler if below the limit.

        If the inner scheduler refuses the drainer (it was shut down), its error
        is raised here, so ``task`` ends ``FAULTED`` with it.
        """
        self._pending.append(task)
        with self._lock:
            if self._running >= self._max:
                return
            self._running += 1
        try:
            self._start_drainer()
        except BaseException as exc:
            if self._drainer_refused(task, exc):
                raise

    def _start_drainer(self) -> None:
        drainer = _new_task(
            self._drain, (), None, CancellationToken.NONE, F_DENY_CHILD_ATTACH, _WAITING_TO_RUN
        )
        inner = self.inner
        # Not _queue(): that would fault the drainer and swallow the inner's refusal.
        drainer._scheduler = inner
        inner.queue_task(drainer)

    def _drainer_refused(self, task: Task[Any], exc: BaseException) -> bool:
        """Give back the slot; fault what no drainer will run. False if ``task`` runs anyway."""
        orphans: list[Task[Any]] = []
        with self._lock:
            self._running -= 1
            assert self._running >= 0
            if self._running == 0:
                # Producers that saw the pool full counted on a drainer; none will come.
                while self._pending:
                    orphans.append(self._pending.popleft())
        for orphan in orphans:
            if orphan is not task:
                orphan._complete_if_not_started(_FAULTED, None, [exc])
        if task in orphans:
            return True
        try:
            self._pending.remove(task)
        except ValueError:
            return False  # a live drainer took it
        return True

    def _drain(self) -> None:
        previous = _drainer.owner
        _drainer.owner = self
        try:
            while True:
                try:
                    task = self._pending.popleft()
                except IndexError:
                    with self._lock:
                        # Re-check under the lock: a producer that saw _running at the
                        # limit relies on us to pick its task up.
                        if self._pending:
                            continue
                        self._running -= 1
                        assert self._running >= 0
                        return
                if self.try_execute_task(task):
                    # Counted per task: a drainer under steady load may never end.
                    with self._lock:
                        self._executed += 1
        finally:
            _drainer.owner = previous

    def try_execute_task_inline(self, task: Task[Any], task_was_previously_queued: bool) -> bool:
        """Inline only on a thread already draining this scheduler (it holds a slot)."""
        if _drainer.owner is not self:
            return False
        if task_was_previously_queued:
            try:
                self._pending.remove(task)
            except ValueError:
                return False
        ran = self.try_execute_task(task)
        if ran:
            with self._lock:
                self._inlined += 1
        return ran

    def statistics(self) -> LimitedConcurrencyStatistics:
        """Queue length, running drainers and executed count."""
        with self._lock:
            return LimitedConcurrencyStatistics(
                self.id, self._max, len(self._pending), self._running, self._executed, self._inlined
            )
