"""ProcessScheduler: real worker processes, crashes, cancellation, shared memory, lifecycle.

Task bodies are module-level functions (they travel by reference) unless a test is
about lambdas. Every wait is bounded by :data:`WAIT`; a process that must be gone
is polled for with a deadline, never assumed gone.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

import taskloom as tl
from taskloom import TaskStatus as S
from tests import helpers

WAIT = 30.0
SHM = Path("/dev/shm")

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process scheduler")


# -- task bodies (module level: picklable by reference) ---------------------------------------


def square(x: int) -> int:
    return x * x


def getpid() -> int:
    return os.getpid()


def sleep_then_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def crash_or_square(x: int, how: str | None) -> int:
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif how == "exit":
        os._exit(7)
    return x * x


def raise_value_error(message: str) -> None:
    raise ValueError(message)


def return_lock() -> Any:
    return threading.Lock()


def identity(value: Any) -> Any:
    return value


def double_array(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return a * 2


def crash_with(_data: Any) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def touch(path: str) -> None:
    Path(path).write_text("ran")


def wait_for_file_then_pid(path: str, timeout: float) -> int:
    # Polls: the blocker must hold its worker until the test says so, however slow the machine.
    deadline = time.monotonic() + timeout
    while not Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    return os.getpid()


_initialized: list[int] = []


def remember(value: int) -> None:
    _initialized.append(value)


def initialized() -> list[int]:
    return list(_initialized)


def failing_initializer() -> None:
    raise RuntimeError("no database here")


def antecedent_result_plus(antecedent: tl.Task[int], n: int) -> int:
    return antecedent.result() + n


class NeedsArgs(Exception):
    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"{a}+{b}")


def raise_needs_args() -> None:
    raise NeedsArgs(1, 2)


# -- helpers ---------------------------------------------------------------------------------------


def our_segments() -> list[str]:
    """Shared-memory segments made by a ProcessScheduler of this process."""
    if not SHM.is_dir():
        return []
    return [p.name for p in SHM.iterdir() if p.name.startswith(f"tl{os.getpid():x}_")]


def eventually(predicate: Callable[[], bool], timeout: float = WAIT) -> bool:
    return helpers.wait_until(predicate, timeout)


def pid_gone(pid: int) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def error_of(task: tl.Task[Any]) -> BaseException:
    """The one exception ``task`` faulted with (waits up to WAIT)."""
    exc = task.exception(WAIT)
    assert task.status == S.FAULTED, task.status
    assert exc is not None
    assert not isinstance(exc, tl.AggregateError), exc
    return exc


@pytest.fixture
def procs() -> Iterator[tl.ProcessScheduler]:
    scheduler = tl.ProcessScheduler(2)
    yield scheduler
    scheduler.shutdown(wait=True)
    assert our_segments() == []


# -- results, errors, pickling -----------------------------------------------------------------


def test_results_lambdas_and_closures(procs: tl.ProcessScheduler) -> None:
    offset = 10
    tasks = [tl.start_new(square, i, scheduler=procs) for i in range(50)]
    closure = tl.start_new(lambda x: x + offset, 5, scheduler=procs)
    assert [t.result(WAIT) for t in tasks] == [i * i for i in range(50)]
    assert closure.result(WAIT) == 15
    assert tl.start_new(getpid, scheduler=procs).result(WAIT) != os.getpid()
    assert not procs.try_execute_task_inline(tl.Task(square, 2), False)


def test_exception_carries_remote_traceback(procs: tl.ProcessScheduler) -> None:
    exc = error_of(tl.start_new(raise_value_error, "boom", scheduler=procs))
    assert isinstance(exc, ValueError)
    assert str(exc) == "boom"
    cause = exc.__cause__
    assert cause is not None
    assert type(cause).__name__ == "RemoteTraceback"
    assert "raise_value_error" in str(cause)
    assert "ValueError: boom" in str(cause)


def test_exception_that_cannot_be_rebuilt_still_reports(procs: tl.ProcessScheduler) -> None:
    exc = error_of(tl.start_new(raise_needs_args, scheduler=procs))
    assert "NeedsArgs" in str(exc)
    assert "raise_needs_args" in str(exc.__cause__)


def test_unpicklable_function_argument_and_result(procs: tl.ProcessScheduler) -> None:
    lock = threading.Lock()
    bad_fn = tl.start_new(lambda: lock.locked(), scheduler=procs)
    exc = error_of(bad_fn)
    assert isinstance(exc, TypeError)
    assert "function" in str(exc)
    assert "lock" in str(exc)

    bad_arg = tl.start_new(identity, threading.Lock(), scheduler=procs)
    exc = error_of(bad_arg)
    assert isinstance(exc, TypeError)
    assert "argument 0" in str(exc)
    assert "lock" in str(exc)

    bad_result = tl.start_new(return_lock, scheduler=procs)
    exc = error_of(bad_result)
    assert isinstance(exc, TypeError)
    assert "return_lock" in str(exc)
    assert "_thread.lock" in str(exc)

    # The pool is still healthy.
    assert [tl.start_new(square, i, scheduler=procs).result(WAIT) for i in range(4)] == [0, 1, 4, 9]
    assert procs.statistics().crashes == 0


# -- crash isolation ---------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_random_crashes_fault_only_their_tasks() -> None:
    rng = random.Random(4)
    crashing = set(rng.sample(range(1000), 10))
    hows = {i: ("kill" if k % 2 else "exit") for k, i in enumerate(sorted(crashing))}
    with tl.ProcessScheduler(2) as procs:
        tasks = [
            tl.start_new(crash_or_square, i, hows.get(i), scheduler=procs) for i in range(1000)
        ]
        faulted = set()
        for i, task in enumerate(tasks):
            if i in crashing:
                exc = error_of(task)
                assert isinstance(exc, tl.WorkerCrashedError)
                expected = "SIGKILL" if hows[i] == "kill" else "exited with code 7"
                assert expected in str(exc)
                faulted.add(i)
            else:
                assert task.result() == i * i
        assert faulted == crashing
        stats = procs.statistics()
        assert stats.crashes == 10
        assert stats.restarts >= 10
        assert eventually(lambda: procs.statistics().workers_alive >= 1)


def test_crash_with_shared_memory_leaves_nothing(procs: tl.ProcessScheduler) -> None:
    data = np.ones(1_000_000)
    exc = error_of(tl.start_new(crash_with, data, scheduler=procs))
    assert isinstance(exc, tl.WorkerCrashedError)
    assert our_segments() == []
    assert tl.start_new(square, 3, scheduler=procs).result(WAIT) == 9


# -- cancellation ---------------------------------------------------------------------------------


def test_canceling_a_running_task_kills_and_replaces_its_worker() -> None:
    with tl.ProcessScheduler(1) as procs:
        first_pid = tl.start_new(getpid, scheduler=procs).result(WAIT)
        cts = tl.CancellationTokenSource()
        task = tl.start_new(sleep_then_pid, 60, token=cts.token, scheduler=procs)
        assert eventually(lambda: task.status == S.RUNNING)
        time.sleep(0.2)  # let the body start sleeping in the worker
        cts.cancel()
        with pytest.raises(tl.TaskCanceledError):
            task.wait(1.0)
        assert task.status == S.CANCELED
        assert eventually(lambda: pid_gone(first_pid), 5)
        assert tl.start_new(getpid, scheduler=procs).result(WAIT) != first_pid
        stats = procs.statistics()
        assert stats.tasks_killed == 1
        assert stats.crashes == 0
        assert stats.restarts == 1


def test_cancel_after_is_a_per_task_timeout(procs: tl.ProcessScheduler) -> None:
    cts = tl.CancellationTokenSource()
    cts.cancel_after(0.3)
    started = time.monotonic()
    task = tl.start_new(sleep_then_pid, 60, token=cts.token, scheduler=procs)
    with pytest.raises(tl.TaskCanceledError):
        task.result(WAIT)
    assert task.status == S.CANCELED
    assert time.monotonic() - started < WAIT
    assert tl.start_new(square, 4, scheduler=procs).result(WAIT) == 16


def test_a_queued_task_whose_token_is_canceled_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with tl.ProcessScheduler(1) as procs:
        blocker = tl.start_new(sleep_then_pid, 0.5, scheduler=procs)
        cts = tl.CancellationTokenSource()
        queued = tl.start_new(touch, str(marker), token=cts.token, scheduler=procs)
        cts.cancel()
        assert queued.status == S.CANCELED
        blocker.result(WAIT)
        assert tl.start_new(square, 2, scheduler=procs).result(WAIT) == 4
    assert not marker.exists()


def test_canceling_a_task_queued_behind_another_in_a_worker_skips_it(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with tl.ProcessScheduler(1) as procs:
        # Tiny tasks teach the scheduler to send several tasks per worker at once.
        for i in range(200):
            tl.start_new(square, i, scheduler=procs).result(WAIT)
        go = tmp_path / "go"
        blocker = tl.start_new(wait_for_file_then_pid, str(go), WAIT, scheduler=procs)
        cts = tl.CancellationTokenSource()
        behind = tl.start_new(touch, str(marker), token=cts.token, scheduler=procs)
        assert eventually(lambda: behind.status == S.RUNNING)  # sent to the worker
        try:
            cts.cancel()  # acted on by the manager thread: skipped in the worker, no kill
            assert eventually(lambda: behind.status == S.CANCELED)
        finally:
            go.write_text("go")
        pid = blocker.result(WAIT)
        assert tl.start_new(getpid, scheduler=procs).result(WAIT) == pid  # nobody was killed
        assert procs.statistics().tasks_killed == 0
    assert not marker.exists()


def test_many_threads_submitting_at_once() -> None:
    with tl.ProcessScheduler(2) as procs:
        results: list[list[int]] = [[] for _ in range(4)]

        def submit(k: int) -> None:
            tasks = [tl.start_new(square, i, scheduler=procs) for i in range(500)]
            results[k] = [t.result(WAIT) for t in tasks]

        threads = [threading.Thread(target=submit, args=(k,)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
        assert results == [[i * i for i in range(500)]] * 4


# -- shared memory --------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_200mb_array_round_trip_through_shared_memory(procs: tl.ProcessScheduler) -> None:
    data = np.arange(25_000_000, dtype=np.float64)  # 200 MB
    result = tl.start_new(double_array, data, scheduler=procs).result(WAIT)
    assert result.shape == data.shape
    assert np.array_equal(result, data * 2)
    assert procs.statistics().shared_memory_bytes >= 2 * data.nbytes
    del result
    assert our_segments() == []


def first_of(a: Any, _b: Any) -> Any:
    return a


def test_unpicklable_argument_after_a_big_buffer_leaves_no_segment(
    procs: tl.ProcessScheduler,
) -> None:
    # The array goes to shared memory before pickling fails on the lock.
    task = tl.start_new(first_of, np.ones(1_000_000), threading.Lock(), scheduler=procs)
    exc = error_of(task)
    assert isinstance(exc, TypeError)
    assert "argument 1" in str(exc)
    assert our_segments() == []


def test_large_bytes_bytearray_memoryview(procs: tl.ProcessScheduler) -> None:
    blob = os.urandom(200_000)
    before = procs.statistics().shared_memory_bytes
    assert tl.start_new(identity, blob, scheduler=procs).result(WAIT) == blob
    back = tl.start_new(identity, bytearray(blob), scheduler=procs).result(WAIT)
    assert type(back) is bytearray
    assert back == blob
    view = tl.start_new(identity, [memoryview(blob)], scheduler=procs).result(WAIT)[0]
    assert type(view) is memoryview
    assert bytes(view) == blob
    assert procs.statistics().shared_memory_bytes - before >= 6 * len(blob)
    small = tl.start_new(identity, b"x" * 100, scheduler=procs).result(WAIT)
    assert small == b"x" * 100


# -- task features with process tasks -----------------------------------------------------------


def test_continuations_and_when_all(procs: tl.ProcessScheduler) -> None:
    first = tl.start_new(square, 3, scheduler=procs)
    on_threads = first.continue_with(lambda t: t.result() + 1)
    in_process = first.continue_with(antecedent_result_plus, 100, scheduler=procs)
    then = first.then(square, scheduler=procs)
    both = tl.when_all(first, then)
    assert on_threads.result(WAIT) == 10
    assert in_process.result(WAIT) == 109
    assert then.result(WAIT) == 81
    assert both.result(WAIT) == [9, 81]


def test_await_a_process_task(procs: tl.ProcessScheduler) -> None:
    import asyncio

    async def main() -> int:
        return await tl.start_new(square, 12, scheduler=procs)

    assert asyncio.run(main()) == 144


# -- lifecycle ------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
@pytest.mark.timeout(90)
def test_spawn_and_forkserver_contexts(method: str) -> None:
    with tl.ProcessScheduler(1, mp_context=method) as procs:
        assert tl.start_new(square, 7, scheduler=procs).result(WAIT) == 49
        assert tl.start_new(lambda x: x * 3, 5, scheduler=procs).result(WAIT) == 15
        exc = error_of(tl.start_new(crash_or_square, 1, "exit", scheduler=procs))
        assert isinstance(exc, tl.WorkerCrashedError)
        assert tl.start_new(square, 8, scheduler=procs).result(WAIT) == 64


def test_initializer_runs_in_each_worker() -> None:
    with tl.ProcessScheduler(1, initializer=remember, initargs=(42,)) as procs:
        assert tl.start_new(initialized, scheduler=procs).result(WAIT) == [42]


def test_failing_initializer_faults_queued_tasks_but_not_the_pool() -> None:
    with tl.ProcessScheduler(1, initializer=failing_initializer) as procs:
        tasks = [tl.start_new(square, i, scheduler=procs) for i in range(3)]
        for task in tasks:
            exc = error_of(task)
            assert isinstance(exc, tl.WorkerCrashedError)
            assert "initializer" in str(exc)
            assert "no database here" in str(exc)
        # Not broken: the next task tries a new worker (which fails the same way).
        exc = error_of(tl.start_new(square, 1, scheduler=procs))
        assert "initializer" in str(exc)


def test_max_tasks_per_child_recycles_workers() -> None:
    with tl.ProcessScheduler(1, max_tasks_per_child=2) as procs:
        pids = [tl.start_new(getpid, scheduler=procs).result(WAIT) for _ in range(6)]
        assert len(set(pids)) == 3
        assert pids[0] == pids[1]
        assert pids[2] == pids[3]
        assert pids[4] == pids[5]
        stats = procs.statistics()
        assert stats.crashes == 0
        assert stats.restarts == 2


def test_shutdown_wait_drains_and_refuses_new_work() -> None:
    procs = tl.ProcessScheduler(2)
    tasks = [tl.start_new(sleep_then_pid, 0.05, scheduler=procs) for _ in range(10)]
    pids = {tl.start_new(getpid, scheduler=procs).result(WAIT)}
    procs.shutdown(wait=True)
    assert all(t.status == S.RAN_TO_COMPLETION for t in tasks)
    pids |= {t.result() for t in tasks}
    assert all(pid_gone(pid) for pid in pids)
    late = tl.start_new(square, 1, scheduler=procs)
    assert isinstance(error_of(late), tl.InvalidOperationError)
    assert procs.statistics().workers_alive == 0


def test_shutdown_without_wait_returns_at_once_and_still_drains() -> None:
    procs = tl.ProcessScheduler(1)
    task = tl.start_new(sleep_then_pid, 1.0, scheduler=procs)
    assert eventually(lambda: task.status == S.RUNNING)
    started = time.monotonic()
    procs.shutdown(wait=False)
    assert time.monotonic() - started < 0.5
    pid = task.result(WAIT)
    assert eventually(lambda: pid_gone(pid), 10)


def _run_script(source: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_shutdown_without_wait_leaves_nothing_at_exit() -> None:
    done = _run_script(
        """
        import os, time
        import taskloom as tl

        def slow():
            time.sleep(0.5)
            return os.getpid()

        if __name__ == "__main__":
            procs = tl.ProcessScheduler(2)
            tasks = [tl.start_new(slow, scheduler=procs) for _ in range(2)]
            while any(t.status != tl.TaskStatus.RUNNING for t in tasks):
                time.sleep(0.01)
            print(" ".join(str(p.pid) for p in __import__("psutil").Process().children()))
            procs.shutdown(wait=False)
        """
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    pids = [int(p) for p in done.stdout.split()]
    assert len(pids) == 2
    assert all(pid_gone(pid) for pid in pids)


def test_workers_exit_when_the_parent_is_killed() -> None:
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import os, sys, time
                import taskloom as tl

                def pid():
                    time.sleep(0.2)
                    return os.getpid()

                if __name__ == "__main__":
                    procs = tl.ProcessScheduler(2)
                    tasks = [tl.start_new(pid, scheduler=procs) for _ in range(2)]
                    print(" ".join(str(t.result()) for t in tasks), flush=True)
                    tl.start_new(time.sleep, 60, scheduler=procs)
                    time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        pids = [int(p) for p in line.split()]
        assert pids, "the parent printed no worker pids"
        time.sleep(0.3)
        parent.send_signal(signal.SIGKILL)
        parent.wait(WAIT)
        assert eventually(lambda: all(pid_gone(pid) for pid in pids), 5), pids
    finally:
        parent.kill()
        parent.wait(WAIT)
        if parent.stdout is not None:
            parent.stdout.close()


# -- input checks and statistics ------------------------------------------------------------


def test_bad_arguments_fail_at_the_call() -> None:
    with pytest.raises(ValueError, match="max_workers"):
        tl.ProcessScheduler(0)
    with pytest.raises(TypeError, match="max_workers"):
        tl.ProcessScheduler("2")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="mp_context"):
        tl.ProcessScheduler(1, mp_context=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        tl.ProcessScheduler(1, mp_context="nonsense")
    with pytest.raises(TypeError, match="initializer"):
        tl.ProcessScheduler(1, initializer=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="initargs"):
        tl.ProcessScheduler(1, initializer=remember, initargs=[1])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_tasks_per_child"):
        tl.ProcessScheduler(1, max_tasks_per_child=0)


def test_statistics_and_lazy_start() -> None:
    procs = tl.ProcessScheduler(2)
    try:
        stats = procs.statistics()
        assert isinstance(stats, tl.ProcessSchedulerStatistics)
        assert stats.workers_alive == 0
        assert stats.maximum_concurrency_level == 2
        assert procs.maximum_concurrency_level == 2
        assert [tl.start_new(square, i, scheduler=procs).result(WAIT) for i in range(3)] == [
            0,
            1,
            4,
        ]
        stats = procs.statistics()
        assert stats.tasks_completed == 3
        assert stats.tasks_running == 0
        assert stats.tasks_queued == 0
        assert 1 <= stats.workers_alive <= 2
    finally:
        procs.shutdown()
