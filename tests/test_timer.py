"""The shared timer thread behind ``delay``, ``cancel_after`` and pool housekeeping."""

from __future__ import annotations

import functools
import logging
import threading

import pytest

import taskloom as tl
from taskloom import _timer

WAIT = 30.0


def timer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "taskloom-timer"]


def test_many_delays_share_one_thread() -> None:
    before = threading.active_count()
    delays = [tl.delay(0.001 * (i % 20)) for i in range(300)]
    cts = tl.CancellationTokenSource()
    cts.cancel_after(0.01)
    assert tl.wait_all(*delays, timeout=WAIT)
    assert cts.token.wait(WAIT)
    assert len(timer_threads()) == 1
    assert threading.active_count() <= before + 1  # at most the timer thread was added
    assert timer_threads()[0].daemon


def test_callbacks_run_in_deadline_order_ties_in_scheduling_order() -> None:
    order: list[str] = []
    done = threading.Event()
    delays = {"d": 0.04, "a": 0.01, "c": 0.03, "b": 0.02, "b2": 0.02}
    for name, delay in delays.items():
        _timer.schedule(delay, functools.partial(order.append, name))
    _timer.schedule(0.05, done.set)
    assert done.wait(WAIT)
    assert order == ["a", "b", "b2", "c", "d"]


def test_callbacks_run_on_the_timer_thread() -> None:
    seen: list[str] = []
    done = threading.Event()

    def record() -> None:
        seen.append(threading.current_thread().name)
        done.set()

    _timer.schedule(0, record)
    assert done.wait(WAIT)
    assert seen == ["taskloom-timer"]


def test_cancel_keeps_a_callback_from_running() -> None:
    fired: list[str] = []
    done = threading.Event()
    handle = _timer.schedule(0.01, lambda: fired.append("canceled"))
    assert not handle.cancelled
    handle.cancel()
    assert handle.cancelled
    _timer.schedule(0.02, done.set)  # runs after the canceled one's deadline
    assert done.wait(WAIT)
    assert fired == []


def test_canceled_timers_do_not_pile_up() -> None:
    # A long timer canceled early (cancel_after, delay with a token) must not stay
    # in the heap until its deadline: the heap is swept of canceled entries.
    baseline = len(_timer._timer._heap)
    for _ in range(5000):
        _timer.schedule(3600, lambda: None).cancel()
    assert len(_timer._timer._heap) <= 2 * max(baseline, _timer._MIN_SWEEP) + 1

    cts = tl.CancellationTokenSource()
    for _ in range(2000):
        tl.delay(3600, cts.token)
    before = _timer._timer.pending()
    cts.cancel()
    assert _timer._timer.pending() <= before - 2000


def test_earlier_timer_scheduled_later_wakes_the_thread() -> None:
    order: list[str] = []
    done = threading.Event()

    def late() -> None:
        order.append("late")
        done.set()

    _timer.schedule(0.3, late)
    _timer.schedule(0.0, lambda: order.append("early"))
    assert done.wait(WAIT)
    assert order == ["early", "late"]


def test_a_raising_callback_is_logged_and_the_timer_keeps_working(
    caplog: pytest.LogCaptureFixture,
) -> None:
    done = threading.Event()

    def boom() -> None:
        raise ValueError("timer boom")

    with caplog.at_level(logging.ERROR, logger="taskloom"):
        _timer.schedule(0, boom)
        _timer.schedule(0.01, done.set)
        assert done.wait(WAIT)
    records = [r for r in caplog.records if r.exc_info and "timer boom" in str(r.exc_info[1])]
    assert len(records) == 1
    assert records[0].name == "taskloom"
    assert records[0].exc_info is not None
    assert records[0].exc_info[0] is ValueError
    # And delays still complete afterwards.
    assert tl.delay(0.001).wait(WAIT)


def test_delay_on_the_shared_timer_completes_and_cancels() -> None:
    cts = tl.CancellationTokenSource()
    long = tl.delay(3600, cts.token)
    short = tl.delay(0.01)
    assert short.wait(WAIT)
    assert not long.done()
    cts.cancel()
    assert long.is_canceled
