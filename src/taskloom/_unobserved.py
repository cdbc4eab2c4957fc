"""Reporting of task exceptions that nobody observed (DESIGN 1.1).

A faulted task gets an :class:`ExceptionHolder` that points back at the task.
Observing the exception (``result``, ``exception``, ``wait``, ``await``, a
continuation reading it, a parent or ``when_all`` taking it over) breaks that
cycle. If the task is collected while the cycle still stands, the garbage
collector finalizes the holder, which hands ``(task, exception)`` to the
installed handler. Only faulted tasks pay for this: a successful task carries
no holder and no finalizer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._task import Task

__all__ = ["ExceptionHolder", "UnobservedHandler", "set_unobserved_exception_handler"]

logger = logging.getLogger("taskloom")

UnobservedHandler = Callable[["Task[Any]", BaseException], object]


def _default_handler(task: Task[Any], exception: BaseException) -> None:
    logger.error("A task's exception was never observed: %r", task, exc_info=exception)


_handler: UnobservedHandler = _default_handler


def set_unobserved_exception_handler(
    handler: UnobservedHandler | None,
) -> UnobservedHandler | None:
    """Install ``handler(task, exception)`` for unobserved task exceptions.

    Returns the previous handler (``None`` if it was the default). Passing
    ``None`` restores the default, which logs on the ``taskloom`` logger. The
    handler runs on whichever thread the garbage collector collects the task
    on; its own exceptions are logged.
    """
    global _handler
    if handler is not None and not callable(handler):
        raise TypeError(f"handler must be callable or None, not {type(handler).__name__}")
    previous = _handler
    _handler = handler if handler is not None else _default_handler
    return None if previous is _default_handler else previous


class ExceptionHolder:
    """Holds a faulted task until its exception is observed (see module docstring)."""

    __slots__ = ("task",)

    def __init__(self, task: Task[Any]) -> None:
        self.task: Task[Any] | None = task

    def __del__(self) -> None:
        task = self.task
        if task is None:
            return
        self.task = None
        try:
            exception = task._peek_exception()
            if exception is not None:
                _handler(task, exception)
        except BaseException:
            logger.exception("the unobserved-exception handler raised")
