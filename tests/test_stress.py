"""Random task graphs against a simple model, and memory stability (DESIGN 4).

Hypothesis draws small graphs: leaves (bodies that succeed, fail or are
canceled through their token; completion sources completed later, in a random
order; pre-made ``from_*`` tasks), ``continue_with`` with a random filter,
``then``, ``when_all``, ``when_any`` and parents with attached children. The
model predicts every node's outcome from its inputs (``when_all`` faults iff an
input faulted, with exactly those exceptions; a filtered-out continuation is
canceled; ``then`` takes over a fault or cancellation without running ...).
Every node must reach a final state within a generous bound - a deadlock fails
the test instead of hanging it - and match the model.

The memory check runs one fixed workload many times and asserts that no task
outlives its round and that traced memory stops growing after a warm-up. The
race tests release two threads together at the points where outcomes compete
(registering a continuation vs completing, ``cancel()`` vs ``start()``, a token
vs the scheduler, two winners of a ``when_any``) and check that exactly one
outcome happened, many times over.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import gc
import threading
import tracemalloc
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import taskloom as tl
from taskloom import TaskContinuationOptions as TCO
from taskloom import TaskCreationOptions as TCR

pytestmark = pytest.mark.scheduler_needs("in_process")

WAIT = 60.0

LEAVES = (
    "ok",
    "fault",
    "precanceled",
    "token_canceled",
    "tcs_ok",
    "tcs_fault",
    "tcs_canceled",
    "from_result",
    "from_exception",
)
FILTERS = (
    TCO.NONE,
    TCO.NOT_ON_RAN_TO_COMPLETION,
    TCO.NOT_ON_FAULTED,
    TCO.NOT_ON_CANCELED,
    TCO.ONLY_ON_RAN_TO_COMPLETION,
    TCO.ONLY_ON_FAULTED,
    TCO.ONLY_ON_CANCELED,
)
# antecedent outcome -> the filter bit that excludes it
_EXCLUDES = {
    "ran": TCO.NOT_ON_RAN_TO_COMPLETION,
    "faulted": TCO.NOT_ON_FAULTED,
    "canceled": TCO.NOT_ON_CANCELED,
}

Op = tuple[Any, ...]


@st.composite
def graphs(draw: st.DrawFn) -> tuple[list[Op], list[int]]:
    """A list of nodes, each built from earlier ones, plus a completion order for sources."""
    size = draw(st.integers(min_value=1, max_value=24))
    ops: list[Op] = []
    for i in range(size):
        kind = (
            "leaf"
            if i == 0
            else draw(st.sampled_from(["leaf", "leaf", "cont", "then", "all", "any", "parent"]))
        )
        earlier = st.integers(min_value=0, max_value=i - 1)
        if kind == "leaf":
            ops.append(("leaf", draw(st.sampled_from(LEAVES))))
        elif kind == "cont":
            ops.append(("cont", draw(earlier), draw(st.sampled_from(FILTERS)), draw(st.booleans())))
        elif kind == "then":
            ops.append(("then", draw(earlier), draw(st.booleans())))
        elif kind in ("all", "any"):
            ops.append((kind, draw(st.lists(earlier, min_size=1, max_size=4))))
        else:
            children = draw(st.lists(st.booleans(), max_size=4))
            ops.append(("parent", children, draw(st.booleans())))
    order = draw(st.permutations(range(size)))
    return ops, order


# == the model ==================================================================================

ANY = object()  # a value the model does not predict (the winner of a when_any)


@dataclasses.dataclass(frozen=True)
class Outcome:
    kind: str  # "ran", "faulted" or "canceled"
    value: Any = None
    errors: tuple[str, ...] = ()  # messages of the exceptions, sorted


def _fault(*messages: str) -> Outcome:
    return Outcome("faulted", errors=tuple(sorted(messages)))


def predict(ops: list[Op]) -> list[Outcome]:
    out: list[Outcome] = []
    for i, op in enumerate(ops):
        kind = op[0]
        if kind == "leaf":
            leaf = op[1]
            if leaf in ("ok", "tcs_ok", "from_result"):
                out.append(Outcome("ran", f"v{i}"))
            elif leaf in ("fault", "tcs_fault", "from_exception"):
                out.append(_fault(f"e{i}"))
            else:
                out.append(Outcome("canceled"))
        elif kind == "cont":
            _, src, option, raises = op
            if option & _EXCLUDES[out[src].kind]:
                out.append(Outcome("canceled"))
            else:
                out.append(_fault(f"e{i}") if raises else Outcome("ran", f"c{i}"))
        elif kind == "then":
            _, src, raises = op
            if out[src].kind != "ran":
                out.append(out[src])
            else:
                out.append(_fault(f"e{i}") if raises else Outcome("ran", f"t{i}"))
        elif kind == "all":
            inputs = [out[s] for s in op[1]]
            errors = [e for o in inputs for e in o.errors]
            if errors:
                out.append(_fault(*errors))
            elif any(o.kind == "canceled" for o in inputs):
                out.append(Outcome("canceled"))
            else:
                out.append(Outcome("ran", [o.value for o in inputs]))
        elif kind == "any":
            out.append(Outcome("ran", ANY))
        else:
            _, children, own_fault = op
            errors = [f"e{i}.{k}" for k, fails in enumerate(children) if fails]
            if own_fault:
                errors.append(f"e{i}")
            out.append(_fault(*errors) if errors else Outcome("ran", f"p{i}"))
    return out


def _messages(exc: BaseException) -> tuple[str, ...]:
    if isinstance(exc, tl.AggregateError):
        return tuple(sorted(str(e) for e in exc.flatten().exceptions))
    return (str(exc),)


def _matches(value: Any, expected: Any) -> bool:
    if expected is ANY:
        return True
    if isinstance(expected, list):
        return (
            isinstance(value, list)
            and len(value) == len(expected)
            and all(_matches(v, e) for v, e in zip(value, expected, strict=True))
        )
    return bool(value == expected)


# == building the graph =========================================================================


def _raise(message: str) -> None:
    raise ValueError(message)


def _child(message: str | None) -> None:
    if message is not None:
        _raise(message)


class Graph:
    """Builds the tasks of ``ops`` on ``scheduler``; ``finish()`` completes the outside parts."""

    def __init__(self, scheduler: tl.TaskScheduler) -> None:
        self.scheduler = scheduler
        self.tasks: list[tl.Task[Any]] = []
        self.sources: dict[int, tuple[tl.TaskCompletionSource[Any], str]] = {}
        self.cancel_sources: list[tl.CancellationTokenSource] = []

    def build(self, ops: list[Op]) -> None:
        for i, op in enumerate(ops):
            self.tasks.append(self._node(i, op))

    def _node(self, i: int, op: Op) -> tl.Task[Any]:
        sched = self.scheduler
        kind = op[0]
        if kind == "leaf":
            return self._leaf(i, op[1])
        if kind == "cont":
            _, src, option, raises = op

            def cont_body(antecedent: tl.Task[Any]) -> str:
                if raises:
                    _raise(f"e{i}")
                return f"c{i}"

            return self.tasks[src].continue_with(cont_body, options=option, scheduler=sched)
        if kind == "then":
            _, src, raises = op

            def then_body(value: Any) -> str:
                if raises:
                    _raise(f"e{i}")
                return f"t{i}"

            return self.tasks[src].then(then_body, scheduler=sched)
        if kind == "all":
            return tl.when_all(*(self.tasks[s] for s in op[1]))
        if kind == "any":
            return tl.when_any(*(self.tasks[s] for s in op[1]))
        _, children, own_fault = op

        def parent() -> str:
            for k, fails in enumerate(children):
                message = f"e{i}.{k}" if fails else None
                tl.start_new(_child, message, options=TCR.ATTACHED_TO_PARENT, scheduler=sched)
            if own_fault:
                _raise(f"e{i}")
            return f"p{i}"

        return tl.start_new(parent, scheduler=sched)

    def _leaf(self, i: int, leaf: str) -> tl.Task[Any]:
        sched = self.scheduler
        if leaf == "ok":
            return tl.start_new(lambda: f"v{i}", scheduler=sched)
        if leaf == "fault":
            return tl.start_new(_raise, f"e{i}", scheduler=sched)
        if leaf == "from_result":
            return tl.from_result(f"v{i}")
        if leaf == "from_exception":
            return tl.from_exception(ValueError(f"e{i}"))
        if leaf.startswith("tcs_"):
            tcs: tl.TaskCompletionSource[Any] = tl.TaskCompletionSource()
            self.sources[i] = (tcs, leaf)
            return tcs.task
        cts = tl.CancellationTokenSource()
        self.cancel_sources.append(cts)
        if leaf == "precanceled":
            cts.cancel()
            return tl.start_new(lambda: f"v{i}", token=cts.token, scheduler=sched)
        token = cts.token

        def until_canceled() -> None:  # cooperative: ends CANCELED once its token is
            token.wait(WAIT)
            token.throw_if_cancellation_requested()

        return tl.start_new(until_canceled, token=token, scheduler=sched)

    def finish(self, order: list[int]) -> None:
        """Cancel the tokens, then complete the sources in ``order`` from another thread."""
        for cts in self.cancel_sources:
            cts.cancel()

        def complete() -> None:
            for i in order:
                if i in self.sources:
                    tcs, leaf = self.sources[i]
                    if leaf == "tcs_ok":
                        tcs.set_result(f"v{i}")
                    elif leaf == "tcs_fault":
                        tcs.set_exception(ValueError(f"e{i}"))
                    else:
                        tcs.set_canceled()

        completer = threading.Thread(target=complete)
        completer.start()
        completer.join(WAIT)
        assert not completer.is_alive()

    def close(self) -> None:
        for cts in self.cancel_sources:
            cts.close()


@pytest.fixture
def quiet_unobserved() -> Iterator[list[BaseException]]:
    """Faults the random graphs leave unobserved are collected here, not logged."""
    seen: list[BaseException] = []
    tl.set_unobserved_exception_handler(lambda task, exc: seen.append(exc))
    try:
        yield seen
    finally:
        tl.set_unobserved_exception_handler(None)


@pytest.mark.timeout(300)
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
@given(graph=graphs())
def test_random_task_graphs_match_the_model(
    scheduler: tl.TaskScheduler,
    quiet_unobserved: list[BaseException],
    graph: tuple[list[Op], list[int]],
) -> None:
    ops, order = graph
    expected = predict(ops)
    g = Graph(scheduler)
    try:
        g.build(ops)
        g.finish(order)
        _, not_done = concurrent.futures.wait(g.tasks, timeout=WAIT)
        stuck = [i for i, t in enumerate(g.tasks) if t in not_done]
        assert not stuck, f"nodes never completed: {stuck}"
        for i, (task, want) in enumerate(zip(g.tasks, expected, strict=True)):
            where = f"node {i} {ops[i]!r}"
            assert task.is_completed, where
            if want.kind == "ran":
                assert task.is_completed_successfully, f"{where}: {task.status}"
                value = task.result()
                assert _matches(value, want.value), f"{where}: {value!r} != {want.value!r}"
                if ops[i][0] == "any":
                    winners = [g.tasks[s] for s in ops[i][1]]
                    assert any(value is w for w in winners), where
                    assert value.is_completed, where
            elif want.kind == "faulted":
                assert task.is_faulted, f"{where}: {task.status}"
                exc = task.exception()
                assert exc is not None
                assert _messages(exc) == want.errors, where
            else:
                assert task.is_canceled, f"{where}: {task.status}"
    finally:
        g.close()


# == memory stability ============================================================================


def _round(scheduler: tl.TaskScheduler, live: weakref.WeakSet[tl.Task[Any]]) -> None:
    """A fixed mix: chains, fan-in, attached children, tokens, completion sources, faults."""
    roots = [tl.start_new(lambda i=i: i, scheduler=scheduler) for i in range(50)]
    chains = [r.continue_with(lambda a: a.result() + 1, scheduler=scheduler) for r in roots]
    chains = [c.then(lambda v: v * 2, scheduler=scheduler) for c in chains]

    def parent() -> int:
        for _ in range(5):
            tl.start_new(lambda: None, options=TCR.ATTACHED_TO_PARENT, scheduler=scheduler)
        return 1

    parents = [tl.start_new(parent, scheduler=scheduler) for _ in range(10)]
    with tl.CancellationTokenSource() as cts:
        cts.cancel()
        canceled = [
            tl.start_new(lambda: 1, token=cts.token, scheduler=scheduler) for _ in range(20)
        ]
    sources = [tl.TaskCompletionSource[int]() for _ in range(20)]
    faulted = [tl.start_new(_raise, "x", scheduler=scheduler) for _ in range(10)]
    everything = tl.when_all(*chains, *parents, *(s.task for s in sources))
    first = tl.when_any(*faulted)
    for i, s in enumerate(sources):
        s.set_result(i)
    assert everything.result(WAIT)[:50] == [(i + 1) * 2 for i in range(50)]
    assert first.result(WAIT).is_faulted
    assert tl.wait_any(*canceled) == 0
    for t in faulted:
        assert t.exception(WAIT) is not None
    groups: list[list[Any]] = [roots, chains, parents, canceled, faulted, [everything, first]]
    for group in groups:
        live.update(group)


def _collected(live: weakref.WeakSet[tl.Task[Any]]) -> None:
    """Every task of the round is garbage, once the threads that completed them unwind.

    A waiter wakes while the completing thread still has the task in a local
    variable, so a reference may outlive the round by a moment - never for long.
    """
    pause = threading.Event()
    for _ in range(1000):
        gc.collect()
        if not live:
            return
        pause.wait(0.01)
    raise AssertionError(f"{len(live)} tasks outlived their round")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", ["workstealing", "limited"])
def test_memory_is_stable_over_repeated_rounds(name: str) -> None:
    from tests.schedulers import SCHEDULER_FACTORIES

    entry = SCHEDULER_FACTORIES[name]
    scheduler = entry()
    live: weakref.WeakSet[tl.Task[Any]] = weakref.WeakSet()
    tracemalloc.start()
    try:
        sizes = []
        for _ in range(12):
            _round(scheduler, live)
            _collected(live)
            sizes.append(tracemalloc.get_traced_memory()[0])
        # After a warm-up (pools, free lists, worker deques at full size), nine more rounds
        # of ~300 tasks each may not add what even one leaked task per round would.
        growth = sizes[-1] - sizes[3]
        assert growth < 256 * 1024, f"traced memory grew by {growth} bytes: {sizes}"
    finally:
        tracemalloc.stop()
        entry.close(scheduler)


def test_faulted_tasks_in_a_round_are_reported_exactly_once_if_unobserved(
    quiet_unobserved: list[BaseException],
) -> None:
    """Counterpart of the memory check: unobserved faults are collected *and* reported."""
    tasks = [tl.from_exception(ValueError(str(i))) for i in range(20)]
    for t in tasks[:10]:
        t.exception()
    del tasks, t
    gc.collect()
    counts = collections.Counter(str(e) for e in quiet_unobserved)
    assert sorted(counts, key=int) == [str(i) for i in range(10, 20)]
    assert set(counts.values()) == {1}


# == races: exactly one outcome ===================================================================

ROUNDS = 300


def _race(first: Callable[[], object], second: Callable[[], object]) -> None:
    """Run ``first`` here and ``second`` on another thread, released together."""
    barrier = threading.Barrier(2, timeout=WAIT)

    def other() -> None:
        barrier.wait()
        second()

    thread = threading.Thread(target=other)
    thread.start()
    barrier.wait()
    first()
    thread.join(WAIT)
    assert not thread.is_alive()


def _register_while_completing(scheduler: tl.TaskScheduler) -> None:
    tcs: tl.TaskCompletionSource[int] = tl.TaskCompletionSource()
    calls: list[str] = []
    conts: list[tl.Task[None]] = []

    def register() -> None:
        conts.append(
            tcs.task.continue_with(
                lambda a: calls.append("continuation"),
                options=TCO.EXECUTE_SYNCHRONOUSLY,
                scheduler=scheduler,
            )
        )
        tcs.task.add_done_callback(lambda t: calls.append("callback"))

    _race(lambda: tcs.set_result(1), register)
    assert conts[0].wait(WAIT)
    assert sorted(calls) == ["callback", "continuation"]


@pytest.mark.timeout(120)
def test_continuations_registered_while_completing_run_exactly_once(
    scheduler: tl.TaskScheduler,
) -> None:
    for _ in range(ROUNDS):
        _register_while_completing(scheduler)


def _cancel_while_starting(scheduler: tl.TaskScheduler) -> None:
    ran: list[int] = []
    task = tl.Task(ran.append, 1)
    canceled: list[bool] = []

    def start() -> None:
        try:
            task.start(scheduler)
        except tl.InvalidOperationError:
            pass  # cancel() won: the task is already final

    _race(start, lambda: canceled.append(task.cancel()))
    concurrent.futures.wait([task], timeout=WAIT)
    assert task.is_completed
    assert canceled == [task.is_canceled]  # cancel() says what happened
    assert bool(ran) != task.is_canceled  # the body ran iff the task was not canceled


@pytest.mark.timeout(120)
def test_cancel_racing_start_has_one_outcome(scheduler: tl.TaskScheduler) -> None:
    for _ in range(ROUNDS):
        _cancel_while_starting(scheduler)


@pytest.mark.timeout(120)
def test_token_racing_the_scheduler_has_one_outcome(scheduler: tl.TaskScheduler) -> None:
    for _ in range(ROUNDS):
        ran: list[int] = []
        with tl.CancellationTokenSource() as cts:
            task = tl.start_new(ran.append, 1, token=cts.token, scheduler=scheduler)
            cts.cancel()
            concurrent.futures.wait([task], timeout=WAIT)
        assert task.is_completed
        assert bool(ran) != task.is_canceled


def _simultaneous_winners() -> None:
    a: tl.TaskCompletionSource[int] = tl.TaskCompletionSource()
    b: tl.TaskCompletionSource[int] = tl.TaskCompletionSource()
    first = tl.when_any(a.task, b.task)
    both = tl.when_all(a.task, b.task)
    _race(lambda: a.set_result(1), lambda: b.set_result(2))
    assert first.result(WAIT) in (a.task, b.task)
    assert both.result(WAIT) == [1, 2]


@pytest.mark.timeout(120)
def test_when_any_with_simultaneous_winners_completes_once() -> None:
    for _ in range(ROUNDS):
        _simultaneous_winners()
