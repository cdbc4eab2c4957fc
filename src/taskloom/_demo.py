"""``python -m taskloom demo``: a short, self-checking tour of what taskloom can do.

The tour is the list :data:`SECTIONS` of ``(title, function)`` pairs, run in
order. Each function receives a :class:`Report` to print on, checks what it
shows with :meth:`Report.check`, and should finish in well under a second. A
new capability (event loop, processes, executors, ...) adds its section by
writing one function and inserting one pair into the list, before the closing
statistics section.

``rich`` (extra ``taskloom[cli]``) is used when importable; otherwise the same
text is printed plainly. The library itself never imports it.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import taskloom as tl

__all__ = ["SECTIONS", "DemoCheckFailed", "Report", "main"]


class DemoCheckFailed(Exception):
    """A section's self-check did not hold."""


class Report:
    """Where a section prints: section titles, lines, key/value tables (rich or plain)."""

    def __init__(self) -> None:
        self._console: Any = None
        try:
            from rich.console import Console
        except ImportError:
            return
        self._console = Console(highlight=False)

    def title(self, text: str) -> None:
        """Start a section."""
        if self._console is not None:
            from rich.rule import Rule

            self._console.print()
            self._console.print(Rule(f"[bold cyan]{_escape(text)}[/]", align="left"))
        else:
            print(f"\n== {text} ==")

    def line(self, text: str) -> None:
        """One line of output (shown as is, no markup)."""
        if self._console is not None:
            self._console.print(f"  {_escape(text)}")
        else:
            print(f"  {text}")

    def table(self, rows: Sequence[tuple[str, object]]) -> None:
        """A two-column table of names and values."""
        if self._console is not None:
            from rich.table import Table

            table = Table(show_header=False, box=None, padding=(0, 2))
            table.add_column(style="dim")
            table.add_column(justify="right", style="bold")
            for name, value in rows:
                table.add_row(_escape(name), _escape(str(value)))
            self._console.print(table)
        else:
            width = max(len(name) for name, _ in rows)
            for name, value in rows:
                print(f"  {name:<{width}}  {value}")

    def check(self, condition: bool, what: str) -> None:
        """Show ``what`` as checked; raise :class:`DemoCheckFailed` if ``condition`` is false."""
        if not condition:
            raise DemoCheckFailed(what)
        if self._console is not None:
            self._console.print(f"  [green]ok[/] {_escape(what)}")
        else:
            print(f"  ok {what}")

    def outcome(self, failed: list[str], seconds: float) -> None:
        """The closing line."""
        if failed:
            text = f"demo FAILED in {', '.join(failed)} ({seconds:.2f} s)"
            style = "bold red"
        else:
            text = f"demo complete: {len(SECTIONS)} sections, all checks passed ({seconds:.2f} s)"
            style = "bold green"
        if self._console is not None:
            self._console.print()
            self._console.print(f"[{style}]{_escape(text)}[/]")
        else:
            print(f"\n{text}")


def _escape(text: str) -> str:
    try:
        from rich.markup import escape
    except ImportError:
        return text
    return escape(text)


# == sections ===============================================================================


def _fib(n: int) -> int:
    """Fork-join Fibonacci with no cutoff: every call above 1 forks a child task."""
    if n < 2:
        return n
    left = tl.start_new(_fib, n - 1)  # a child task, on this worker's local deque
    right = _fib(n - 2)
    return left.result() + right  # runs `left` inline if no other worker stole it


def fork_join(report: Report) -> None:
    n = 18
    tasks = _fib_calls(n)
    started = time.perf_counter()
    value = tl.run(_fib, n).result(timeout=30)
    elapsed = time.perf_counter() - started
    report.line(f"fib({n}) = {value}, forking {tasks:,} child tasks in {elapsed * 1000:.0f} ms")
    report.line(f"({tasks / elapsed:,.0f} tasks/s; waits inline queued children, so no deadlock)")
    report.check(value == 2584, "fork-join result is correct")


def _fib_calls(n: int) -> int:
    """How many child tasks _fib(n) forks (one per call with n >= 2)."""
    a, b = 0, 0  # forks for n-2, n-1
    for _ in range(2, n + 1):
        a, b = b, a + b + 1
    return b


def continuation_chain(report: Report) -> None:
    def numbers() -> list[int]:
        rng = random.Random(2024)
        return [rng.randint(0, 100) for _ in range(100)]

    def count_and_sum(antecedent: tl.Task[list[int]]) -> tuple[int, int]:
        values = antecedent.result()
        return len(values), sum(values)

    chain = (
        tl.run(numbers)
        .continue_with(count_and_sum)
        .then(lambda n_total: (n_total[0], n_total[1], n_total[1] / n_total[0]))
    )
    n, total, mean = chain.result(timeout=10)
    report.line("run(numbers).continue_with(count_and_sum).then(mean)")
    report.line(f"N = {n}, total = {total}, mean = {mean:.2f}")
    report.check(n == 100 and mean == total / 100, "three-step chain computed N, total, mean")

    def fail() -> int:
        raise ValueError("no data")

    skipped = tl.run(fail).then(lambda v: v + 1)
    try:
        skipped.result(timeout=10)
    except ValueError as exc:
        report.line(f"then() after a fault is skipped and re-raises: {exc!r}")
    report.check(skipped.is_faulted, "a value-based continuation takes over its antecedent's fault")


def when_all_any(report: Report) -> None:
    a = tl.delay(0.03).then(lambda _: "a")
    b = tl.delay(0.01).then(lambda _: "b")
    c = tl.run(str.upper, "c")
    both = (a & b & c).result(timeout=10)
    report.line(f"(a & b & c).result() = {both}  (one flattened when_all)")
    first = (a | tl.delay(5)).result(timeout=10)
    report.line(f"(a | delay(5)).result() is a -> {first is a}")
    report.check(both == ["a", "b", "C"] and first is a, "& gathers results, | returns the winner")
    index = tl.wait_any(tl.delay(5), tl.from_result(1), timeout=5)
    report.line(f"wait_any(delay(5), from_result(1)) = {index}")
    report.check(index == 1, "wait_any returns the index of the first completed task")


def cancellation(report: Report) -> None:
    steps = 0

    def crunch() -> None:
        nonlocal steps
        token = tl.current_token()
        while True:
            token.throw_if_cancellation_requested()
            time.sleep(0.005)
            steps += 1

    with tl.CancellationTokenSource(delay=0.1) as cts:  # a 100 ms timeout
        task = tl.run(crunch, token=cts.token)
        try:
            task.wait(timeout=10)
        except tl.TaskCanceledError:
            pass
    report.line(f"CancellationTokenSource(delay=0.1): stopped after {steps} steps")
    report.line(f"task.status = {task.status.name}")
    report.check(task.is_canceled, "the task observed its token and ended CANCELED")


def attached_children(report: Report) -> None:
    release = threading.Event()
    finished: list[int] = []
    lock = threading.Lock()

    def child(i: int) -> None:
        release.wait(5)
        with lock:
            finished.append(i)

    def parent() -> None:
        for i in range(10):
            tl.start_new(child, i, options=tl.TaskCreationOptions.ATTACHED_TO_PARENT)

    outer = tl.start_new(parent)
    deadline = time.monotonic() + 5
    while outer.status.value <= tl.TaskStatus.RUNNING.value and time.monotonic() < deadline:
        time.sleep(0.001)  # until the parent's own body has returned
    report.line(f"parent body returned; parent.status = {outer.status.name}")
    waiting = outer.status is tl.TaskStatus.WAITING_FOR_CHILDREN_TO_COMPLETE
    release.set()
    outer.wait(timeout=10)
    report.line(f"after its 10 children: {outer.status.name}, {len(finished)} children finished")
    report.check(waiting and len(finished) == 10, "an attached parent waits for its children")

    def failing_parent() -> None:
        for i in range(3):
            tl.start_new(_raise, i, options=tl.TaskCreationOptions.ATTACHED_TO_PARENT)

    faulty = tl.start_new(failing_parent)
    try:
        faulty.wait(timeout=10)
    except tl.AggregateError as agg:
        report.line(f"children's exceptions in the parent: {sorted(map(str, agg.exceptions))}")
    report.check(faulty.is_faulted, "a parent with faulted children is FAULTED")


def _raise(i: int) -> None:
    raise KeyError(f"child {i}")


def limited_concurrency(report: Report) -> None:
    limit = 2
    scheduler = tl.LimitedConcurrencyScheduler(limit)
    running = peak = 0
    lock = threading.Lock()

    def job() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.005)
        with lock:
            running -= 1

    tasks = [tl.start_new(job, scheduler=scheduler) for _ in range(16)]
    tl.wait_all(*tasks, timeout=10)
    stats = scheduler.statistics()
    report.line(f"16 tasks on LimitedConcurrencyScheduler({limit}): at most {peak} ran at once")
    report.check(peak <= limit and stats.tasks_executed == 16, "the limit held")


def work_stealing_statistics(report: Report) -> None:
    scheduler = tl.TaskScheduler.default()
    stats = scheduler.statistics()
    assert isinstance(stats, tl.WorkStealingStatistics)
    report.line(f"the default scheduler, {type(scheduler).__name__}, after this tour:")
    report.table(
        [
            (
                "worker threads (max_workers)",
                f"{stats.threads} ({stats.maximum_concurrency_level})",
            ),
            ("tasks executed by workers", f"{stats.tasks_executed:,}"),
            ("taken from the global queue", f"{stats.global_dequeues:,}"),
            ("pushed to local deques", f"{stats.local_pushes:,}"),
            ("popped from own deque", f"{stats.local_pops:,}"),
            ("stolen from another worker", f"{stats.steals:,}"),
            ("run inline by a waiting thread", f"{stats.inlined:,}"),
            ("threads injected / retired", f"{stats.threads_injected} / {stats.threads_retired}"),
        ]
    )
    report.check(stats.local_pushes > 0, "work started inside tasks went to local deques")


# Later capabilities insert their sections before the closing statistics.
SECTIONS: list[tuple[str, Callable[[Report], None]]] = [
    ("Fork-join: fib with child tasks", fork_join),
    ("Continuations: a chain with continue_with and then", continuation_chain),
    ("Composition: when_all (&) and when_any (|)", when_all_any),
    ("Cancellation with a timeout", cancellation),
    ("Attached child tasks", attached_children),
    ("LimitedConcurrencyScheduler", limited_concurrency),
    ("Work-stealing statistics", work_stealing_statistics),
]


def main() -> int:
    """Run every section of :data:`SECTIONS`; 0 if all their checks pass, else 1."""
    report = Report()
    failed: list[str] = []
    started = time.perf_counter()
    for number, (title, section) in enumerate(SECTIONS, 1):
        report.title(f"{number}. {title}")
        try:
            section(report)
        except Exception as exc:  # noqa: BLE001 - reported, and the exit code says so
            report.line(f"FAILED: {type(exc).__name__}: {exc}")
            failed.append(title)
    report.outcome(failed, time.perf_counter() - started)
    return 1 if failed else 0
