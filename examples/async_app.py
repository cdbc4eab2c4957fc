"""An async app that offloads blocking work and gets results back on the loop thread.

A tiny "request handler" on asyncio (the same code runs on trio, shown at the
end) that:

* offloads blocking calls with ``await tl.to_thread(...)`` (the offloaded
  function sees the request's ``contextvars``);
* chains a continuation back onto the loop thread with the loop scheduler
  (TPL's ``TaskScheduler.FromCurrentSynchronizationContext()``);
* runs coroutine functions as tasks (``tl.run(async_fn)``) and composes them
  with thread work in ``when_all``;
* sends CPU-bound work to a worker process with ``await tl.to_process(...)``;
* bounds a slow lookup with ``when_any`` + ``tl.delay``: the seed's "expired
  operations" pattern (``WhenAny`` between the work and a ``Delay``), then
  cancels the loser through its token.

Run it with ``python examples/async_app.py``.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import trio

import taskloom as tl

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def load_profile(user: str) -> dict[str, str]:
    """Blocking I/O (a database call, say): runs on a pool thread."""
    time.sleep(0.05)
    return {"user": user, "request": request_id.get()}


def slow_recommendations(user: str) -> list[str]:
    """A lookup that sometimes takes too long; it watches its token to stop early."""
    token = tl.current_token()
    for _ in range(50):  # up to 5 s of work, in 0.1 s steps
        if token.wait(0.1):
            token.throw_if_cancellation_requested()
    return [f"item for {user}"]


def checksum(n: int) -> int:
    """Pure-Python CPU work: runs in a worker process, so the loop keeps ticking."""
    return sum(i * i % 7 for i in range(n))


async def render(profile: dict[str, str]) -> str:
    """A coroutine continuation: runs on the loop that awaits it."""
    await asyncio.sleep(0)
    return f"<h1>{profile['user']}</h1>"


async def handle(user: str) -> None:
    request_id.set(f"req-{user}")
    loop_thread = threading.get_ident()
    on_loop = tl.LoopScheduler.current()

    # 1. Offload blocking work; the function sees this request's context.
    profile = await tl.to_thread(load_profile, user)
    print("profile:", profile)

    # 2. Chain work: thread work first, then a continuation back on the loop thread.
    def touch_ui(antecedent: tl.Task[dict[str, str]]) -> str:
        assert threading.get_ident() == loop_thread  # marshaled back to the loop
        return f"hello {antecedent.result()['user']} ({request_id.get()})"

    greeting = await tl.run(load_profile, user).continue_with(touch_ui, scheduler=on_loop)
    print("continuation on the loop thread:", greeting)

    # 3. Coroutine functions as tasks and continuations, composed with thread work.
    page, size = await tl.when_all(tl.run(load_profile, user).then(render), tl.to_thread(len, user))
    print("when_all:", page, size)

    # 4. CPU-bound work goes to a worker process.
    print("checksum from a worker process:", await tl.to_process(checksum, 100_000))

    # 5. Expired operations: whichever finishes first, the work or the timeout.
    with tl.CancellationTokenSource() as cts:
        lookup = tl.run(slow_recommendations, user, token=cts.token)
        first = await tl.when_any(lookup, tl.delay(0.2))
        if first is lookup:
            print("recommendations:", lookup.result())
        else:
            cts.cancel()  # the lookup stops at its next token check
            print("recommendations: timed out after 0.2 s")
            try:
                await lookup
            except tl.TaskCanceledError:
                print("the slow lookup ended", lookup.status.name)

    stats: tl.LoopSchedulerStatistics = on_loop.statistics()
    print(f"loop wakeups so far: {stats.wakeups} for {stats.items} loop items")


async def burst() -> None:
    # Many concurrent awaits share loop wakeups: far fewer wakeups than awaits.
    before = tl.LoopScheduler.current().statistics()
    results = await asyncio.gather(*[tl.to_thread(pow, i, 2) for i in range(2000)])
    after = tl.LoopScheduler.current().statistics()
    print(
        f"burst: {len(results)} awaits, {after.wakeups - before.wakeups} loop wakeups, "
        f"sum={sum(results)}"
    )


async def on_trio() -> None:
    # The same calls on trio: await tasks, coroutine tasks, to_thread.
    value = await tl.run(sum, [1, 2, 3])

    async def double(x: int) -> int:
        await trio.sleep(0)
        return x * 2

    doubled = await tl.run(double, value)
    offloaded = await tl.to_thread(str.upper, "trio")
    print("trio:", value, doubled, offloaded)


def main() -> None:
    asyncio.run(handle("ada"))
    asyncio.run(burst())
    trio.run(on_trio)


if __name__ == "__main__":
    main()
