"""taskloom: the task model of .NET's TPL, C++'s PPL and PowerShell jobs, for Python.

Tasks (``Task[T]``, also ``concurrent.futures.Future``) with continuations,
``when_all``/``when_any``, attached children, cancellation tokens and completion
sources, run by pluggable schedulers: a work-stealing thread pool (the default),
a limited-concurrency wrapper, an event-loop scheduler. See the docs for a tour.
"""

from __future__ import annotations

from ._cancellation import CancellationToken, CancellationTokenRegistration, CancellationTokenSource
from ._compose import (
    TaskFactory,
    completed_task,
    delay,
    run,
    start_new,
    wait_all,
    wait_any,
)
from ._enums import TaskContinuationOptions, TaskCreationOptions, TaskStatus
from ._errors import (
    AggregateError,
    InvalidOperationError,
    OperationCanceledError,
    TaskCanceledError,
    TaskloomError,
    WorkerCrashedError,
)
from ._executors import HybridExecutor, ProcessExecutor, ThreadExecutor, cpu_bound
from ._frontend import to_process, to_thread
from ._groups import StructuredTaskGroup, TaskGroup, TaskGroupStatus, parallel_invoke
from ._limited import LimitedConcurrencyScheduler, LimitedConcurrencyStatistics
from ._loop import LoopScheduler, LoopSchedulerStatistics
from ._process import ProcessScheduler, ProcessSchedulerStatistics
from ._scheduler import SchedulerStatistics, TaskScheduler
from ._task import (
    Task,
    TaskCompletionSource,
    current_task,
    current_token,
    from_canceled,
    from_exception,
    from_future,
    from_result,
    when_all,
    when_any,
)
from ._unobserved import set_unobserved_exception_handler
from ._workstealing import WorkStealingScheduler, WorkStealingStatistics

__version__ = "0.1.0"

__all__ = [
    "AggregateError",
    "CancellationToken",
    "CancellationTokenRegistration",
    "CancellationTokenSource",
    "HybridExecutor",
    "InvalidOperationError",
    "LimitedConcurrencyScheduler",
    "LimitedConcurrencyStatistics",
    "LoopScheduler",
    "LoopSchedulerStatistics",
    "OperationCanceledError",
    "ProcessExecutor",
    "ProcessScheduler",
    "ProcessSchedulerStatistics",
    "SchedulerStatistics",
    "StructuredTaskGroup",
    "Task",
    "TaskCanceledError",
    "TaskCompletionSource",
    "TaskContinuationOptions",
    "TaskCreationOptions",
    "TaskFactory",
    "TaskGroup",
    "TaskGroupStatus",
    "TaskScheduler",
    "TaskStatus",
    "TaskloomError",
    "ThreadExecutor",
    "WorkStealingScheduler",
    "WorkStealingStatistics",
    "WorkerCrashedError",
    "completed_task",
    "cpu_bound",
    "current_task",
    "current_token",
    "delay",
    "from_canceled",
    "from_exception",
    "from_future",
    "from_result",
    "parallel_invoke",
    "run",
    "set_unobserved_exception_handler",
    "start_new",
    "to_process",
    "to_thread",
    "wait_all",
    "wait_any",
    "when_all",
    "when_any",
]
