"""The default scheduler: a work-stealing thread pool (DESIGN 1.7).

Data flow::

    non-worker thread --queue_task--> global deque (FIFO) ------------------.
    worker thread ----queue_task--> its own local deque (LIFO end) --.      |
                                                                    v      v
    worker loop: pop own deque (LIFO) -> popleft global (FIFO) -> popleft another
                 worker's deque (steal, FIFO) -> sleep on its wake lock (idle list)
    LONG_RUNNING task -> a dedicated thread outside the pool

Ownership: only a worker pushes and pops the right end of its local deque;
other workers only ``popleft`` (steal) from it. Any thread appends to the
global deque; workers ``popleft`` it. Every cross-thread hand-off is a single
``collections.deque`` append/pop (atomic, also on free-threaded CPython) or
happens under ``_Core.lock``.

Sleeping: an idle worker appends itself to ``_Core.idle`` *then* re-checks the
queues before sleeping on its private wake lock; a producer appends work *then*
pops an idle worker to wake. Either the worker sees the work or the producer
sees the worker, so no wakeup is lost. A worker that was popped but found work
anyway consumes its wakeup before going on, so a wake lock is never released
twice.

Blocking: a worker that blocks in ``Task.wait`` calls ``blocking_enter`` /
``blocking_exit``. When every worker is blocked and work is queued, the pool
injects a thread (up to ``max_threads``); a housekeeping tick on the shared
timer thread injects one more when queued work has made no progress for a
while (workers stuck in long calls). Threads beyond ``min_workers`` retire
after sitting idle.

Shutdown sets ``shutting_down``: producers outside the pool are refused (one
that raced the flag takes its task back, see ``_retract``); work queued so far,
and work it spawns, still runs - with injection and the tick still on - and
each worker exits once it finds every queue empty.

A forked child has none of the threads: its copies of the parent's pools
refuse work (``_Core.forked``) and the default scheduler is made afresh.

Workers hold the ``_Core`` (queues and counters), never the scheduler object,
so an unreferenced scheduler is collected and its finalizer stops the threads.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _context, _timer
from ._errors import InvalidOperationError
from ._scheduler import SchedulerStatistics, TaskScheduler, set_default_factory
from ._task import F_LONG_RUNNING, F_PREFER_FAIRNESS

_local = _context.local

if TYPE_CHECKING:
    from ._task import Task

__all__ = ["WorkStealingScheduler", "WorkStealingStatistics"]

# Idle time after which a thread above min_workers retires, and the faster pace for
# threads above max_workers (injected while others were blocked).
_IDLE_RETIRE_SECONDS = 20.0
_EXTRA_RETIRE_SECONDS = 1.0
# How often the housekeeping tick looks for queued work that makes no progress.
_STARVATION_TICK_SECONDS = 0.5

# Every core whose scheduler may still have threads; drained at interpreter exit.
_live_cores: weakref.WeakSet[_Core] = weakref.WeakSet()
_live_lock = threading.Lock()  # add vs. the exit-time snapshot (a WeakSet is not thread-safe)


@dataclasses.dataclass(frozen=True)
class WorkStealingStatistics(SchedulerStatistics):
    """Counters of a :class:`WorkStealingScheduler` (a snapshot; counts since creation)."""

    threads: int
    idle_threads: int
    blocked_threads: int
    global_queue_length: int
    local_queue_lengths: tuple[int, ...]
    tasks_executed: int
    global_dequeues: int
    local_pushes: int
    local_pops: int
    steals: int
    inlined: int
    long_running: int
    threads_started: int
    threads_injected: int
    threads_retired: int


class _Worker:
    """One pool thread. Counters are written only by the owning thread."""

    __slots__ = (
        "blocked",
        "core",
        "global_dequeues",
        "inlined",
        "local",
        "local_pops",
        "local_pushes",
        "steals",
        "thread",
        "wake",
    )

    def __init__(self, core: _Core) -> None:
        self.core = core
        self.local: deque[Task[Any]] = deque()
        # Binary semaphore: held while the worker may sleep; released once per wakeup.
        self.wake = threading.Lock()
        self.wake.acquire()
        self.thread: threading.Thread | None = None
        self.blocked = 0  # nesting depth of blocking waits (owner thread writes)
        self.global_dequeues = 0
        self.local_pushes = 0
        self.local_pops = 0
        self.steals = 0
        self.inlined = 0

    def blocking_enter(self) -> None:
        """Called by this worker's thread before it blocks in a taskloom wait."""
        self.blocked += 1
        if self.blocked == 1:
            self.core.on_block()

    def blocking_exit(self) -> None:
        """Called by this worker's thread after the blocking wait returns."""
        self.blocked -= 1
        if self.blocked == 0:
            self.core.on_unblock()


class _Core:
    """The state workers share: queues, the idle list and the thread accounting."""

    def __init__(self, max_workers: int, min_workers: int, max_threads: int, prefix: str) -> None:
        self.max_workers = max_workers
        self.min_workers = min_workers
        self.max_threads = max_threads
        self.prefix = prefix
        self.global_queue: deque[Task[Any]] = deque()
        self.idle: deque[_Worker] = deque()
        self.lock = threading.Lock()
        # Guarded by lock: the live workers (copy-on-write, so readers iterate freely),
        # how many of them are blocked, and lifetime counters.
        self.workers: tuple[_Worker, ...] = ()
        self.blocked = 0
        self.started = False
        self.shutting_down = False
        self.threads_started = 0
        self.threads_injected = 0
        self.threads_retired = 0
        self.long_running = 0
        self.foreign_inlined = 0
        self.dedicated: set[threading.Thread] = set()
        # Counters of workers that exited, folded in under lock when they leave.
        self.retired_counts = [0, 0, 0, 0, 0, 0]
        self.last_progress = -1
        self.tick: _timer.TimerHandle | None = None
        # Names the n-th thread started (from 1); a plain function, never a bound
        # method, so workers do not keep the scheduler alive.
        self.thread_name: Callable[[str, int], str] = _default_thread_name

    # -- thread management (under lock) ------------------------------------------

    def start(self) -> None:
        with self.lock:
            if self.started or self.shutting_down:
                return
            for _ in range(self.max_workers):
                self._spawn_locked()
            self.started = True
        self.tick = _timer.schedule(_STARVATION_TICK_SECONDS, self.housekeeping)

    def _spawn_locked(self) -> _Worker:
        worker = _Worker(self)
        self.threads_started += 1
        thread = threading.Thread(
            target=_worker_main,
            args=(self, worker),
            name=self.thread_name(self.prefix, self.threads_started),
            daemon=False,
        )
        worker.thread = thread
        self.workers = (*self.workers, worker)
        thread.start()
        return worker

    def maybe_inject(self) -> None:
        """Add a thread when every worker is blocked in a wait and work is waiting.

        Only then: while one worker still runs, queued work will be reached, and an
        extra thread would only compete for the GIL (fork-join waits are common).
        Also grows the pool back towards ``max_workers`` after idle retirement.
        """
        with self.lock:
            # Also while shutting down: draining work may wait on work queued behind it.
            if not self.started:
                return
            nthreads = len(self.workers)
            if nthreads >= self.max_threads:
                return
            # Below max_workers (idle threads retired down to min_workers) the pool
            # grows back on demand; that is not an injection.
            if nthreads >= self.max_workers and nthreads > self.blocked:
                return
            if self.idle or not self.has_work():
                return
            if nthreads >= self.max_workers:
                self.threads_injected += 1
            self._spawn_locked()

    def _may_add_thread_locked(self) -> bool:
        # Re-checked under lock: a wakeup may have raced the caller's look. Shutdown does
        # not stop injection: the pool drains its queues, which may need the thread.
        return len(self.workers) < self.max_threads and not self.idle

    def on_block(self) -> None:
        with self.lock:
            self.blocked += 1
        if self.has_work() and not self.wake_one():
            self.maybe_inject()

    def on_unblock(self) -> None:
        with self.lock:
            self.blocked -= 1
            assert self.blocked >= 0

    def housekeeping(self) -> None:
        """Timer tick: inject a thread when queued work made no progress since last tick.

        Keeps ticking while a shut-down pool drains; stops once its last worker left.
        """
        if self.shutting_down and not self.workers:
            self.tick = None
            return
        progress = sum(w.local_pops + w.global_dequeues + w.steals for w in self.workers)
        if progress == self.last_progress and self.has_work() and not self.idle:
            with self.lock:
                if self._may_add_thread_locked():
                    self.threads_injected += 1
                    self._spawn_locked()
        self.last_progress = progress
        self.tick = _timer.schedule(_STARVATION_TICK_SECONDS, self.housekeeping)

    # -- queues ---------------------------------------------------------------------

    def has_work(self) -> bool:
        if self.global_queue:
            return True
        return any(w.local for w in self.workers)

    def wake_one(self) -> bool:
        """Wake one idle worker, if any. Called after work was queued."""
        idle = self.idle
        if idle:
            try:
                worker = idle.pop()
            except IndexError:
                return False
            worker.wake.release()
            return True
        return False

    def steal(self, thief: _Worker) -> Task[Any] | None:
        workers = self.workers
        n = len(workers)
        if n < 2:
            return None
        start = id(thief) % n
        for i in range(n):
            victim = workers[(start + i) % n]
            if victim is thief:
                continue
            q = victim.local
            if q:
                try:
                    task = q.popleft()
                except IndexError:
                    continue
                thief.steals += 1
                return task
        return None

    def idle_wait(self, worker: _Worker) -> bool:
        """Sleep until woken; False when the worker should exit (retire or shutdown)."""
        self.idle.append(worker)
        if self.has_work() or self.shutting_down:
            self._leave_idle(worker)
            return not (self.shutting_down and not self.has_work())
        nworkers = len(self.workers)
        if nworkers > self.max_workers:
            timeout = _EXTRA_RETIRE_SECONDS
        elif nworkers > self.min_workers:
            timeout = _IDLE_RETIRE_SECONDS
        else:
            timeout = -1
        if worker.wake.acquire(True, timeout):
            return not (self.shutting_down and not self.has_work())
        # Timed out: retire unless someone woke us meanwhile.
        if not self._leave_idle(worker):
            return True
        with self.lock:
            if len(self.workers) <= self.min_workers or self.has_work():
                return True
            self.threads_retired += 1
            self._remove_locked(worker)
        # A producer that read the worker tuple before we left it may have seen a full
        # pool and queued work nobody will take: it or we see the other (Dekker).
        if self.has_work():
            self.maybe_inject()
        return False

    def _remove_locked(self, worker: _Worker) -> None:
        if worker not in self.workers:
            return
        self.workers = tuple(w for w in self.workers if w is not worker)
        for i, value in enumerate(_counts(worker)):
            self.retired_counts[i] += value

    def totals(self) -> list[int]:
        with self.lock:
            totals = list(self.retired_counts)
            workers = self.workers
        for w in workers:
            for i, value in enumerate(_counts(w)):
                totals[i] += value
        return totals

    def _leave_idle(self, worker: _Worker) -> bool:
        """Take ``worker`` off the idle list; if a waker got it first, consume its wakeup."""
        try:
            self.idle.remove(worker)
        except ValueError:
            worker.wake.acquire()  # released by the waker that popped us (now or soon)
            return False
        return True

    def abandon(self) -> None:
        """The scheduler was garbage-collected: stop, without joining or taking the lock.

        Runs as a ``weakref.finalize`` callback, i.e. wherever the collector ran -
        possibly on a thread that holds ``lock`` (a cycle collected during
        ``_spawn_locked``) or inside the timer's lock. A plain store of the flag is
        enough: an idle worker re-checks it after putting itself on the idle list,
        and a thread injected meanwhile drains and exits like the others.
        """
        self.shutting_down = True
        while self.wake_one():
            pass

    def forked(self) -> None:
        """In a forked child: none of the pool's threads exist here, so the copy is dead.

        It refuses new work like a shut-down pool and drops the parent's queued
        tasks (the parent runs them; running them here too would do the work twice).
        """
        self.lock = threading.Lock()  # may have been held by a parent thread at the fork
        self.shutting_down = True
        self.started = False
        self.workers = ()
        self.blocked = 0
        self.idle.clear()
        self.global_queue.clear()
        self.dedicated.clear()
        self.tick = None

    def shutdown(self, wait: bool) -> None:
        # The housekeeping tick goes on while the queues drain (see housekeeping).
        with self.lock:
            self.shutting_down = True
        while self.wake_one():
            pass
        if wait:
            me = threading.current_thread()
            # Draining work may inject workers and start LONG_RUNNING threads: join
            # until none is left (each leaves these collections before it ends).
            while True:
                with self.lock:
                    threads = [w.thread for w in self.workers if w.thread is not None]
                    threads += self.dedicated
                threads = [t for t in threads if t is not me]
                if not threads:
                    break
                for t in threads:
                    t.join()


def _default_thread_name(prefix: str, serial: int) -> str:
    return f"{prefix}-worker-{serial}"


def _worker_main(core: _Core, worker: _Worker) -> None:
    state = _local.state  # this thread's; passed to _execute to spare a thread-local lookup
    state.worker = worker
    own = worker.local
    global_queue = core.global_queue
    try:
        while True:
            task = None
            if own:
                try:
                    task = own.pop()
                    worker.local_pops += 1
                except IndexError:
                    task = None
            if task is None and global_queue:
                try:
                    task = global_queue.popleft()
                    worker.global_dequeues += 1
                except IndexError:
                    task = None
            if task is None:
                task = core.steal(worker)
                if task is None:
                    if not core.idle_wait(worker):
                        return
                    continue
                # A thief found work: others may be able to steal too.
                if core.idle and core.has_work():
                    core.wake_one()
            try:
                task._execute(state)
            except BaseException:
                import logging

                logging.getLogger("taskloom").exception("taskloom worker: internal error")
    finally:
        state.worker = None
        with core.lock:
            core._remove_locked(worker)


def _counts(w: _Worker) -> tuple[int, int, int, int, int, int]:
    # Every dequeued task is executed (or skipped, if canceled or inlined elsewhere meanwhile).
    executed = w.local_pops + w.global_dequeues + w.steals
    return (executed, w.global_dequeues, w.local_pushes, w.local_pops, w.steals, w.inlined)


def _retract(core: _Core, task: Task[Any]) -> None:
    """Shutdown raced a queue from outside: take ``task`` back and refuse it.

    The producer appends, then reads ``shutting_down``; a worker reads the queues
    after ``shutting_down`` is set before it exits. So either a draining worker
    sees the task (and may already have taken it: then it runs), or we see the
    flag and remove it here - never is it left in a queue nobody serves.
    """
    try:
        core.global_queue.remove(task)
    except (ValueError, IndexError):
        return  # a draining worker took it
    raise InvalidOperationError("the scheduler has been shut down")


def _run_dedicated(core: _Core, task: Task[Any]) -> None:
    try:
        task._execute()
    finally:
        with core.lock:
            core.dedicated.discard(threading.current_thread())


class WorkStealingScheduler(TaskScheduler):
    """The default scheduler: a thread pool with per-worker deques and work stealing.

    Top-level work goes to a global FIFO queue; a task started on a worker goes
    to that worker's local deque (LIFO); an idle worker steals FIFO from others.
    ``PREFER_FAIRNESS`` forces the global queue, ``LONG_RUNNING`` a dedicated
    thread. A wait on a task still in the waiter's own deque runs it inline;
    when every worker is blocked and work is queued the pool injects threads
    (up to ``max_threads``), retiring them once idle. Threads start on first use.

    ``max_workers`` defaults to ``os.cpu_count()``; ``min_workers`` (threads kept
    when idle) to ``max_workers``.
    """

    def __init__(
        self,
        max_workers: int | None = None,
        min_workers: int | None = None,
        thread_name_prefix: str = "taskloom",
        *,
        max_threads: int | None = None,
    ) -> None:
        if max_workers is None:
            max_workers = os.cpu_count() or 1
        _check_count(max_workers, "max_workers", minimum=1)
        if min_workers is None:
            min_workers = max_workers
        _check_count(min_workers, "min_workers", minimum=0)
        if min_workers > max_workers:
            raise ValueError("min_workers must not exceed max_workers")
        if max_threads is None:
            max_threads = max(256, 8 * max_workers)
        _check_count(max_threads, "max_threads", minimum=max_workers)
        if not isinstance(thread_name_prefix, str):
            raise TypeError(
                f"thread_name_prefix must be a str, not {type(thread_name_prefix).__name__}"
            )
        self._core = _Core(max_workers, min_workers, max_threads, thread_name_prefix or "taskloom")
        self._core.thread_name = type(self)._thread_name
        with _live_lock:
            _live_cores.add(self._core)
        self._finalizer = weakref.finalize(self, _Core.abandon, self._core)

    @property
    def maximum_concurrency_level(self) -> int:
        """``max_workers``: how many pool threads run tasks at once when none is blocked."""
        return self._core.max_workers

    def queue_task(self, task: Task[Any]) -> None:
        """Queue ``task``: a worker's own deque, else the global queue.

        ``LONG_RUNNING`` tasks get a dedicated thread.
        """
        core = self._core
        worker = _local.state.worker
        flags = task._flags
        own = worker is not None and worker.core is core
        if own and not flags & (F_LONG_RUNNING | F_PREFER_FAIRNESS):
            worker.local.append(task)
            worker.local_pushes += 1
        else:
            if core.shutting_down and not own:
                # Work spawned by running work is still accepted while the pool drains.
                raise InvalidOperationError("the scheduler has been shut down")
            if flags & F_LONG_RUNNING:
                self._start_dedicated(task, not own)
                return
            if not core.started:
                core.start()
            core.global_queue.append(task)
            if core.shutting_down and not own:
                _retract(core, task)  # shutdown raced the append: refuse, don't strand
        if core.idle:
            core.wake_one()
        elif core.blocked or len(core.workers) < core.max_workers:
            core.maybe_inject()

    def _start_dedicated(self, task: Task[Any], from_outside: bool) -> None:
        core = self._core
        thread = threading.Thread(
            target=_run_dedicated,
            args=(core, task),
            name=f"{core.prefix}-long-running",
            daemon=False,
        )
        with core.lock:
            if core.shutting_down and from_outside:
                raise InvalidOperationError("the scheduler has been shut down")
            core.long_running += 1
            core.dedicated.add(thread)
            # Started under the lock: shutdown never sees (and joins) an unstarted thread.
            thread.start()

    def try_execute_task_inline(self, task: Task[Any], task_was_previously_queued: bool) -> bool:
        """Run ``task`` here if it was not queued yet, or is still in this worker's own deque."""
        worker = _local.state.worker
        if task_was_previously_queued:
            if worker is None or worker.core is not self._core:
                return False
            own = worker.local
            # A thief may empty the deque between any two of these calls: IndexError.
            try:
                if own[-1] is task:
                    own.pop()  # only we take from the right: it is still ``task``
                else:
                    own.remove(task)
            except (IndexError, ValueError):
                return False
        if task._scheduler is not self:
            return self.try_execute_task(task)  # raises the proper error
        ran = task._execute()
        if ran:
            if worker is not None and worker.core is self._core:
                worker.inlined += 1
            else:
                with self._core.lock:
                    self._core.foreign_inlined += 1
        return ran

    # A staticmethod (not a bound method): the core keeps it, and workers must not
    # keep the scheduler alive. Subclasses (the executors) rename their threads.
    _thread_name = staticmethod(_default_thread_name)

    def _get_scheduled_tasks(self) -> list[Task[Any]]:
        """A snapshot of the tasks queued and not yet taken by a thread (TPL's
        ``GetScheduledTasks``). Some may start or be canceled meanwhile."""
        core = self._core
        tasks = list(core.global_queue.copy())
        for worker in core.workers:
            tasks.extend(worker.local.copy())
        return tasks

    def statistics(self) -> WorkStealingStatistics:
        """A snapshot of the pool's queues, threads and counters."""
        core = self._core
        workers = core.workers
        executed, global_dequeues, local_pushes, local_pops, steals, inlined = core.totals()
        return WorkStealingStatistics(
            scheduler_id=self.id,
            maximum_concurrency_level=core.max_workers,
            threads=len(workers),
            idle_threads=len(core.idle),
            blocked_threads=core.blocked,
            global_queue_length=len(core.global_queue),
            local_queue_lengths=tuple(len(w.local) for w in workers),
            tasks_executed=executed,
            global_dequeues=global_dequeues,
            local_pushes=local_pushes,
            local_pops=local_pops,
            steals=steals,
            inlined=inlined + core.foreign_inlined,
            long_running=core.long_running,
            threads_started=core.threads_started,
            threads_injected=core.threads_injected,
            threads_retired=core.threads_retired,
        )

    def shutdown(self, wait: bool = True) -> None:
        """Stop accepting tasks; workers drain the queues, then exit (joined if ``wait``).

        A task queued from outside the pool afterwards ends ``FAULTED`` with
        :class:`InvalidOperationError`; work already queued, and work it starts,
        still runs. With ``wait`` this blocks, without timeout, until every pool
        and ``LONG_RUNNING`` thread has exited (other than the calling one).
        """
        self._finalizer.detach()
        self._core.shutdown(wait)


def _check_count(value: object, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _shutdown_all_at_exit() -> None:
    with _live_lock:
        cores = list(_live_cores)
    for core in cores:
        core.shutdown(wait=True)


def _after_fork_in_child() -> None:
    global _live_lock
    _live_lock = threading.Lock()
    for core in list(_live_cores):
        core.forked()
    # The forking thread may have been a pool worker; in the child it is none.
    _context.local.worker = None


threading._register_atexit(_shutdown_all_at_exit)  # type: ignore[attr-defined]
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
set_default_factory(WorkStealingScheduler)
