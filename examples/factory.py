"""``TaskFactory``: create many tasks with shared defaults (token, options, scheduler).

Ports the seed's ``TaskFactory`` examples: ``start_new`` with a state object,
``continue_when_all`` and ``continue_when_any``. Run it with
``python examples/factory.py``.
"""

from __future__ import annotations

import concurrent.futures
import time

import taskloom as tl


def fetch(name: str, seconds: float) -> str:
    time.sleep(seconds)
    return f"{name} after {seconds:.2f}s"


def main() -> None:
    limited = tl.LimitedConcurrencyScheduler(2)
    with tl.CancellationTokenSource() as cts:
        factory = tl.TaskFactory(
            token=cts.token,
            creation_options=tl.TaskCreationOptions.NONE,
            continuation_options=tl.TaskContinuationOptions.NONE,
            scheduler=limited,
        )
        print("factory defaults: scheduler is limited ->", factory.scheduler is limited)

        # Every argument left out takes the factory's default.
        tasks = [
            factory.start_new(fetch, name, 0.01 * (i + 1), state=i)
            for i, name in enumerate(["alpha", "beta", "gamma"])
        ]
        print("each task's token is the factory's:", all(t.token == cts.token for t in tasks))
        print("async_state values:", [t.async_state for t in tasks])

        first = factory.continue_when_any(tasks, lambda t: f"first: {t.result()}")
        every = factory.continue_when_all(tasks, lambda ts: [t.result() for t in ts])
        print(first.result())
        print("all:", every.result())

        # A call can override a default: this one runs on the default scheduler instead.
        other = factory.start_new(lambda: tl.TaskScheduler.current(), scheduler=None)
        print("override scheduler=None ->", type(other.result()).__name__)

    # tl.start_new is the factory-less form, with the same options.
    fair = tl.start_new(
        fetch, "delta", 0.0, options=tl.TaskCreationOptions.PREFER_FAIRNESS, state="s"
    )
    print("tl.start_new:", fair.result(), "- options", fair.creation_options)

    # from_future wraps a plain concurrent.futures.Future.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
        wrapped = tl.TaskFactory().from_future(executor.submit(fetch, "epsilon", 0.0))
        print("factory.from_future:", wrapped.result())


if __name__ == "__main__":
    main()
