"""The command line: ``python -m taskloom demo`` and ``python -m taskloom bench [args...]``.

Also installed as the ``taskloom`` console script. Each subcommand's body lives in
its own module (:mod:`taskloom._demo`, :mod:`taskloom._bench`), imported only when
that subcommand runs, so ``taskloom --help`` starts no threads and imports nothing
heavy. Everything after ``bench`` is handed to the benchmark runner untouched, so
``taskloom bench --help`` shows the runner's own options.

``rich`` (extra ``taskloom[cli]``) is optional: when it is importable, errors are
printed with it; the library itself never imports it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from importlib import metadata

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    Example::

        >>> main(["demo"])  # doctest: +SKIP
        0
    """
    parser = _build_parser()
    args = sys.argv[1:] if argv is None else list(argv)
    namespace, rest = parser.parse_known_args(args)
    if namespace.command is None:
        parser.print_help(sys.stderr)
        return 2
    if rest and namespace.command != "bench":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    handler: Callable[[list[str]], int] = namespace.handler
    try:
        return handler(rest)
    except KeyboardInterrupt:
        _print_error("interrupted")
        return 130


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskloom",
        description="taskloom: the TPL/PPL task model for Python, on asyncio, uvloop and trio.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="run a short tour of tasks, continuations, cancellation and schedulers",
        description="Run a short, self-checking tour of the library.",
    )
    demo.set_defaults(handler=_run_demo)

    # add_help=False: `taskloom bench --help` reaches the benchmark runner's parser.
    bench = commands.add_parser(
        "bench",
        add_help=False,
        help="run the side-by-side benchmark suite (arguments go to the runner)",
        description="Run the benchmark suite; every argument is passed to the runner.",
    )
    bench.set_defaults(handler=_run_bench)
    return parser


def _run_demo(rest: list[str]) -> int:
    assert not rest, "main() rejects extra arguments for demo"
    from taskloom._demo import main as demo_main

    # Typed as returning `object` so that either `-> None` or `-> int` satisfies it.
    run: Callable[[], object] = demo_main
    return _exit_code(run())


def _run_bench(rest: list[str]) -> int:
    from taskloom._bench import main as bench_main

    run: Callable[[list[str]], object] = bench_main
    return _exit_code(run(rest))


def _exit_code(result: object) -> int:
    """Map a subcommand's return value to a process exit code (None means success)."""
    if result is None:
        return 0
    if isinstance(result, int):
        return int(result)
    _print_error(f"subcommand returned {result!r}, not an exit code")
    return 1


def _version() -> str:
    try:
        return metadata.version("taskloom")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "(not installed)"


def _print_error(message: str) -> None:
    try:
        from rich.console import Console
        from rich.markup import escape
    except ImportError:
        print(f"taskloom: error: {message}", file=sys.stderr)
        return
    Console(stderr=True, highlight=False).print(f"[bold red]taskloom: error:[/] {escape(message)}")
