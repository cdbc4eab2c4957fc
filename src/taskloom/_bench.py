"""The benchmark runner behind ``python -m taskloom bench`` (DESIGN §3).

Data flow (everything runs in this one process, one scenario after another)::

    benchmarks/scenarios/b*.py --load--> Scenario(ID, TITLE, FLOOR, run)
        --run(quick)--> result dict --validate--> Outcome
    [Outcome, ...] --> Markdown table (stdout) + JSON file + PNG chart

The scenarios live in the source checkout, not in the installed package: the
``benchmarks/`` directory is found by walking up from the current directory and
from this file. A scenario module defines ``ID`` (``"B1"``), ``TITLE``,
``FLOOR`` (text) and ``run(quick: bool) -> dict`` returning::

    {
        "rows": [{"impl": str, "value": float | None, "unit": str, "note": str}, ...],
        "ratio": float | None,
        "floor": float | None,
        "passed": bool | None,
        "notes": str,
        # optional: True when the ratio must stay <= the floor (default False)
        "lower_is_better": bool,
        # optional: the ratio's unit (default "x"; e.g. "tasks/s" for a rate floor)
        "ratio_unit": str,
    }

Rows whose ``impl`` starts with ``taskloom`` are taskloom's own figures; the
others are peers. ``benchmarks/README.md`` documents the protocol for authors.

The progress display never redraws on its own while a scenario runs (rich's
auto-refresh thread would compete for the GIL with the code being timed); it
is redrawn between scenarios only.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib.util
import json
import math
import os
import platform
import re
import sys
import textwrap
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol, TextIO

__all__ = ["main"]

#: Scenario modules: ``benchmarks/scenarios/b<number>_<name>.py``.
SCENARIO_GLOB = "b*.py"
_SCENARIO_NAME = re.compile(r"^b(\d+)_\w+\.py$")


class ScenarioError(Exception):
    """A scenario module breaks the protocol (missing names, malformed result)."""


@dataclass(frozen=True)
class Scenario:
    """One loaded scenario module."""

    id: str
    title: str
    floor: str
    path: Path
    run: Callable[[bool], object]


@dataclass
class Outcome:
    """What running one scenario produced: a validated result, or the error instead."""

    scenario: Scenario
    seconds: float = 0.0
    result: dict[str, Any] | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool | None:
        """The scenario's verdict; None when it has no floor or did not finish."""
        if self.result is None:
            return None
        passed = self.result["passed"]
        return None if passed is None else bool(passed)


# -- finding and loading scenarios ---------------------------------------------------------


def find_benchmarks_dir(starts: Iterable[Path]) -> Path | None:
    """The first ``benchmarks/`` (holding ``scenarios/``) in or above any of ``starts``."""
    for start in starts:
        start = start.resolve()
        for directory in (start, *start.parents):
            candidate = directory / "benchmarks"
            if (candidate / "scenarios").is_dir():
                return candidate
    return None


def discover(benchmarks_dir: Path) -> list[Path]:
    """The scenario files under ``benchmarks_dir/scenarios``, in numeric order (B2 < B10)."""
    found = []
    for path in (benchmarks_dir / "scenarios").glob(SCENARIO_GLOB):
        match = _SCENARIO_NAME.match(path.name)
        if match:
            found.append((int(match.group(1)), path.name, path))
    return [path for _, _, path in sorted(found)]


def load_scenario(path: Path) -> Scenario:
    """Import one scenario file and check it defines ``ID``, ``TITLE``, ``FLOOR``, ``run``.

    The scenario's directory is on ``sys.path`` while it is imported, so it can
    import the helper modules beside it (``_benchkit``).
    """
    name = f"_taskloom_bench_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ScenarioError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    directory = str(path.parent)
    sys.path.insert(0, directory)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise ScenarioError(f"{path.name}: import failed: {exc!r}") from exc
    finally:
        try:
            sys.path.remove(directory)
        except ValueError:
            pass
    values = {key: getattr(module, key, None) for key in ("ID", "TITLE", "FLOOR")}
    for key, value in values.items():
        if not isinstance(value, str) or not value:
            raise ScenarioError(f"{path.name}: {key} must be a non-empty str, not {value!r}")
    run = getattr(module, "run", None)
    if not callable(run):
        raise ScenarioError(f"{path.name}: run(quick: bool) -> dict is missing")
    return Scenario(
        id=str(values["ID"]),
        title=str(values["TITLE"]),
        floor=str(values["FLOOR"]),
        path=path,
        run=run,
    )


def validate_result(result: object) -> dict[str, Any]:
    """Check the dict a scenario's ``run`` returned; raise :class:`ScenarioError` if malformed."""
    if not isinstance(result, dict):
        raise ScenarioError(f"run() must return a dict, not {type(result).__name__}")
    problems = []
    for key in ("rows", "ratio", "floor", "passed", "notes"):
        if key not in result:
            problems.append(f"missing key {key!r}")
    rows = result.get("rows")
    if not isinstance(rows, list) or not rows:
        problems.append("'rows' must be a non-empty list")
    else:
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                problems.append(f"rows[{i}] must be a dict")
                continue
            if not isinstance(row.get("impl"), str) or not isinstance(row.get("unit"), str):
                problems.append(f"rows[{i}]: 'impl' and 'unit' must be str")
            if not isinstance(row.get("note", ""), str):
                problems.append(f"rows[{i}]: 'note' must be a str")
            if not _is_number_or_none(row.get("value")):
                problems.append(f"rows[{i}]: 'value' must be a number or None")
    for key in ("ratio", "floor"):
        if not _is_number_or_none(result.get(key)):
            problems.append(f"{key!r} must be a number or None")
    if result.get("passed") is not None and not isinstance(result.get("passed"), bool):
        problems.append("'passed' must be a bool or None")
    if not isinstance(result.get("notes"), str):
        problems.append("'notes' must be a str")
    if not isinstance(result.get("lower_is_better", False), bool):
        problems.append("'lower_is_better' must be a bool")
    if not isinstance(result.get("ratio_unit", "x"), str):
        problems.append("'ratio_unit' must be a str")
    if problems:
        raise ScenarioError("malformed result: " + "; ".join(problems))
    checked = dict(result)
    checked.setdefault("lower_is_better", False)
    checked.setdefault("ratio_unit", "x")
    return checked


def _is_number_or_none(value: object) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


# -- running ---------------------------------------------------------------------------------


class _Progress(Protocol):
    def begin(self, scenario: Scenario, index: int, total: int) -> None: ...
    def end(self, outcome: Outcome, index: int, total: int) -> None: ...
    def close(self) -> None: ...


class _PlainProgress:
    """One line per scenario on stderr."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def begin(self, scenario: Scenario, index: int, total: int) -> None:
        print(
            f"[{index + 1}/{total}] {scenario.id} {scenario.title} ...",
            file=self.stream,
            flush=True,
        )

    def end(self, outcome: Outcome, index: int, total: int) -> None:
        status = "error" if outcome.error else _verdict(outcome.passed)
        print(
            f"[{index + 1}/{total}] {outcome.scenario.id} {status} in {outcome.seconds:.1f} s",
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        pass


class _RichProgress:
    """A rich progress bar on stderr, redrawn only between scenarios (see module doc)."""

    def __init__(self, total: int) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = Console(stderr=True, highlight=False)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            auto_refresh=False,
            transient=False,
        )
        self.task_id = self.progress.add_task("benchmarks", total=total)
        self.progress.start()

    def begin(self, scenario: Scenario, index: int, total: int) -> None:
        self.progress.update(self.task_id, description=f"{scenario.id} {scenario.title}")
        self.progress.refresh()

    def end(self, outcome: Outcome, index: int, total: int) -> None:
        status = "error" if outcome.error else _verdict(outcome.passed)
        self.progress.console.print(
            f"{outcome.scenario.id} {outcome.scenario.title}: {status} ({outcome.seconds:.1f} s)",
            markup=False,
        )
        self.progress.update(self.task_id, advance=1, description="benchmarks")
        self.progress.refresh()

    def close(self) -> None:
        self.progress.stop()


def _make_progress(total: int, plain: bool) -> _Progress:
    if not plain:
        try:
            return _RichProgress(total)
        except ImportError:
            pass
    return _PlainProgress(sys.stderr)


def run_scenario(scenario: Scenario, quick: bool) -> Outcome:
    """Run one scenario in this process; a failure becomes the outcome's ``error``."""
    gc.collect()
    outcome = Outcome(scenario)
    t0 = time.perf_counter()
    try:
        outcome.result = validate_result(scenario.run(quick))
    except Exception as exc:  # noqa: BLE001 - reported in the table and the JSON, run goes on
        outcome.error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        outcome.extra["traceback"] = traceback.format_exc()
    outcome.seconds = time.perf_counter() - t0
    return outcome


# -- formatting ------------------------------------------------------------------------------


def _verdict(passed: bool | None) -> str:
    return {True: "pass", False: "FAIL", None: "n/a"}[passed]


def _number(value: float) -> str:
    magnitude = abs(value)
    if magnitude >= 1e6:
        return f"{value / 1e6:.3g}M"
    if magnitude >= 1e4:
        return f"{value / 1e3:.3g}k"
    if magnitude >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def format_value(value: float | None, unit: str) -> str:
    """``0.81`` ``"s"`` -> ``"810 ms"``; ``312000`` ``"tasks/s"`` -> ``"312k tasks/s"``."""
    if value is None or not math.isfinite(value):
        return "—"
    if unit == "s" and abs(value) < 1:
        return f"{value * 1e3:.3g} ms"
    return f"{_number(value)} {unit}"


def _format_ratio(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "x":
        return f"{value:.2f}x"
    return format_value(value, unit)


def _row_cell(row: dict[str, Any]) -> str:
    value = row["value"]
    if value is None:
        # No figure (e.g. a peer that deadlocked): the note's first clause says why.
        shown = str(row.get("note", "")).split(":")[0].split(";")[0] or "—"
    else:
        shown = format_value(value, row["unit"])
    return f"{row['impl']}: {shown}"


def _is_taskloom(row: dict[str, Any]) -> bool:
    return str(row["impl"]).lower().startswith("taskloom")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(outcomes: Sequence[Outcome]) -> str:
    """The summary table: id, scenario, taskloom, peer(s), ratio, floor, pass/fail."""
    lines = [
        "| id | scenario | taskloom | peer(s) | ratio | floor | pass/fail |",
        "|---|---|---|---|---|---|---|",
    ]
    for outcome in outcomes:
        scenario = outcome.scenario
        result = outcome.result
        if result is None:
            cells = [scenario.id, scenario.title, "—", "—", "—", scenario.floor, "error"]
        else:
            rows = result["rows"]
            ours = "; ".join(_row_cell(r) for r in rows if _is_taskloom(r)) or "—"
            peers = "; ".join(_row_cell(r) for r in rows if not _is_taskloom(r)) or "—"
            unit = result["ratio_unit"]
            floor = result["floor"]
            if floor is None:
                floor_text = scenario.floor
            else:
                sign = "≤" if result["lower_is_better"] else "≥"
                floor_text = f"{sign} {_format_ratio(floor, unit)}"
            verdict = _verdict(outcome.passed)
            cells = [
                scenario.id,
                scenario.title,
                ours,
                peers,
                _format_ratio(result["ratio"], unit),
                floor_text,
                "**FAIL**" if verdict == "FAIL" else verdict,
            ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def markdown_details(outcomes: Sequence[Outcome]) -> str:
    """Every row with its note, and each scenario's notes (or its error)."""
    parts = []
    for outcome in outcomes:
        scenario = outcome.scenario
        parts.append(f"**{scenario.id} {scenario.title}** ({outcome.seconds:.1f} s)")
        if outcome.result is None:
            parts.append(f"- error: {outcome.error}")
        else:
            for row in outcome.result["rows"]:
                shown = (
                    [format_value(row["value"], row["unit"])] if row["value"] is not None else []
                )
                if row.get("note"):
                    shown.append(row["note"])
                parts.append(f"- {row['impl']}: {' — '.join(shown)}")
            if outcome.result["notes"]:
                parts.append(f"- notes: {outcome.result['notes']}")
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


# -- output files ----------------------------------------------------------------------------


def _finite(obj: Any) -> Any:
    """JSON has no NaN/Infinity: write them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def report_json(outcomes: Sequence[Outcome], meta: dict[str, Any]) -> dict[str, Any]:
    """The JSON document: run metadata plus one entry per scenario."""
    scenarios = []
    for outcome in outcomes:
        entry: dict[str, Any] = {
            "id": outcome.scenario.id,
            "title": outcome.scenario.title,
            "floor_text": outcome.scenario.floor,
            "module": outcome.scenario.path.name,
            "seconds": outcome.seconds,
            "error": outcome.error,
        }
        if outcome.result is not None:
            entry.update(outcome.result)
        entry.update(outcome.extra)
        scenarios.append(entry)
    return _finite({**meta, "scenarios": scenarios})  # type: ignore[no-any-return]


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` to ``path`` (parent directories made as needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def write_chart(path: Path, outcomes: Sequence[Outcome], title: str) -> str | None:
    """A bar chart of each scenario's margin over its floor; a note instead if impossible.

    A bar of 1.0 sits exactly on the floor; above 1.0 is better than the floor
    (for lower-is-better scenarios the margin is floor / ratio).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no chart (pip install 'taskloom[dev]')"
    labels: list[str] = []
    margins: list[float] = []
    colors: list[str] = []
    texts: list[str] = []
    for outcome in outcomes:
        result = outcome.result
        if result is None or result["ratio"] is None or not result["floor"]:
            continue
        ratio = float(result["ratio"])
        floor = float(result["floor"])
        if result["lower_is_better"]:
            margin = floor / ratio if ratio > 0 else math.inf
        else:
            margin = ratio / floor
        if not math.isfinite(margin):
            continue
        unit = result["ratio_unit"]
        sign = "≤" if result["lower_is_better"] else "≥"
        labels.append(f"{outcome.scenario.id}\n" + textwrap.fill(outcome.scenario.title, 24))
        margins.append(margin)
        colors.append("#2e7d32" if outcome.passed else "#c62828")
        texts.append(f"{_format_ratio(ratio, unit)}\n(floor {sign} {_format_ratio(floor, unit)})")
    if not margins:
        return "no scenario has a ratio and a floor: no chart"
    figure, axes = plt.subplots(figsize=(max(6.0, 1.8 * len(margins) + 2), 5.2))
    bars = axes.bar(range(len(margins)), margins, color=colors)
    axes.axhline(1.0, color="black", linestyle="--", linewidth=1, label="floor")
    for bar, text in zip(bars, texts, strict=True):
        axes.annotate(
            text,
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8},
            xytext=(0, 2),
            textcoords="offset points",
        )
    axes.set_xticks(range(len(margins)), labels, fontsize=8)
    axes.set_ylabel("margin over floor (1.0 = floor; higher is better)")
    axes.set_ylim(0, max(1.2, max(margins) * 1.3))
    axes.set_title(textwrap.fill(title, 90), fontsize=9)
    axes.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return None


# -- command line ----------------------------------------------------------------------------


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskloom bench",
        description=(
            "Run the side-by-side benchmark scenarios (benchmarks/scenarios/b*.py) in this "
            "process, print a Markdown table of ratios against the DESIGN floors, and write "
            "JSON and a PNG chart."
        ),
    )
    parser.add_argument(
        "--only",
        metavar="IDS",
        help="comma-separated scenario ids to run, e.g. B1,B3 (default: all)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes and one repeat: checks that everything runs (figures are not meaningful)",
    )
    parser.add_argument(
        "--json",
        metavar="PATH",
        type=Path,
        help="where to write the JSON results (default: benchmarks/results/latest.json)",
    )
    parser.add_argument(
        "--png",
        metavar="PATH",
        type=Path,
        help="where to write the chart (default: benchmarks/results/latest.png)",
    )
    parser.add_argument("--no-chart", action="store_true", help="do not draw the PNG chart")
    parser.add_argument(
        "--plain", action="store_true", help="plain progress lines even when rich is installed"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit with status 1 if a scenario misses its floor (errors always do)",
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    return parser


def _taskloom_version() -> str:
    try:
        return metadata.version("taskloom")
    except metadata.PackageNotFoundError:
        return "(not installed)"


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark suite with command-line ``argv``; return the exit code.

    0: every selected scenario ran (and, with ``--check``, met its floor);
    1: a scenario raised or returned a malformed result (or missed its floor
    under ``--check``); 2: usage error or no ``benchmarks/`` directory.
    """
    args = _build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    bench_dir = find_benchmarks_dir([Path.cwd(), Path(__file__).parent])
    if bench_dir is None:
        print(
            "taskloom bench: cannot find the benchmarks/ directory (with scenarios/ in it), "
            f"looking upward from {Path.cwd()} and from {Path(__file__).parent}. The "
            "benchmarks ship with the source checkout: run from inside it.",
            file=sys.stderr,
        )
        return 2
    paths = discover(bench_dir)
    if not paths:
        print(f"taskloom bench: no scenarios in {bench_dir / 'scenarios'}", file=sys.stderr)
        return 2
    try:
        scenarios = [load_scenario(p) for p in paths]
    except ScenarioError as exc:
        print(f"taskloom bench: {exc}", file=sys.stderr)
        return 1
    if args.only:
        wanted = [s.strip().upper() for s in args.only.split(",") if s.strip()]
        known = {s.id.upper() for s in scenarios}
        unknown = [w for w in wanted if w not in known]
        if unknown:
            print(
                f"taskloom bench: --only: unknown scenario id(s) {', '.join(unknown)}; "
                f"known: {', '.join(s.id for s in scenarios)}",
                file=sys.stderr,
            )
            return 2
        scenarios = [s for s in scenarios if s.id.upper() in wanted]
    if args.list:
        for s in scenarios:
            print(f"{s.id}\t{s.title}\tfloor {s.floor}\t({s.path.name})")
        return 0

    started = datetime.datetime.now(datetime.UTC)
    load_before = _load_average()
    progress = _make_progress(len(scenarios), args.plain)
    outcomes: list[Outcome] = []
    try:
        for index, scenario in enumerate(scenarios):
            progress.begin(scenario, index, len(scenarios))
            outcome = run_scenario(scenario, args.quick)
            outcome.extra["load_average_after"] = _load_average()
            outcomes.append(outcome)
            progress.end(outcome, index, len(scenarios))
    finally:
        progress.close()

    header = (
        f"taskloom {_taskloom_version()} benchmarks, {started:%Y-%m-%d %H:%M} UTC, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average at start {load_before}"
        + (" — QUICK run: sizes too small for meaningful figures" if args.quick else "")
    )
    print(f"\n{header}\n")
    print(markdown_table(outcomes))
    print()
    print(markdown_details(outcomes))

    meta = {
        "schema": 1,
        "created": started.isoformat(timespec="seconds"),
        "quick": args.quick,
        "taskloom": _taskloom_version(),
        "python": sys.version,
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": load_before,
    }
    json_path = args.json if args.json is not None else bench_dir / "results" / "latest.json"
    write_json(json_path, report_json(outcomes, meta))
    print(f"JSON: {json_path}")
    if not args.no_chart:
        png_path = args.png if args.png is not None else bench_dir / "results" / "latest.png"
        note = write_chart(png_path, outcomes, header)
        print(f"chart: {note}" if note else f"chart: {png_path}")

    if any(o.error for o in outcomes):
        return 1
    if args.check and any(o.passed is False for o in outcomes):
        return 1
    return 0
