"""The loop scheduler (DESIGN 1.7): tasks and continuations run on an event-loop thread.

:class:`LoopScheduler` is taskloom's synchronization-context scheduler: work queued
to it runs on the thread of one event loop (asyncio, uvloop, or a trio run), in
FIFO order. It is also the one door through which other threads enter that loop:
``await task`` resumptions, coroutine-task starts and loop continuations all
pass through :meth:`LoopScheduler._post`. Data flow::

    any thread (pool workers, timers,          loop thread (asyncio / uvloop / trio)
    other loops)                               ─────────────────────────────────────
    queue_task(task) ──┐
    await-waiter fires ┼─▶ _post(item) ─ _queue.append(item)
                       │     first item since the last drain only:
                       │     ONE wakeup ─ loop.call_soon_threadsafe(_drain)
                       │                  or trio_token.run_sync_soon(_drain)
                       └──────────────────────────────────▶ _drain(): pop items FIFO,
                                                            run each, until empty

So a burst of N completions from worker threads costs one loop wakeup, not N (the
peers - ``asyncio.to_thread``, ``run_in_executor``, ``anyio.to_thread`` - pay one
``call_soon_threadsafe``, i.e. one self-pipe write, per completion).

Queue items are a :class:`Task` (run with :meth:`try_execute_task`), an
:class:`AwaitFuture` (an asyncio awaiter's resumption) or a zero-argument callable
(a trio awaiter's resumption). When the loop closes (asyncio's
``shutdown_asyncgens``, which ``asyncio.run``/``Runner``/``anyio.run`` call, or the end
of a trio run) the scheduler closes: queued tasks fault with
:class:`InvalidOperationError`, queued resumptions are dropped (their awaiters died
with the loop), and later ``queue_task`` calls fault their task at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
import threading
import weakref
from collections import deque
from collections.abc import AsyncGenerator, Callable
from typing import TYPE_CHECKING, Any

from . import _context
from ._errors import InvalidOperationError
from ._scheduler import SchedulerStatistics, TaskScheduler
from ._task import _FAULTED, _RAN_TO_COMPLETION, F_COROUTINE, F_PROMISE, Task

if TYPE_CHECKING:
    import trio

__all__ = ["AwaitFuture", "LoopScheduler", "LoopSchedulerStatistics"]

logger = logging.getLogger("taskloom")

_get_running_loop = asyncio._get_running_loop  # the C fast path, no exception

# Items run per wakeup before the drain yields to the loop's other callbacks (it then
# reschedules itself with a same-thread call, not a cross-thread wakeup).
_DRAIN_BUDGET = 4096

# The scheduler of each live loop (keyed by id() of the asyncio loop or trio token;
# the scheduler holds its loop strongly, so an id cannot be reused while it lives).
_registry: weakref.WeakValueDictionary[int, LoopScheduler] = weakref.WeakValueDictionary()
_registry_lock = threading.Lock()


def _current_trio_token() -> trio.lowlevel.TrioToken | None:
    """The token of the trio run on this thread, or None (trio is never imported here)."""
    trio_module = sys.modules.get("trio")
    if trio_module is None:
        return None
    try:
        token: trio.lowlevel.TrioToken = trio_module.lowlevel.current_trio_token()
    except RuntimeError:
        return None
    return token


@dataclasses.dataclass(frozen=True)
class LoopSchedulerStatistics(SchedulerStatistics):
    """Counters of a :class:`LoopScheduler`.

    ``wakeups / items`` is the cost of crossing into the loop per unit of work: a
    burst of completions shares one wakeup, so under load it falls far below 1.
    """

    #: Wakeups requested (``call_soon_threadsafe`` / ``run_sync_soon`` calls).
    wakeups: int
    #: Drain passes run on the loop thread (wakeups plus budget continuations).
    drains: int
    #: Queued items run on the loop (tasks started and awaiters resumed).
    items: int
    #: Items waiting in the queue right now.
    queue_length: int
    #: True once the loop has closed (queued work then faults).
    closed: bool


class LoopScheduler(TaskScheduler):
    """Runs tasks and continuations on an event loop's thread (asyncio, uvloop or trio).

    The analog of TPL's synchronization-context scheduler. ``LoopScheduler()`` on a
    thread running a loop is that loop's scheduler; ``LoopScheduler(loop)`` takes an
    asyncio loop or a ``trio.lowlevel.TrioToken`` from any thread. There is one
    scheduler per loop: constructing it again returns the same object. Use it to
    marshal work back onto the loop thread::

        async def handler():
            on_loop = tl.LoopScheduler.current()
            t = tl.run(blocking_io).continue_with(update_ui, scheduler=on_loop)

    Work runs in FIFO order. Crossing from other threads into the loop is batched:
    a burst of completions costs one loop wakeup. A task is run inline (by a
    blocking wait or ``EXECUTE_SYNCHRONOUSLY``) only on the loop's own thread.
    If the loop closes with work queued, that work faults with
    :class:`InvalidOperationError` instead of hanging its awaiters.
    """

    # Invariants, all guarded by _lock:
    # - _pending is True from a producer's wakeup request until a drain finds the
    #   queue empty; while it is True no other wakeup is requested.
    # - _closed goes False -> True once; afterwards nothing is appended to _queue.
    _lock: threading.Lock
    _queue: deque[Any]
    _pending: bool
    _closed: bool
    _wakeups: int
    # Written only on the loop thread.
    _drains: int
    _items: int
    # The asyncio loop, or None on trio.
    _loop: asyncio.AbstractEventLoop | None
    # The trio run's token, or None on asyncio.
    _trio_token: Any
    # loop.call_soon_threadsafe / token.run_sync_soon, and the same-thread variant.
    _wake_threadsafe: Callable[[Callable[[], None]], object]
    _wake_local: Callable[[Callable[[], None]], object]
    # The loop thread's ident once known (set on the loop thread by _attach).
    _thread_id: int | None
    # The close watcher (async generator or trio system task) has been installed.
    _watching: bool
    _watcher: Any
    # asyncio tasks running coroutine bodies: strong references until they finish.
    _running: set[asyncio.Future[Any]]

    def __new__(cls, loop: Any = None) -> LoopScheduler:
        key = _resolve_loop(loop)
        with _registry_lock:
            existing = _registry.get(id(key))
            if existing is not None and existing._key() is key:
                scheduler = existing
            else:
                scheduler = super().__new__(cls)  # type: ignore[assignment]
                scheduler._setup(key)
                _registry[id(key)] = scheduler
        if scheduler._running_here():
            scheduler._attach()
        return scheduler

    def __init__(self, loop: Any = None) -> None:
        # Everything happens in __new__ (one scheduler per loop).
        pass

    def _setup(self, key: Any) -> None:
        self._lock = threading.Lock()
        self._queue = deque()
        self._pending = False
        self._closed = False
        self._wakeups = 0
        self._drains = 0
        self._items = 0
        self._thread_id = None
        self._watching = False
        self._watcher = None
        self._running = set()
        if isinstance(key, asyncio.AbstractEventLoop):
            self._loop = key
            self._trio_token = None
            self._wake_threadsafe = key.call_soon_threadsafe
            self._wake_local = key.call_soon
        else:
            self._loop = None
            self._trio_token = key
            self._wake_threadsafe = self._wake_local = key.run_sync_soon

    def _key(self) -> Any:
        return self._loop if self._loop is not None else self._trio_token

    # -- ambient -----------------------------------------------------------------------

    @classmethod
    def current(cls) -> LoopScheduler:
        """The scheduler of the event loop running on this thread.

        Raises :class:`InvalidOperationError` when no asyncio, uvloop or trio loop
        runs on this thread.
        """
        scheduler = current_or_none()
        if scheduler is None:
            raise InvalidOperationError(
                "LoopScheduler.current() must be called on a thread running an event loop "
                "(asyncio, uvloop or trio)"
            )
        return scheduler

    @property
    def loop(self) -> Any:
        """The asyncio event loop, or the ``trio.lowlevel.TrioToken``, this scheduler serves."""
        return self._key()

    @property
    def is_closed(self) -> bool:
        """True once the loop has closed; queued work then faults."""
        return self._closed

    # -- the two scheduler methods ------------------------------------------------------------

    def queue_task(self, task: Task[Any]) -> None:
        """Queue ``task`` to run on the loop thread (never inline, even on that thread).

        Raises :class:`InvalidOperationError` (which faults the task) once the
        loop has closed.
        """
        if not self._post(task):
            raise InvalidOperationError(
                f"the event loop of {self!r} has closed: the task cannot run on it"
            )

    def try_execute_task_inline(self, task: Task[Any], task_was_previously_queued: bool) -> bool:
        """Run ``task`` now only on the loop's own thread while the loop runs.

        A coroutine task is never inlined: its coroutine needs the loop to run,
        so a blocking wait could not finish it anyway. A queued task is claimed
        atomically here; its queue entry then does nothing.
        """
        if (
            threading.get_ident() != self._thread_id
            or task._flags & F_COROUTINE
            or not self._running_here()
        ):
            return False
        return self.try_execute_task(task)

    @property
    def maximum_concurrency_level(self) -> int:
        """1: a loop runs one piece of synchronous work at a time."""
        return 1

    def statistics(self) -> LoopSchedulerStatistics:
        """A snapshot of the wakeup and item counters (see :class:`LoopSchedulerStatistics`)."""
        with self._lock:
            wakeups, queued, closed = self._wakeups, len(self._queue), self._closed
        return LoopSchedulerStatistics(
            self.id, 1, wakeups, self._drains, self._items, queued, closed
        )

    def shutdown(self, wait: bool = True) -> None:
        """Does nothing: the loop owns its lifetime (its close faults queued work)."""

    def __repr__(self) -> str:
        kind = "trio" if self._loop is None else type(self._loop).__module__.split(".")[0]
        state = " closed" if self._closed else ""
        return f"<LoopScheduler id={self.id} {kind}{state}>"

    # -- crossing into the loop ------------------------------------------------------------

    def _post(self, item: Any) -> bool:
        """Hand ``item`` to the loop thread; False (nothing queued) once the loop has closed.

        Called from any thread. This is the one place where other threads enter
        the loop. It is safe because the deque append and the ``_pending`` test
        happen under ``_lock``, and a drain clears ``_pending`` only under the
        same lock after seeing the queue empty: an item appended before that
        check is drained, one appended after it requests a new wakeup.
        """
        with self._lock:
            if self._closed:
                return False
            self._queue.append(item)
            if self._pending:
                loop = self._loop
                if loop is None or not loop.is_closed():
                    return True
                # The wakeup requested earlier died with a loop closed without
                # shutdown_asyncgens(): fail what is queued (this item included).
                self._pending = False
                stale = True
            else:
                self._pending = True
                self._wakeups += 1
                stale = False
        if stale:
            self._close()
            return True
        try:
            if threading.get_ident() == self._thread_id:
                self._wake_local(self._drain)
            else:
                self._wake_threadsafe(self._drain)
        except RuntimeError:  # the asyncio loop is closed / the trio run has finished
            self._close()
        return True

    def _drain(self) -> None:
        """Run the queued items in FIFO order. Called only on the loop thread (the wakeup)."""
        if not self._watching:
            self._attach()
        self._drains += 1
        queue = self._queue
        popleft = queue.popleft
        lock = self._lock
        ran = 0
        while True:
            try:
                item = popleft()
            except IndexError:
                with lock:
                    if queue:
                        continue
                    self._pending = False
                    break
            try:
                kind = type(item)
                if kind is Task:
                    self.try_execute_task(item)
                elif kind is AwaitFuture:
                    item.resolve()
                else:
                    item()
            except Exception:
                logger.exception("taskloom: loop-scheduled work raised")
            ran += 1
            if ran >= _DRAIN_BUDGET and queue:
                # Let the loop's other callbacks run; _pending stays True.
                try:
                    self._wake_local(self._drain)
                except RuntimeError:
                    self._close()
                break
        self._items += ran

    # -- loop lifetime ------------------------------------------------------------------

    def _running_here(self) -> bool:
        """True if this scheduler's loop is running on the calling thread."""
        if self._loop is not None:
            return _get_running_loop() is self._loop
        return _current_trio_token() is self._trio_token

    def _attach(self) -> None:
        """Mark the calling (loop) thread as this loop's and watch for the loop closing.

        Called on the loop thread while the loop runs.
        """
        self._thread_id = threading.get_ident()
        _context.local.loop_scheduler = self
        if self._watching:
            return
        self._watching = True
        ref = weakref.ref(self)
        if self._loop is not None:
            # An async generator the loop closes in shutdown_asyncgens(). It is first
            # iterated with the loop's firstiter hook (which registers it) but no
            # finalizer, so collecting it early never touches a closed loop.
            agen = _asyncio_watch(ref)
            firstiter, finalizer = sys.get_asyncgen_hooks()
            sys.set_asyncgen_hooks(firstiter=firstiter, finalizer=None)
            try:
                agen.asend(None).send(None)
            except StopIteration:
                pass
            finally:
                sys.set_asyncgen_hooks(firstiter=firstiter, finalizer=finalizer)
            self._watcher = agen
        else:
            import trio

            self._watcher = trio.lowlevel.spawn_system_task(
                _trio_watch, ref, name="taskloom.LoopScheduler watcher"
            )

    def _close(self) -> None:
        """The loop has closed (or is closing): fault queued tasks, refuse new work.

        Called on the loop thread by the close watcher, or on a producer thread
        whose wakeup found the loop closed.
        """
        with self._lock:
            self._closed = True
            self._pending = False
            items = list(self._queue)
            self._queue.clear()
        if _context.local.loop_scheduler is self:
            _context.local.loop_scheduler = None
        for item in items:
            if isinstance(item, Task):
                error = InvalidOperationError(
                    f"the event loop of {self!r} closed before the task could run on it"
                )
                item._complete_if_not_started(_FAULTED, None, [error])

    # -- blocking waits on the loop thread -------------------------------------------------

    def _check_blocking_wait(self, task: Task[Any]) -> None:
        """Called by ``Task.wait``/``result`` before blocking on a thread marked as ours.

        Raises :class:`InvalidOperationError` when the loop runs on this thread and
        ``task`` needs this loop to complete: blocking would deadlock silently.
        """
        if not self._running_here():
            if _context.local.loop_scheduler is self:
                _context.local.loop_scheduler = None  # stale: our loop no longer runs here
            return
        if self._needed_by(task):
            raise InvalidOperationError(
                f"{task!r} needs this thread's event loop to complete, so a blocking "
                "result()/wait() here would deadlock: use `await task` instead"
            )

    def _needed_by(self, task: Task[Any]) -> bool:
        """Best effort: does ``task`` (or what it waits on) run on this loop?"""
        stack: list[Any] = [task]
        seen = 0
        while stack and seen < 10_000:
            t = stack.pop()
            seen += 1
            if t._scheduler is self:
                return True
            antecedent = getattr(t, "_antecedent", None)  # kept only by some core versions
            if antecedent is not None:
                stack.append(antecedent)
            if t._flags & F_PROMISE:  # a when_* promise: its operands
                parts = getattr(t, "_parts", None)
                if isinstance(parts, tuple):
                    stack.extend(x for x in parts if isinstance(x, Task))
        return False


class AwaitFuture(asyncio.Future):  # type: ignore[type-arg]
    """What an asyncio ``await task`` waits on: a future that is also the task's continuation.

    One object per awaiter (no separate waiter, callback or generator: fewer
    objects alive per pending await, less work for the garbage collector).
    Called with the task on the thread that completes it; resolved on the loop
    thread with the task's outcome, so ``await`` returns the result or raises
    exactly what ``result()`` raises. Cancelling it (the awaiting coroutine was
    cancelled) removes it from the task's continuations; the task runs on.
    """

    __slots__ = ("scheduler", "task")

    scheduler: LoopScheduler
    task: Task[Any]

    def __call__(self, _task: Task[Any]) -> None:
        # On the thread that completed the task.
        if threading.get_ident() == self.scheduler._thread_id:
            self.resolve()
        else:
            self.scheduler._post(self)

    def resolve(self) -> None:
        """Copy the task's outcome in (loop thread); nothing if the awaiter was cancelled."""
        if self.done():
            return
        task = self.task
        if task._status == _RAN_TO_COMPLETION:
            self.set_result(task._result)
            return
        error = task._outcome_error()
        if isinstance(error, StopIteration):
            # A future cannot carry StopIteration (nor can a coroutine raise it).
            wrapped = RuntimeError(f"{task!r} raised StopIteration")
            wrapped.__cause__ = error
            error = wrapped
        self.set_exception(error)

    def cancel(self, msg: Any = None) -> bool:
        if not super().cancel(msg):
            return False
        self.task._remove_continuation(self)  # stop waiting; the task is untouched
        return True


async def _asyncio_watch(ref: weakref.ref[LoopScheduler]) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        scheduler = ref()
        if scheduler is not None:
            scheduler._close()


async def _trio_watch(ref: weakref.ref[LoopScheduler]) -> None:
    import trio

    try:
        await trio.sleep_forever()
    finally:
        scheduler = ref()
        if scheduler is not None:
            scheduler._close()


def _resolve_loop(loop: Any) -> Any:
    """The asyncio loop or trio token ``loop`` names (None: the one running here)."""
    if loop is None:
        running = _get_running_loop()
        if running is not None:
            return running
        token = _current_trio_token()
        if token is not None:
            return token
        raise InvalidOperationError(
            "LoopScheduler() without a loop must be called on a thread running an event "
            "loop (asyncio, uvloop or trio); from another thread pass the loop"
        )
    if isinstance(loop, asyncio.AbstractEventLoop):
        if loop.is_closed():
            raise InvalidOperationError("loop: the event loop is closed")
        return loop
    trio_module = sys.modules.get("trio")
    if trio_module is not None and isinstance(loop, trio_module.lowlevel.TrioToken):
        return loop
    raise TypeError(
        "loop must be an asyncio event loop, a trio.lowlevel.TrioToken or None, "
        f"not {type(loop).__name__}"
    )


def current_or_none() -> LoopScheduler | None:
    """The scheduler of the loop running on this thread, or None (cheap when cached)."""
    cached = _context.local.loop_scheduler
    loop = _get_running_loop()
    if loop is not None:
        if cached is not None and cached._loop is loop:
            return cached  # type: ignore[no-any-return]
        return LoopScheduler(loop)
    token = _current_trio_token()
    if token is not None:
        if cached is not None and cached._trio_token is token:
            return cached  # type: ignore[no-any-return]
        return LoopScheduler(token)
    return None


TaskScheduler._loop_lookup = current_or_none
