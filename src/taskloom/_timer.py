"""One shared timer thread for ``delay``, ``cancel_after`` and scheduler housekeeping.

Data flow::

    any thread --schedule(deadline, fn)--> heap (under _cond) --> timer thread --fn()-->

The thread starts on first use (never at import) and sleeps on a condition
until the earliest deadline; callbacks run on the timer thread and must be
short (they complete tasks or cancel tokens). A callback's exception is
logged, never swallowed silently. A forked child starts its own thread on its
first ``schedule``; inherited timers fire from then on.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable

__all__ = ["TimerHandle", "schedule"]

logger = logging.getLogger("taskloom")

_MIN_SWEEP = 64  # heap size below which canceled entries are not swept


class TimerHandle:
    """A scheduled callback; ``cancel()`` keeps it from running (lazy removal)."""

    __slots__ = ("_fn", "deadline")

    def __init__(self, deadline: float, fn: Callable[[], object]) -> None:
        self.deadline = deadline
        self._fn: Callable[[], object] | None = fn

    def cancel(self) -> None:
        self._fn = None

    @property
    def cancelled(self) -> bool:
        return self._fn is None


class _TimerThread:
    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        # Invariant: entries are (deadline, seq, handle); only touched under _cond.
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopping = False
        # cancel() is lock-free (it may run from a finalizer, wherever the collector
        # runs), so canceled entries stay until popped; the heap is swept of them
        # whenever it doubles, which bounds it to twice the live timers.
        self._sweep_at = _MIN_SWEEP

    def schedule(self, delay: float, fn: Callable[[], object]) -> TimerHandle:
        handle = TimerHandle(time.monotonic() + delay, fn)
        with self._cond:
            if self._stopping:
                # Interpreter exit: timers no longer fire.
                handle.cancel()
                return handle
            heapq.heappush(self._heap, (handle.deadline, next(self._seq), handle))
            if len(self._heap) >= self._sweep_at:
                self._sweep_locked()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="taskloom-timer", daemon=True
                )
                self._thread.start()
            elif self._heap[0][2] is handle:
                self._cond.notify()
        return handle

    def after_fork_in_child(self) -> None:
        """A forked child has no timer thread: the next ``schedule`` starts one.

        Not started here: most forked children (process-pool workers) never use
        timers, and the inherited entries are mostly the parent's pool ticks.
        """
        self._cond = threading.Condition(threading.Lock())  # may have been held at the fork
        self._thread = None

    def _sweep_locked(self) -> None:
        live = [entry for entry in self._heap if not entry[2].cancelled]
        heapq.heapify(live)
        self._heap[:] = live
        self._sweep_at = max(_MIN_SWEEP, 2 * len(live))

    def pending(self) -> int:
        """Timers scheduled and not yet run or canceled (tests and statistics)."""
        with self._cond:
            return sum(1 for entry in self._heap if not entry[2].cancelled)

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopping:
                        return
                    if not self._heap:
                        self._cond.wait()
                        continue
                    deadline, _, handle = self._heap[0]
                    if handle.cancelled:
                        heapq.heappop(self._heap)
                        continue
                    delay = deadline - time.monotonic()
                    if delay <= 0:
                        heapq.heappop(self._heap)
                        break
                    self._cond.wait(delay)
            fn = handle._fn
            handle._fn = None
            if fn is not None:
                try:
                    fn()
                except BaseException:
                    logger.exception("taskloom timer callback %r raised", fn)

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0)


_timer = _TimerThread()
threading._register_atexit(_timer.stop)  # type: ignore[attr-defined]  # before non-daemon joins
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_timer.after_fork_in_child)


def schedule(delay: float, fn: Callable[[], object]) -> TimerHandle:
    """Run ``fn()`` on the shared timer thread after ``delay`` seconds."""
    return _timer.schedule(delay, fn)
