"""The README's tour as a script: tasks, continuations, composition, cancellation, await.

Run it with ``python examples/quickstart.py``.
"""

from __future__ import annotations

import asyncio
import time

import taskloom as tl


def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def square(n: int) -> int:
    return n * n


def poll(token: tl.CancellationToken) -> None:
    while True:
        token.throw_if_cancellation_requested()
        time.sleep(0.01)


def tasks_and_continuations() -> None:
    task = tl.run(fib, 20)
    doubled = task.then(lambda value: value * 2)
    report = doubled.continue_with(lambda antecedent: f"{antecedent.status.name}")
    print(task.result(), doubled.result(), report.result())

    squares = [tl.run(square, n) for n in range(5)]
    print(tl.when_all(*squares).result())


def cancellation() -> None:
    with tl.CancellationTokenSource() as cts:
        task = tl.run(poll, cts.token, token=cts.token)
        cts.cancel_after(0.1)
        try:
            task.result(timeout=5)
        except tl.TaskCanceledError:
            print("canceled:", task.status)


async def from_async_code() -> None:
    value = await tl.run(fib, 22)
    print("awaited:", value)


def main() -> None:
    tasks_and_continuations()
    cancellation()
    asyncio.run(from_async_code())


if __name__ == "__main__":
    main()
