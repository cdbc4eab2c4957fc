"""Tasks without a body: ``TaskCompletionSource``, ``from_*`` and wrapping other futures.

Ports the seed's "tasks without delegates" (TPL ``TaskCompletionSource``, PPL
``task_completion_event``). Run it with ``python examples/completion_source.py``.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable

import taskloom as tl


def callback_api(url: str, on_done: Callable[[str], object]) -> None:
    """A stand-in for an API that reports its result through a callback, on another thread."""
    threading.Timer(0.02, on_done, [f"<contents of {url}>"]).start()


def bridge_a_callback() -> None:
    source = tl.TaskCompletionSource[str](state="download #1")
    callback_api("https://example.org", source.set_result)
    shouted = source.task.then(str.upper)
    print("completion source:", source.task.result(), "->", shouted.result())
    print("its task's async_state:", source.task.async_state)


def complete_once() -> None:
    source = tl.TaskCompletionSource[int]()
    source.set_result(1)
    print("try_set_result after completion:", source.try_set_result(2))
    print("try_set_exception after completion:", source.try_set_exception(ValueError("late")))
    print("try_set_canceled after completion:", source.try_set_canceled())
    try:
        source.set_result(3)
    except tl.InvalidOperationError as exc:
        print("set_result twice:", exc)

    faulted = tl.TaskCompletionSource[int]()
    faulted.set_exception([KeyError("a"), KeyError("b")])  # several -> AggregateError
    try:
        faulted.task.result()
    except tl.AggregateError as agg:
        print("set_exception with two:", agg.exceptions)

    canceled = tl.TaskCompletionSource[int]()
    canceled.set_canceled()
    print("set_canceled:", canceled.task.status.name)


def ready_made_tasks() -> None:
    print("from_result:", tl.from_result(42).result())
    failed = tl.from_exception(RuntimeError("boom"))
    print("from_exception:", failed.status.name, repr(failed.exception()))
    with tl.CancellationTokenSource() as cts:
        cts.cancel()
        print("from_canceled:", tl.from_canceled(cts.token).status.name)


def wrap_a_plain_future() -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(sum, [1, 2, 3])
        task = tl.from_future(future)
        print("from_future:", task.then(lambda total: total * 10).result())


def main() -> None:
    bridge_a_callback()
    complete_once()
    ready_made_tasks()
    wrap_a_plain_future()


if __name__ == "__main__":
    main()
