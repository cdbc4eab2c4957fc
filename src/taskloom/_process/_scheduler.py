"""``ProcessScheduler``: the parent side (see the package docstring for the data flow)."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import multiprocessing
import multiprocessing.context
import multiprocessing.process
import os
import selectors
import signal
import sys
import threading
import warnings
import weakref
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, cast

import cloudpickle  # type: ignore[import-untyped]

from .._cancellation import CancellationTokenRegistration
from .._errors import InvalidOperationError, WorkerCrashedError
from .._scheduler import SchedulerStatistics, TaskScheduler
from . import _wire
from ._worker import worker_main

if TYPE_CHECKING:
    from .._task import Task

__all__ = ["ProcessScheduler", "ProcessSchedulerStatistics"]

logger = logging.getLogger("taskloom")

#: At most this many tasks are on the wire to one worker (the first one running).
MAX_DEPTH = 64
#: Prefetch enough tasks to cover this much work per worker (adaptive batching).
_PREFETCH_SECONDS = 0.002
_READ_CHUNK = 1 << 18

# Selector keys: what a ready file descriptor means.
_WAKE, _RESULTS, _SENTINEL, _WRITABLE = range(4)


@dataclasses.dataclass(frozen=True)
class ProcessSchedulerStatistics(SchedulerStatistics):
    """Counters of a :class:`ProcessScheduler`.

    ``tasks_running`` counts tasks sent to a worker and not yet completed (a worker
    may hold a few queued behind the one it runs); ``crashes`` counts workers that
    died on their own (not retired, stopped or killed for a cancellation);
    ``restarts`` counts workers started to replace one that died, retired
    (``max_tasks_per_child``) or was killed; ``shared_memory_bytes`` is the total
    size of the buffers that went through shared memory, both directions.
    """

    workers_alive: int
    tasks_queued: int
    tasks_running: int
    tasks_completed: int
    tasks_killed: int
    crashes: int
    restarts: int
    shared_memory_bytes: int


class _Job:
    """One task on its way through the pool. Owned by the manager thread once queued."""

    __slots__ = (
        "args_bytes",
        "done",
        "fn_bytes",
        "nsegs",
        "reg",
        "seq",
        "started",
        "task",
        "worker",
    )

    def __init__(self, task: Task[Any], seq: int, fn_bytes: bytes, args: bytes, nsegs: int) -> None:
        self.task = task
        self.seq = seq
        self.fn_bytes = fn_bytes
        self.args_bytes = args
        self.nsegs = nsegs  # shared-memory segments holding argument buffers
        # started: _start_running() succeeded (the task is RUNNING). done: the task's
        # outcome is decided; anything the worker still sends for it is dropped.
        self.started = False
        self.done = False
        self.worker: _Worker | None = None
        self.reg: CancellationTokenRegistration | None = None


class _Worker:
    """The parent's handle on one worker process. Touched by the manager thread only."""

    __slots__ = (
        "doomed",
        "ewma",
        "killed",
        "inbuf",
        "inflight",
        "outbox",
        "pid",
        "process",
        "ready",
        "result_conn",
        "result_fd",
        "sent",
        "sentinel",
        "stopping",
        "task_conn",
        "task_fd",
        "writing",
    )

    def __init__(
        self,
        process: multiprocessing.process.BaseProcess,
        task_conn: Connection,
        result_conn: Connection,
    ) -> None:
        self.process = process
        self.pid = process.pid
        self.task_conn = task_conn
        self.result_conn = result_conn
        self.task_fd = task_conn.fileno()
        self.result_fd = result_conn.fileno()
        self.sentinel: int = process.sentinel
        # Invariant: inflight holds the jobs sent to this worker whose result frame has
        # not arrived, in sending order; the worker runs them in that order, so
        # inflight[0] is the one running (or about to run).
        self.inflight: deque[_Job] = deque()
        self.outbox = bytearray()  # written when the non-blocking pipe has room
        self.writing = False  # registered for EVENT_WRITE
        self.inbuf = bytearray()
        self.ready = False  # initializer done; nothing is sent before
        self.sent = 0  # tasks sent, for max_tasks_per_child
        self.ewma: float | None = None  # mean body duration, for the prefetch depth
        self.doomed = False  # killed (cancellation) or its initializer failed
        self.killed = False
        self.stopping = False  # STOP sent, or retiring after max_tasks_per_child

    def depth(self) -> int:
        ewma = self.ewma
        if ewma is None:
            return 1
        return 1 + min(MAX_DEPTH - 1, int(_PREFETCH_SECONDS / max(ewma, 1e-7)))


class _Pool:
    """Everything a :class:`ProcessScheduler` owns; the manager thread holds only this.

    Cross-thread hand-offs, all through :meth:`_wake`:
    ``pending`` (any thread appends jobs; the manager pops them) and ``commands``
    (cancellation requests from whatever thread cancels a token).
    """

    def __init__(
        self,
        scheduler_id: int,
        max_workers: int,
        ctx: multiprocessing.context.BaseContext,
        init_bytes: bytes | None,
        max_tasks: int | None,
    ) -> None:
        self.max_workers = max_workers
        self.ctx = ctx
        self.init_bytes = init_bytes
        self.max_tasks = max_tasks
        self.owner_pid = os.getpid()
        self.prefix = f"tl{self.owner_pid:x}_{scheduler_id:x}_"
        self.seqs = itertools.count(1)
        self.pending: deque[_Job] = deque()
        self.commands: deque[_Job] = deque()
        self.fn_cache: dict[Any, bytes] = {}
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None  # set once, under lock
        self.shutting_down = False  # False -> True once, under lock
        self.signaled = False  # a wakeup byte is in the pipe (see _wake)
        self.wake_r = self.wake_w = -1
        # Manager-thread state.
        self.workers: dict[int, _Worker] = {}
        self.selector: selectors.BaseSelector | None = None
        self.workers_started = 0
        # Counters (written by the manager thread, read by statistics()).
        self.completed = 0
        self.killed = 0
        self.crashes = 0
        self.restarts = 0
        self.ended = 0  # workers gone (not at shutdown) and not yet replaced
        self.shm_bytes = 0
        self.running = 0

    # -- any thread ------------------------------------------------------------------------

    def submit(self, job: _Job) -> None:
        if not self.thread:
            self._start()
        self.pending.append(job)
        self._wake()

    def request_cancel(self, job: _Job) -> None:
        """A running task's token was canceled (called on the canceling thread)."""
        self.commands.append(job)
        self._wake()

    def _wake(self) -> None:
        """Make the manager thread look at ``pending`` and ``commands``.

        Safe from any thread: the manager empties the wake pipe, then clears
        ``signaled``, then drains both deques. A producer that sees ``signaled`` set
        appended before that drain; one that sees it clear writes a byte.
        """
        if not self.signaled:
            self.signaled = True
            try:
                os.write(self.wake_w, b"\0")
            except (BlockingIOError, OSError):
                pass

    def _start(self) -> None:
        with self.lock:
            if self.thread is not None:
                return
            if self.shutting_down:
                raise InvalidOperationError("the scheduler has been shut down")
            self.wake_r, self.wake_w = os.pipe()
            os.set_blocking(self.wake_r, False)
            os.set_blocking(self.wake_w, False)
            self.selector = selectors.DefaultSelector()
            self.selector.register(self.wake_r, selectors.EVENT_READ, (_WAKE, None))
            thread = threading.Thread(
                target=self._manage, name="taskloom-process-manager", daemon=True
            )
            _live_pools.add(self)
            thread.start()
            self.thread = thread

    def shutdown(self, wait: bool) -> None:
        if os.getpid() != self.owner_pid:
            return  # a forked child's copy: the parent owns the workers
        with self.lock:
            self.shutting_down = True
            thread = self.thread
        if thread is None:
            return
        self.signaled = False
        self._wake()
        if wait and thread is not threading.current_thread():
            thread.join()

    def on_manager_thread(self) -> bool:
        return threading.current_thread() is self.thread

    # -- the manager thread ----------------------------------------------------------------

    def _manage(self) -> None:
        selector = self.selector
        assert selector is not None
        try:
            while True:
                for key, _mask in selector.select():
                    tag, worker = key.data
                    assert tag == _WAKE or isinstance(worker, _Worker)
                    if worker is not None and self.workers.get(worker.sentinel) is not worker:
                        continue  # gone earlier in this batch; the fd may belong to a new worker
                    try:
                        if tag == _WAKE:
                            # Drain first, then clear: a byte written after the drain
                            # stays in the pipe, so no wakeup is ever lost.
                            try:
                                while os.read(self.wake_r, 4096):
                                    pass
                            except BlockingIOError:
                                pass
                            self.signaled = False
                        elif tag == _RESULTS:
                            self._read_results(cast(_Worker, worker))
                        elif tag == _SENTINEL:
                            self._on_exit(cast(_Worker, worker))
                        else:
                            self._flush(cast(_Worker, worker))
                    except Exception:
                        logger.exception("taskloom: process scheduler manager error")
                try:
                    self._run_commands()
                    self._dispatch()
                except Exception:
                    logger.exception("taskloom: process scheduler manager error")
                if self.shutting_down and self._stop_when_drained():
                    return
        finally:
            selector.close()
            os.close(self.wake_r)
            os.close(self.wake_w)
            _live_pools.discard(self)

    def _stop_when_drained(self) -> bool:
        """During shutdown: once nothing is queued or running, stop the workers; True when gone."""
        if self.pending or any(w.inflight for w in self.workers.values()):
            return False
        for w in self.workers.values():
            if not w.stopping:
                w.stopping = True
                self._send(w, _wire.frame(_wire.STOP, 0, 0, 0.0))
        return not self.workers

    # -- workers -------------------------------------------------------------------------------

    def _start_worker(self) -> None:
        ctx = self.ctx
        task_r, task_w = ctx.Pipe(duplex=False)
        result_r, result_w = ctx.Pipe(duplex=False)
        self.workers_started += 1
        process = ctx.Process(  # type: ignore[attr-defined]
            target=worker_main,
            args=(task_r, result_w, self.prefix, self.init_bytes, self.max_tasks),
            name=f"taskloom-process-worker-{self.workers_started}",
            daemon=False,
        )
        try:
            if sys.version_info >= (3, 12) and ctx.get_start_method() == "fork":
                with warnings.catch_warnings():
                    # 3.12+ warns that fork() in a threaded process may deadlock the
                    # child. This thread forks on purpose: the child runs only the
                    # worker loop, which takes no lock another parent thread may hold.
                    warnings.filterwarnings("ignore", ".*fork.*", DeprecationWarning)
                    process.start()
            else:
                process.start()
        except Exception as exc:
            for conn in (task_r, task_w, result_r, result_w):
                conn.close()
            logger.exception("taskloom: could not start a worker process")
            if not self.workers:
                self._fault_pending(
                    WorkerCrashedError(f"could not start a worker process: {exc!r}")
                )
            return
        task_r.close()
        result_w.close()
        if self.ended:
            self.ended -= 1
            self.restarts += 1
        os.set_blocking(task_w.fileno(), False)
        os.set_blocking(result_r.fileno(), False)
        w = _Worker(process, task_w, result_r)
        self.workers[w.sentinel] = w
        assert self.selector is not None
        self.selector.register(w.result_fd, selectors.EVENT_READ, (_RESULTS, w))
        self.selector.register(w.sentinel, selectors.EVENT_READ, (_SENTINEL, w))

    def _send(self, w: _Worker, data: bytes) -> None:
        """Write to the worker's task pipe without blocking; the rest waits in its outbox."""
        if not w.outbox:
            try:
                written = os.write(w.task_fd, data)
            except BlockingIOError:
                written = 0
            except OSError:
                return  # the worker is gone; its sentinel will say so
            if written == len(data):
                return
            data = data[written:]
        w.outbox += data
        if not w.writing:
            w.writing = True
            assert self.selector is not None
            self.selector.register(w.task_fd, selectors.EVENT_WRITE, (_WRITABLE, w))

    def _flush(self, w: _Worker) -> None:
        try:
            written = os.write(w.task_fd, w.outbox)
        except BlockingIOError:
            return
        except OSError:
            written = len(w.outbox)
        del w.outbox[:written]
        if not w.outbox:
            w.writing = False
            assert self.selector is not None
            self.selector.unregister(w.task_fd)

    def _kill(self, w: _Worker) -> None:
        w.doomed = w.killed = True
        try:
            w.process.kill()
        except (OSError, ValueError):
            pass

    def _on_exit(self, w: _Worker) -> None:
        """The worker process ended: blame the task it was running, requeue the rest, replace it."""
        self._read_results(w)  # its last results are in the pipe; take them first
        selector = self.selector
        assert selector is not None
        selector.unregister(w.sentinel)
        selector.unregister(w.result_fd)
        if w.writing:
            selector.unregister(w.task_fd)
        w.process.join()
        code = w.process.exitcode
        del self.workers[w.sentinel]
        w.task_conn.close()
        w.result_conn.close()
        w.process.close()
        inflight = w.inflight
        crashed: _Job | None = None
        if inflight:
            head = inflight.popleft()
            if not head.done:
                crashed = head
                self._finish(head)
            _wire.unlink_segments(self.prefix, head.seq, "a", head.nsegs)
            _wire.unlink_segments(self.prefix, head.seq, "r", None)
            # The others never started: back to the front of the queue, in order.
            for job in reversed(inflight):
                job.worker = None
                if job.done:
                    _wire.unlink_segments(self.prefix, job.seq, "a", job.nsegs)
                else:
                    self.pending.appendleft(job)
            inflight.clear()
        elif not w.ready and not w.doomed and code != 0:
            # Died before it could run anything (its start failed): report it rather
            # than start worker after worker for the same failure.
            self.crashes += 1
            self._fault_pending(
                WorkerCrashedError(
                    f"a new worker process (pid {w.pid}) died before it was ready: it "
                    f"{_describe_exit(code)}; the queued tasks are faulted and the next "
                    "task starts a new worker",
                    exitcode=code,
                )
            )
            return
        elif not (w.doomed or w.stopping) and code != 0:
            self.crashes += 1
        if crashed is not None:
            self.crashes += 1
        if not self.shutting_down:
            self.ended += 1  # the next worker started replaces this one
            if crashed is not None or w.killed or self.pending:
                self._start_worker()
        if crashed is not None:  # last, so its observers see the pool already repaired
            error = WorkerCrashedError(
                f"the worker process (pid {w.pid}) running task {crashed.task.id} "
                f"({_fn_name(crashed.task)}) died: it {_describe_exit(code)}",
                exitcode=code,
            )
            crashed.task._finish_body(None, error)

    # -- results -------------------------------------------------------------------------------

    def _read_results(self, w: _Worker) -> None:
        fd = w.result_fd
        while True:
            try:
                data = os.read(fd, _READ_CHUNK)
            except BlockingIOError:
                break
            except OSError:
                break
            if not data:
                break
            w.inbuf += data
            if len(data) < _READ_CHUNK:
                break
        if w.inbuf:
            _wire.parse_frames(
                w.inbuf,
                lambda kind, seq, nsegs, extra, payload: self._on_frame(
                    w, kind, seq, nsegs, extra, payload
                ),
            )

    def _on_frame(
        self, w: _Worker, kind: int, seq: int, nsegs: int, extra: float, payload: memoryview
    ) -> None:
        if kind == _wire.READY:
            w.ready = True
            return
        if kind == _wire.INIT_FAILED:
            self._on_init_failed(w, _wire.remote_error(payload))
            return
        job = w.inflight.popleft()
        assert job.seq == seq, "results arrive in the order the tasks were sent"
        job.worker = None
        if kind != _wire.SKIPPED:
            ewma = w.ewma
            w.ewma = extra if ewma is None else 0.8 * ewma + 0.2 * extra
        if job.nsegs:
            _wire.unlink_segments(self.prefix, seq, "a", job.nsegs)
        if job.done:  # canceled meanwhile: drop what it sent
            _wire.unlink_segments(self.prefix, seq, "r", nsegs)
            return
        self._finish(job)
        task = job.task
        if kind == _wire.RESULT:
            try:
                buffers = _wire.open_segments(self.prefix, seq, "r", nsegs) if nsegs else []
                for buffer in buffers:
                    self.shm_bytes += len(buffer)
                result = _wire.loads(payload, buffers)
            except Exception as exc:  # noqa: BLE001
                _wire.unlink_segments(self.prefix, seq, "r", nsegs)
                error = TypeError(
                    f"the result of {task!r} could not be unpickled in the parent process: {exc}"
                )
                error.__cause__ = exc
                task._finish_body(None, error)
                return
            task._finish_body(result, None)
        elif kind == _wire.ERROR:
            task._finish_body_error(_wire.remote_error(payload))
        else:  # SKIPPED, but not marked done: cannot happen
            raise AssertionError(f"unexpected frame kind {kind} for a live task")

    def _finish(self, job: _Job) -> None:
        """The job's outcome is decided: stop watching its token."""
        job.done = True
        self.running -= 1
        self.completed += 1
        reg = job.reg
        if reg is not None:
            job.reg = None
            reg.unregister()

    def _on_init_failed(self, w: _Worker, cause: BaseException) -> None:
        """The initializer raised in a new worker: fault the queued tasks, keep the pool usable."""
        w.doomed = True
        error = WorkerCrashedError(
            "the process scheduler's initializer failed in a new worker process "
            f"({type(cause).__name__}: {cause}); the queued tasks are faulted and the "
            "next task starts a new worker"
        )
        error.__cause__ = cause
        self._fault_pending(error)

    def _fault_pending(self, error: BaseException) -> None:
        """Fault every queued task with ``error`` (each gets its own copy of the message)."""
        pending = self.pending
        while pending:
            job = pending.popleft()
            _wire.unlink_segments(self.prefix, job.seq, "a", job.nsegs)
            if job.done or (not job.started and not self._start_job(job)):
                continue
            copy = type(error)(*error.args)
            copy.__cause__ = error.__cause__
            if isinstance(error, WorkerCrashedError):
                assert isinstance(copy, WorkerCrashedError)
                copy.exitcode = error.exitcode
            self._finish(job)
            job.task._finish_body(None, copy)

    # -- dispatch ------------------------------------------------------------------------------

    def _run_commands(self) -> None:
        commands = self.commands
        while commands:
            job = commands.popleft()
            if job.done:
                continue
            w = job.worker
            self._finish(job)
            if w is not None and w.inflight and w.inflight[0] is job:
                self.killed += 1
                self._kill(w)  # terminate the running body at once; the worker is replaced
            elif w is not None:
                self._send(w, _wire.frame(_wire.SKIP, job.seq, 0, 0.0))
            job.task._finish_body_canceled(job.task._token)

    def _dispatch(self) -> None:
        pending = self.pending
        if not pending:
            return
        workers = self.workers
        ready = [w for w in workers.values() if w.ready and not w.doomed and not w.stopping]
        idle = sum(1 for w in ready if not w.inflight)
        starting = sum(1 for w in workers.values() if not w.ready)
        want = min(self.max_workers - len(workers), len(pending) - idle - starting)
        for _ in range(max(0, want)):
            self._start_worker()
        if not ready:
            return
        ready.sort(key=lambda w: len(w.inflight))
        share = -(-len(pending) // len(ready))
        for w in ready:
            room = min(w.depth() - len(w.inflight), share)
            if self.max_tasks is not None:
                room = min(room, self.max_tasks - w.sent)
            frames: list[bytes] = []
            while room > 0 and pending:
                job = pending.popleft()
                if job.done:
                    _wire.unlink_segments(self.prefix, job.seq, "a", job.nsegs)
                    continue
                if not job.started and not self._start_job(job):
                    continue
                frames.append(_wire.task_frame(job.seq, job.nsegs, job.fn_bytes, job.args_bytes))
                job.worker = w
                w.inflight.append(job)
                room -= 1
            if frames:
                w.sent += len(frames)
                if self.max_tasks is not None and w.sent >= self.max_tasks:
                    w.stopping = True  # it exits after its last task; replaced on demand
                self._send(w, frames[0] if len(frames) == 1 else b"".join(frames))
            if not pending:
                break

    def _start_job(self, job: _Job) -> bool:
        """WAITING_TO_RUN -> RUNNING and watch the token; False if the task was canceled."""
        task = job.task
        if not task._start_running():
            job.done = True
            _wire.unlink_segments(self.prefix, job.seq, "a", job.nsegs)
            return False
        job.started = True
        self.running += 1
        token = task._token
        if token.can_be_canceled:
            pool_ref = weakref.ref(self)

            def on_cancel() -> None:
                pool = pool_ref()
                if pool is not None:
                    pool.request_cancel(job)

            job.reg = token.register(on_cancel)
            if token.is_cancellation_requested:
                # Canceled between the queue and here: it never reaches a worker.
                _wire.unlink_segments(self.prefix, job.seq, "a", job.nsegs)
                self._finish(job)
                task._finish_body_canceled(token)
                return False
        return True


def _fn_name(task: Task[Any]) -> str:
    fn = task._fn
    return str(getattr(fn, "__qualname__", None) or type(fn).__name__)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "ended with an unknown status"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"was killed by signal {name} (exit code {code})"
    return f"exited with code {code}"


_live_pools: set[_Pool] = set()


def _shutdown_all_at_exit() -> None:
    for pool in list(_live_pools):
        pool.shutdown(wait=True)


threading._register_atexit(_shutdown_all_at_exit)  # type: ignore[attr-defined]


class ProcessScheduler(TaskScheduler):
    """Runs tasks in worker processes: parallel CPU-bound Python on any build of CPython.

    ::

        with tl.ProcessScheduler(4) as procs:
            task = tl.start_new(lambda n: sum(i * i for i in range(n)), 10**7, scheduler=procs)
            print(task.result())

    * Functions, lambdas, closures and their arguments travel by cloudpickle;
      results and exceptions come back (an exception with the worker's traceback
      as its ``__cause__``). A function or argument that cannot be pickled faults
      that task at once, with a :class:`TypeError` naming the value's type.
    * A worker that dies (segfault, ``os._exit``, SIGKILL, out of memory) faults
      only the task it was running, with :class:`WorkerCrashedError` (exit code or
      signal in the message), and is replaced. There is no broken-pool state.
    * A queued task whose token is canceled never starts; a running task whose
      token is canceled (``cancel_after`` included) is terminated at once (its
      worker is killed and replaced) and ends ``CANCELED``.
    * Buffers of 64 KiB and more (NumPy arrays, ``bytearray``, ``memoryview``,
      anything pickle protocol 5 sends out of band, ``bytes`` passed as an
      argument or returned) travel through shared memory, not the pipe.
    * Workers start on first use; they exit when the parent process dies.

    ``max_workers`` defaults to ``os.cpu_count()``. ``mp_context`` is a
    :mod:`multiprocessing` context or a start method name (``"fork"``, ``"spawn"``,
    ``"forkserver"``; default: :func:`multiprocessing.get_context`).
    ``initializer(*initargs)`` runs in each new worker before its first task; if it
    raises, the queued tasks fault with :class:`WorkerCrashedError` and the next
    task tries a new worker. ``max_tasks_per_child`` replaces a worker after that
    many tasks. Work never runs inline: :meth:`try_execute_task_inline` returns False.
    """

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        mp_context: multiprocessing.context.BaseContext | str | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        max_tasks_per_child: int | None = None,
    ) -> None:
        if max_workers is None:
            max_workers = os.cpu_count() or 1
        _check_count(max_workers, "max_workers")
        if max_tasks_per_child is not None:
            _check_count(max_tasks_per_child, "max_tasks_per_child")
        ctx: multiprocessing.context.BaseContext
        if mp_context is None:
            ctx = multiprocessing.get_context()
        elif isinstance(mp_context, str):
            ctx = multiprocessing.get_context(mp_context)
        elif isinstance(mp_context, multiprocessing.context.BaseContext):
            ctx = mp_context
        else:
            raise TypeError(
                "mp_context must be a multiprocessing context, a start method name or None, "
                f"not {type(mp_context).__name__}"
            )
        if initializer is not None and not callable(initializer):
            raise TypeError(
                f"initializer must be callable or None, not {type(initializer).__name__}"
            )
        if not isinstance(initargs, tuple):
            raise TypeError(f"initargs must be a tuple, not {type(initargs).__name__}")
        init_bytes = None
        if initializer is not None:
            try:
                init_bytes = cloudpickle.dumps((initializer, initargs))
            except Exception as exc:
                raise TypeError(
                    f"initializer and initargs must be picklable to reach the workers: {exc}"
                ) from exc
        self._pool = _Pool(self.id, max_workers, ctx, init_bytes, max_tasks_per_child)
        self._finalizer = weakref.finalize(self, self._pool.shutdown, False)

    # -- the scheduler interface ---------------------------------------------------------------

    def queue_task(self, task: Task[Any]) -> None:
        """Pickle the task's function and arguments and queue it for a worker.

        If they cannot be pickled, the task faults at once with a :class:`TypeError`
        naming the value; nothing reaches the workers. Raises
        :class:`InvalidOperationError` after :meth:`shutdown`.
        """
        pool = self._pool
        if pool.shutting_down and not pool.on_manager_thread():
            raise InvalidOperationError("the scheduler has been shut down")
        seq = next(pool.seqs)
        try:
            fn_bytes = self._pickle_fn(task._fn)
            args_bytes, nsegs, shm_bytes = _wire.dumps(
                task._args,
                prefix=pool.prefix,
                seq=seq,
                direction="a",
                reduce_hook=_wire.reduce_task,
                top_level_items=True,
            )
        except Exception as exc:  # noqa: BLE001 - faults this one task, never the pool
            if task._start_running():
                task._finish_body(None, _unpicklable(task, exc))
            return
        pool.shm_bytes += shm_bytes
        pool.submit(_Job(task, seq, fn_bytes, args_bytes, nsegs))

    def _pickle_fn(self, fn: Any) -> bytes:
        cache = self._pool.fn_cache
        try:
            cached = cache.get(fn)
        except TypeError:  # unhashable callable
            cached = None
        if cached is not None:
            return cached
        data = _wire.dumps(fn, prefix=None, seq=0, direction="f", reduce_hook=_wire.reduce_task)[0]
        # Only a function pickled by reference can be reused: a by-value pickle
        # (lambdas, closures, __main__ functions) snapshots state that may change.
        if _wire.is_by_reference(fn):
            if len(cache) >= 1024:
                cache.clear()
            cache[fn] = data
        return data

    def try_execute_task_inline(self, task: Task[Any], task_was_previously_queued: bool) -> bool:
        """Always False: process work never runs on the calling thread."""
        return False

    @property
    def maximum_concurrency_level(self) -> int:
        """``max_workers``."""
        return self._pool.max_workers

    def statistics(self) -> ProcessSchedulerStatistics:
        """A snapshot of the pool's workers and counters."""
        pool = self._pool
        return ProcessSchedulerStatistics(
            scheduler_id=self.id,
            maximum_concurrency_level=pool.max_workers,
            workers_alive=len(pool.workers),
            tasks_queued=len(pool.pending),
            tasks_running=pool.running,
            tasks_completed=pool.completed,
            tasks_killed=pool.killed,
            crashes=pool.crashes,
            restarts=pool.restarts,
            shared_memory_bytes=pool.shm_bytes,
        )

    def shutdown(self, wait: bool = True) -> None:
        """Stop accepting tasks; queued and running tasks finish, then the workers exit.

        ``wait=True`` blocks until then (no timeout; cancel the tasks' tokens to end
        them sooner). ``wait=False`` returns at once; the work still drains in the
        background, and interpreter exit waits for it, so nothing is left behind.
        """
        self._finalizer.detach()
        self._pool.shutdown(wait)


def _unpicklable(task: Task[Any], exc: Exception) -> TypeError:
    """A clear error for a task whose function or arguments cannot travel to a worker."""
    fn = task._fn
    name = _fn_name(task)
    culprit = f"the function {name!r} (a {_type_name(fn)})"
    try:
        _wire.dumps(fn, prefix=None, seq=0, direction="f")
    except Exception:  # noqa: BLE001
        pass
    else:
        culprit = f"the arguments of {name}()"
        for index, arg in enumerate(task._args or ()):
            try:
                _wire.dumps(arg, prefix=None, seq=0, direction="a", reduce_hook=_wire.reduce_task)
            except Exception:  # noqa: BLE001
                culprit = f"argument {index} of {name}() (a {_type_name(arg)})"
                break
    error = TypeError(f"{culprit} cannot be pickled to send it to a worker process: {exc}")
    error.__cause__ = exc
    return error


def _type_name(value: object) -> str:
    t = type(value)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def _check_count(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int or None, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
