"""Each ``anyio_backend`` id in conftest.py really runs the event loop it names."""

from __future__ import annotations

import asyncio

import anyio
import pytest

pytestmark = pytest.mark.anyio


def _running_loop_module() -> str | None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # no asyncio loop: we are on trio
        return None
    return type(loop).__module__


def _on_trio() -> bool:
    import trio

    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        return False
    return True


async def test_backend_is_the_one_named(
    anyio_backend_name: str, request: pytest.FixtureRequest
) -> None:
    backend_id = request.node.callspec.id
    loop_module = _running_loop_module()
    if backend_id == "asyncio":
        assert anyio_backend_name == "asyncio"
        assert loop_module is not None
        assert loop_module.startswith("asyncio."), loop_module
        assert not _on_trio()
    elif backend_id == "uvloop":
        assert anyio_backend_name == "asyncio"
        assert loop_module is not None
        assert loop_module.startswith("uvloop"), loop_module
        assert not _on_trio()
    elif backend_id == "trio":
        assert anyio_backend_name == "trio"
        assert loop_module is None
        assert _on_trio()
    else:
        pytest.fail(f"unexpected backend id {backend_id!r}")


async def test_backend_switches_tasks() -> None:
    """A trivial sleep round-trips through the backend's scheduler."""
    await anyio.sleep(0)
