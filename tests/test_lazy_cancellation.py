"""``LAZY_CANCELLATION``: a canceled continuation waits for its antecedent, then never runs.

Regression: once its antecedent had completed and it was queued, a lazy
continuation ignored its token and ran even if the token was canceled before a
thread picked it up (a non-lazy one ends CANCELED without running).
"""

from __future__ import annotations

import threading

import pytest

import taskloom as tl

LAZY = tl.TaskContinuationOptions.LAZY_CANCELLATION


def test_canceled_before_the_antecedent_completes_waits_for_it() -> None:
    gate = tl.TaskCompletionSource[int]()
    with tl.CancellationTokenSource() as cts:
        cont = gate.task.continue_with(lambda t: "ran", token=cts.token, options=LAZY)
        cts.cancel()
        assert cont.status is tl.TaskStatus.WAITING_FOR_ACTIVATION  # not early
        gate.set_result(1)
        with pytest.raises(tl.TaskCanceledError):
            cont.wait(timeout=10)


def test_canceled_while_queued_never_runs() -> None:
    scheduler = tl.LimitedConcurrencyScheduler(1)
    release = threading.Event()
    blocker = tl.start_new(release.wait, 10, scheduler=scheduler)  # holds the only slot
    ran: list[int] = []
    with tl.CancellationTokenSource() as cts:
        cont = tl.from_result(1).continue_with(
            lambda t: ran.append(1), token=cts.token, options=LAZY, scheduler=scheduler
        )
        assert cont.status is tl.TaskStatus.WAITING_TO_RUN  # queued behind the blocker
        cts.cancel()
        assert cont.is_canceled
        release.set()
        with pytest.raises(tl.TaskCanceledError):
            cont.wait(timeout=10)
    assert blocker.result(timeout=10) is True
    assert ran == []


def test_not_canceled_runs_normally() -> None:
    with tl.CancellationTokenSource() as cts:
        cont = tl.delay(0.01).continue_with(lambda t: "ran", token=cts.token, options=LAZY)
        assert cont.result(timeout=10) == "ran"
