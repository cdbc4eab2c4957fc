"""The examples of the seed documents, ported to taskloom and checked.

Sources (see ``shared/seeds/README.md``): the .NET "Task-based asynchronous
programming" overview (001) and "Attached and detached child tasks" (002). Each
test names the scenario it ports; the C# originals print to the console, so the
ports collect their "output" in a list and assert on what the original shows,
minus the parts that depend on thread timing. Ordering that the originals leave
to chance is pinned with events, never with sleeps.
"""

from __future__ import annotations

import contextvars
import dataclasses
import random
import threading
import time
from typing import Any

import pytest

import taskloom as tl
from taskloom import TaskCreationOptions as TCR
from taskloom import TaskStatus as S

WAIT = 30.0


@pytest.fixture
def pool() -> Any:
    """Two workers of our own, so examples that need two tasks at once always get them."""
    scheduler = tl.WorkStealingScheduler(2)
    yield scheduler
    scheduler.shutdown(wait=True)


class Console:
    """A thread-safe stand-in for ``Console.WriteLine``."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def write_line(self, line: str) -> None:
        with self._lock:
            self.lines.append(line)


# -- "Parallel.Invoke(() => DoSomeWork(), () => DoSomeOtherWork())" -----------------------


def test_fork_join_runs_both_functions_in_parallel(pool: tl.TaskScheduler) -> None:
    # Both must be inside their bodies at the same time to pass the barrier.
    barrier = threading.Barrier(2, timeout=WAIT)
    console = Console()

    def do_some_work() -> str:
        barrier.wait()
        console.write_line("some work")
        return "a"

    def do_some_other_work() -> str:
        barrier.wait()
        console.write_line("other work")
        return "b"

    forked = [tl.start_new(fn, scheduler=pool) for fn in (do_some_work, do_some_other_work)]
    assert tl.wait_all(*forked, timeout=WAIT)  # the join
    assert [t.result() for t in forked] == ["a", "b"]
    assert sorted(console.lines) == ["other work", "some work"]


# -- "new Task(...); taskA.Start(); ...; taskA.Wait()" and "Task.Run(...)" --------------------


@pytest.mark.parametrize("style", ["create_then_start", "run"])
def test_hello_from_task_a(style: str) -> None:
    console = Console()

    def hello() -> None:
        console.write_line(f"Hello from taskA on {threading.current_thread().name}.")

    if style == "create_then_start":
        task_a = tl.Task(hello)
        assert task_a.status is S.CREATED  # nothing runs before Start()
        task_a.start()
    else:
        task_a = tl.run(hello)
    console.write_line(f"Hello from thread '{threading.current_thread().name}'.")
    assert task_a.wait(WAIT)
    assert f"Hello from thread '{threading.main_thread().name}'." in console.lines
    (hello_line,) = [line for line in console.lines if line.startswith("Hello from taskA")]
    assert threading.main_thread().name not in hello_line  # it ran on a pool thread


# -- "Task.Factory.StartNew((Object obj) => ..., new CustomData() {...})" + AsyncState --------


@dataclasses.dataclass
class CustomData:
    name: int
    creation_time: int
    thread_num: int = 0


def test_start_new_with_state_each_task_sees_its_own() -> None:
    def body(data: CustomData) -> None:
        data.thread_num = threading.get_ident()

    task_array = []
    for i in range(10):
        data = CustomData(name=i, creation_time=time.monotonic_ns())
        task_array.append(tl.start_new(body, data, state=data))
    assert tl.wait_all(*task_array, timeout=WAIT)
    for i, task in enumerate(task_array):
        data = task.async_state
        assert isinstance(data, CustomData)
        assert data.name == i
        assert data.thread_num not in (0, threading.get_ident())
        assert task.status is S.RAN_TO_COMPLETION


def test_closures_over_the_loop_variable_see_its_last_value() -> None:
    """The seed's "unexpected result": a lambda reads ``i`` when it runs, not when made.

    The tasks are created cold and started after the loop, which is the timing the
    original's output shows (every task reports #10); passing ``i`` as an argument
    or as ``state`` gives each task its own value.
    """
    late = [tl.Task(lambda: i) for i in range(10)]  # noqa: B023 - the point of the example
    own = [tl.Task(lambda n: n, i, state=i) for i in range(10)]
    for task in late + own:
        task.start()
    assert tl.wait_all(*late, *own, timeout=WAIT)
    assert [t.result() for t in late] == [9] * 10  # Python's range leaves i at 9
    assert [t.result() for t in own] == list(range(10))
    assert [t.async_state for t in own] == list(range(10))


# -- "Task<Double>.Factory.StartNew(() => DoComputation(1.0))" ... "taskArray[i].Result" ------


def do_computation(start: float) -> float:
    total = 0.0
    value = start
    while value <= start + 10:
        total += value
        value += 0.1
    return total


def test_result_blocks_for_the_value() -> None:
    gate = threading.Event()

    def computation(start: float) -> float:
        assert gate.wait(WAIT)
        return do_computation(start)

    task_array = [tl.start_new(computation, start) for start in (1.0, 100.0, 1000.0)]
    assert not any(t.is_completed for t in task_array)  # still gated: .result() must block
    threading.Timer(0.01, gate.set).start()
    results = [t.result(WAIT) for t in task_array]
    line = " + ".join(f"{r:,.1f}" for r in results) + f" = {sum(results):,.1f}"
    assert line == "606.0 + 10,605.0 + 100,495.0 = 111,706.0"


# -- Culture flowing into tasks (.NET 4.6): here, a contextvars.ContextVar --------------------

culture: contextvars.ContextVar[str] = contextvars.ContextVar("culture", default="en-US")


def test_ambient_context_flows_into_run_and_run_synchronously() -> None:
    def format_values() -> tuple[str, int]:
        return culture.get(), threading.get_ident()

    token = culture.set("fr-FR")
    try:
        direct = format_values()
        t1 = tl.run(format_values)
        t2 = tl.Task(format_values)
        t2.run_synchronously()
        assert direct == ("fr-FR", threading.get_ident())
        assert t1.result(WAIT)[0] == "fr-FR"  # asynchronously, on a pool thread
        assert t1.result()[1] != threading.get_ident()
        assert t2.result() == ("fr-FR", threading.get_ident())  # synchronously, here
    finally:
        culture.reset(token)


# -- getData -> processData -> displayData: N, total and mean of 100 random numbers -----------


def _get_data(seed: int) -> list[int]:
    rnd = random.Random(seed)
    return [rnd.randrange(2**31 - 1) for _ in range(100)]


def _process_data(x: tl.Task[list[int]]) -> tuple[int, int, float]:
    values = x.result()
    n = len(values)
    total = sum(values)
    return n, total, total / n


def _display_data(x: tl.Task[tuple[int, int, float]]) -> str:
    n, total, mean = x.result()
    return f"N={n:,}, Total = {total:,}, Mean = {mean:,.2f}"


def _expected(seed: int) -> str:
    values = _get_data(seed)
    return f"N=100, Total = {sum(values):,}, Mean = {sum(values) / 100:,.2f}"


def test_three_step_continuation_chain() -> None:
    get_data = tl.start_new(_get_data, 7)
    process_data = get_data.continue_with(_process_data)
    display_data = process_data.continue_with(_display_data)
    assert display_data.result(WAIT) == _expected(7)
    assert display_data.result().startswith("N=100, Total = ")


def test_three_step_continuation_chain_fluent() -> None:
    display_data = (
        tl.start_new(_get_data, 11).continue_with(_process_data).continue_with(_display_data)
    )
    assert display_data.result(WAIT) == _expected(11)


# -- Detached child: "Outer task completed." comes before "Detached task completed." ----------


def test_detached_child_does_not_hold_up_its_parent(pool: tl.TaskScheduler) -> None:
    console = Console()
    outer_done = threading.Event()
    children: list[tl.Task[None]] = []

    def child() -> None:
        assert outer_done.wait(WAIT)  # the original's SpinWait, made deterministic
        console.write_line("Detached task completed.")

    def outer() -> None:
        console.write_line("Outer task beginning.")
        children.append(tl.start_new(child))

    outer_task = tl.start_new(outer, scheduler=pool)
    assert outer_task.wait(WAIT)
    console.write_line("Outer task completed.")
    outer_done.set()
    assert children[0].wait(WAIT)
    assert console.lines == [
        "Outer task beginning.",
        "Outer task completed.",
        "Detached task completed.",
    ]


def test_parent_reading_a_detached_childs_result_waits_for_it(pool: tl.TaskScheduler) -> None:
    def parent() -> int:
        child = tl.start_new(lambda: sum(range(10_000)))  # detached: the default
        return child.result(WAIT)  # ...but reading its result waits for it

    assert tl.start_new(parent, scheduler=pool).result(WAIT) == sum(range(10_000))


# -- Attached children: ten children complete before "Parent task completed." -----------------


def test_ten_attached_children_complete_before_the_parent(pool: tl.TaskScheduler) -> None:
    console = Console()

    def child(x: int) -> None:
        console.write_line(f"Attached child #{x} completed.")

    def parent() -> None:
        console.write_line("Parent task beginning.")
        for task_no in range(10):
            tl.start_new(child, task_no, state=task_no, options=TCR.ATTACHED_TO_PARENT)

    parent_task = tl.start_new(parent, scheduler=pool)
    assert parent_task.wait(WAIT)
    console.write_line("Parent task completed.")
    assert console.lines[0] == "Parent task beginning."
    assert sorted(console.lines[1:11]) == sorted(
        f"Attached child #{i} completed." for i in range(10)
    )
    assert console.lines[11] == "Parent task completed."


def test_deny_child_attach_keeps_children_detached(pool: tl.TaskScheduler) -> None:
    gate = threading.Event()
    children: list[tl.Task[bool]] = []

    def parent() -> None:
        children.append(tl.start_new(gate.wait, WAIT, options=TCR.ATTACHED_TO_PARENT))

    parent_task = tl.start_new(parent, options=TCR.DENY_CHILD_ATTACH, scheduler=pool)
    assert parent_task.wait(WAIT)  # did not wait for the "attached" child
    assert not children[0].is_completed
    gate.set()
    assert children[0].wait(WAIT)


# -- Exceptions and children (002) ------------------------------------------------------------


def test_attached_child_exception_propagates_to_the_parent(pool: tl.TaskScheduler) -> None:
    def child() -> None:
        raise ValueError("child failed")

    def parent() -> None:
        tl.start_new(child, options=TCR.ATTACHED_TO_PARENT)
        tl.start_new(child, options=TCR.ATTACHED_TO_PARENT)

    parent_task = tl.start_new(parent, scheduler=pool)
    with pytest.raises(tl.AggregateError) as info:
        parent_task.wait(WAIT)
    assert [str(e) for e in info.value.exceptions] == ["child failed", "child failed"]
    assert parent_task.status is S.FAULTED


def test_detached_child_exception_must_be_observed_by_the_parent(pool: tl.TaskScheduler) -> None:
    def parent() -> str:
        child = tl.start_new(lambda: 1 / 0)  # detached
        try:
            child.wait(WAIT)
        except ZeroDivisionError:
            return "handled in the parent"
        return "not raised"

    parent_task = tl.start_new(parent, scheduler=pool)
    assert parent_task.result(WAIT) == "handled in the parent"


# -- "Task.WaitAll(tasks)" and exceptions gathered into an AggregateException -----------------


def test_wait_all_blocks_until_all_complete(pool: tl.TaskScheduler) -> None:
    console = Console()
    tasks = [
        tl.start_new(console.write_line, name, scheduler=pool)
        for name in ("MethodA", "MethodB", "MethodC")
    ]
    assert tl.wait_all(*tasks, timeout=WAIT)  # block until all complete
    assert sorted(console.lines) == ["MethodA", "MethodB", "MethodC"]


def test_wait_all_with_exceptions(pool: tl.TaskScheduler) -> None:
    def method_a() -> str:
        return "A"

    def method_b() -> str:
        raise KeyError("B")

    def method_c() -> str:
        raise ValueError("C")

    tasks = [tl.start_new(fn, scheduler=pool) for fn in (method_a, method_b, method_c)]
    with pytest.raises(tl.AggregateError) as info:
        tl.wait_all(*tasks, timeout=WAIT)
    agg = info.value
    assert {type(e) for e in agg.inner_exceptions} == {KeyError, ValueError}
    # handle(): mark KeyErrors handled; what is left comes back as a new AggregateError
    with pytest.raises(tl.AggregateError) as rest:
        agg.handle(lambda e: isinstance(e, KeyError))
    assert [type(e) for e in rest.value.exceptions] == [ValueError]
    agg.handle(lambda e: True)  # all handled: returns without raising
    # every task is complete; the ones that faulted expose their exception
    assert [t.status for t in tasks] == [S.RAN_TO_COMPLETION, S.FAULTED, S.FAULTED]
    assert tasks[0].result() == "A"
    assert isinstance(tasks[1].exception(), KeyError)


def test_wait_all_with_except_star(pool: tl.TaskScheduler) -> None:
    tasks = [tl.start_new(lambda m=m: int(m), scheduler=pool) for m in ("1", "x", "y")]
    caught: list[BaseException] = []
    try:
        tl.wait_all(*tasks, timeout=WAIT)
    except* ValueError as group:
        caught.extend(group.exceptions)
    assert len(caught) == 2


# -- WhenAll, WhenAny, Delay, FromResult ------------------------------------------------------


def test_when_all_waits_for_non_uniform_tasks(pool: tl.TaskScheduler) -> None:
    number = tl.start_new(lambda: 42, scheduler=pool)
    text = tl.start_new(lambda: "text", scheduler=pool)
    nothing = tl.start_new(lambda: None, scheduler=pool)
    assert tl.when_all(number, text, nothing).result(WAIT) == [42, "text", None]


def test_when_any_redundant_operations_first_wins_and_the_rest_are_canceled(
    pool: tl.TaskScheduler,
) -> None:
    with tl.CancellationTokenSource() as cts:
        token = cts.token

        def fast() -> str:
            return "fast"

        def slow() -> str:
            token.wait(WAIT)  # works until told to stop
            token.throw_if_cancellation_requested()
            return "slow"

        slow_task = tl.start_new(slow, token=token, scheduler=pool)
        fast_task = tl.start_new(fast, token=token, scheduler=pool)
        winner = tl.when_any(slow_task, fast_task).result(WAIT)
        assert winner is fast_task
        assert winner.result() == "fast"
        cts.cancel()  # cancel the remaining operations
        with pytest.raises(tl.TaskCanceledError):
            slow_task.wait(WAIT)


def test_when_any_interleaved_processing(pool: tl.TaskScheduler) -> None:
    gates = [threading.Event() for _ in range(2)]
    pending = {
        tl.start_new(lambda g=g, i=i: g.wait(WAIT) and i, scheduler=pool)
        for i, g in enumerate(gates)
    }
    processed = []
    gates[1].set()
    while pending:
        done = tl.when_any(*pending).result(WAIT)
        pending.remove(done)
        processed.append(done.result())
        gates[0].set()
    assert processed == [1, 0]


def test_when_any_with_delay_expires_an_operation(pool: tl.TaskScheduler) -> None:
    gate = threading.Event()
    operation = tl.start_new(gate.wait, WAIT, scheduler=pool)
    timeout = tl.delay(0.02)
    assert tl.when_any(operation, timeout).result(WAIT) is timeout  # the operation expired
    gate.set()
    assert operation.result(WAIT) is True


def test_delay() -> None:
    started = time.monotonic()
    assert tl.delay(0.05).wait(WAIT)
    assert time.monotonic() - started >= 0.04  # not before (never asserted: how much after)


def test_from_result_serves_pre_computed_values(pool: tl.TaskScheduler) -> None:
    cache: dict[str, str] = {"cached": "from the cache"}
    downloads: list[str] = []

    def download(address: str) -> str:
        downloads.append(address)
        return f"downloaded {address}"

    def download_string(address: str) -> tl.Task[str]:
        if address in cache:
            return tl.from_result(cache[address])
        return tl.start_new(download, address, scheduler=pool).then(
            lambda s: cache.setdefault(address, s)
        )

    first = tl.when_all(*(download_string(a) for a in ("cached", "new", "cached")))
    assert first.result(WAIT) == ["from the cache", "downloaded new", "from the cache"]
    assert download_string("new").result(WAIT) == "downloaded new"
    assert downloads == ["new"]  # the second request was served from the cache


# -- Cancellation of a task and its children ("How to: Cancel a Task and Its Children") -------


def test_cancel_a_task_and_its_children() -> None:
    # Three bodies block at once (they poll their token), so three workers.
    pool = tl.WorkStealingScheduler(3)
    try:
        _cancel_a_task_and_its_children(pool)
    finally:
        pool.shutdown(wait=True)


def _cancel_a_task_and_its_children(pool: tl.TaskScheduler) -> None:
    tasks: list[tl.Task[Any]] = []
    lock = threading.Lock()
    children_started = threading.Barrier(3, timeout=WAIT)  # two children + the test

    with tl.CancellationTokenSource() as cts:
        token = cts.token

        def do_some_work(task_num: int) -> None:
            token.throw_if_cancellation_requested()  # canceled before it got going?
            if task_num > 0:
                children_started.wait()
            while not token.wait(WAIT):  # poll for cancellation, without spinning
                pass
            token.throw_if_cancellation_requested()

        def parent() -> None:
            for i in (1, 2):
                child = tl.start_new(do_some_work, i, token=token)
                with lock:
                    tasks.append(child)
            do_some_work(0)

        parent_task = tl.start_new(parent, token=token, scheduler=pool)
        tasks.append(parent_task)
        children_started.wait()
        cts.cancel()
        with pytest.raises(tl.TaskCanceledError):
            tl.wait_all(*tasks, timeout=WAIT)
        with lock:
            assert len(tasks) == 3
            assert [t.status for t in tasks] == [S.CANCELED] * 3


def test_parent_canceled_before_its_child_starts(pool: tl.TaskScheduler) -> None:
    ran = threading.Event()
    children: list[tl.Task[Any]] = []
    hold = threading.Event()

    class Held(tl.TaskScheduler):
        """Holds the child in its queue until the parent has canceled itself."""

        def queue_task(self, task: tl.Task[Any]) -> None:
            threading.Thread(target=self._later, args=(task,)).start()

        def _later(self, task: tl.Task[Any]) -> None:
            hold.wait(WAIT)
            self.try_execute_task(task)

        def try_execute_task_inline(
            self, task: tl.Task[Any], task_was_previously_queued: bool
        ) -> bool:
            return False

    held = Held()
    with tl.CancellationTokenSource() as cts:

        def parent() -> None:
            children.append(tl.start_new(ran.set, options=TCR.ATTACHED_TO_PARENT, scheduler=held))
            cts.cancel()
            hold.set()
            cts.token.throw_if_cancellation_requested()

        parent_task = tl.start_new(parent, token=cts.token, scheduler=pool)
        with pytest.raises(tl.TaskCanceledError):
            parent_task.wait(WAIT)
    assert children[0].status is S.CANCELED
    assert not ran.is_set()  # the child never started


def test_detached_child_canceled_with_the_parents_token_is_not_propagated(
    pool: tl.TaskScheduler,
) -> None:
    with tl.CancellationTokenSource() as cts:
        children: list[tl.Task[Any]] = []

        def child() -> None:
            cts.cancel()
            cts.token.throw_if_cancellation_requested()

        def parent() -> str:
            children.append(tl.start_new(child, token=cts.token))
            return "parent"

        parent_task = tl.start_new(parent, token=cts.token, scheduler=pool)
        assert parent_task.result(WAIT) == "parent"
        with pytest.raises(tl.TaskCanceledError):
            children[0].wait(WAIT)


def test_attached_child_canceled_with_the_parents_token_propagates(pool: tl.TaskScheduler) -> None:
    with tl.CancellationTokenSource() as cts:

        def child() -> None:
            cts.cancel()
            cts.token.throw_if_cancellation_requested()

        def parent() -> None:
            tl.start_new(child, token=cts.token, options=TCR.ATTACHED_TO_PARENT)
            tl.start_new(child, token=cts.token, options=TCR.ATTACHED_TO_PARENT)

        parent_task = tl.start_new(parent, token=cts.token, scheduler=pool)
        with pytest.raises(tl.AggregateError) as info:
            parent_task.wait(WAIT)
    assert all(isinstance(e, tl.TaskCanceledError) for e in info.value.exceptions)
    assert len(info.value.exceptions) == 2


# -- Creation options, TaskFactory defaults, tasks without delegates --------------------------


def test_long_running_and_prefer_fairness_options() -> None:
    task3 = tl.Task(threading.get_ident, options=TCR.LONG_RUNNING | TCR.PREFER_FAIRNESS)
    task3.start()
    assert task3.result(WAIT) != threading.get_ident()
    assert task3.creation_options == TCR.LONG_RUNNING | TCR.PREFER_FAIRNESS


def test_task_factory_options_apply_unless_the_call_overrides_them(pool: tl.TaskScheduler) -> None:
    factory = tl.TaskFactory(creation_options=TCR.PREFER_FAIRNESS, scheduler=pool)
    defaulted = factory.start_new(lambda: 1)
    overridden = factory.start_new(lambda: 2, options=TCR.LONG_RUNNING)
    assert tl.wait_all(defaulted, overridden, timeout=WAIT)
    assert defaulted.creation_options == TCR.PREFER_FAIRNESS
    assert overridden.creation_options == TCR.LONG_RUNNING


def test_task_completion_source_wraps_an_external_operation() -> None:
    """An operation driven by someone else's thread (here a ``threading.Timer``)."""

    def begin_operation(succeed: bool) -> tl.Task[str]:
        tcs: tl.TaskCompletionSource[str] = tl.TaskCompletionSource()

        def on_complete() -> None:
            if succeed:
                tcs.set_result("external result")
            else:
                tcs.set_exception(OSError("external failure"))

        threading.Timer(0.01, on_complete).start()
        return tcs.task

    assert begin_operation(True).then(str.upper).result(WAIT) == "EXTERNAL RESULT"
    failed = begin_operation(False).continue_with(lambda t: type(t.exception()).__name__)
    assert failed.result(WAIT) == "OSError"


def test_task_ids_identify_tasks(pool: tl.TaskScheduler) -> None:
    tasks = [tl.start_new(lambda: tl.current_task(), scheduler=pool) for _ in range(20)]
    assert tl.wait_all(*tasks, timeout=WAIT)
    assert len({t.id for t in tasks}) == 20
    assert all(t.result() is t for t in tasks)  # current_task() inside is the task itself
