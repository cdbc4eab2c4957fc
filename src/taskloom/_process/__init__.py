"""The process scheduler: tasks whose bodies run in worker processes (DESIGN 1.7).

Data flow (one manager thread per scheduler; no thread per task)::

    any thread                       manager thread (parent)              worker process i
    ----------                       -----------------------              ----------------
    queue_task(task)
      cloudpickle fn + args  ---+
      big buffers --> /dev/shm  |
        segment "…<seq>a<k>"    |
      pending.append(job) ------+--> pending (deque) --dispatch-->  task pipe i  --> pending
      wake pipe <- 1 byte            batches of up to 64 TASK          (frames)       run one
                                     frames, adaptive per worker                        |
    token.cancel() -> commands ---->  kill worker i / SKIP frame                         v
                                     <-- result pipe i <-- one RESULT/ERROR frame per task
                                     <-- sentinel i (process exit)    big results -->
    continuations run here <-------  task._finish_body(...)            /dev/shm "…<seq>r<k>"
                                     maps + unlinks result segments

``_wire`` holds what travels (frames, pickling, shared memory); ``_worker`` runs
in the child; ``_scheduler`` holds the parent side. The manager thread waits on
one selector: the wake pipe, each worker's result pipe and process sentinel, and
a task pipe while it has bytes waiting to be written (parent writes never block).

Crash attribution: a worker runs its tasks in the order they were sent and
writes each result before starting the next, so when it dies the parent reads
what is left in its result pipe and then blames exactly the first task still in
flight; the tasks behind it never started and are queued again.

How this departs from ``concurrent.futures.process`` (whose management thread
it follows): one pipe pair per worker instead of shared call/result queues, so
the parent always knows which worker holds which task (a dead worker faults one
task, never the pool: there is no broken state); no feeder thread (``queue_task``
pickles on the caller's thread, so a pickling error faults that task at once);
frames written and read raw, many per system call, instead of one
``Connection.send`` per item; large buffers through shared memory; running tasks
can be killed for cancellation; workers watch the parent and exit when it dies.
"""

from __future__ import annotations

from ._scheduler import ProcessScheduler, ProcessSchedulerStatistics

__all__ = ["ProcessScheduler", "ProcessSchedulerStatistics"]
