"""Child tasks: detached (the default) vs attached (``ATTACHED_TO_PARENT``).

Ports the seed's "detached vs attached" examples: a parent does not wait for a
detached child; it waits for ten attached children, takes their exceptions into
its own, and ``DENY_CHILD_ATTACH`` turns attach requests into detached children.
Run it with ``python examples/children.py``.
"""

from __future__ import annotations

import threading
import time

import taskloom as tl

ATTACHED = tl.TaskCreationOptions.ATTACHED_TO_PARENT


def detached_child() -> None:
    release = threading.Event()
    children: list[tl.Task[str]] = []

    def child() -> str:
        release.wait(5)
        return "child done"

    def parent() -> str:
        children.append(tl.start_new(child))
        return "parent done"

    outer = tl.start_new(parent)
    print("detached: parent finished first ->", outer.result(), "/ child", children[0].status.name)
    release.set()
    print("detached: child later ->", children[0].result())


def attached_children() -> None:
    finished: list[int] = []
    lock = threading.Lock()
    release = threading.Event()

    def child(i: int) -> None:
        release.wait(5)
        time.sleep(0.001 * i)
        with lock:
            finished.append(i)

    def parent() -> None:
        for i in range(10):
            tl.start_new(child, i, options=ATTACHED)

    outer = tl.start_new(parent)
    deadline = time.monotonic() + 5
    while outer.status.value <= tl.TaskStatus.RUNNING.value and time.monotonic() < deadline:
        time.sleep(0.001)  # until the parent's own body has returned
    print("attached: parent status while children run:", outer.status.name)
    release.set()
    outer.wait()
    print("attached: all", len(finished), "children finished before the parent completed")


def attached_exceptions() -> None:
    def failing_child(i: int) -> None:
        raise ValueError(f"child {i} failed")

    def parent() -> None:
        for i in range(3):
            tl.start_new(failing_child, i, options=ATTACHED)

    outer = tl.start_new(parent)
    try:
        outer.wait()
    except tl.AggregateError as agg:
        messages = sorted(str(e) for e in agg.exceptions)
        print("attached: parent", outer.status.name, "with", messages)


def deny_child_attach() -> None:
    release = threading.Event()

    def parent() -> None:
        tl.start_new(release.wait, 5, options=ATTACHED)  # asks to attach, but may not

    # tl.run adds DENY_CHILD_ATTACH, as TPL's Task.Run does; so does this option.
    outer = tl.start_new(parent, options=tl.TaskCreationOptions.DENY_CHILD_ATTACH)
    outer.wait()
    print("DENY_CHILD_ATTACH: parent", outer.status.name, "without waiting for its child")
    release.set()


def main() -> None:
    detached_child()
    attached_children()
    attached_exceptions()
    deny_child_attach()


if __name__ == "__main__":
    main()
