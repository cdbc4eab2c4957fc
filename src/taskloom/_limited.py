"""``LimitedConcurrencyScheduler``: at most N tasks of it run at once, on another scheduler.

Data flow::

    queue_task --> _pending (FIFO deque) --> up to N drainer tasks on ``inner``
    each drainer: popleft + try_execute_task, until _pending is empty

Only ``_lock`` guards ``_running`` (the number of live drainers); ``_pending``
is a deque shared by producers (append) and drainers (popleft).
"""

from __future__ import annotations

import dataclasses
import threading
from collections import deque
from typing import TYPE_CHECKING, Any

from ._cancellation import CancellationToken
from ._scheduler import SchedulerStatistics, TaskScheduler
from ._task import _WAITING_TO_RUN, F_DENY_CHILD_ATTACH, _new_task, _queue

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
        self._executed = 0  # guarded by _lock (updated once per drain)
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
        """Queue ``task``; start a drainer on the inner scheduler if below the limit."""
        self._pending.append(task)
        with self._lock:
            if self._running >= self._max:
                return
            self._running += 1
        self._start_drainer()

    def _start_drainer(self) -> None:
        drainer = _new_task(
            self._drain, (), None, CancellationToken.NONE, F_DENY_CHILD_ATTACH, _WAITING_TO_RUN
        )
        try:
            _queue(drainer, self.inner)
        except BaseException:
            with self._lock:
                self._running -= 1
            raise

    def _drain(self) -> None:
        previous = _drainer.owner
        _drainer.owner = self
        executed = 0
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
                        self._executed += executed
                        return
                if self.try_execute_task(task):
                    executed += 1
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
