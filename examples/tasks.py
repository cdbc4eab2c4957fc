"""Tasks: fork-join, cold tasks, statuses, results, ``current_task`` and context variables.

Ports the seed examples "Parallel.Invoke-style fork-join", "explicit create, start
and wait", ``Task.Run``, ``StartNew`` with a state object and ``Result`` blocking
for a value. Run it with ``python examples/tasks.py``.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import threading

import taskloom as tl

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def count_words(text: str) -> int:
    return len(text.split())


def fork_join() -> None:
    # Parallel.Invoke-style: start several independent pieces of work, then join.
    texts = ["the quick brown fox", "jumps over", "the lazy dog"]
    tasks = [tl.run(count_words, text) for text in texts]
    tl.wait_all(*tasks)
    print("fork-join word counts:", [t.result() for t in tasks])


def cold_tasks() -> None:
    # Explicit create, then start, then wait (TPL's new Task(...); Start(); Wait()).
    task: tl.Task[str] = tl.Task(lambda: f"ran on {threading.current_thread().name}")
    print("created:", task.status.name)  # CREATED: nothing runs yet
    task.start()
    task.wait()
    print("started:", task.status.name, "-", task.result())
    try:
        task.start()  # a task starts at most once
    except tl.InvalidOperationError as exc:
        print("second start:", exc)

    # run_synchronously runs the body on the calling thread and waits for it.
    inline: tl.Task[str] = tl.Task(lambda: threading.current_thread().name)
    inline.run_synchronously()
    print("run_synchronously ran on:", inline.result())


def state_objects() -> None:
    # StartNew with a state object: each task sees its own async_state.
    def describe() -> str:
        me = tl.current_task()
        assert me is not None
        return f"task {me.id} has state {me.async_state!r}"

    tasks = [tl.start_new(describe, state=f"item-{i}") for i in range(3)]
    for task in tasks:
        print(task.result())


def results_and_exceptions() -> None:
    square = tl.run(lambda: 12 * 12)
    print("result() blocks for the value:", square.result())

    def fail() -> None:
        raise KeyError("missing")

    failed = tl.run(fail)
    try:
        failed.result()
    except KeyError as exc:  # one exception is raised as itself
        print("result() raised", repr(exc), "- status", failed.status.name)
    print("is_faulted:", failed.is_faulted, "is_completed:", failed.is_completed)


def futures_interop() -> None:
    # A Task is a concurrent.futures.Future: the stdlib helpers accept it.
    tasks: list[tl.Task[int]] = [tl.run(pow, 2, n) for n in (4, 8, 16)]
    done, not_done = concurrent.futures.wait(tasks, timeout=5)
    print("concurrent.futures.wait:", len(done), "done,", len(not_done), "pending")
    in_order = [f.result() for f in concurrent.futures.as_completed(tasks)]
    print("as_completed:", sorted(in_order))


def context_variables() -> None:
    # A task runs in a copy of its creator's context.
    request_id.set("req-42")
    seen = tl.run(request_id.get).result()
    print("context variable seen by the task:", seen)
    print("outside any task, current_task() is", tl.current_task())


def main() -> None:
    fork_join()
    cold_tasks()
    state_objects()
    results_and_exceptions()
    futures_interop()
    context_variables()


if __name__ == "__main__":
    main()
