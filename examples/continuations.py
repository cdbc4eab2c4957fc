"""Continuations and composition: ``continue_with``, ``then``, ``when_all`` (``&``), ``when_any``.

Ports the seed's three-step chain (100 random numbers -> N, total, mean), its
``WhenAll``/``WhenAny``/``Delay``/``FromResult`` examples and PPL's value-based
continuations with asynchronous unwrapping. Run it with
``python examples/continuations.py``.
"""

from __future__ import annotations

import random
import threading
from typing import Any

import taskloom as tl

Opt = tl.TaskContinuationOptions


def the_mean_chain() -> None:
    # Step 1 makes the numbers, step 2 sums them, step 3 computes the mean.
    def numbers() -> list[int]:
        rng = random.Random(7)
        return [rng.randint(0, 100) for _ in range(100)]

    def summarize(antecedent: tl.Task[list[int]]) -> tuple[int, int]:
        values = antecedent.result()
        return len(values), sum(values)

    def mean(antecedent: tl.Task[tuple[int, int]]) -> str:
        n, total = antecedent.result()
        return f"N={n}, total={total}, mean={total / n:.2f}"

    chain = tl.run(numbers).continue_with(summarize).continue_with(mean)
    print("chain:", chain.result())


def filtered_continuations() -> None:
    def fail() -> None:
        raise ValueError("bad input")

    antecedent = tl.run(fail)
    on_fault = antecedent.continue_with(
        lambda t: f"handled {t.exception()!r}", options=Opt.ONLY_ON_FAULTED
    )
    on_success = antecedent.continue_with(
        lambda t: "never runs", options=Opt.ONLY_ON_RAN_TO_COMPLETION
    )
    print("ONLY_ON_FAULTED:", on_fault.result())
    try:
        on_success.wait(timeout=5)
    except tl.TaskCanceledError:
        print("ONLY_ON_RAN_TO_COMPLETION after a fault ends", on_success.status.name)

    # NOT_ON_CANCELED: skipped when the antecedent was canceled.
    skipped = tl.from_canceled().continue_with(lambda t: "ran", options=Opt.NOT_ON_CANCELED)
    print("NOT_ON_CANCELED after a cancellation:", _status_after_wait(skipped))

    # EXECUTE_SYNCHRONOUSLY: runs on the thread that completes the antecedent.
    source = tl.TaskCompletionSource[int]()
    where = source.task.continue_with(
        lambda t: threading.current_thread().name, options=Opt.EXECUTE_SYNCHRONOUSLY
    )
    source.set_result(1)  # completes on this (the main) thread
    print("EXECUTE_SYNCHRONOUSLY ran on:", where.result())

    # RUN_CONTINUATIONS_ASYNCHRONOUSLY on the antecedent overrides that: always queued.
    async_source = tl.TaskCompletionSource[int](
        options=tl.TaskCreationOptions.RUN_CONTINUATIONS_ASYNCHRONOUSLY
    )
    queued = async_source.task.continue_with(
        lambda t: threading.current_thread().name, options=Opt.EXECUTE_SYNCHRONOUSLY
    )
    async_source.set_result(1)
    print("with RUN_CONTINUATIONS_ASYNCHRONOUSLY it ran on:", queued.result())

    # LAZY_CANCELLATION: a canceled continuation still waits for its antecedent.
    with tl.CancellationTokenSource() as cts:
        slow = tl.delay(0.05)
        lazy = slow.continue_with(lambda t: None, token=cts.token, options=Opt.LAZY_CANCELLATION)
        cts.cancel()
        print(
            "LAZY_CANCELLATION: canceled token, antecedent pending ->",
            lazy.status.name,
            "then",
            _status_after_wait(lazy),
            "(antecedent done:",
            f"{slow.is_completed})",
        )


def value_based_then() -> None:
    # then() receives the result; a fault skips the function and flows through.
    text = tl.run(lambda: 21).then(lambda v: v * 2).then(lambda v: f"the answer is {v}")
    print("then:", text.result())

    def parse(raw: str) -> int:
        return int(raw)

    broken = tl.run(lambda: "forty-two").then(parse).then(lambda v: v + 1)
    try:
        broken.result()
    except ValueError as exc:
        print("then skipped after a fault:", exc)

    # then() unwraps: a function returning a task completes with that task's outcome.
    unwrapped = tl.run(lambda: 5).then(lambda v: tl.run(lambda: v * 100))
    print("then unwraps:", unwrapped.result())
    # continue_with does not unwrap; unwrap() does it explicitly.
    nested = tl.run(lambda: 5).continue_with(lambda t: tl.run(lambda: t.result() + 1))
    print(
        "continue_with result is a", type(nested.result()).__name__, "->", nested.unwrap().result()
    )


def when_all_and_when_any() -> None:
    tasks = [tl.run(pow, 2, n) for n in range(5)]
    print("when_all:", tl.when_all(*tasks).result())
    a, b, c = tl.from_result("a"), tl.run(str.upper, "b"), tl.delay(0.01).then(lambda _: "c")
    print("a & b & c:", (a & b & c).result())
    print("when_all():", tl.when_all().result())

    fast = tl.delay(0.01).then(lambda _: "fast")
    slow = tl.delay(1.0).then(lambda _: "slow")
    winner = tl.when_any(slow, fast).result()
    print("when_any winner:", winner.result())
    print("fast | slow:", (fast | slow).result().result())

    # wait_all raises like when_all().result(); wait_any returns an index (-1 on timeout).
    print("wait_all:", tl.wait_all(*tasks, timeout=5))
    print("wait_any:", tl.wait_any(slow, fast, timeout=5), tl.wait_any(tl.delay(10), timeout=0.01))
    failures = [tl.from_exception(KeyError("x")), tl.from_exception(KeyError("y"))]
    try:
        tl.wait_all(*failures)
    except tl.AggregateError as agg:
        print("wait_all raised", len(agg.exceptions), "exceptions")

    # Ready-made tasks: from_result, completed_task.
    print("completed_task():", tl.completed_task().status.name)


def _status_after_wait(task: tl.Task[Any]) -> str:
    try:
        task.wait(timeout=5)
    except tl.TaskCanceledError:
        pass
    return task.status.name


def main() -> None:
    the_mean_chain()
    filtered_continuations()
    value_based_then()
    when_all_and_when_any()


if __name__ == "__main__":
    main()
