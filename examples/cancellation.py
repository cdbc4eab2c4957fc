"""Cooperative cancellation: sources, tokens, registrations, timeouts, linked sources.

Ports the seed's "cancel a task and its children" example. Run it with
``python examples/cancellation.py``.
"""

from __future__ import annotations

import time

import taskloom as tl


def crunch(steps: int) -> int:
    """Work that checks the running task's token between steps."""
    token = tl.current_token()  # the token the task was started with
    done = 0
    for _ in range(steps):
        token.throw_if_cancellation_requested()  # OperationCanceledError(token)
        time.sleep(0.005)
        done += 1
    return done


def cancel_a_running_task() -> None:
    with tl.CancellationTokenSource() as cts:
        task = tl.run(crunch, 1000, token=cts.token)
        time.sleep(0.03)
        cts.cancel()
        try:
            task.wait(timeout=5)
        except tl.TaskCanceledError as exc:
            print("running task:", task.status.name, "- its token matches:", exc.token == cts.token)


def canceled_before_start() -> None:
    cts = tl.CancellationTokenSource()
    cts.cancel()
    never: tl.Task[int] = tl.run(crunch, 10, token=cts.token)
    print("token canceled before start:", never.status.name, "(the body never ran)")
    cold = tl.Task(crunch, 10)
    print("Task.cancel() before start:", cold.cancel(), cold.status.name)


def timeout_with_cancel_after() -> None:
    # CancellationTokenSource(delay) / cancel_after: a per-task timeout.
    with tl.CancellationTokenSource(delay=0.05) as cts:
        task = tl.run(crunch, 1000, token=cts.token)
        try:
            task.result(timeout=5)
        except tl.TaskCanceledError:
            print("cancel_after timeout:", task.status.name)


def cancel_task_and_children() -> None:
    attached = tl.TaskCreationOptions.ATTACHED_TO_PARENT
    with tl.CancellationTokenSource() as cts:

        def parent() -> None:
            for _ in range(3):
                tl.start_new(crunch, 1000, token=cts.token, options=attached)
            crunch(1000)

        outer = tl.start_new(parent, token=cts.token)
        time.sleep(0.03)
        cts.cancel()
        try:
            outer.wait(timeout=5)
        except tl.AggregateError as agg:
            # Each attached child canceled with the parent's token contributes a TaskCanceledError.
            kinds = {type(e).__name__ for e in agg.exceptions}
            print("parent with children:", outer.status.name, len(agg.exceptions), kinds)
        except tl.TaskCanceledError:
            print("parent with children:", outer.status.name)


def registrations_and_waiting() -> None:
    cts = tl.CancellationTokenSource()
    token: tl.CancellationToken = cts.token
    calls: list[str] = []
    registration: tl.CancellationTokenRegistration = token.register(lambda: calls.append("a"))
    removed = token.register(lambda: calls.append("b"))
    print("unregister before cancel:", removed.unregister())
    print("token.wait(timeout=0.01):", token.wait(timeout=0.01))
    cts.cancel()
    print("callbacks that ran:", calls, "- token.wait() now:", token.wait())
    registration.unregister()  # harmless after it ran
    token.register(lambda: calls.append("late"))  # runs at once: already canceled
    print("late registration ran at once:", calls)
    cts.close()

    # Linked sources: canceled when any of their tokens is.
    a, b = tl.CancellationTokenSource(), tl.CancellationTokenSource()
    with tl.CancellationTokenSource.create_linked(a.token, b.token) as linked:
        b.cancel()
        print("linked source canceled by b:", linked.is_cancellation_requested)

    none = tl.CancellationToken.NONE
    print("CancellationToken.NONE can be canceled:", none.can_be_canceled)


def waiting_with_a_token() -> None:
    # A blocking wait can itself be canceled; the task goes on running.
    with tl.CancellationTokenSource(delay=0.02) as cts:
        slow = tl.delay(1.0)
        try:
            slow.wait(token=cts.token)
        except tl.OperationCanceledError:
            print("wait(token=...) gave up:", "task still", slow.status.name)


def main() -> None:
    cancel_a_running_task()
    canceled_before_start()
    timeout_with_cancel_after()
    cancel_task_and_children()
    registrations_and_waiting()
    waiting_with_a_token()


if __name__ == "__main__":
    main()
