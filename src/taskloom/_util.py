"""Argument validation shared by every public entry point.

Bad input is rejected at the call with a ``TypeError`` or ``ValueError`` that
names the argument, never later on a worker thread.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

E = TypeVar("E")

__all__ = ["check_callable", "check_enum", "check_timeout", "describe"]


def describe(obj: object) -> str:
    """A short description of ``obj`` for error messages."""
    return type(obj).__name__


def check_callable(fn: object, name: str = "fn") -> None:
    if not callable(fn):
        raise TypeError(f"{name} must be callable, not {describe(fn)}")


def check_timeout(timeout: object, name: str = "timeout") -> float | None:
    """Validate a timeout in seconds: ``None`` (no limit) or a finite number >= 0."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"{name} must be a number of seconds or None, not {describe(timeout)}")
    value = float(timeout)
    if math.isnan(value):
        raise ValueError(f"{name} must not be NaN")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {timeout!r}")
    if math.isinf(value):
        return None
    return value


def check_enum(value: Any, kind: type[E], name: str) -> E:
    if not isinstance(value, kind):
        raise TypeError(f"{name} must be a {kind.__name__}, not {describe(value)}")
    return value
