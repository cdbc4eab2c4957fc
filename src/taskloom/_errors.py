"""The exception hierarchy (DESIGN 1.6).

Everything taskloom raises on purpose derives from :class:`TaskloomError`, except
bad arguments, which raise the builtin :class:`TypeError` / :class:`ValueError`
at the call.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._cancellation import CancellationToken
    from ._task import Task

__all__ = [
    "AggregateError",
    "InvalidOperationError",
    "OperationCanceledError",
    "TaskCanceledError",
    "TaskloomError",
    "WorkerCrashedError",
]


class TaskloomError(Exception):
    """Base class of the errors taskloom raises on purpose."""


class InvalidOperationError(TaskloomError, RuntimeError):
    """The call is not valid in the object's current state.

    Examples: starting a task twice, completing a :class:`TaskCompletionSource`
    twice, blocking on a task from the event-loop thread that must run it.
    """


class OperationCanceledError(TaskloomError):
    """An operation was canceled through a :class:`CancellationToken`.

    ``token`` is the token whose cancellation caused it (``CancellationToken.NONE``
    when unknown). A task body that raises this error carrying the task's own
    token, while that token is canceled, ends ``CANCELED`` rather than ``FAULTED``.
    """

    def __init__(self, message: str | None = None, token: CancellationToken | None = None) -> None:
        super().__init__(message or "The operation was canceled.")
        if token is None:
            from ._cancellation import CancellationToken

            token = CancellationToken.NONE
        self.token: CancellationToken = token


class TaskCanceledError(OperationCanceledError, concurrent.futures.CancelledError):
    """The awaited or waited-on task ended ``CANCELED``.

    It is also a :class:`concurrent.futures.CancelledError`, so code written for
    plain futures handles it, but it is an :class:`Exception`, never
    :class:`asyncio.CancelledError`: awaiting a canceled task does not cancel the
    awaiting coroutine. ``task`` is the canceled task (or ``None``).
    """

    def __init__(
        self,
        message: str | None = None,
        task: Task[Any] | None = None,
        token: CancellationToken | None = None,
    ) -> None:
        if token is None and task is not None:
            token = task._token
        super().__init__(message or "A task was canceled.", token)
        self.task: Task[Any] | None = task


class AggregateError(ExceptionGroup[Exception]):
    """Several exceptions from one operation, such as a task and its attached children.

    Built like :class:`ExceptionGroup`: ``AggregateError(message, exceptions)``.
    Works with ``except*``. ``flatten()`` merges nested aggregates;
    ``handle(predicate)`` re-raises what the predicate did not handle::

        try:
            tl.wait_all(t1, t2)
        except tl.AggregateError as agg:
            agg.handle(lambda e: isinstance(e, KeyError))  # re-raises the rest
    """

    def __new__(cls, message: str, exceptions: Sequence[Exception]) -> AggregateError:
        return super().__new__(cls, message, exceptions)

    def derive(self, excs: Sequence[Exception]) -> AggregateError:  # type: ignore[override]
        return AggregateError(self.message, excs)

    @property
    def inner_exceptions(self) -> tuple[Exception, ...]:
        """The exceptions directly inside this aggregate (TPL's ``InnerExceptions``)."""
        return tuple(self.exceptions)

    def flatten(self) -> AggregateError:
        """Return one aggregate holding every non-aggregate exception, nested ones merged."""
        flat: list[Exception] = []
        stack: list[BaseException] = list(reversed(self.exceptions))
        while stack:
            exc = stack.pop()
            if isinstance(exc, AggregateError):
                stack.extend(reversed(exc.exceptions))
            else:
                flat.append(exc)  # type: ignore[arg-type]
        result = AggregateError(self.message, flat)
        result.__traceback__ = self.__traceback__
        return result

    def handle(self, predicate: Callable[[Exception], bool]) -> None:
        """Call ``predicate`` on each inner exception (after flattening).

        Returns ``None`` if the predicate returned true for every one; otherwise
        raises a new :class:`AggregateError` of the exceptions it did not handle.
        """
        if not callable(predicate):
            raise TypeError(f"predicate must be callable, not {type(predicate).__name__}")
        unhandled = [e for e in self.flatten().exceptions if not predicate(e)]
        if unhandled:
            raise AggregateError(self.message, unhandled)


def aggregate(
    message: str, exceptions: Sequence[BaseException]
) -> BaseExceptionGroup[BaseException]:
    """The group a task raises for several exceptions: an :class:`AggregateError`.

    When one of them is not an :class:`Exception` (``KeyboardInterrupt``,
    ``SystemExit``...), which an ``ExceptionGroup`` cannot hold, a plain
    ``BaseExceptionGroup`` instead (as asyncio and trio do), never a ``TypeError``.
    """
    if all(isinstance(e, Exception) for e in exceptions):
        return AggregateError(message, exceptions)  # type: ignore[arg-type]
    return BaseExceptionGroup(message, exceptions)


class WorkerCrashedError(TaskloomError):
    """The worker process running the task died (exit code or signal in the message)."""

    def __init__(self, message: str, exitcode: int | None = None) -> None:
        super().__init__(message)
        self.exitcode = exitcode
