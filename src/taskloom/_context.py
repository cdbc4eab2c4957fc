"""Per-thread execution context: which task runs on this thread, and on which worker.

Each thread gets one :class:`ThreadState` (slots, so reads and writes are cheap),
reached through the ``threading.local`` ``local.state``. Hot paths fetch the state
once and then use plain slot access; ``local.task`` and friends are conveniences
that delegate to it. Only the owning thread reads or writes its state.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["ThreadState", "local"]


class ThreadState:
    """What one thread is doing. Only the owning thread touches it."""

    __slots__ = ("completion_depth", "inline_depth", "loop_scheduler", "task", "worker")

    def __init__(self) -> None:
        # The task whose body runs on this thread (None outside task bodies).
        self.task: Any = None
        # The scheduler-specific worker object when this thread is a pool worker.
        self.worker: Any = None
        # How many task bodies are inlined on this thread's stack (bounded, see _task).
        self.inline_depth = 0
        # The event-loop scheduler that owns this thread, if it runs an event loop.
        self.loop_scheduler: Any = None
        # How many completions run nested on this thread's stack (bounded, see
        # _run_nested and MAX_COMPLETION_DEPTH in _task).
        self.completion_depth = 0


class _Local(threading.local):
    state: ThreadState

    def __init__(self) -> None:  # runs once in each thread, on first use there
        self.state = ThreadState()

    @property
    def task(self) -> Any:
        return self.state.task

    @task.setter
    def task(self, value: Any) -> None:
        self.state.task = value

    @property
    def worker(self) -> Any:
        return self.state.worker

    @worker.setter
    def worker(self, value: Any) -> None:
        self.state.worker = value

    @property
    def inline_depth(self) -> int:
        return self.state.inline_depth

    @inline_depth.setter
    def inline_depth(self, value: int) -> None:
        self.state.inline_depth = value

    @property
    def loop_scheduler(self) -> Any:
        return self.state.loop_scheduler

    @loop_scheduler.setter
    def loop_scheduler(self, value: Any) -> None:
        self.state.loop_scheduler = value

    @property
    def completion_depth(self) -> int:
        return self.state.completion_depth

    @completion_depth.setter
    def completion_depth(self, value: int) -> None:
        self.state.completion_depth = value


local = _Local()
