"""Unobserved task exceptions: nothing fails silently.

A faulted task whose exception nobody reads (``result``, ``exception``, ``wait``,
a continuation, ``when_all``...) is reported when it is garbage collected: by
default as an error on the ``taskloom`` logger, or to the handler installed with
``set_unobserved_exception_handler``. Run it with ``python examples/unobserved.py``.
"""

from __future__ import annotations

import gc
from typing import Any

import taskloom as tl


def fail(message: str) -> None:
    raise RuntimeError(message)


def main() -> None:
    reported: list[str] = []

    def handler(task: tl.Task[Any], exception: BaseException) -> None:
        reported.append(f"task {task.id}: {exception!r}")

    previous = tl.set_unobserved_exception_handler(handler)
    print("previous handler (None = the default, which logs):", previous)

    # Observed: result() raised it, so nothing is reported.
    observed = tl.run(fail, "observed")
    try:
        observed.result()
    except RuntimeError:
        pass
    del observed

    # Unobserved: the task is dropped without anyone looking at its exception.
    ignored = tl.run(fail, "nobody looked")
    tl.wait_all(ignored.continue_with(lambda t: None))  # waits, but does not read it
    del ignored
    gc.collect()
    print("reported:", reported)

    tl.set_unobserved_exception_handler(None)  # back to logging on "taskloom"


if __name__ == "__main__":
    main()
