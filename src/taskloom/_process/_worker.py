"""The worker process: read task frames, run them one at a time, write one result frame each.

Runs in the child process only. Threads here::

    main thread     task pipe --read--> pending (FIFO) --run--> result pipe (one write per task)
    watcher thread  waits on the parent's sentinel; when the parent dies: os._exit

Invariant the parent relies on for crash attribution: tasks run in the order they
arrive, and a task's result frame is completely written before the next task
starts. So when this process dies, every task before the one it was running has
its result in the pipe, and the parent blames exactly the running task.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from multiprocessing import connection, parent_process
from typing import Any

from .. import _scheduler
from . import _wire

_FN_CACHE_LIMIT = 256


def format_error(exc: BaseException) -> bytes:
    """Pickle an exception for the parent: (traceback text, exception pickle or None)."""
    tb = "".join(traceback.format_exception(exc))
    try:
        exc_bytes: bytes | None = _wire.dumps(exc, prefix=None, seq=0, direction="e")[0]
    except BaseException:  # noqa: BLE001 - an unpicklable exception still reports its text
        exc_bytes = None
    return _wire.dumps_plain((tb, exc_bytes, f"{type(exc).__module__}.{type(exc).__qualname__}"))


def _watch_parent() -> None:
    """Exit at once when the parent process dies (no orphans)."""
    parent = parent_process()
    if parent is None:  # pragma: no cover - always set for multiprocessing children
        return
    sentinel = parent.sentinel

    def watch() -> None:
        connection.wait([sentinel])
        os._exit(0)

    threading.Thread(target=watch, name="taskloom-parent-watch", daemon=True).start()


def worker_main(
    task_conn: connection.Connection,
    result_conn: connection.Connection,
    prefix: str,
    init_bytes: bytes | None,
    max_tasks: int | None,
) -> None:
    """Entry point of a worker process (the ``target`` of its ``Process``).

    ``init_bytes`` is the cloudpickled ``(initializer, initargs)``, or None.
    """
    _watch_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C stops
    # A forked child inherits the parent's default scheduler with none of its threads.
    _scheduler.reset_default(None)
    code = 0
    try:
        Worker(task_conn, result_conn, prefix, max_tasks).run(init_bytes)
    except BaseException:  # noqa: BLE001 - a bug here: say so, exit non-zero
        traceback.print_exc()
        code = 1
    finally:
        # Leave without the interpreter's exit sequence: a forked child inherits the
        # parent's atexit and thread-shutdown hooks, which must not run here.
        for stream in (sys.stdout, sys.stderr):
            try:
                if stream is not None:
                    stream.flush()
            except Exception:  # noqa: BLE001 - nothing left to report to
                pass
        os._exit(code)


class Worker:
    """The state of one worker process's main loop."""

    def __init__(
        self,
        task_conn: connection.Connection,
        result_conn: connection.Connection,
        prefix: str,
        max_tasks: int | None,
    ) -> None:
        self.task_conn = task_conn  # kept alive: closing it would close the fd
        self.result_conn = result_conn
        self.in_fd = task_conn.fileno()
        self.out_fd = result_conn.fileno()
        self.prefix = prefix
        self.max_tasks = max_tasks
        self.inbuf = bytearray()
        # (seq, segment count, function pickle, arguments pickle), in arrival order.
        self.pending: deque[tuple[int, int, bytes, bytes]] = deque()
        self.skipped: set[int] = set()
        self.stopping = False
        self.fn_cache: dict[bytes, Callable[..., Any]] = {}

    def send(self, kind: int, seq: int, nsegs: int, extra: float, payload: bytes = b"") -> None:
        _wire.write_all(self.out_fd, _wire.frame(kind, seq, nsegs, extra, payload))

    def run(self, init_bytes: bytes | None) -> None:
        if init_bytes is not None:
            try:
                initializer, initargs = _wire.loads(init_bytes)
                initializer(*initargs)
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                self.send(_wire.INIT_FAILED, 0, 0, 0.0, format_error(exc))
                return
        self.send(_wire.READY, os.getpid(), 0, 0.0)
        ran = 0
        while True:
            if not self.pending:
                if self.stopping or not self.read(block=True):
                    return
            elif select.select([self.in_fd], [], [], 0)[0] and not self.read(block=False):
                # (select: pick up SKIP frames for the tasks queued here before the next one)
                return
            if not self.pending:
                continue
            seq, nsegs, fn_bytes, args_bytes = self.pending.popleft()
            if seq in self.skipped:
                self.skipped.discard(seq)
                _wire.unlink_segments(self.prefix, seq, "a", nsegs)
                self.send(_wire.SKIPPED, seq, 0, 0.0)
                continue
            self.run_one(seq, nsegs, fn_bytes, args_bytes)
            ran += 1
            if self.max_tasks is not None and ran >= self.max_tasks:
                return

    def read(self, block: bool) -> bool:
        """Read what the pipe holds into ``pending``; False once the parent closed it."""
        data = os.read(self.in_fd, 1 << 20)
        if not data:
            return False
        self.inbuf += data
        _wire.parse_frames(self.inbuf, self.on_frame)
        return True

    def on_frame(self, kind: int, seq: int, nsegs: int, extra: float, payload: memoryview) -> None:
        if kind == _wire.TASK:
            fn_view, args_view = _wire.split_task_payload(payload)
            self.pending.append((seq, nsegs, bytes(fn_view), bytes(args_view)))
            fn_view.release()
            args_view.release()
        elif kind == _wire.SKIP:
            self.skipped.add(seq)
        elif kind == _wire.STOP:
            self.stopping = True

    def load_fn(self, fn_bytes: bytes) -> Callable[..., Any]:
        fn = self.fn_cache.get(fn_bytes)
        if fn is None:
            fn = _wire.loads(fn_bytes)
            if len(self.fn_cache) >= _FN_CACHE_LIMIT:
                self.fn_cache.clear()
            self.fn_cache[fn_bytes] = fn
        return fn

    def run_one(self, seq: int, nsegs: int, fn_bytes: bytes, args_bytes: bytes) -> None:
        start = time.perf_counter()
        fn: Callable[..., Any] | None = None
        try:
            buffers = _wire.open_segments(self.prefix, seq, "a", nsegs) if nsegs else ()
            fn = self.load_fn(fn_bytes)
            args = _wire.loads(args_bytes, buffers)
            del buffers
            result = fn(*args)
            del args
        except BaseException as exc:  # noqa: BLE001 - every failure goes to the parent
            self.send(_wire.ERROR, seq, 0, time.perf_counter() - start, format_error(exc))
            return
        duration = time.perf_counter() - start
        try:
            payload, count, _ = _wire.dumps(result, prefix=self.prefix, seq=seq, direction="r")
        except BaseException as exc:  # noqa: BLE001
            name = getattr(fn, "__qualname__", type(fn).__name__)
            error = TypeError(
                f"the result of {name}() could not be pickled to return it to the parent "
                f"process: a {type(result).__module__}.{type(result).__qualname__} ({exc})"
            )
            error.__cause__ = exc
            self.send(_wire.ERROR, seq, 0, duration, format_error(error))
            return
        del result
        self.send(_wire.RESULT, seq, count, duration, payload)
