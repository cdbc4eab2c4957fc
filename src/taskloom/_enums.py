"""Task status and option enums (DESIGN 1.1), named after their TPL counterparts."""

from __future__ import annotations

import enum

__all__ = ["TaskContinuationOptions", "TaskCreationOptions", "TaskStatus"]


class TaskStatus(enum.Enum):
    """The life-cycle state of a :class:`Task`.

    ``CREATED`` (cold) → ``WAITING_TO_RUN`` (queued) → ``RUNNING`` →
    ``WAITING_FOR_CHILDREN_TO_COMPLETE`` (body returned, attached children
    pending) → one of the three final states ``RAN_TO_COMPLETION``,
    ``CANCELED``, ``FAULTED``. Continuations and promise tasks (completion
    sources, ``when_all``...) start in ``WAITING_FOR_ACTIVATION``.
    """

    CREATED = 0
    WAITING_FOR_ACTIVATION = 1
    WAITING_TO_RUN = 2
    RUNNING = 3
    WAITING_FOR_CHILDREN_TO_COMPLETE = 4
    RAN_TO_COMPLETION = 5
    CANCELED = 6
    FAULTED = 7


class TaskCreationOptions(enum.Flag):
    """Options for creating a task (``Task(...)``, ``start_new``, ``TaskFactory``).

    * ``PREFER_FAIRNESS`` – queue to the global FIFO queue even from a worker.
    * ``LONG_RUNNING`` – run on a dedicated thread, outside the pool.
    * ``ATTACHED_TO_PARENT`` – attach to the task running on this thread.
    * ``DENY_CHILD_ATTACH`` – children asking to attach to this task stay detached.
    * ``HIDE_SCHEDULER`` – inside the body, ``TaskScheduler.current()`` is the default.
    * ``RUN_CONTINUATIONS_ASYNCHRONOUSLY`` – this task's continuations are always queued.
    """

    NONE = 0
    PREFER_FAIRNESS = 1
    LONG_RUNNING = 2
    ATTACHED_TO_PARENT = 4
    DENY_CHILD_ATTACH = 8
    HIDE_SCHEDULER = 16
    RUN_CONTINUATIONS_ASYNCHRONOUSLY = 64


class TaskContinuationOptions(enum.Flag):
    """Options for ``continue_with``: the creation options plus when and how to run.

    The ``NOT_ON_*`` / ``ONLY_ON_*`` filters end the continuation ``CANCELED``
    when the antecedent's outcome is excluded. ``EXECUTE_SYNCHRONOUSLY`` runs it on
    the thread that completes the antecedent. ``LAZY_CANCELLATION`` keeps a
    continuation whose token is canceled from completing before its antecedent.
    """

    NONE = 0
    PREFER_FAIRNESS = 1
    LONG_RUNNING = 2
    ATTACHED_TO_PARENT = 4
    DENY_CHILD_ATTACH = 8
    HIDE_SCHEDULER = 16
    LAZY_CANCELLATION = 32
    RUN_CONTINUATIONS_ASYNCHRONOUSLY = 64
    NOT_ON_RAN_TO_COMPLETION = 0x10000
    NOT_ON_FAULTED = 0x20000
    NOT_ON_CANCELED = 0x40000
    ONLY_ON_RAN_TO_COMPLETION = NOT_ON_FAULTED | NOT_ON_CANCELED
    ONLY_ON_FAULTED = NOT_ON_RAN_TO_COMPLETION | NOT_ON_CANCELED
    ONLY_ON_CANCELED = NOT_ON_RAN_TO_COMPLETION | NOT_ON_FAULTED
    EXECUTE_SYNCHRONOUSLY = 0x80000
