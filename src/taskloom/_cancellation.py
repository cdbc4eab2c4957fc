"""Cooperative cancellation: ``CancellationTokenSource`` and ``CancellationToken`` (DESIGN 1.5).

A source owns the state; its token is the read-only view handed to work.
``cancel()`` runs the registered callbacks on the canceling thread, most
recently registered first (as TPL does), and raises an :class:`AggregateError`
of the callbacks' exceptions after running all of them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType
from typing import ClassVar

from . import _timer
from ._errors import AggregateError, InvalidOperationError, OperationCanceledError
from ._util import check_callable, check_timeout

__all__ = ["CancellationToken", "CancellationTokenRegistration", "CancellationTokenSource"]


class CancellationTokenRegistration:
    """Handle returned by :meth:`CancellationToken.register`; ``unregister()`` removes it."""

    __slots__ = ("_key", "_source")

    def __init__(self, source: CancellationTokenSource | None, key: int) -> None:
        self._source = source
        self._key = key

    def unregister(self) -> bool:
        """Remove the callback; True if it was removed before it ran."""
        source = self._source
        if source is None:
            return False
        self._source = None
        return source._unregister(self._key)

    def __enter__(self) -> CancellationTokenRegistration:
        return self

    def __exit__(self, *exc: object) -> None:
        self.unregister()


class CancellationToken:
    """A view of a :class:`CancellationTokenSource`: query, wait on or react to cancellation.

    ``CancellationToken.NONE`` can never be canceled. Tokens of one source compare
    equal.
    """

    __slots__ = ("_source",)
    NONE: ClassVar[CancellationToken]  # set below

    def __init__(self, source: CancellationTokenSource | None = None) -> None:
        self._source = source

    @property
    def is_cancellation_requested(self) -> bool:
        """True once the source has been canceled."""
        source = self._source
        return source is not None and source._canceled

    @property
    def can_be_canceled(self) -> bool:
        """False for ``CancellationToken.NONE`` (and for tokens of no source)."""
        return self._source is not None

    def register(self, callback: Callable[[], object]) -> CancellationTokenRegistration:
        """Call ``callback()`` when the token is canceled (at once, here, if it already is).

        Returns a registration whose ``unregister()`` removes the callback.
        """
        check_callable(callback, "callback")
        source = self._source
        if source is None:
            return CancellationTokenRegistration(None, 0)
        return source._register(callback)

    def throw_if_cancellation_requested(self) -> None:
        """Raise :class:`OperationCanceledError` carrying this token if it is canceled."""
        source = self._source
        if source is not None and source._canceled:
            raise OperationCanceledError(token=self)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the token is canceled; False if ``timeout`` seconds pass first.

        The token ``NONE`` is never canceled: waiting on it without a timeout
        would block forever, so that raises :class:`InvalidOperationError`.
        """
        seconds = check_timeout(timeout)
        source = self._source
        if source is None:
            if seconds is None:
                raise InvalidOperationError("CancellationToken.NONE is never canceled")
            threading.Event().wait(seconds)
            return False
        return source._event().wait(seconds)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CancellationToken) and other._source is self._source

    def __hash__(self) -> int:
        return hash(self._source)

    def __repr__(self) -> str:
        if self._source is None:
            return "<CancellationToken NONE>"
        state = "canceled" if self.is_cancellation_requested else "active"
        return f"<CancellationToken {state}>"


CancellationToken.NONE = CancellationToken(None)


class CancellationTokenSource:
    """Signals cancellation to the :class:`CancellationToken` it hands out.

    ``CancellationTokenSource(delay=2.0)`` cancels itself after two seconds.
    Use it as a context manager (or call ``close()``) to release its timer and
    links once done::

        with tl.CancellationTokenSource() as cts:
            task = tl.run(work, cts.token)
            cts.cancel_after(5)
    """

    # Slots: a source is made per offloaded call (to_thread); no __dict__ to allocate
    # and for the garbage collector to track.
    __slots__ = (
        "__weakref__",
        "_callbacks",
        "_canceled",
        "_closed",
        "_links",
        "_lock",
        "_next_key",
        "_timer",
        "_waiter",
    )

    def __init__(self, delay: float | None = None) -> None:
        self._lock = threading.Lock()
        # Invariant: _canceled goes False -> True once, under _lock; never back.
        self._canceled = False
        self._closed = False
        # key -> callback; None once canceled (callbacks ran) or closed.
        self._callbacks: dict[int, Callable[[], object]] | None = {}
        self._next_key = 1  # guarded by _lock
        self._waiter: threading.Event | None = None
        self._timer: _timer.TimerHandle | None = None
        # Registrations on the tokens this source is linked to (a list once linked;
        # the shared empty tuple until then, which the garbage collector never tracks).
        self._links: list[CancellationTokenRegistration] | tuple[()] = ()
        if delay is not None:
            self.cancel_after(delay)

    @property
    def token(self) -> CancellationToken:
        """The token observing this source (tokens of one source compare equal)."""
        # Made per access, not cached: a cached token would form a reference cycle
        # with its source, leaving every source for the cyclic garbage collector.
        return CancellationToken(self)

    @property
    def is_cancellation_requested(self) -> bool:
        """True once ``cancel()`` has been called (or the delay elapsed)."""
        return self._canceled

    def cancel(self) -> None:
        """Request cancellation and run the registered callbacks on this thread.

        Idempotent. Raises :class:`AggregateError` of the callbacks' exceptions
        (after all of them ran), :class:`InvalidOperationError` once closed.
        """
        if self._closed:
            raise InvalidOperationError("the CancellationTokenSource is closed")
        self._do_cancel()

    def _do_cancel(self) -> None:
        with self._lock:
            if self._canceled:
                return
            self._canceled = True
            callbacks = self._callbacks
            self._callbacks = None
            waiter = self._waiter
            timer = self._timer
            self._timer = None
        if timer is not None:
            timer.cancel()
        if waiter is not None:
            waiter.set()
        if not callbacks:
            return
        errors: list[Exception] = []
        for callback in reversed(list(callbacks.values())):
            try:
                callback()
            except Exception as exc:  # noqa: BLE001 - gathered and re-raised below
                errors.append(exc)
        if errors:
            raise AggregateError("One or more cancellation callbacks raised.", errors)

    def cancel_after(self, delay: float) -> None:
        """Cancel after ``delay`` seconds (replacing an earlier ``cancel_after``)."""
        seconds = check_timeout(delay, "delay")
        if seconds is None:
            raise ValueError("delay must be finite")
        if self._closed:
            raise InvalidOperationError("the CancellationTokenSource is closed")
        if self._canceled:
            return
        handle = _timer.schedule(seconds, self._cancel_from_timer)
        with self._lock:
            old, self._timer = self._timer, handle
            if self._canceled:
                handle.cancel()
        if old is not None:
            old.cancel()

    def _cancel_from_timer(self) -> None:
        if not self._closed:
            self._do_cancel()

    @classmethod
    def create_linked(cls, *tokens: CancellationToken) -> CancellationTokenSource:
        """A source that is canceled when any of ``tokens`` is (or when canceled itself)."""
        for i, token in enumerate(tokens):
            if not isinstance(token, CancellationToken):
                raise TypeError(
                    f"tokens[{i}] must be a CancellationToken, not {type(token).__name__}"
                )
        source = cls()
        links: list[CancellationTokenRegistration] = []
        source._links = links
        for token in tokens:
            if token.can_be_canceled:
                links.append(token.register(source._cancel_from_timer))
            if source._canceled:
                break
        return source

    def close(self) -> None:
        """Release the timer and links. The token keeps its current state."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            timer, self._timer = self._timer, None
            links, self._links = self._links, ()
            if not self._canceled:
                self._callbacks = None
        if timer is not None:
            timer.cancel()
        for link in links:
            link.unregister()

    def __enter__(self) -> CancellationTokenSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- used by CancellationToken --------------------------------------------

    def _register(self, callback: Callable[[], object]) -> CancellationTokenRegistration:
        with self._lock:
            callbacks = self._callbacks
            if callbacks is not None:
                key = self._next_key
                self._next_key = key + 1
                callbacks[key] = callback
                return CancellationTokenRegistration(self, key)
            canceled = self._canceled
        if canceled:
            callback()
        return CancellationTokenRegistration(None, 0)

    def _unregister(self, key: int) -> bool:
        with self._lock:
            callbacks = self._callbacks
            return callbacks is not None and callbacks.pop(key, None) is not None

    def _event(self) -> threading.Event:
        with self._lock:
            if self._waiter is None:
                self._waiter = threading.Event()
                if self._canceled:
                    self._waiter.set()
            return self._waiter

    def __repr__(self) -> str:
        state = "canceled" if self._canceled else "active"
        return f"<CancellationTokenSource {state}{' closed' if self._closed else ''}>"
