"""Drop-in ``concurrent.futures`` executors over taskloom schedulers (DESIGN 1.9).

Data flow::

    ThreadExecutor.submit(fn, *args, **kw) --> _Pool.submit (lock: shutdown/broken checks)
        --> start_task --> WorkStealingScheduler (global FIFO queue) --> pool threads
    ProcessExecutor.submit(...) ----------> _Pool.submit --> ProcessScheduler --> worker processes
    HybridExecutor.submit(fn, ...) --fn marked @cpu_bound?--> yes: its process _Pool
                                                          \\-> no:  its thread _Pool
    Executor.map(fn, *iterables) --> one submit per call (per chunk of calls for processes)
        --> _results_in_order: lazy, in order, timeout from the call, cancels the rest on close

Ownership: an executor owns one ``_Pool`` per kind of worker; a ``_Pool`` owns its
scheduler. Scheduler threads and processes never reference the executor or the
pool, so an unreferenced executor is collected; its finalizer shuts the pool
down without waiting, as ``ThreadPoolExecutor``'s weakref callback does. The
schedulers themselves stop their threads and processes at interpreter exit.

How this departs from ``concurrent.futures`` (documented in the executors guide):
``submit`` returns a :class:`Task`; a non-callable ``fn`` raises ``TypeError`` at the
call; the task runs in a copy of the submitter's ``contextvars`` context (threads only);
all ``max_workers`` threads start with the first task instead of one per submit.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import functools
import itertools
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool
from concurrent.futures.thread import BrokenThreadPool
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from ._cancellation import CancellationToken
from ._task import _FAULTED, F_DENY_CHILD_ATTACH, F_PREFER_FAIRNESS, Task, start_task
from ._util import check_callable
from ._workstealing import WorkStealingScheduler

if TYPE_CHECKING:
    from ._scheduler import TaskScheduler

__all__ = ["HybridExecutor", "ProcessExecutor", "ThreadExecutor", "cpu_bound"]

P = ParamSpec("P")
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

# The standard executors report initializer failures on this logger; so do we.
_cf_logger = logging.getLogger("concurrent.futures")

_CPU_BOUND_ATTR = "__taskloom_cpu_bound__"

# Set once the interpreter starts shutting down (before non-daemon threads are
# joined): submit then raises, as the standard executors do.
_NO_TOKEN = CancellationToken.NONE
_interpreter_exiting = False


def _on_interpreter_exit() -> None:
    global _interpreter_exiting
    _interpreter_exiting = True


threading._register_atexit(_on_interpreter_exit)  # type: ignore[attr-defined]


# == the part every executor shares ========================================================


class _Pool:
    """One scheduler behind an executor, with the checks ``submit`` and ``shutdown`` need.

    ``lock`` guards ``shut_down`` and ``broken``; holding it across ``start_task``
    makes submit and shutdown mutually ordered: a task is either queued before
    the scheduler shuts down or refused with ``RuntimeError``.
    """

    __slots__ = ("__weakref__", "broken", "broken_error", "flags", "lock", "scheduler", "shut_down")

    def __init__(
        self, scheduler: TaskScheduler, broken_error: type[concurrent.futures.BrokenExecutor]
    ) -> None:
        self.scheduler = scheduler
        self.broken_error = broken_error
        self.lock = threading.Lock()
        self.shut_down = False  # False -> True once
        self.broken: str | None = None  # set once, with the message submit raises
        # FIFO like the standard executors: work submitted from a pool thread goes
        # to the shared queue, not to that thread's LIFO deque.
        self.flags = F_DENY_CHILD_ATTACH | F_PREFER_FAIRNESS

    def submit(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Task[Any]:
        if not callable(fn):
            check_callable(fn)
        if kwargs:
            fn = functools.partial(fn, **kwargs)
        lock = self.lock
        lock.acquire()  # (acquire/release: a `with` costs twice as much on this hot path)
        try:
            if self.broken is not None:
                raise self.broken_error(self.broken)
            if self.shut_down:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if _interpreter_exiting:
                raise RuntimeError("cannot schedule new futures after interpreter shutdown")
            task = start_task(fn, args, token=_NO_TOKEN, flags=self.flags, scheduler=self.scheduler)
            if self.tracks_submissions:
                self.submitted(task)
        finally:
            lock.release()
        return task

    # Whether submit() must call submitted() (only subclasses that track tasks do).
    tracks_submissions = False

    def submitted(self, task: Task[Any]) -> None:
        """Called with ``lock`` held for each task submitted (subclasses track them)."""

    def queued_tasks(self) -> list[Task[Any]]:
        """Tasks queued and not started (a snapshot)."""
        get = getattr(self.scheduler, "_get_scheduled_tasks", None)
        return list(get()) if get is not None else []

    def break_pool(self, message: str) -> None:
        """Mark the pool unusable and fault every queued task with ``broken_error``.

        Called on the thread whose initializer failed.
        """
        with self.lock:
            if self.broken is None:
                self.broken = message
        for task in self.queued_tasks():
            task._complete_if_not_started(_FAULTED, None, [self.broken_error(message)])

    def shutdown(self, wait: bool, cancel_futures: bool) -> None:
        with self.lock:
            self.shut_down = True  # from here on submit refuses: the snapshot below is complete
        if cancel_futures:
            # Outside the lock: canceling runs completion callbacks, which may take it.
            for task in self.queued_tasks():
                task.cancel()
        self.scheduler.shutdown(wait)


def _bind_kwargs(
    fn: Callable[..., Any], kwargs: dict[str, Any]
) -> tuple[Callable[..., Any], dict[str, Any]]:
    """Check ``fn`` and fold ``kwargs`` into it (before wrapping it for an initializer)."""
    check_callable(fn)
    return (functools.partial(fn, **kwargs) if kwargs else fn), {}


def _shutdown_collected(pool: _Pool) -> None:
    """Finalizer of an executor collected without ``shutdown``: its workers drain, then exit."""
    pool.shutdown(False, False)


def _result_or_cancel(task: Task[Any], timeout: float | None) -> Any:
    try:
        return task.result(timeout)
    finally:
        task.cancel()


def _results_in_order(tasks: list[Task[Any]], end_time: float | None) -> Iterator[Any]:
    """``Executor.map``'s result iterator: in order; cancels what is left when closed."""
    try:
        tasks.reverse()  # pop() from the end keeps submission order
        while tasks:
            # Never hold the popped task across the yield: its result could be large.
            if end_time is None:
                yield _result_or_cancel(tasks.pop(), None)
            else:
                yield _result_or_cancel(tasks.pop(), max(0.0, end_time - time.monotonic()))
    finally:
        for task in tasks:
            task.cancel()


def _end_time(timeout: float | None) -> float | None:
    # Like Executor.map: measured from the call; a negative timeout times out at the first result.
    return None if timeout is None else timeout + time.monotonic()


def _map_calls(
    pool: _Pool, fn: Callable[..., Any], iterables: tuple[Iterable[Any], ...], timeout: float | None
) -> Iterator[Any]:
    end_time = _end_time(timeout)
    tasks = [pool.submit(fn, args, {}) for args in zip(*iterables, strict=False)]
    return _results_in_order(tasks, end_time)


def _process_chunk(fn: Callable[..., T], chunk: tuple[tuple[Any, ...], ...]) -> list[T]:
    """Run one chunk of a process ``map`` in the worker process."""
    return [fn(*args) for args in chunk]


def _chunks(iterables: tuple[Iterable[Any], ...], chunksize: int) -> Iterator[tuple[Any, ...]]:
    it = zip(*iterables, strict=False)
    while chunk := tuple(itertools.islice(it, chunksize)):
        yield chunk


def _flatten_chunks(results: Iterator[list[Any]]) -> Iterator[Any]:
    """Chain the chunk results, keeping no reference to items already yielded."""
    try:
        for chunk in results:
            chunk.reverse()
            while chunk:
                yield chunk.pop()
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()


def _map_chunked(
    pool: _Pool,
    fn: Callable[..., Any],
    iterables: tuple[Iterable[Any], ...],
    timeout: float | None,
    chunksize: int,
) -> Iterator[Any]:
    if chunksize < 1:
        raise ValueError("chunksize must be >= 1.")
    end_time = _end_time(timeout)
    tasks = [
        pool.submit(_process_chunk, (fn, chunk), {}) for chunk in _chunks(iterables, chunksize)
    ]
    return _flatten_chunks(_results_in_order(tasks, end_time))


# == threads ===============================================================================


def _check_max_workers(max_workers: object) -> int:
    if isinstance(max_workers, bool) or not isinstance(max_workers, int):
        raise TypeError(f"max_workers must be an int or None, not {type(max_workers).__name__}")
    if max_workers <= 0:
        raise ValueError("max_workers must be greater than 0")
    return max_workers


def _check_initializer(initializer: object, initargs: object) -> None:
    if initializer is not None and not callable(initializer):
        raise TypeError("initializer must be a callable")
    if not isinstance(initargs, tuple):
        raise TypeError(f"initargs must be a tuple, not {type(initargs).__name__}")


class _ExecutorThreads(WorkStealingScheduler):
    """The pool threads of a :class:`ThreadExecutor`, named ``<prefix>_<n>`` from 0 like
    ``ThreadPoolExecutor``'s."""

    @staticmethod
    def _thread_name(prefix: str, serial: int) -> str:
        return f"{prefix}_{serial - 1}"


class _ThreadInitializer:
    """Runs the executor's ``initializer`` once per pool thread, before its first task.

    ``done`` is thread-local: each thread reads and writes only its own flag.
    """

    __slots__ = ("done", "initargs", "initializer", "pool")

    def __init__(self, initializer: Callable[..., object], initargs: tuple[Any, ...]) -> None:
        self.initializer = initializer
        self.initargs = initargs
        self.done = threading.local()
        self.pool: weakref.ReferenceType[_Pool] | None = None

    def ensure(self) -> None:
        """Called on a pool thread before each task; raises ``BrokenThreadPool`` once broken."""
        pool = self.pool() if self.pool is not None else None
        if pool is not None and pool.broken is not None:
            raise BrokenThreadPool(pool.broken)
        try:
            self.initializer(*self.initargs)
        except BaseException as exc:
            _cf_logger.critical("Exception in initializer:", exc_info=True)
            message = "A thread initializer failed, the thread pool is not usable anymore"
            if pool is not None:
                pool.break_pool(message)
            raise BrokenThreadPool(message) from exc
        self.done.value = True


class _Initialized:
    """A task body that makes sure its thread ran the initializer first."""

    __slots__ = ("fn", "init")

    def __init__(self, init: _ThreadInitializer, fn: Callable[..., Any]) -> None:
        self.init = init
        self.fn = fn

    def __call__(self, *args: Any) -> Any:
        init = self.init
        if not getattr(init.done, "value", False):
            init.ensure()
        return self.fn(*args)


class _ThreadPool(_Pool):
    __slots__ = ("init",)

    def __init__(
        self,
        max_workers: int,
        prefix: str,
        initializer: Callable[..., object] | None,
        initargs: tuple[Any, ...],
    ) -> None:
        # max_threads == max_workers: never more threads than asked, like
        # ThreadPoolExecutor (a single-thread executor serializes its work).
        scheduler = _ExecutorThreads(max_workers, max_workers, prefix, max_threads=max_workers)
        super().__init__(scheduler, BrokenThreadPool)
        self.init: _ThreadInitializer | None = None
        if initializer is not None:
            self.init = _ThreadInitializer(initializer, initargs)
            self.init.pool = weakref.ref(self)

    def submit(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Task[Any]:
        init = self.init
        if init is not None:
            fn, kwargs = _bind_kwargs(fn, kwargs)
            fn = _Initialized(init, fn)
        return super().submit(fn, args, kwargs)


class ThreadExecutor(concurrent.futures.ThreadPoolExecutor):
    """A drop-in ``concurrent.futures.ThreadPoolExecutor`` whose ``submit`` returns a :class:`Task`.

    Same signature and observable behaviour as ``ThreadPoolExecutor``: at most
    ``max_workers`` threads (default ``min(32, os.cpu_count() + 4)``) named
    ``<thread_name_prefix>_<n>``, FIFO order, ``initializer(*initargs)`` run on
    each thread before its first task (if it raises, queued and later work
    fails with ``BrokenThreadPool``), ``map``, ``shutdown``, the ``with``
    statement. It is a ``ThreadPoolExecutor`` subclass, so
    ``loop.set_default_executor`` accepts it. Underneath is a
    :class:`WorkStealingScheduler` of its own::

        with tl.ThreadExecutor(max_workers=4) as ex:
            task = ex.submit(pow, 2, 10)
            print(task.then(lambda r: r + 1).result())  # 1025
    """

    _counter = itertools.count().__next__

    def __init__(
        self,
        max_workers: int | None = None,
        thread_name_prefix: str = "",
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
    ) -> None:
        # ThreadPoolExecutor.__init__ is deliberately not called: none of its machinery is used.
        if max_workers is None:
            max_workers = min(32, (os.cpu_count() or 1) + 4)
        max_workers = _check_max_workers(max_workers)
        _check_initializer(initializer, initargs)
        if not isinstance(thread_name_prefix, str):
            raise TypeError(
                f"thread_name_prefix must be a str, not {type(thread_name_prefix).__name__}"
            )
        prefix = thread_name_prefix or f"{type(self).__name__}-{self._counter()}"
        self._max_workers = max_workers
        self._thread_name_prefix = prefix
        self._threads_pool = _ThreadPool(max_workers, prefix, initializer, initargs)
        self._threads_finalizer = weakref.finalize(self, _shutdown_collected, self._threads_pool)

    @property
    def scheduler(self) -> TaskScheduler:
        """The :class:`WorkStealingScheduler` running this executor's threads.

        Pass it to ``tl.start_new``/``continue_with(scheduler=...)`` to run more work there.
        """
        return self._threads_pool.scheduler

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Task[T]:
        """Schedule ``fn(*args, **kwargs)``; return its :class:`Task` (a ``Future``).

        Raises ``RuntimeError`` after ``shutdown`` (or interpreter shutdown),
        ``BrokenThreadPool`` once an initializer failed, ``TypeError`` if ``fn``
        is not callable. Keyword arguments named ``fn`` or ``self`` go to ``fn``.
        """
        return self._threads_pool.submit(fn, args, kwargs)

    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[T]:
        """Like the builtin ``map``, with the calls running on the pool (all submitted now).

        Results come lazily and in order. ``next()`` raises ``TimeoutError`` when
        ``timeout`` seconds (counted from this call) pass first, and re-raises a
        call's exception at its position. Closing or dropping the iterator cancels
        the calls that have not started. ``chunksize`` is ignored, as by
        ``ThreadPoolExecutor``.
        """
        return _map_calls(self._threads_pool, fn, iterables, timeout)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Refuse new work; queued work still runs unless ``cancel_futures`` cancels it.

        With ``wait`` (the default) blocks until every thread has exited; it has
        no timeout. Safe to call more than once.
        """
        self._threads_finalizer.detach()
        self._threads_pool.shutdown(wait, cancel_futures)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self._thread_name_prefix!r} max_workers={self._max_workers}>"
        )


# == processes =============================================================================

# Messages of ProcessPoolExecutor: what the work of a broken pool fails with, and
# what submit raises afterwards.
_BROKEN_PENDING = (
    "A process in the process pool was terminated abruptly while the future was running or pending."
)
_BROKEN_POOL = "A child process terminated abruptly, the process pool is not usable anymore"

# In a worker process: whether this process ran the executor's initializer.
_child_initialized = False


def _run_initialized(
    initializer: Callable[..., object],
    initargs: tuple[Any, ...],
    fn: Callable[..., T],
    *args: Any,
) -> T:
    """Runs in the worker process: the initializer once per process, then ``fn(*args)``."""
    global _child_initialized
    if not _child_initialized:
        try:
            initializer(*initargs)
        except BaseException as exc:
            _cf_logger.critical("Exception in initializer:", exc_info=True)
            raise BrokenProcessPool(_BROKEN_PENDING) from exc
        _child_initialized = True
    return fn(*args)


class _ProcessPool(_Pool):
    """A :class:`ProcessScheduler` behind an executor.

    ``pending`` (guarded by ``lock``) holds the tasks submitted and not final,
    for ``cancel_futures``; each task's completion callback removes it.
    """

    __slots__ = ("init", "pending")

    def __init__(
        self,
        scheduler: TaskScheduler,
        initializer: Callable[..., object] | None,
        initargs: tuple[Any, ...],
    ) -> None:
        super().__init__(scheduler, BrokenProcessPool)
        self.flags = F_DENY_CHILD_ATTACH
        self.pending: set[Task[Any]] = set()
        self.init = None if initializer is None else (initializer, initargs)

    def submit(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Task[Any]:
        init = self.init
        if init is not None:
            fn, kwargs = _bind_kwargs(fn, kwargs)
            args = (*init, fn, *args)
            fn = _run_initialized
        task = super().submit(fn, args, kwargs)
        task._add_continuation(self._on_done)  # at once if already done
        return task

    tracks_submissions = True

    def submitted(self, task: Task[Any]) -> None:
        self.pending.add(task)  # under lock: shutdown's snapshot sees every accepted task

    def _on_done(self, task: Task[Any]) -> None:
        """Completion callback (any thread): forget the task; a failed initializer breaks
        the pool."""
        with self.lock:
            self.pending.discard(task)
        excs = task._excs
        if (
            self.init is not None
            and task._status == _FAULTED
            and excs
            and type(excs[0]) is BrokenProcessPool
        ):
            self.break_pool(_BROKEN_POOL)

    def queued_tasks(self) -> list[Task[Any]]:
        return list(self.pending.copy())  # set.copy() is atomic; iterating would not be


def _make_process_scheduler(
    max_workers: int | None,
    mp_context: Any,
    max_tasks_per_child: int | None,
    initializer: Callable[..., object] | None = None,
    initargs: tuple[Any, ...] = (),
) -> TaskScheduler:
    from ._process import ProcessScheduler

    return ProcessScheduler(
        max_workers,
        mp_context=mp_context,
        max_tasks_per_child=max_tasks_per_child,
        initializer=initializer,
        initargs=initargs,
    )


def _lower_priority(increment: int) -> None:
    """Runs in each HybridExecutor worker process: yield the CPU to the parent's loop."""
    nice = getattr(os, "nice", None)
    if nice is not None and increment > 0:
        nice(increment)


def _check_process_options(
    max_workers: int | None, mp_context: Any, max_tasks_per_child: int | None
) -> tuple[int, Any]:
    """ProcessPoolExecutor's argument rules; returns (max_workers, mp_context)."""
    import multiprocessing

    if max_workers is None:
        workers = os.cpu_count() or 1
    else:
        workers = _check_max_workers(max_workers)
    if mp_context is None:
        mp_context = multiprocessing.get_context(
            "spawn" if max_tasks_per_child is not None else None
        )
    if max_tasks_per_child is not None:
        if isinstance(max_tasks_per_child, bool) or not isinstance(max_tasks_per_child, int):
            raise TypeError("max_tasks_per_child must be an integer")
        if max_tasks_per_child <= 0:
            raise ValueError("max_tasks_per_child must be >= 1")
        if mp_context.get_start_method(allow_none=False) == "fork":
            raise ValueError(
                "max_tasks_per_child is incompatible with the 'fork' multiprocessing start "
                "method; supply a different mp_context."
            )
    return workers, mp_context


class ProcessExecutor(concurrent.futures.Executor):
    """A drop-in ``concurrent.futures.ProcessPoolExecutor``; ``submit`` returns a :class:`Task`.

    Same signature and observable behaviour as ``ProcessPoolExecutor``:
    ``max_workers`` processes (default ``os.cpu_count()``) started with
    ``mp_context``; ``initializer(*initargs)`` once per process before its
    first task (if it raises, that work and everything queued fails with
    ``BrokenProcessPool``, and so does ``submit`` afterwards);
    ``max_tasks_per_child`` (not with ``fork``; defaults the context to
    ``spawn``); ``map`` sends ``chunksize`` calls per message. Underneath is a
    :class:`ProcessScheduler`: functions, lambdas and closures travel by
    cloudpickle, and a worker that dies fails only the task it ran
    (:class:`WorkerCrashedError`) and is replaced, instead of breaking the pool::

        with tl.ProcessExecutor(max_workers=2) as ex:
            print(list(ex.map(pow, [2, 3], [10, 2])))  # [1024, 9]
    """

    def __init__(
        self,
        max_workers: int | None = None,
        mp_context: Any = None,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        max_tasks_per_child: int | None = None,
    ) -> None:
        workers, context = _check_process_options(max_workers, mp_context, max_tasks_per_child)
        _check_initializer(initializer, initargs)
        self._max_workers = workers
        scheduler = _make_process_scheduler(workers, context, max_tasks_per_child)
        self._processes_pool = _ProcessPool(scheduler, initializer, initargs)
        self._processes_finalizer = weakref.finalize(
            self, _shutdown_collected, self._processes_pool
        )

    @property
    def scheduler(self) -> TaskScheduler:
        """The :class:`ProcessScheduler` running this executor's processes."""
        return self._processes_pool.scheduler

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Task[T]:
        """Schedule ``fn(*args, **kwargs)`` in a worker process; return its :class:`Task`.

        Raises ``RuntimeError`` after ``shutdown``, ``BrokenProcessPool`` once an
        initializer failed, ``TypeError`` if ``fn`` is not callable.
        """
        return self._processes_pool.submit(fn, args, kwargs)

    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[T]:
        """Like the builtin ``map``, run in the worker processes ``chunksize`` calls at a time.

        All chunks are submitted now; results come lazily and in order.
        ``next()`` raises ``TimeoutError`` when ``timeout`` seconds (from this
        call) pass first, and a call's exception at its position (the other
        results of its chunk are lost, as with ``ProcessPoolExecutor``).
        Closing the iterator cancels the chunks that have not started.
        ``chunksize < 1`` raises ``ValueError``.
        """
        return _map_chunked(self._processes_pool, fn, iterables, timeout, chunksize)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Refuse new work; queued work still runs unless ``cancel_futures`` cancels it.

        With ``wait`` blocks (no timeout) until the worker processes have
        exited. Safe to call more than once.
        """
        self._processes_finalizer.detach()
        self._processes_pool.shutdown(wait, cancel_futures)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} max_workers={self._max_workers}>"


# == hybrid ================================================================================


def cpu_bound(fn: F) -> F:
    """Mark ``fn`` as CPU-bound: a :class:`HybridExecutor` runs it in a worker process.

    Returns ``fn`` itself (an attribute is set on it), so it stays importable
    and picklable by reference::

        @tl.cpu_bound
        def checksum(data: bytes) -> int: ...


        await asyncio.to_thread(checksum, blob)  # on a process, loop never stalls

    Raises ``TypeError`` if ``fn`` is not callable or takes no attributes.
    """
    check_callable(fn)
    try:
        setattr(fn, _CPU_BOUND_ATTR, True)
    except (AttributeError, TypeError) as exc:
        raise TypeError(
            f"fn: cannot mark a {type(fn).__name__} as cpu_bound (it takes no attributes); "
            "wrap it in a def, or use HybridExecutor.submit_to_processes"
        ) from exc
    return fn


def _is_context_run(fn: object) -> bool:
    return isinstance(getattr(fn, "__self__", None), contextvars.Context) and (
        getattr(fn, "__name__", None) == "run"
    )


def _cpu_bound_call(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]] | None:
    """``(fn, args, kwargs)`` to run in a process if the call targets a ``cpu_bound`` function.

    Sees through ``functools.partial`` and ``Context.run`` (what ``asyncio.to_thread``
    submits: ``partial(ctx.run, func, *args, **kwargs)``). The context itself is
    dropped: context variables do not cross into processes.
    """
    for _ in range(8):  # a bound on nesting; deeper wrappers are not routed
        if _is_context_run(fn) and args:
            fn, args = args[0], args[1:]
        elif isinstance(fn, functools.partial):
            args = (*fn.args, *args)
            kwargs = {**fn.keywords, **kwargs}
            fn = fn.func
        else:
            break
    if getattr(fn, _CPU_BOUND_ATTR, False) is True:
        return fn, args, kwargs
    return None


class HybridExecutor(ThreadExecutor):
    """Threads for blocking work, processes for ``@cpu_bound`` work: one ``Executor``.

    ``submit(fn, ...)`` runs ``fn`` in a worker process if it is marked with
    :func:`cpu_bound` (also through ``functools.partial`` and ``Context.run``,
    so ``asyncio.to_thread`` routes it), else on a thread.
    ``submit_to_threads`` / ``submit_to_processes`` choose explicitly. It is a
    ``ThreadPoolExecutor`` subclass so an event loop takes it as its default
    executor::

        loop.set_default_executor(tl.HybridExecutor())
        await asyncio.to_thread(parse_config, path)  # a thread
        await loop.run_in_executor(None, render, page)  # a process if @cpu_bound

    ``max_workers`` threads (as ``ThreadPoolExecutor``) and ``process_workers``
    processes (default ``os.cpu_count()``, started on first use). Work in a
    process runs without the caller's ``contextvars`` context.

    The worker processes run at a lower CPU priority (POSIX ``nice`` raised by
    ``process_nice``, default 5), so when the cores are busy the event loop and
    the request threads win the CPU over background computation; with idle
    cores the work runs at full speed. ``process_nice=0`` keeps normal priority.
    """

    def __init__(
        self,
        max_workers: int | None = None,
        process_workers: int | None = None,
        *,
        process_nice: int = 5,
    ) -> None:
        if isinstance(process_nice, bool) or not isinstance(process_nice, int):
            raise TypeError(f"process_nice must be an int, not {type(process_nice).__name__}")
        if not 0 <= process_nice <= 19:
            raise ValueError(f"process_nice must be between 0 and 19, got {process_nice}")
        super().__init__(max_workers)
        workers, context = _check_process_options(process_workers, None, None)
        self._process_workers = workers
        scheduler = _make_process_scheduler(
            workers, context, None, _lower_priority if process_nice else None, (process_nice,)
        )
        self._processes_pool = _ProcessPool(scheduler, None, ())
        self._processes_finalizer = weakref.finalize(
            self, _shutdown_collected, self._processes_pool
        )

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Task[T]:
        """Run ``fn(*args, **kwargs)`` on a process if ``fn`` is ``@cpu_bound``, else a thread.

        Raises ``RuntimeError`` after ``shutdown``, ``TypeError`` if ``fn`` is not callable.
        """
        routed = _cpu_bound_call(fn, args, kwargs)
        if routed is not None:
            return self._processes_pool.submit(*routed)
        return self._threads_pool.submit(fn, args, kwargs)

    def submit_to_threads(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> Task[T]:
        """Run ``fn(*args, **kwargs)`` on a thread, marked or not."""
        return self._threads_pool.submit(fn, args, kwargs)

    def submit_to_processes(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> Task[T]:
        """Run ``fn(*args, **kwargs)`` in a worker process, marked or not (``fn`` and the
        arguments must be picklable by cloudpickle)."""
        return self._processes_pool.submit(fn, args, kwargs)

    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[T]:
        """``Executor.map``: on processes, ``chunksize`` calls at a time, if ``fn`` is
        ``@cpu_bound``; else on threads (``chunksize`` ignored). See :meth:`ThreadExecutor.map`."""
        routed = _cpu_bound_call(fn, (), {})
        if routed is not None:
            target, bound, keywords = routed
            if bound or keywords:
                target = functools.partial(target, *bound, **keywords)
            return _map_chunked(self._processes_pool, target, iterables, timeout, chunksize)
        return _map_calls(self._threads_pool, fn, iterables, timeout)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Shut down the threads and the processes (see :meth:`ThreadExecutor.shutdown`)."""
        self._processes_finalizer.detach()
        self._processes_pool.shutdown(False, cancel_futures)
        super().shutdown(wait, cancel_futures=cancel_futures)
        if wait:
            self._processes_pool.shutdown(True, False)
