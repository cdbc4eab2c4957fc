"""Task bodies for the process benchmarks (B5-B7): module-level, so every pool can import them.

The scenario modules put this directory on ``sys.path`` for good (the runner removes
it after import), so spawned workers (loky) find this module too.
"""

from __future__ import annotations

from typing import Any


def tiny(x: int) -> int:
    """B5: almost no work, so the pool's per-task overhead is all that is measured."""
    return x + 1


def spin(n: int) -> int:
    """B6: pure-Python CPU work (no GIL release)."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def identity(value: Any) -> Any:
    """B7: send a value to a worker and back."""
    return value


def quicksort(items: list[int]) -> list[int]:
    """A pure-Python quicksort: CPU-bound Python work for the parallel sort benchmark."""
    if len(items) <= 16:
        return sorted(items)
    pivot = items[len(items) // 2]
    lower = [x for x in items if x < pivot]
    equal = [x for x in items if x == pivot]
    upper = [x for x in items if x > pivot]
    return quicksort(lower) + equal + quicksort(upper)
