"""Shared pieces of the benchmark scripts: flags, the stock objective, timed runs, output.

Every benchmark prints its figures and, with ``--json PATH``, writes them as one object::

    {"benchmark", "quick", "seconds", "settings", "figures", "target", "target_met",
     "table": {"columns", "rows"}, "png", "runs"}

It is a :class:`Report`: ``figures`` holds the headline numbers (non-finite ones are written as
``null``); ``table`` is what ``bench/page.py`` renders into docs/benchmarks.md.

TensorFlow is imported lazily, inside functions, so this module can set its log level first
and spawned worker processes, which re-import the main script, start light.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import statistics
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Before anything imports TensorFlow: its C++ info lines would drown the figures.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
SPACES = ROOT / "spaces"
DOCS_BENCH = ROOT / "docs" / "bench"
#: ``--quick`` trains on the last few years of prices only (as bench/memory.py does): a smoke
#: run checks that every figure can be produced, not what it is.
QUICK_YEARS = 3


def quiet() -> None:
    """Silence per-trial chatter (TensorFlow retracing warnings, hyperopt INFO lines)."""
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("hyperopt").setLevel(logging.WARNING)
    logging.getLogger("optuna").setLevel(logging.WARNING)


# -- flags and settings ------------------------------------------------------------------------
def parser(doc: str) -> argparse.ArgumentParser:
    """The flags every benchmark has: ``--quick``, ``--json``, ``--png``."""
    p = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="a smoke run of about a minute")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    p.add_argument(
        "--png",
        type=Path,
        metavar="PATH",
        help="the plot (default: next to --json, else docs/bench)",
    )
    return p


def add_budget_flags(p: argparse.ArgumentParser, *names: str) -> None:
    """Optional overrides of a benchmark's settings (``--trials``, ``--seeds``, ``--epochs``)."""
    for name in names:
        p.add_argument(f"--{name}", type=int, metavar="N", help=f"override the {name} setting")


def pick(args: argparse.Namespace, full: Any, quick: Any) -> Any:
    """The full or quick settings dataclass, with any flag given on the command line applied."""
    base = quick if args.quick else full
    given = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(base)
        if getattr(args, f.name, None) is not None
    }
    return dataclasses.replace(base, **given)


def png_path(args: argparse.Namespace, name: str) -> Path:
    """Where the plot goes: ``--png``, else beside ``--json``, else docs/bench (a temp folder
    for ``--quick``, so a smoke run never overwrites the published figures)."""
    if args.png is not None:
        return Path(args.png)
    if args.json is not None:
        return Path(args.json).with_suffix(".png")
    folder = Path(tempfile.gettempdir()) / "tpetune-bench" if args.quick else DOCS_BENCH
    return folder / f"{name}.png"


# -- the stock objective -----------------------------------------------------------------------
def stock_objective(*, quick: bool, epochs: int, patience: int | None = None) -> Any:
    """``StockObjective`` as ``tpetune stock`` builds it: with the pruning callback, which does
    nothing unless the study's pruning options turn the median rule on."""
    from tpetune.pruners.keras import keras_pruning_callback
    from tpetune.stock.data import load_prices
    from tpetune.stock.objective import DEFAULT_PATIENCE, StockObjective, recent_years

    prices = recent_years(load_prices(), QUICK_YEARS) if quick else None
    return StockObjective(
        prices=prices,
        epochs=epochs,
        patience=DEFAULT_PATIENCE if patience is None else patience,
        callbacks=[keras_pruning_callback],
    )


def load_space(name: str) -> Any:
    """A :class:`tpetune.search.space.Space` from this checkout's spaces/ (not an installed
    copy)."""
    from tpetune.search.space import load_space as load

    return load(SPACES / f"{name}.py")


def data_note(quick: bool) -> str:
    return f"last {QUICK_YEARS} years" if quick else "last 10 years (the default)"


# -- timed runs --------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrialEnd:
    """One finished trial as a benchmark sees it."""

    t: float  # seconds from the start of the run to the end of the trial
    loss: float | None  # None unless the trial finished ok (pruned and failed ones do not count)
    epochs: int


@dataclass
class Run:
    """One search: its wall time and the trials in the order they ended."""

    mode: str
    seed: int
    wall_s: float
    ends: list[TrialEnd]
    pruned: int = 0
    failed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def trials(self) -> int:
        return len(self.ends)

    @property
    def epochs(self) -> int:
        return sum(e.epochs for e in self.ends)

    @property
    def best_loss(self) -> float:
        losses = [e.loss for e in self.ends if e.loss is not None]
        return min(losses) if losses else math.nan

    def best_by_trial(self) -> list[float]:
        """Best loss so far after each trial (NaN until one finished ok)."""
        out, best = [], math.inf
        for e in self.ends:
            if e.loss is not None:
                best = min(best, e.loss)
            out.append(best if math.isfinite(best) else math.nan)
        return out

    def best_by_time(self) -> list[tuple[float, float]]:
        """(seconds, best loss so far) at the end of each trial, once one finished ok."""
        return [
            (e.t, b)
            for e, b in zip(self.ends, self.best_by_trial(), strict=True)
            if not math.isnan(b)
        ]

    def time_to(self, target: float) -> float:
        """Seconds until the best loss was at or below ``target``; inf if it never was."""
        return next((t for t, best in self.best_by_time() if best <= target), math.inf)

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "seed": self.seed,
            "wall_s": self.wall_s,
            "trials": self.trials,
            "epochs": self.epochs,
            "pruned": self.pruned,
            "failed": self.failed,
            "best_loss": self.best_loss,
            "losses": [e.loss for e in self.ends],  # per trial, in the order they ended
            "best_by_trial": self.best_by_trial(),
            "best_by_time": self.best_by_time(),
            **self.extra,
        }


def run_tune(
    objective: Any,
    space: Any,
    *,
    mode: str,
    seed: int,
    max_evals: int,
    algo: str = "tpe",
    algo_options: Mapping[str, Any] | None = None,
    points: Sequence[Mapping[str, Any]] = (),
    pruning: Mapping[str, Any] | None = None,
    workers: int | None = None,
    spark: str | None = None,
) -> Run:
    """``tpetune.tune`` on a fresh study in a temp folder, timed from the call to its return.

    ``pruning`` is a pruner's JSON form (``{"rule": "median", ...}`` or ``{"name": "asha"}``;
    ``None``: tune's default); ``workers``/``spark`` pick the executor (serial otherwise).
    """
    from tpetune.engine.options import Search, Spark, Workers
    from tpetune.engine.tuning import tune
    from tpetune.pruners.policies import pruner_from_json
    from tpetune.study.store import TrialState

    executor: Any = None
    if spark is not None:
        executor = Spark(spark, workers=workers)
    elif workers is not None and workers > 1:
        executor = Workers(workers)
    search = Search(algo=algo, seed=seed, options=dict(algo_options or {}), points=points)
    with tempfile.TemporaryDirectory(prefix="tpetune-bench-") as tmp:
        started = time.time()
        clock = time.perf_counter()
        study = tune(
            objective,
            space,
            study_dir=tmp,
            max_evals=max_evals,
            search=search,
            pruner=None if pruning is None else pruner_from_json(pruning),
            executor=executor,
            progress=False,
        )
        wall = time.perf_counter() - clock
    finished = {r.tid: r.finished for r in study.records if r.finished is not None}
    done = sorted((r for r in study.records if r.tid in finished), key=lambda r: finished[r.tid])
    ends = [
        TrialEnd(
            t=finished[r.tid] - started,
            loss=r.loss if r.state is TrialState.OK else None,
            epochs=len(r.curves.get("val_loss", [])),
        )
        for r in done
    ]
    states = [r.state for r in done]
    return Run(
        mode, seed, wall, ends, states.count(TrialState.PRUNED), states.count(TrialState.FAIL)
    )


def sample_vals(space: Any, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` random points of ``space`` as hyperopt vals (label -> raw value or index)."""
    from hyperopt import Trials, rand

    docs = rand.suggest(list(range(n)), space.domain, Trials(), seed)
    return [{k: v[0] for k, v in d["misc"]["vals"].items() if v} for d in docs]


def sample_points(space: Any, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` random points of ``space`` as label -> value dicts, as ``tune(points=...)``
    takes them."""
    return [space.params(vals) for vals in sample_vals(space, n, seed)]


# -- arithmetic and formatting -----------------------------------------------------------------
def median(values: Iterable[float]) -> float:
    """Median that keeps inf (a run that never got there) and ignores NaN; NaN if empty."""
    kept = [v for v in values if v == v]
    return statistics.median(kept) if kept else math.nan


def ratio(a: float, b: float) -> float:
    """``a / b``, NaN where it means nothing (a zero or non-finite denominator)."""
    if not (math.isfinite(b) and b != 0) or a != a:
        return math.nan
    return a / b


def fmt(value: float, spec: str = ".4g", unit: str = "") -> str:
    """A number for a table cell; "n/a" for NaN, "not reached" for inf."""
    if value != value:
        return "n/a"
    if math.isinf(value):
        return "not reached"
    return f"{value:{spec}}{unit}"


def finite_or_none(value: Any) -> Any:
    """JSON has no inf or NaN: write them as null (recursively)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(v) for v in value]
    return value


def figure_table(figures: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """A two-column table of a report's scalar figures, for scripts without their own."""
    rows = [
        [k, fmt(float(v), ".4g")]
        for k, v in figures.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    ]
    return ["figure", "value"], rows


def print_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(c)), *(len(str(r[i])) for r in rows)) for i, c in enumerate(columns)]
    for row in (columns, *rows):
        print("  " + "  ".join(str(v).rjust(w) for v, w in zip(row, widths, strict=True)))


# -- output ------------------------------------------------------------------------------------
def new_axes(width: float = 7.0, height: float = 4.2) -> tuple[Any, Any]:
    """A figure and its axes from matplotlib's object API (no pyplot, no global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots()


def save_png(fig: Any, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")
    return path.name


def write_report(args: argparse.Namespace, report: dict[str, Any]) -> None:
    """Print where the JSON went and write it (``--json``)."""
    if args.json is None:
        return
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(finite_or_none(report), indent=2) + "\n")
    print(f"figures: {path}")


@dataclass(frozen=True)
class Report:
    """What every benchmark writes with ``--json`` (the layout in the module docstring).

    ``settings`` is the run's settings dataclass (or a dict); ``table`` is ``(columns, rows)``
    of strings, rendered into docs/benchmarks.md by bench/page.py.
    """

    benchmark: str
    settings: Any
    figures: dict[str, Any]
    table: tuple[Sequence[str], Sequence[Sequence[str]]]
    target: str = ""
    target_met: bool | None = None
    png: str | list[str] | None = None  # file name(s) beside the JSON
    runs: Sequence[Mapping[str, Any]] = ()

    def to_json(self, *, quick: bool, seconds: float) -> dict[str, Any]:
        columns, rows = self.table
        settings = self.settings
        if dataclasses.is_dataclass(settings) and not isinstance(settings, type):
            settings = dataclasses.asdict(settings)
        return {
            "benchmark": self.benchmark,
            "quick": quick,
            "seconds": seconds,
            "settings": dict(settings),
            "figures": self.figures,
            "target": self.target,
            "target_met": self.target_met,
            "table": {"columns": list(columns), "rows": [list(r) for r in rows]},
            "png": self.png,
            "runs": list(self.runs),
        }

    def write(self, args: argparse.Namespace, started: float) -> None:
        """Write the report to ``--json`` (if given), timed from ``started``."""
        seconds = time.perf_counter() - started
        write_report(args, self.to_json(quick=bool(args.quick), seconds=seconds))
