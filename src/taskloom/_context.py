"""Per-thread execution context: which task runs on this thread, and on which worker.

One ``threading.local`` holds both, so entering a task body costs one
attribute read and one write. Only the owning thread reads or writes its slot.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["local"]


class _Local(threading.local):
    # The task whose body runs on this thread (None outside task bodies).
    task: Any = None
    # The scheduler-specific worker object when this thread is a pool worker.
    worker: Any = None
    # How many task bodies are inlined on this thread's stack (bounded, see _task).
    inline_depth: int = 0
    # The event-loop scheduler that owns this thread, if it runs an event loop.
    loop_scheduler: Any = None
    # How many completions run nested on this thread's stack (bounded, see
    # _run_nested and MAX_COMPLETION_DEPTH in _task).
    completion_depth: int = 0


local = _Local()
