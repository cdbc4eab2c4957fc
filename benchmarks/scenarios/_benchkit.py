"""Helpers shared by the scenario modules (not a scenario: the runner loads only ``b*.py``).

Timing discipline used by every scenario:

* taskloom and its peer run in the same process, each on its own pool of
  :data:`WORKERS` threads, created once per scenario and reused by every repeat
  (steady state, as in a long-running application);
* every variant runs ``warmup`` times unmeasured, then ``repeats`` measured
  rounds; each round runs every variant once, in an order that rotates from
  round to round, so slow drift of the machine's load hits all variants alike;
* ``gc.collect()`` runs before every measured call (the collector stays enabled
  during it: allocation-driven collections are part of the real cost);
* a variant's figure is the **median** of its repeats (min and max are kept in
  the notes, to show the noise).
"""

from __future__ import annotations

import gc
import statistics
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "WORKERS",
    "Timings",
    "describe",
    "interleaved",
    "make_result",
    "row",
]

#: Worker threads on each side of every comparison (the floors assume 2).
WORKERS = 2


class Timings:
    """The measured seconds of one variant."""

    __slots__ = ("samples",)

    def __init__(self) -> None:
        self.samples: list[float] = []

    @property
    def median(self) -> float:
        """The median of the samples (the figure a scenario reports)."""
        return statistics.median(self.samples)

    @property
    def best(self) -> float:
        """The fastest sample."""
        return min(self.samples)

    @property
    def worst(self) -> float:
        """The slowest sample."""
        return max(self.samples)


def interleaved(
    bodies: Mapping[str, Callable[[], float]], *, warmup: int, repeats: int
) -> dict[str, Timings]:
    """Run each body ``warmup`` times, then ``repeats`` rotating rounds; return its timings.

    A body does its own setup, times only the part being measured (with
    ``time.perf_counter``) and returns those seconds.
    """
    names = list(bodies)
    for _ in range(warmup):
        for name in names:
            gc.collect()
            bodies[name]()
    timings = {name: Timings() for name in names}
    for round_no in range(repeats):
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            timings[name].samples.append(bodies[name]())
    return timings


def describe(t: Timings, unit_scale: float = 1.0, unit: str = "s") -> str:
    """``"median 0.81 s (min 0.79, max 0.85, n=5)"`` for the notes."""
    return (
        f"median {t.median * unit_scale:.4g} {unit} (min {t.best * unit_scale:.4g}, "
        f"max {t.worst * unit_scale:.4g}, n={len(t.samples)})"
    )


def row(impl: str, value: float | None, unit: str, note: str = "") -> dict[str, Any]:
    """One result row (``impl`` starting with ``"taskloom"`` marks taskloom's own rows)."""
    return {"impl": impl, "value": value, "unit": unit, "note": note}


def make_result(
    rows: list[dict[str, Any]],
    *,
    ratio: float | None,
    floor: float | None,
    notes: str,
    lower_is_better: bool = False,
    ratio_unit: str = "x",
) -> dict[str, Any]:
    """The dict ``run(quick)`` returns; ``passed`` compares ``ratio`` with ``floor``."""
    passed: bool | None
    if ratio is None or floor is None:
        passed = None
    elif lower_is_better:
        passed = ratio <= floor
    else:
        passed = ratio >= floor
    return {
        "rows": rows,
        "ratio": ratio,
        "floor": floor,
        "passed": passed,
        "notes": notes,
        "lower_is_better": lower_is_better,
        "ratio_unit": ratio_unit,
    }
