"""taskloom's executors: drop-in concurrent.futures executors that return Tasks.

1. ThreadExecutor: submit, map, continuations on the returned tasks;
2. ProcessExecutor: map with chunksize, a lambda sent to a process;
3. HybridExecutor as an asyncio loop's default executor: blocking work on threads,
   @cpu_bound work on processes, the loop never stalled.

Run: python examples/executors.py
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import os
import time

import taskloom as tl


def fetch(n: int) -> str:
    time.sleep(0.01)  # stands in for blocking I/O
    return f"page {n}"


@tl.cpu_bound
def crunch(n: int) -> int:
    """Pure-Python CPU work: a HybridExecutor runs it in a worker process."""
    return sum(i * i % 7 for i in range(n))


def thread_executor() -> None:
    with tl.ThreadExecutor(max_workers=4, thread_name_prefix="io") as ex:
        task = ex.submit(fetch, 1)
        # A Task is a Future: concurrent.futures helpers work; and it has continuations.
        shouted = task.then(str.upper)
        print(shouted.result())
        print(list(ex.map(fetch, range(3))))
        done, _ = cf.wait([ex.submit(fetch, i) for i in range(5)])
        print(len(done), "pages fetched")


def process_executor() -> None:
    with tl.ProcessExecutor(max_workers=2) as ex:
        print(sum(ex.map(crunch, [10_000] * 8, chunksize=4)))
        offset = 5
        print(ex.submit(lambda x: x + offset, 1).result())  # closures travel by cloudpickle


async def web_app_like() -> None:
    loop = asyncio.get_running_loop()
    loop.set_default_executor(tl.HybridExecutor(max_workers=4, process_workers=2))
    page = await asyncio.to_thread(fetch, 7)  # blocking I/O: a thread
    totals = await asyncio.gather(*[asyncio.to_thread(crunch, 200_000) for _ in range(4)])
    pid = await loop.run_in_executor(None, os.getpid)  # unmarked: a thread of this process
    print(page, totals[0], "same process:", pid == os.getpid())


if __name__ == "__main__":
    thread_executor()
    process_executor()
    asyncio.run(web_app_like())
