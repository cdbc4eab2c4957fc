"""What travels between the parent and its worker processes, and how.

Both sides import this module; it holds no state of its own.

Frames. Each pipe carries length-prefixed frames, written whole with ``os.write``
and read in large chunks, so one ``read`` system call may deliver many frames::

    parent -> worker   TASK  seq, number of shared-memory segments, function, arguments
                       SKIP  seq                 (canceled before the worker reached it)
                       STOP                      (finish and exit)
    worker -> parent   READY pid                 (initializer done)
                       INIT_FAILED               (payload: pickled remote error)
                       RESULT / ERROR / SKIPPED  seq, segments, body duration, payload

Pickling. Functions and arguments go through cloudpickle (lambdas, closures and
functions defined in ``__main__`` travel by value). Plain values take the C
``pickle`` fast path. Pickle protocol 5 out-of-band buffers (NumPy arrays,
:class:`pickle.PickleBuffer`) and large ``memoryview`` values anywhere, plus
large ``bytes``/``bytearray`` given as a top-level argument or returned as the
result (the C pickler handles those two types without any hook, so deeper ones
stay in the stream), are not put in the pickle stream: each buffer of at least
:data:`SHM_THRESHOLD` bytes is written into a POSIX shared-memory segment, and
the frame carries only how many segments there are. Segment names are derived
from the scheduler and the task's sequence number (:func:`segment_name`), so the
parent can always find and unlink them, even when the worker that created them died.

The receiver maps each segment and unlinks its name at once: the mapping lives as
long as the objects built on it (a NumPy array unpickled from it is a view of the
mapping: zero copy), and nothing is left in ``/dev/shm``.

Departures from :mod:`multiprocessing.shared_memory`: the segments are the same
POSIX ``shm_open`` objects that :class:`~multiprocessing.shared_memory.SharedMemory`
creates, but made with ``_posixshmem`` directly, because ``SharedMemory`` registers
every segment with the resource tracker process (one more process, and spurious
"leaked shared_memory" warnings when one process creates a segment and another
unlinks it), and its ``close()`` fails while a NumPy array still views the buffer.
"""

from __future__ import annotations

import io
import mmap
import os
import pickle
import struct
import sys
from collections.abc import Callable, Sequence
from typing import Any

import cloudpickle  # type: ignore[import-untyped]

try:  # POSIX only; without it large buffers travel in the pickle stream.
    import _posixshmem  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - Windows
    _posixshmem = None

#: Buffers at least this large travel through shared memory instead of the pipe.
SHM_THRESHOLD = 64 * 1024

# -- frame kinds -----------------------------------------------------------------------------
TASK = 1
SKIP = 2
STOP = 3
READY = 10
INIT_FAILED = 11
RESULT = 12
ERROR = 13
SKIPPED = 14

# Every frame: payload length (of what follows the header), kind, seq, segment count,
# one float (body duration, worker -> parent) or the function's length (parent -> worker).
HEADER = struct.Struct("<QBqHd")
HEADER_SIZE = HEADER.size
_FN_LEN = struct.Struct("<Q")

_SIMPLE = frozenset({int, float, str, bool, type(None), complex})
_ATOMIC_ARGS = frozenset({int, float, str, bool, type(None), complex, bytes})


def frame(kind: int, seq: int, nsegs: int, extra: float, payload: bytes = b"") -> bytes:
    """One frame, ready to write."""
    return HEADER.pack(len(payload), kind, seq, nsegs, extra) + payload


def task_frame(seq: int, nsegs: int, fn_bytes: bytes, args_bytes: bytes) -> bytes:
    """A TASK frame: the function's pickle, then the arguments' pickle."""
    body_len = _FN_LEN.size + len(fn_bytes) + len(args_bytes)
    return b"".join(
        (
            HEADER.pack(body_len, TASK, seq, nsegs, 0.0),
            _FN_LEN.pack(len(fn_bytes)),
            fn_bytes,
            args_bytes,
        )
    )


def split_task_payload(payload: memoryview) -> tuple[memoryview, memoryview]:
    """(function pickle, arguments pickle) of a TASK frame's payload."""
    (fn_len,) = _FN_LEN.unpack_from(payload)
    start = _FN_LEN.size
    return payload[start : start + fn_len], payload[start + fn_len :]


def parse_frames(
    buf: bytearray, handle: Callable[[int, int, int, float, memoryview], None]
) -> None:
    """Call ``handle(kind, seq, nsegs, extra, payload)`` for each whole frame in ``buf``.

    Consumed frames are removed from ``buf``; a partial frame stays for the next read.
    ``payload`` is only valid during the call.
    """
    pos = 0
    end = len(buf)
    view = memoryview(buf)
    try:
        while end - pos >= HEADER_SIZE:
            length, kind, seq, nsegs, extra = HEADER.unpack_from(view, pos)
            stop = pos + HEADER_SIZE + length
            if stop > end:
                break
            payload = view[pos + HEADER_SIZE : stop]
            try:
                handle(kind, seq, nsegs, extra, payload)
            finally:
                payload.release()
            pos = stop
    finally:
        view.release()
    if pos:
        del buf[:pos]


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """Write all of ``data`` to the blocking ``fd``."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


# -- shared memory ----------------------------------------------------------------------------


def segment_name(prefix: str, seq: int, direction: str, index: int) -> str:
    """The shared-memory name of buffer ``index`` of task ``seq`` (``direction`` "a" or "r")."""
    return f"/{prefix}{seq:x}{direction}{index:x}"


def shm_available() -> bool:
    """Whether large buffers can travel through shared memory on this platform."""
    return _posixshmem is not None


def _create_segment(name: str, data: memoryview) -> None:
    assert _posixshmem is not None
    flags = os.O_CREAT | os.O_EXCL | os.O_RDWR
    try:
        fd = _posixshmem.shm_open(name, flags, 0o600)
    except FileExistsError:
        # Left over by a dead process whose pid we now have: ours to replace.
        unlink_segment(name)
        fd = _posixshmem.shm_open(name, flags, 0o600)
    try:
        size = data.nbytes
        os.ftruncate(fd, max(size, 1))
        # pwrite, not mmap + copy: the kernel fills the pages without a fault per page.
        offset = 0
        while offset < size:
            offset += os.pwrite(fd, data[offset:], offset)
    except BaseException:
        os.close(fd)
        unlink_segment(name)
        raise
    os.close(fd)


def open_segment(name: str) -> mmap.mmap:
    """Map the segment ``name`` and unlink its name; the mapping lives as long as its users."""
    assert _posixshmem is not None
    fd = _posixshmem.shm_open(name, os.O_RDWR, 0o600)
    try:
        size = os.fstat(fd).st_size
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        mapping = mmap.mmap(fd, size, flags=flags)
    finally:
        os.close(fd)
        unlink_segment(name)
    return mapping


def unlink_segment(name: str) -> bool:
    """Remove the segment's name if it still exists; True if it did."""
    if _posixshmem is None:  # pragma: no cover - Windows
        return False
    try:
        _posixshmem.shm_unlink(name)
    except FileNotFoundError:
        return False
    return True


def unlink_segments(prefix: str, seq: int, direction: str, count: int | None) -> None:
    """Unlink the segments of one task: ``count`` of them, or, if unknown, until one is missing.

    Segments are created in index order and nobody else unlinks a later one first,
    so the first missing name ends an unknown range.
    """
    index = 0
    while count is None or index < count:
        if not unlink_segment(segment_name(prefix, seq, direction, index)) and count is None:
            return
        index += 1


def open_segments(prefix: str, seq: int, direction: str, count: int) -> list[mmap.mmap]:
    """Map the ``count`` segments of one message (names unlinked as they are opened)."""
    return [open_segment(segment_name(prefix, seq, direction, i)) for i in range(count)]


# -- pickling ---------------------------------------------------------------------------------


def _rebuild_bytes(buf: memoryview) -> bytes:
    return bytes(buf)


def _rebuild_bytearray(buf: memoryview) -> bytearray:
    return bytearray(buf)


def _rebuild_memoryview(buf: memoryview) -> memoryview:
    return memoryview(buf)


class _BigBuffer:
    """Wraps a large top-level ``bytes``/``bytearray`` so it travels out of band.

    The C pickler handles these two types itself, without asking ``reducer_override``.
    """

    __slots__ = ("data",)

    def __init__(self, data: bytes | bytearray) -> None:
        self.data = data

    def __reduce_ex__(self, protocol: object) -> tuple[Any, ...]:
        rebuild = _rebuild_bytes if type(self.data) is bytes else _rebuild_bytearray
        return rebuild, (pickle.PickleBuffer(self.data),)


class _SegmentWriter:
    """The ``buffer_callback``: decides where each protocol-5 buffer goes.

    Kept apart from the pickler so that no reference cycle holds a PickleBuffer
    (the garbage collector cannot clear one safely: CPython crashes at exit).
    """

    __slots__ = ("direction", "prefix", "segments", "seq", "shm_bytes")

    def __init__(self, prefix: str, seq: int, direction: str) -> None:
        self.prefix = prefix
        self.seq = seq
        self.direction = direction
        self.segments: list[str] = []  # created so far, for cleanup if pickling fails
        self.shm_bytes = 0

    def __call__(self, buffer: pickle.PickleBuffer) -> bool:
        """True = in band (small, or not contiguous), False = written to a new segment."""
        try:
            raw = buffer.raw()
        except BufferError:  # not contiguous: pickle copies it in band
            return True
        with raw:
            if raw.nbytes < SHM_THRESHOLD:
                return True
            name = segment_name(self.prefix, self.seq, self.direction, len(self.segments))
            _create_segment(name, raw)
            self.segments.append(name)
            self.shm_bytes += raw.nbytes
        return False


class Dumper(cloudpickle.Pickler):  # type: ignore[misc]
    """cloudpickle, plus large buffers out of band (see :class:`_SegmentWriter`)."""

    def __init__(
        self,
        file: io.BytesIO,
        writer: _SegmentWriter | None,
        reduce_hook: Callable[[Any], Any] | None = None,
    ) -> None:
        self._big = writer is not None
        self._reduce_hook = reduce_hook
        super().__init__(file, protocol=5, buffer_callback=writer)

    def reducer_override(self, obj: Any) -> Any:
        t = type(obj)
        if self._big and t is memoryview:
            with memoryview(obj) as view:
                big = view.nbytes >= SHM_THRESHOLD and view.contiguous
            if big:
                return _rebuild_memoryview, (pickle.PickleBuffer(obj),)
        hook = self._reduce_hook
        if hook is not None:
            reduced = hook(obj)
            if reduced is not NotImplemented:
                return reduced
        return super().reducer_override(obj)


def _wrap_big_bytes(value: Any) -> Any:
    t = type(value)
    if (t is bytes or t is bytearray) and len(value) >= SHM_THRESHOLD:
        return _BigBuffer(value)
    return value


def dumps(
    value: Any,
    *,
    prefix: str | None,
    seq: int,
    direction: str,
    reduce_hook: Callable[[Any], Any] | None = None,
    top_level_items: bool = False,
) -> tuple[bytes, int, int]:
    """Pickle ``value``: (pickle bytes, number of segments, bytes put in segments).

    ``prefix`` None disables shared memory. ``top_level_items``: ``value`` is a
    tuple of arguments whose large ``bytes`` items should travel out of band too.
    On failure every segment created so far is unlinked and the error re-raised.
    """
    t = type(value)
    if t in _SIMPLE or (t is bytes and len(value) < SHM_THRESHOLD):
        return pickle.dumps(value, 5), 0, 0
    if t is tuple and top_level_items:
        if all(type(v) in _ATOMIC_ARGS for v in value) and not any(
            type(v) is bytes and len(v) >= SHM_THRESHOLD for v in value
        ):
            return pickle.dumps(value, 5), 0, 0
        if prefix is not None:
            value = tuple(_wrap_big_bytes(v) for v in value)
    elif prefix is not None:
        value = _wrap_big_bytes(value)
    if prefix is not None and _posixshmem is None:  # pragma: no cover - Windows
        prefix = None
    out = io.BytesIO()
    writer = _SegmentWriter(prefix, seq, direction) if prefix is not None else None
    dumper = Dumper(out, writer, reduce_hook)
    try:
        dumper.dump(value)
    except BaseException:
        if writer is not None:
            for name in writer.segments:
                unlink_segment(name)
        raise
    finally:
        dumper.clear_memo()
    if writer is None:
        return out.getvalue(), 0, 0
    return out.getvalue(), len(writer.segments), writer.shm_bytes


def loads(data: bytes | memoryview, buffers: Sequence[mmap.mmap] = ()) -> Any:
    """Unpickle what :func:`dumps` made, with its segments already mapped."""
    return pickle.loads(data, buffers=buffers)


def dumps_plain(value: Any) -> bytes:
    """Pickle a value that needs nothing special (control payloads)."""
    return pickle.dumps(value, 5)


def is_by_reference(fn: object) -> bool:
    """Whether pickle stores ``fn`` as a module attribute (so its pickle never goes stale)."""
    module_name = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not isinstance(module_name, str) or not isinstance(qualname, str):
        return False
    if module_name == "__main__" or "<" in qualname:
        return False
    obj: object = sys.modules.get(module_name)
    if obj is None:
        return False
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return False
    return obj is fn


# -- errors and task snapshots ------------------------------------------------------------------


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker process.

    Attached as ``__cause__`` of the exception a process task faulted with, so the
    traceback a user sees shows where the error happened in the worker.
    """

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


class RemoteError(Exception):
    """Stands in for an exception raised in a worker that could not travel back as itself."""


def remote_error(payload: bytes | memoryview) -> BaseException:
    """Rebuild the exception a worker reported, with its remote traceback as ``__cause__``."""
    tb, exc_bytes, type_name = pickle.loads(payload)
    exc: object = None
    why = "it could not be pickled"
    if exc_bytes is not None:
        try:
            exc = pickle.loads(exc_bytes)
        except Exception as err:  # noqa: BLE001 - e.g. an exception class with required args
            why = f"it could not be unpickled here ({type(err).__name__}: {err})"
    if not isinstance(exc, BaseException):
        last = tb.strip().splitlines()[-1] if tb.strip() else type_name
        exc = RemoteError(f"{last} (raised in a worker process; {why})")
    exc.__cause__ = RemoteTraceback(tb)
    return exc


def reduce_task(obj: object) -> Any:
    """Reducer for :class:`~taskloom.Task`: a completed task travels as a snapshot.

    This lets a continuation (whose first argument is its antecedent) run in a worker.
    """
    from .. import _task

    if not isinstance(obj, _task.Task):
        return NotImplemented
    status = obj._status
    if status == _task._RAN_TO_COMPLETION:
        return _rebuild_task, (status, obj._result)
    if status == _task._FAULTED:
        return _rebuild_task, (status, list(obj._excs or ()))
    if status == _task._CANCELED:
        return _rebuild_task, (status, None)
    raise TypeError(f"{obj!r} has not completed: only a completed Task can be sent to a process")


def _rebuild_task(status: int, payload: Any) -> Any:
    from .. import _task

    task = _task._new_promise()
    if status == _task._FAULTED:
        task._complete(status, None, payload)
        task._mark_observed()
    else:
        task._complete(status, payload, None)
    return task
