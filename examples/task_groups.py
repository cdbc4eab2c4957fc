"""PPL task groups in Python: TaskGroup, StructuredTaskGroup and parallel_invoke.

The three examples of the PPL "Task Parallelism" and "parallel_invoke" pages:

1. parallel_invoke of two functions, each adding work to one shared TaskGroup;
2. a recursive parallel sort (quicksort) built on parallel_invoke;
3. canceling a group mid-way: queued work never runs, running work sees the
   group's token canceled.

Run: python examples/task_groups.py
"""

from __future__ import annotations

import random
import sys
import threading

import taskloom as tl


def print_message(value: object) -> None:
    sys.stdout.write(f"Message from task: {value}\n")  # one write: lines never interleave


def tasks_from_two_functions() -> None:
    # A TaskGroup is thread-safe: both functions add work to it concurrently.
    tasks = tl.TaskGroup()
    tl.parallel_invoke(
        lambda: (tasks.run(print_message, "Hello"), tasks.run(print_message, 42)),
        lambda: tasks.run(print_message, 3.14),
    )
    status = tasks.wait()  # waits for every task, wherever it was added from
    assert status is tl.TaskGroupStatus.COMPLETED
    print("group:", status.name)


def parallel_quicksort(items: list[int]) -> list[int]:
    """Sort by splitting around a pivot and sorting both halves in parallel."""
    if len(items) <= 500:  # below this, a task costs more than it saves
        return sorted(items)
    pivot = items[len(items) // 2]
    lower = [x for x in items if x < pivot]
    equal = [x for x in items if x == pivot]
    upper = [x for x in items if x > pivot]
    left, right = tl.parallel_invoke(
        lambda: parallel_quicksort(lower),
        lambda: parallel_quicksort(upper),  # this one runs on the calling thread
    )
    return [*left, *equal, *right]


def sort_in_parallel() -> None:
    rng = random.Random(42)
    items = [rng.randrange(1_000_000) for _ in range(50_000)]
    result = parallel_quicksort(items)
    assert result == sorted(items)
    print("sorted", len(result), "items; first three:", result[:3])


def cancel_mid_way() -> None:
    started = threading.Event()
    ran: list[int] = []
    # One worker, so the queued work is still waiting when we cancel.
    with tl.WorkStealingScheduler(max_workers=1) as pool:
        group = tl.StructuredTaskGroup(scheduler=pool)

        def searcher() -> None:
            started.set()
            # Cooperative cancellation: the group's token is the task's token.
            tl.current_token().wait(timeout=10)
            tl.current_token().throw_if_cancellation_requested()

        group.run(searcher)
        for i in range(5):
            group.run(ran.append, i)
        started.wait()
        group.cancel()
        print("canceling:", group.is_canceling())
        print("group:", group.wait().name, "- queued work that ran:", ran)


if __name__ == "__main__":
    tasks_from_two_functions()
    sort_in_parallel()
    cancel_mid_way()
