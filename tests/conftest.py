"""Shared test configuration.

Async tests are marked ``@pytest.mark.anyio`` and run, through anyio's own pytest
plugin, once per backend below: the default asyncio loop, asyncio on uvloop, and
trio. ``tests/test_backends.py`` checks that each backend is really the one named.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator

import pytest

from taskloom import TaskScheduler
from tests.schedulers import SCHEDULER_FACTORIES

_HAS_UVLOOP = sys.platform != "win32" and importlib.util.find_spec("uvloop") is not None


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(("asyncio", {}), id="asyncio"),
        # anyio >= 4 takes use_uvloop=True and passes uvloop.new_event_loop as
        # asyncio.Runner's loop_factory (no global event-loop policy is changed).
        pytest.param(
            ("asyncio", {"use_uvloop": True}),
            id="uvloop",
            marks=pytest.mark.skipif(not _HAS_UVLOOP, reason="uvloop is not installed"),
        ),
        pytest.param(("trio", {}), id="trio"),
    ],
)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, object]]:
    """The async backend an ``anyio``-marked test runs on: ``(name, options)``.

    Module-scoped, like anyio's default fixture, so module-scoped async fixtures
    work and the tests of a module share one event loop per backend.
    """
    backend: tuple[str, dict[str, object]] = request.param
    return backend


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "scheduler_needs(*traits): skip the test for schedulers of tests/schedulers.py "
        "that lack a trait ('in_process', 'inlining')",
    )


@pytest.fixture(params=sorted(SCHEDULER_FACTORIES))
def scheduler(request: pytest.FixtureRequest) -> Iterator[TaskScheduler]:
    """A fresh scheduler from ``tests/schedulers.py``, one run per entry; closed after the test.

    Honours ``@pytest.mark.scheduler_needs(...)`` by skipping entries without the trait;
    the closest marker decides, so ``scheduler_needs()`` on a test lifts a module default.
    """
    entry = SCHEDULER_FACTORIES[request.param]
    marker = request.node.get_closest_marker("scheduler_needs")
    for trait in marker.args if marker is not None else ():
        if not entry.has(trait):
            pytest.skip(f"the {request.param} scheduler lacks the {trait!r} trait")
    sched = entry()
    try:
        yield sched
    finally:
        entry.close(sched)
