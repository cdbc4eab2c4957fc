"""``&`` and ``|`` flatten into one ``when_all``/``when_any``, whatever the timing.

Regression: completing a promise used to drop the operands it was built from, so
``a & b & c`` gave ``[[a, b], c]`` (and ``a | b | c`` won with the inner
``when_any`` task) once ``a & b`` had already completed.
"""

from __future__ import annotations

import taskloom as tl


def test_and_flattens_when_the_left_part_already_completed() -> None:
    a, b, c = tl.from_result(1), tl.from_result(2), tl.from_result(3)
    left = a & b
    assert left.result() == [1, 2]
    assert (left & c).result(timeout=5) == [1, 2, 3]
    assert (c & left).result(timeout=5) == [3, 1, 2]


def test_and_flattens_pending_operands() -> None:
    gate = tl.TaskCompletionSource[int]()
    combined = tl.from_result(1) & gate.task & tl.from_result(3)
    assert not combined.done()
    gate.set_result(2)
    assert combined.result(timeout=5) == [1, 2, 3]


def test_or_flattens_when_the_left_part_already_completed() -> None:
    a, b, c = tl.from_result(1), tl.from_result(2), tl.from_result(3)
    left = a | b
    assert left.result() is a
    assert (left | c).result(timeout=5) is a  # the winning operand, not the inner when_any


def test_a_completed_when_all_is_not_flattened_into_when_any() -> None:
    a, b = tl.from_result(1), tl.from_result(2)
    both = a & b
    assert both.result() == [1, 2]
    assert (both | a).result(timeout=5) is both
