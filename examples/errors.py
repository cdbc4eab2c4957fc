"""The error hierarchy and ``AggregateError`` (flatten, handle, ``except*``).

Ports the seed's "WaitAll with exceptions" example. Run it with
``python examples/errors.py``.
"""

from __future__ import annotations

import taskloom as tl


def fail(kind: type[Exception], message: str) -> None:
    raise kind(message)


def hierarchy() -> None:
    for error in (
        tl.InvalidOperationError,
        tl.OperationCanceledError,
        tl.TaskCanceledError,
        tl.AggregateError,
        tl.WorkerCrashedError,
    ):
        bases = ", ".join(base.__name__ for base in error.__mro__[1:4])
        print(f"{error.__name__:24} -> {bases}")
    print(
        "TaskloomError catches a canceled wait:", issubclass(tl.TaskCanceledError, tl.TaskloomError)
    )


def wait_all_with_exceptions() -> None:
    tasks = [
        tl.run(fail, ValueError, "bad value"),
        tl.run(fail, KeyError, "missing key"),
        tl.run(lambda: "fine"),
    ]
    try:
        tl.wait_all(*tasks)
    except tl.AggregateError as agg:
        print("wait_all:", len(agg.inner_exceptions), "inner exceptions")
        try:
            agg.handle(lambda e: isinstance(e, KeyError))  # handles the KeyError only
        except tl.AggregateError as rest:
            print("handle() re-raised the unhandled:", rest.exceptions)


def nested_aggregates() -> None:
    inner = tl.AggregateError("inner", [ValueError("a"), KeyError("b")])
    outer = tl.AggregateError("outer", [inner, TypeError("c")])
    print("flatten():", outer.flatten().exceptions)


def except_star() -> None:
    both = tl.when_all(tl.run(fail, ValueError, "v"), tl.run(fail, KeyError, "k"))
    try:
        both.result()
    except* ValueError as group:
        print("except* ValueError:", group.exceptions)
    except* KeyError as group:
        print("except* KeyError:", group.exceptions)


def main() -> None:
    hierarchy()
    wait_all_with_exceptions()
    nested_aggregates()
    except_star()


if __name__ == "__main__":
    main()
