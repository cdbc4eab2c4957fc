"""Helpers shared by the test modules."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import taskloom as tl


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll ``predicate`` until true or ``timeout`` (for state with no event to wait on)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


class HoldingScheduler(tl.TaskScheduler):
    """Keeps queued tasks until ``release()``: makes ``WAITING_TO_RUN`` observable."""

    def __init__(self) -> None:
        self.held: list[tl.Task[Any]] = []

    def queue_task(self, task: tl.Task[Any]) -> None:
        self.held.append(task)

    def try_execute_task_inline(self, task: tl.Task[Any], task_was_previously_queued: bool) -> bool:
        return False

    def release(self) -> list[bool]:
        """Run every held task on this thread; whether each one ran."""
        held, self.held = self.held, []
        return [self.try_execute_task(t) for t in held]
