"""Scheduler lifecycle: lazy threads, shutdown, context manager, garbage collection, exit.

Also the ambient schedulers (``default``/``current``/``from_current_loop``) and
the identity and statistics every scheduler has.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import gc
import os
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import pytest

import taskloom as tl
from tests import helpers

WAIT = 30.0


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT) -> bool:
    return helpers.wait_until(predicate, timeout)


def threads_named(prefix: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(prefix + "-")]


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


# -- threads start on first use -----------------------------------------------------------


def test_import_starts_no_thread() -> None:
    proc = run_python(
        """
        import threading
        import taskloom as tl
        tl.TaskScheduler.default()
        tl.WorkStealingScheduler(4)
        tl.LimitedConcurrencyScheduler(2)
        print(sorted(t.name for t in threading.enumerate()))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['MainThread']"


def test_threads_start_on_first_queued_task() -> None:
    sched = tl.WorkStealingScheduler(2, thread_name_prefix="lc-lazy")
    try:
        assert threads_named("lc-lazy") == []
        assert sched.statistics().threads == 0
        assert tl.start_new(lambda: 5, scheduler=sched).result(WAIT) == 5
        assert len(threads_named("lc-lazy")) == 2
        assert sched.statistics().threads_started == 2
    finally:
        sched.shutdown(wait=True)
    assert threads_named("lc-lazy") == []


# -- shutdown -----------------------------------------------------------------------------


def test_shutdown_drains_queued_work_then_joins_every_thread() -> None:
    sched = tl.WorkStealingScheduler(1, thread_name_prefix="lc-drain", max_threads=1)
    gate = threading.Event()
    done: list[int] = []
    blocker = tl.start_new(gate.wait, WAIT, scheduler=sched)
    queued = [tl.start_new(done.append, i, scheduler=sched) for i in range(10)]

    sched.shutdown(wait=False)  # returns at once although a task is blocked
    assert not blocker.done()
    assert threads_named("lc-drain")

    gate.set()
    sched.shutdown(wait=True)
    assert done == list(range(10))
    assert blocker.is_completed_successfully
    assert all(t.is_completed_successfully for t in queued)
    assert threads_named("lc-drain") == []
    assert sched.statistics().threads == 0


def test_work_spawned_by_running_work_is_accepted_while_draining() -> None:
    sched = tl.WorkStealingScheduler(2, thread_name_prefix="lc-spawn")
    gate = threading.Event()
    children: list[tl.Task[int]] = []

    def parent() -> None:
        assert gate.wait(WAIT)
        children.append(tl.start_new(lambda: 1))
        children.append(tl.start_new(lambda: 2, options=tl.TaskCreationOptions.PREFER_FAIRNESS))

    p = tl.start_new(parent, scheduler=sched)
    sched.shutdown(wait=False)
    gate.set()
    sched.shutdown(wait=True)
    assert p.is_completed_successfully
    assert [c.result(0) for c in children] == [1, 2]
    assert threads_named("lc-spawn") == []


def test_start_new_after_shutdown_returns_a_faulted_task() -> None:
    sched = tl.WorkStealingScheduler(1, thread_name_prefix="lc-after")
    assert tl.start_new(lambda: 1, scheduler=sched).result(WAIT) == 1
    sched.shutdown()
    t = tl.start_new(lambda: 1, scheduler=sched)
    assert t.is_faulted
    with pytest.raises(tl.InvalidOperationError, match="shut down"):
        t.result()

    cold = tl.Task(lambda: 1)
    cold.start(sched)
    assert isinstance(cold.exception(), tl.InvalidOperationError)

    # A continuation whose antecedent completes after shutdown faults the same way.
    tcs = tl.TaskCompletionSource[int]()
    cont = tcs.task.continue_with(lambda a: a.result(), scheduler=sched)
    tcs.set_result(3)
    assert isinstance(cont.exception(WAIT), tl.InvalidOperationError)


def test_shutdown_of_a_never_started_scheduler_and_twice() -> None:
    sched = tl.WorkStealingScheduler(2)
    sched.shutdown(wait=True)
    sched.shutdown(wait=True)
    sched.shutdown(wait=False)
    assert sched.statistics().threads_started == 0
    refused = tl.start_new(lambda: 1, scheduler=sched)
    assert isinstance(refused.exception(), tl.InvalidOperationError)


def test_shutdown_from_inside_one_of_its_tasks() -> None:
    sched = tl.WorkStealingScheduler(2, thread_name_prefix="lc-self")
    t = tl.start_new(lambda: sched.shutdown(wait=True), scheduler=sched)
    assert t.wait(WAIT)
    assert wait_until(lambda: threads_named("lc-self") == [])


def test_context_manager_shuts_down_on_exit() -> None:
    with tl.WorkStealingScheduler(2, thread_name_prefix="lc-with") as sched:
        tasks = [tl.start_new(lambda i=i: i, scheduler=sched) for i in range(50)]
        assert threads_named("lc-with")
    assert [t.result(0) for t in tasks] == list(range(50))
    assert threads_named("lc-with") == []
    assert isinstance(
        tl.start_new(lambda: 0, scheduler=sched).exception(), tl.InvalidOperationError
    )


def test_long_running_threads_are_joined_by_shutdown() -> None:
    sched = tl.WorkStealingScheduler(1, thread_name_prefix="lc-long")
    gate = threading.Event()
    t = tl.start_new(gate.wait, WAIT, options=tl.TaskCreationOptions.LONG_RUNNING, scheduler=sched)
    sched.shutdown(wait=False)
    assert not t.done()
    gate.set()
    sched.shutdown(wait=True)
    assert t.done()
    assert threads_named("lc-long") == []


# -- garbage collection ---------------------------------------------------------------------


def _use_and_forget(prefix: str) -> weakref.ref[tl.WorkStealingScheduler]:
    sched = tl.WorkStealingScheduler(2, thread_name_prefix=prefix)
    tasks = [tl.start_new(lambda i=i: i, scheduler=sched) for i in range(20)]
    tl.wait_all(*tasks, timeout=WAIT)
    return weakref.ref(sched)


def test_unreferenced_scheduler_is_collected_and_its_threads_exit() -> None:
    ref = _use_and_forget("lc-gc")
    assert len(threads_named("lc-gc")) == 2

    def collected() -> bool:
        gc.collect()
        return ref() is None

    # A worker may still hold its last task for an instant after completing it.
    assert wait_until(collected)
    for thread in threads_named("lc-gc"):
        thread.join(WAIT)
        assert not thread.is_alive()


def test_workers_hold_no_strong_reference_to_the_scheduler() -> None:
    sched = tl.WorkStealingScheduler(2, thread_name_prefix="lc-refs")
    try:
        tl.start_new(lambda: None, scheduler=sched).wait(WAIT)
        threads = threads_named("lc-refs")
        assert len(threads) == 2

        def only_frames_refer() -> bool:
            # Only this test's closure cell; a worker may hold its last task (which
            # refers to the scheduler) for an instant after completing it.
            gc.collect()
            return [type(r).__name__ for r in gc.get_referrers(sched)] == ["cell"]

        assert wait_until(only_frames_refer), gc.get_referrers(sched)
    finally:
        sched.shutdown(wait=True)


# -- interpreter exit ---------------------------------------------------------------------------


def test_exit_with_queued_work_on_the_default_scheduler_runs_it() -> None:
    proc = run_python(
        """
        import sys, threading
        import taskloom as tl
        gate = threading.Event()
        def slow(i):
            gate.wait(5)
            sys.stdout.write(f"ran {i}\\n")
        for i in range(20):
            tl.run(slow, i)
        gate.set()
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.split("\n")[:-1]) == sorted(f"ran {i}" for i in range(20))
    assert proc.stderr == ""


def test_exit_with_a_scheduler_never_shut_down() -> None:
    proc = run_python(
        """
        import sys, threading
        import taskloom as tl
        def say(word):
            sys.stdout.write(word + "\\n")  # one write: lines never interleave
        keep = tl.WorkStealingScheduler(2)
        dropped = tl.WorkStealingScheduler(2)
        gate = threading.Event()
        for s in (keep, dropped):
            tl.start_new(gate.wait, 5, scheduler=s)
            tl.start_new(say, "queued", scheduler=s)
        tl.start_new(say, "long", options=tl.TaskCreationOptions.LONG_RUNNING, scheduler=keep)
        tl.delay(3600)  # a pending timer must not keep the process alive
        del dropped
        gate.set()
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.split()) == ["long", "queued", "queued"]
    assert proc.stderr == ""


# -- ambient schedulers, identity, statistics ----------------------------------------------------


def test_default_is_a_shared_work_stealing_scheduler() -> None:
    default = tl.TaskScheduler.default()
    assert isinstance(default, tl.WorkStealingScheduler)
    assert tl.TaskScheduler.default() is default
    assert tl.TaskScheduler.current() is default  # no task runs on this thread
    assert tl.run(tl.TaskScheduler.current).result(WAIT) is default


def test_current_inside_a_task_is_its_scheduler_unless_hidden() -> None:
    with tl.WorkStealingScheduler(1) as sched:
        assert tl.start_new(tl.TaskScheduler.current, scheduler=sched).result(WAIT) is sched
        hidden = tl.start_new(
            tl.TaskScheduler.current,
            options=tl.TaskCreationOptions.HIDE_SCHEDULER,
            scheduler=sched,
        )
        assert hidden.result(WAIT) is tl.TaskScheduler.default()

        # start_new inside a task defaults to the current scheduler; run() to the default.
        def inner() -> tuple[tl.TaskScheduler, tl.TaskScheduler]:
            a = tl.start_new(tl.TaskScheduler.current).result(WAIT)
            b = tl.run(tl.TaskScheduler.current).result(WAIT)
            return a, b

        a, b = tl.start_new(inner, scheduler=sched).result(WAIT)
        assert a is sched
        assert b is tl.TaskScheduler.default()


def test_from_current_loop_off_a_loop_raises() -> None:
    with pytest.raises(tl.InvalidOperationError):
        tl.TaskScheduler.from_current_loop()
    with pytest.raises(tl.InvalidOperationError):
        tl.run(tl.TaskScheduler.from_current_loop).result(WAIT)


def test_scheduler_ids_are_unique_and_statistics_frozen() -> None:
    schedulers: list[tl.TaskScheduler] = [
        tl.WorkStealingScheduler(1),
        tl.WorkStealingScheduler(1),
        tl.LimitedConcurrencyScheduler(1),
        tl.TaskScheduler.default(),
    ]
    ids = [s.id for s in schedulers]
    assert len(set(ids)) == len(ids)
    assert all(i > 0 for i in ids)
    for s in schedulers:
        stats = s.statistics()
        assert dataclasses.is_dataclass(stats)
        assert stats.scheduler_id == s.id
        with pytest.raises(dataclasses.FrozenInstanceError):
            stats.scheduler_id = 0  # type: ignore[misc]
        assert repr(s) == f"<{type(s).__name__} id={s.id}>"
    for s in schedulers[:3]:
        s.shutdown()


def test_ids_are_unique_across_threads() -> None:
    ids: list[int] = []
    lock = threading.Lock()

    def make() -> None:
        mine = [tl.LimitedConcurrencyScheduler(1).id for _ in range(200)]
        with lock:
            ids.extend(mine)

    threads = [threading.Thread(target=make) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert len(set(ids)) == 800


def test_scheduler_argument_must_be_a_scheduler() -> None:
    def noop() -> None:
        pass

    bad: Any = "default"
    with pytest.raises(TypeError, match="scheduler"):
        tl.start_new(noop, scheduler=bad)
    with pytest.raises(TypeError, match="scheduler"):
        tl.Task(noop).start(bad)
    with pytest.raises(TypeError, match="inner"):
        tl.LimitedConcurrencyScheduler(1, inner=bad)


def test_collection_while_its_lock_is_held_does_not_deadlock() -> None:
    # The collector may run a scheduler's finalizer on any thread, including one
    # that holds the pool's lock (a cycle collected mid-spawn): it must not block.
    class Holder:
        def __init__(self) -> None:
            self.me = self  # a cycle: only the cyclic collector frees it
            self.sched = tl.WorkStealingScheduler(1, thread_name_prefix="lc-cycle")

    holder = Holder()
    tl.start_new(lambda: None, scheduler=holder.sched).wait(WAIT)
    core = holder.sched._core
    ref = weakref.ref(holder.sched)
    del holder
    finished = threading.Event()

    def collect_under_lock() -> None:
        with core.lock:
            # The worker may still hold its last task (which refers to the scheduler).
            deadline = time.monotonic() + WAIT
            while ref() is not None and time.monotonic() < deadline:
                gc.collect()
                time.sleep(0.005)
        finished.set()

    collector = threading.Thread(target=collect_under_lock, daemon=True)
    collector.start()
    assert finished.wait(WAIT)
    assert ref() is None
    assert wait_until(lambda: threads_named("lc-cycle") == [])


def _produce(
    sched: tl.WorkStealingScheduler, start: threading.Barrier, tasks: list[tl.Task[None]]
) -> None:
    start.wait()
    tasks.extend([tl.start_new(lambda: None, scheduler=sched) for _ in range(300)])


@pytest.mark.timeout(120)
def test_shutdown_racing_producers_leaves_no_task_stranded() -> None:
    # Every task queued around a shutdown either runs or faults; none is left
    # in a queue that no worker serves any more.
    for round_ in range(20):
        sched = tl.WorkStealingScheduler(2, thread_name_prefix=f"lc-race{round_}")
        tasks: list[tl.Task[None]] = []
        start = threading.Barrier(4, timeout=WAIT)
        producers = [
            threading.Thread(target=_produce, args=(sched, start, tasks)) for _ in range(3)
        ]
        for p in producers:
            p.start()
        start.wait()
        sched.shutdown(wait=True)
        for p in producers:
            p.join(WAIT)
        assert len(tasks) == 900
        _, not_done = concurrent.futures.wait(tasks, timeout=WAIT)
        assert not not_done
        for t in tasks:
            assert t.is_completed_successfully or isinstance(
                t.exception(), tl.InvalidOperationError
            )


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_gets_fresh_threads_and_refuses_the_parents_pools() -> None:
    # A forked child has none of the parent's threads: its copy of a parent pool is
    # shut down (never runs the parent's queued work twice), the default scheduler
    # and the timer start afresh on first use.
    proc = run_python(
        """
        import os, threading, warnings
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        import taskloom as tl
        from taskloom import _context
        mine = tl.WorkStealingScheduler(2)
        held = tl.WorkStealingScheduler(1)
        gate = threading.Event()
        assert tl.run(lambda: 1).result(5) == 1
        assert tl.delay(0.01).wait(5)
        blocker = tl.start_new(gate.wait, 5, scheduler=held)
        queued = [tl.start_new(print, "held", scheduler=held) for _ in range(3)]

        def fork_and_check():
            pid = os.fork()
            if pid:
                return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
            code = 1
            try:
                assert _context.local.worker is None
                assert tl.run(lambda: 41).result(5) == 41
                assert tl.delay(0.01).wait(5)
                cts = tl.CancellationTokenSource()
                cts.cancel_after(0.01)
                assert cts.token.wait(5)
                try:
                    tl.start_new(lambda: 0, scheduler=mine).result(5)
                except tl.InvalidOperationError:
                    code = 0
            finally:
                os._exit(code)

        # Fork from a pool worker too: the child's thread is no worker there.
        codes = [fork_and_check(), tl.start_new(fork_and_check, scheduler=mine).result(10)]
        print(*codes, flush=True)
        gate.set()
        tl.wait_all(blocker, *queued, timeout=5)
        """
    )
    assert proc.returncode == 0, proc.stderr
    # The child did not run the parent's queued work: "held" only from the parent.
    assert proc.stdout.split() == ["0", "0", "held", "held", "held"], proc.stderr
