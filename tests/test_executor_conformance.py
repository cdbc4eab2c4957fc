"""One executor suite run against the standard executors and taskloom's, side by side.

Every test takes the ``kind`` fixture: ``ThreadPoolExecutor``, ``ProcessPoolExecutor``
and each taskloom executor. The assertions are the observable behaviour of the
standard executors, so a test that fails only for a taskloom kind is a place
where taskloom is not a drop-in replacement. Expectations that depend on the
family (threads vs processes: ``chunksize``, which ``Broken*`` error) come from
the kind, never from whether it is taskloom's.

Process kinds use module-level functions only and at most two worker processes.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import gc
import multiprocessing as mp
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from concurrent.futures.thread import BrokenThreadPool
from pathlib import Path
from typing import Any

import pytest

import taskloom as tl

# -- module-level work (picklable by reference for the process kinds) -------------------


def square(x: int) -> int:
    return x * x


def add(x: int, y: int) -> int:
    return x + y


def echo_kwargs(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return args, kwargs


def fail_on(x: int, bad: int = 3) -> int:
    if x == bad:
        raise ValueError(f"bad {x}")
    return x


def sleep_then(seconds: float, value: Any = None) -> Any:
    time.sleep(seconds)
    return value


def touch_after(seconds: float, path: str) -> str:
    time.sleep(seconds)
    Path(path).touch()
    return path


def thread_name(_: object = None) -> str:
    return threading.current_thread().name


_init_value: Any = None


def remember(*args: Any) -> None:
    global _init_value
    _init_value = args


def recall() -> Any:
    return _init_value


def failing_initializer() -> None:
    raise RuntimeError("initializer failed on purpose")


class Payload:
    """Something weak-referenceable returned by the work."""


def make_payload(_: object = None) -> Payload:
    return Payload()


# -- the executors under test ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Kind:
    name: str
    make: Callable[..., cf.Executor]
    family: str  # "thread" or "process"
    is_taskloom: bool
    # Constructor arguments beyond max_workers (HybridExecutor has its own signature).
    options: frozenset[str] = frozenset({"initializer", "thread_name_prefix"})

    def require(self, option: str) -> None:
        if option not in self.options:
            pytest.skip(f"{self.name} takes no {option} argument")

    @property
    def broken_error(self) -> type[cf.BrokenExecutor]:
        return BrokenThreadPool if self.family == "thread" else BrokenProcessPool


PROCESS_OPTIONS = frozenset({"initializer", "max_tasks_per_child"})
KINDS = [
    Kind("ThreadPoolExecutor", cf.ThreadPoolExecutor, "thread", False),
    Kind("ProcessPoolExecutor", cf.ProcessPoolExecutor, "process", False, PROCESS_OPTIONS),
    Kind("ThreadExecutor", tl.ThreadExecutor, "thread", True),
    Kind("ProcessExecutor", tl.ProcessExecutor, "process", True, PROCESS_OPTIONS),
    # Threads for unmarked functions; its own signature (max_workers, process_workers).
    Kind("HybridExecutor", tl.HybridExecutor, "thread", True, frozenset()),
]


@pytest.fixture(params=KINDS, ids=[k.name for k in KINDS])
def kind(request: pytest.FixtureRequest) -> Kind:
    k: Kind = request.param
    return k


@pytest.fixture
def executor(kind: Kind) -> Iterator[cf.Executor]:
    ex = kind.make(max_workers=2)
    try:
        yield ex
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


# -- construction ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1])
def test_max_workers_must_be_positive(kind: Kind, bad: int) -> None:
    with pytest.raises(ValueError, match="max_workers must be greater than 0"):
        kind.make(max_workers=bad)


def test_initializer_must_be_callable(kind: Kind) -> None:
    kind.require("initializer")
    with pytest.raises(TypeError, match="initializer must be a callable"):
        kind.make(max_workers=1, initializer=42)


# -- submit --------------------------------------------------------------------------------


def test_submit_returns_a_future_with_the_result(executor: cf.Executor) -> None:
    future = executor.submit(add, 2, 3)
    assert isinstance(future, cf.Future)
    assert future.result(timeout=30) == 5
    assert future.done()
    assert not future.cancelled()
    assert not future.running()
    assert future.exception() is None


def test_submit_passes_keywords_named_fn_and_self(executor: cf.Executor) -> None:
    future = executor.submit(echo_kwargs, 1, fn="f", self="s")
    assert future.result(timeout=30) == ((1,), {"fn": "f", "self": "s"})


def test_submit_records_the_exception(executor: cf.Executor) -> None:
    future = executor.submit(fail_on, 3)
    exc = future.exception(timeout=30)
    assert isinstance(exc, ValueError)
    assert str(exc) == "bad 3"
    with pytest.raises(ValueError, match="bad 3"):
        future.result()


def test_submit_after_shutdown_raises_runtime_error(kind: Kind) -> None:
    ex = kind.make(max_workers=1)
    ex.shutdown()
    with pytest.raises(RuntimeError, match=r"^cannot schedule new futures after shutdown$"):
        ex.submit(square, 2)


def test_result_timeout_raises_timeout_error(kind: Kind) -> None:
    with kind.make(max_workers=1) as ex:
        future = ex.submit(sleep_then, 0.5, 1)
        with pytest.raises(TimeoutError):
            future.result(timeout=0.01)
        assert future.result(timeout=30) == 1


def test_cancel_pending_but_not_running(kind: Kind) -> None:
    with kind.make(max_workers=1) as ex:
        running = ex.submit(sleep_then, 1.0, "first")
        # Several behind it: ProcessPoolExecutor hands a couple to its call queue early.
        pending = [ex.submit(square, i) for i in range(6)]
        deadline = time.monotonic() + 20
        while not running.running() and not running.done() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert running.running()
        assert running.cancel() is False
        last = pending[-1]
        assert last.cancel() is True
        assert last.cancelled()
        assert last.done()
        with pytest.raises(cf.CancelledError):
            last.result()
        assert running.result(timeout=30) == "first"


# -- map ------------------------------------------------------------------------------------


def test_map_results_in_order(executor: cf.Executor) -> None:
    assert list(executor.map(square, range(10))) == [x * x for x in range(10)]
    assert list(executor.map(add, [1, 2, 3], [10, 20])) == [11, 22]
    assert list(executor.map(square, [])) == []


def test_map_is_lazy_in_results(kind: Kind) -> None:
    with kind.make(max_workers=1) as ex:
        results = ex.map(sleep_then, [0.5, 0.5], ["a", "b"])
        first = ex.submit(square, 3)  # queued behind both calls: map did not wait for them
        assert not first.done()
        assert list(results) == ["a", "b"]
        assert first.result(timeout=30) == 9


@pytest.mark.parametrize("chunksize", [1, 2, 4])
def test_map_chunksize_gives_the_same_results(executor: cf.Executor, chunksize: int) -> None:
    assert list(executor.map(add, range(9), range(9), chunksize=chunksize)) == [
        2 * x for x in range(9)
    ]


def test_map_invalid_chunksize(kind: Kind, executor: cf.Executor) -> None:
    if kind.family == "process":
        with pytest.raises(ValueError, match="chunksize must be >= 1"):
            executor.map(square, range(3), chunksize=0)
    else:  # ignored by thread executors
        assert list(executor.map(square, range(3), chunksize=0)) == [0, 1, 4]


@pytest.mark.parametrize("chunksize", [1, 2])
def test_map_raises_at_the_failing_position(
    kind: Kind, executor: cf.Executor, chunksize: int
) -> None:
    results = executor.map(fail_on, range(6), chunksize=chunksize)
    seen: list[int] = []

    def consume() -> None:
        seen.extend(results)

    with pytest.raises(ValueError, match="bad 3"):
        consume()
    # Processes run a chunk as one call: a failure loses the chunk's other results.
    failing_chunk_start = 3 - 3 % chunksize if kind.family == "process" else 3
    assert seen == list(range(failing_chunk_start))


def test_map_timeout_counts_from_the_call(kind: Kind) -> None:
    with kind.make(max_workers=2) as ex:
        results = ex.map(sleep_then, [0.0, 3.0], ["fast", "slow"], timeout=1.5)
        time.sleep(1.6)  # the timeout runs while nobody iterates
        assert next(results) == "fast"  # already done: a done result never times out
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            next(results)
        assert time.monotonic() - start < 2.5  # did not wait for the 3 s call


def test_closing_the_map_iterator_cancels_the_rest(kind: Kind, tmp_path: Path) -> None:
    with kind.make(max_workers=1) as ex:
        paths = [str(tmp_path / str(i)) for i in range(12)]
        results = ex.map(touch_after, [0.1] * len(paths), paths)
        assert next(results) == paths[0]
        results.close()  # type: ignore[attr-defined]
    ran = sorted(int(p.name) for p in tmp_path.iterdir())
    assert ran[0] == 0
    assert len(ran) < len(paths) // 2, ran


def test_map_keeps_no_reference_to_yielded_results(executor: cf.Executor) -> None:
    for obj in executor.map(make_payload, range(5)):
        ref = weakref.ref(obj)
        del obj
        gc.collect()
        assert ref() is None


# -- shutdown -------------------------------------------------------------------------------


def test_shutdown_is_idempotent(kind: Kind) -> None:
    ex = kind.make(max_workers=1)
    future = ex.submit(square, 3)
    ex.shutdown(wait=True)
    ex.shutdown(wait=True)
    ex.shutdown(wait=False)
    assert future.result() == 9


def test_shutdown_wait_waits_for_queued_work(kind: Kind) -> None:
    ex = kind.make(max_workers=1)
    futures = [ex.submit(sleep_then, 0.1, i) for i in range(3)]
    ex.shutdown(wait=True)
    assert all(f.done() for f in futures)
    assert [f.result() for f in futures] == [0, 1, 2]


def test_shutdown_without_wait_still_runs_queued_work(kind: Kind) -> None:
    ex = kind.make(max_workers=1)
    futures = [ex.submit(sleep_then, 0.5, i) for i in range(3)]
    ex.shutdown(wait=False)
    assert not futures[-1].done()  # returned without waiting for the queued work
    assert [f.result(timeout=30) for f in futures] == [0, 1, 2]


def test_shutdown_cancel_futures(kind: Kind) -> None:
    ex = kind.make(max_workers=1)
    first = ex.submit(sleep_then, 0.5, "first")
    rest = [ex.submit(square, i) for i in range(8)]
    deadline = time.monotonic() + 20
    while not first.running() and time.monotonic() < deadline:
        time.sleep(0.01)
    ex.shutdown(wait=True, cancel_futures=True)
    assert first.result() == "first"
    assert rest[-1].cancelled()
    assert all(f.done() for f in rest)


def test_context_manager_shuts_down(kind: Kind) -> None:
    with kind.make(max_workers=1) as ex:
        future = ex.submit(sleep_then, 0.1, "v")
    assert future.done()
    assert future.result() == "v"
    with pytest.raises(RuntimeError):
        ex.submit(square, 1)


# -- initializer ------------------------------------------------------------------------------


def test_initializer_runs_in_each_worker_before_work(kind: Kind) -> None:
    kind.require("initializer")
    with kind.make(max_workers=2, initializer=remember, initargs=(1, "x")) as ex:
        assert [f.result(timeout=30) for f in [ex.submit(recall) for _ in range(4)]] == [
            (1, "x")
        ] * 4


def test_failing_initializer_breaks_the_pool(kind: Kind) -> None:
    kind.require("initializer")
    ex = kind.make(max_workers=1, initializer=failing_initializer)
    try:
        future = ex.submit(square, 2)
        assert isinstance(future.exception(timeout=30), kind.broken_error)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                later = ex.submit(square, 3)
            except kind.broken_error:
                break
            # Processes: the parent may not have noticed yet; such work fails the same way.
            assert isinstance(later.exception(timeout=30), kind.broken_error)
            time.sleep(0.05)
        else:
            pytest.fail("submit kept accepting work on a broken pool")
    finally:
        ex.shutdown(wait=True)


# -- max_tasks_per_child ----------------------------------------------------------------------


def worker_pid(_: object = None) -> int:
    return os.getpid()


def test_max_tasks_per_child_checks(kind: Kind) -> None:
    kind.require("max_tasks_per_child")
    with pytest.raises(ValueError, match="max_tasks_per_child must be >= 1"):
        kind.make(max_workers=1, max_tasks_per_child=0)
    with pytest.raises(TypeError, match="max_tasks_per_child must be an integer"):
        kind.make(max_workers=1, max_tasks_per_child="2")
    with pytest.raises(ValueError, match="incompatible with the 'fork'"):
        kind.make(max_workers=1, mp_context=mp.get_context("fork"), max_tasks_per_child=2)


@pytest.mark.timeout(120)
def test_max_tasks_per_child_replaces_workers(kind: Kind) -> None:
    kind.require("max_tasks_per_child")
    # No mp_context: both default to "spawn" when max_tasks_per_child is given.
    with kind.make(max_workers=1, max_tasks_per_child=2) as ex:
        pids = [ex.submit(worker_pid).result(timeout=60) for _ in range(4)]
    assert pids[0] == pids[1]
    assert pids[2] == pids[3]
    assert pids[1] != pids[2]


# -- futures helpers over the returned futures -------------------------------------------------


def test_as_completed_and_wait(executor: cf.Executor) -> None:
    slow = executor.submit(sleep_then, 1.5, "slow")
    fast = executor.submit(sleep_then, 0.0, "fast")
    order = [f.result() for f in cf.as_completed([slow, fast], timeout=30)]
    assert order == ["fast", "slow"]
    done, not_done = cf.wait([executor.submit(square, i) for i in range(4)], timeout=30)
    assert len(done) == 4
    assert not not_done
    slow2 = executor.submit(sleep_then, 0.5)
    failing = executor.submit(fail_on, 3)
    done, not_done = cf.wait([slow2, failing], timeout=30, return_when=cf.FIRST_EXCEPTION)
    assert failing in done
    done, _ = cf.wait([slow2], return_when=cf.FIRST_COMPLETED, timeout=30)
    assert done == {slow2}


# -- lifetime ---------------------------------------------------------------------------------


def test_unreferenced_executor_is_collected(kind: Kind) -> None:
    ex = kind.make(max_workers=1)
    assert ex.submit(square, 4).result(timeout=30) == 16
    ref = weakref.ref(ex)
    del ex
    gc.collect()
    assert ref() is None


def test_tasks_are_collected_once_unreferenced(executor: cf.Executor) -> None:
    future = executor.submit(make_payload)
    future.result(timeout=30)
    ref = weakref.ref(future)
    del future
    gc.collect()
    assert ref() is None


def test_threads_end_after_the_executor_is_collected(kind: Kind) -> None:
    kind.require("thread_name_prefix")
    ex = kind.make(max_workers=2, thread_name_prefix="collected-pool")
    assert ex.submit(thread_name).result(timeout=30).startswith("collected-pool")
    del ex
    gc.collect()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not [t for t in threading.enumerate() if t.name.startswith("collected-pool")]:
            break
        time.sleep(0.02)
    else:
        pytest.fail("the pool threads outlived their executor")


def test_thread_names_follow_the_prefix(kind: Kind) -> None:
    kind.require("thread_name_prefix")
    with kind.make(max_workers=2, thread_name_prefix="named") as ex:
        names = {f.result(timeout=30) for f in [ex.submit(thread_name) for _ in range(4)]}
    assert all(re.fullmatch(r"named_[01]", n) for n in names), names
    with kind.make(max_workers=1) as ex:
        default = ex.submit(thread_name).result(timeout=30)
    assert re.fullmatch(r"[A-Za-z]+-\d+_0", default), default


_EXIT_SCRIPT = """
import concurrent.futures as cf, sys, time
import taskloom as tl
ex = {make}(max_workers=2)
futures = [ex.submit(time.sleep, 0.2) for _ in range(3)]
print("submitted", flush=True)
# no shutdown: interpreter exit must finish the work and leave nothing behind
"""


def test_interpreter_exit_without_shutdown(kind: Kind) -> None:
    make = f"cf.{kind.name}" if not kind.is_taskloom else f"tl.{kind.name}"
    script = textwrap.dedent(_EXIT_SCRIPT.format(make=make))
    if kind.family == "process":
        script = "if __name__ == '__main__':\n" + textwrap.indent(script, "    ")
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=45,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "submitted\n"
    assert proc.stderr == ""


def test_submit_during_interpreter_exit_is_refused(kind: Kind) -> None:
    if kind.family != "thread":
        pytest.skip("thread kinds only")
    make = f"cf.{kind.name}" if not kind.is_taskloom else f"tl.{kind.name}"
    script = textwrap.dedent(f"""
        import atexit, concurrent.futures as cf
        import taskloom as tl
        ex = {make}(max_workers=1)
        ex.submit(abs, 1).result()
        def late():
            try:
                ex.submit(abs, 1)
            except RuntimeError as e:
                print(e)
        atexit.register(late)
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=45
    )
    assert proc.returncode == 0, proc.stderr
    # ThreadPoolExecutor says "after shutdown" here (its workers flag it first).
    assert proc.stdout.startswith("cannot schedule new futures after "), proc.stdout


# -- what taskloom adds ------------------------------------------------------------------------


def test_taskloom_executors_return_tasks(kind: Kind) -> None:
    if not kind.is_taskloom:
        pytest.skip("taskloom kinds only")
    with kind.make(max_workers=1) as ex:
        task = ex.submit(square, 5)
        assert isinstance(task, tl.Task)
        assert task.then(square).result(timeout=30) == 625


def test_thread_executor_is_a_thread_pool_executor() -> None:
    # asyncio's loop.set_default_executor accepts only ThreadPoolExecutor instances.
    with tl.ThreadExecutor(max_workers=1) as ex:
        assert isinstance(ex, cf.ThreadPoolExecutor)


def test_non_callable_is_refused_at_the_call() -> None:
    # A deliberate departure: ThreadPoolExecutor returns a future that fails later.
    with (
        tl.ThreadExecutor(max_workers=1) as ex,
        pytest.raises(TypeError, match="fn must be callable"),
    ):
        ex.submit(42)  # type: ignore[arg-type]


def test_single_worker_serializes_work() -> None:
    # max_workers is a hard bound (no thread injection), as with ThreadPoolExecutor.
    with tl.ThreadExecutor(max_workers=1) as ex:
        active = []
        lock = threading.Lock()
        peak = [0]

        def work() -> None:
            with lock:
                active.append(1)
                peak[0] = max(peak[0], len(active))
            time.sleep(0.3)
            with lock:
                active.pop()

        for f in [ex.submit(work) for _ in range(5)]:
            f.result(timeout=30)
    assert peak[0] == 1
