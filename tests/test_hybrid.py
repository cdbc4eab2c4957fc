"""HybridExecutor: ``@cpu_bound`` work goes to processes; it serves as a loop's default executor."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import importlib.util
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import taskloom as tl

_HAS_UVLOOP = sys.platform != "win32" and importlib.util.find_spec("uvloop") is not None

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def where() -> tuple[int, str]:
    """Unmarked: runs on a thread."""
    return os.getpid(), threading.current_thread().name


@tl.cpu_bound
def where_cpu(scale: int = 1, *, offset: int = 0) -> tuple[int, int]:
    """Marked: runs in a worker process."""
    return os.getpid(), scale * 10 + offset


@tl.cpu_bound
def read_request_id() -> str:
    return request_id.get()


def fails_cpu() -> None:
    raise KeyError("in the process")


fails_cpu = tl.cpu_bound(fails_cpu)


@pytest.fixture(scope="module")
def hybrid() -> Iterator[tl.HybridExecutor]:
    ex = tl.HybridExecutor(max_workers=2, process_workers=2)
    try:
        yield ex
    finally:
        ex.shutdown(wait=True)


def test_cpu_bound_returns_the_function_itself() -> None:
    def f() -> int:
        return 1

    assert tl.cpu_bound(f) is f
    with pytest.raises(TypeError, match="fn must be callable"):
        tl.cpu_bound(3)  # type: ignore[type-var]


def test_routing(hybrid: tl.HybridExecutor) -> None:
    me = os.getpid()
    pid, name = hybrid.submit(where).result(timeout=30)
    assert pid == me
    assert name.startswith("HybridExecutor")
    pid, value = hybrid.submit(where_cpu, 2, offset=1).result(timeout=30)
    assert pid != me
    assert value == 21
    # Explicit forms, for code that cannot decorate.
    assert hybrid.submit_to_processes(where).result(timeout=30)[0] != me
    assert hybrid.submit_to_threads(where_cpu).result(timeout=30)[0] == me


def test_routing_sees_through_partial_and_context_run(hybrid: tl.HybridExecutor) -> None:
    me = os.getpid()
    ctx = contextvars.copy_context()
    call = functools.partial(ctx.run, where_cpu, 3, offset=2)  # what asyncio.to_thread submits
    pid, value = hybrid.submit(call).result(timeout=30)
    assert pid != me
    assert value == 32
    pid, value = hybrid.submit(functools.partial(where_cpu, 4)).result(timeout=30)
    assert pid != me
    assert value == 40
    pid, _ = hybrid.submit(ctx.run, where_cpu).result(timeout=30)
    assert pid != me


def test_process_errors_come_back(hybrid: tl.HybridExecutor) -> None:
    with pytest.raises(KeyError, match="in the process"):
        hybrid.submit(fails_cpu).result(timeout=30)


def test_map_routes_by_function(hybrid: tl.HybridExecutor) -> None:
    me = os.getpid()
    results = list(hybrid.map(where_cpu, range(5), chunksize=2))
    assert [v for _, v in results] == [0, 10, 20, 30, 40]
    assert all(pid != me for pid, _ in results)
    assert all(pid == me for pid, _ in hybrid.map(lambda _: where(), range(3)))


def _loop_factories() -> list[Any]:
    params = [pytest.param(asyncio.new_event_loop, id="asyncio")]
    if _HAS_UVLOOP:
        import uvloop

        params.append(pytest.param(uvloop.new_event_loop, id="uvloop"))
    return params


@pytest.mark.parametrize("loop_factory", _loop_factories())
def test_default_executor_of_a_running_loop(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    me = os.getpid()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(tl.HybridExecutor(max_workers=2, process_workers=1))
        # asyncio.to_thread: unmarked -> a thread of the executor, with the context.
        request_id.set("r-42")
        pid, name = await asyncio.to_thread(where)
        assert pid == me
        assert name.startswith("HybridExecutor")
        # Marked -> a worker process; context variables do not cross into it.
        pid, value = await asyncio.to_thread(where_cpu, 5, offset=3)
        assert pid != me
        assert value == 53
        assert await asyncio.to_thread(read_request_id) == "-"
        # run_in_executor(None, ...) too.
        pid, value = await loop.run_in_executor(None, where_cpu, 1)
        assert pid != me
        assert value == 10
        pid, _ = await loop.run_in_executor(None, where)
        assert pid == me
        with pytest.raises(KeyError):
            await asyncio.to_thread(fails_cpu)
        # The loop stays responsive while CPU work runs in processes.
        results = await asyncio.gather(*[asyncio.to_thread(where_cpu, i) for i in range(4)])
        assert [v for _, v in results] == [0, 10, 20, 30]

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())
    # asyncio.Runner shut the default executor down on close.


def test_shutdown_refuses_both_kinds_of_work() -> None:
    ex = tl.HybridExecutor(max_workers=1, process_workers=1)
    assert ex.submit(where_cpu).result(timeout=30)[1] == 10
    ex.shutdown()
    ex.shutdown()
    for fn in (where, where_cpu):
        with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
            ex.submit(fn)


@tl.cpu_bound
def niceness() -> int:
    return os.nice(0)


@pytest.mark.skipif(not hasattr(os, "nice"), reason="POSIX only")
def test_worker_processes_run_at_lower_priority(hybrid: tl.HybridExecutor) -> None:
    mine = os.nice(0)
    assert hybrid.submit(niceness).result(timeout=30) == min(19, mine + 5)
    with tl.HybridExecutor(max_workers=1, process_workers=1, process_nice=0) as plain:
        assert plain.submit(niceness).result(timeout=30) == mine


def test_process_nice_is_checked() -> None:
    with pytest.raises(ValueError, match="process_nice"):
        tl.HybridExecutor(process_nice=20)
    with pytest.raises(TypeError, match="process_nice"):
        tl.HybridExecutor(process_nice="5")  # type: ignore[arg-type]
