"""Trials per hour of the stock study: serial, ``workers=2`` and Spark ``local[2]``, in one run.

    python bench/parallel.py              # 12 fixed trials x 4 epochs per mode (~5 min)
    python bench/parallel.py --quick      # 2 trials x 1 epoch, stock_small, 3 years, no Spark
    python bench/parallel.py --quick --spark   # the same with Spark (~1 min more)
    python bench/parallel.py --no-spark --trials 20 --json out.json

Every mode runs the same trials: ``--trials`` points sampled once from the space with seed 0
and given to ``tune(points=...)`` by value, the same study seed (so the same per-trial training
seeds), a fixed number of epochs (early stopping's patience equals the epochs, so it never
stops a trial; pruning off). Only where the trials run differs:

- serial: in this process, TensorFlow using every core;
- ``workers=2``: two spawned worker processes with one thread each (tpetune's default split);
- ``spark="local[2]"``: two trials at a time as Spark jobs on a local Spark. The Spark session
  is started before the clock starts and its start-up time is reported apart; everything
  after (Python workers importing TensorFlow included) is in the timed run, as worker
  processes' start-up is in the ``workers`` mode.

Prints trials per hour of each mode and its ratio to serial (target: ``workers=2`` at least
1.6x serial), and Spark's overhead per trial: Spark's seconds per trial minus those of
``workers=2`` (same concurrency). The Spark part is skipped, with a message, without pyspark
or Java, with ``--no-spark``, and in ``--quick`` runs unless ``--spark`` is given.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as `python bench/parallel.py`: make the `bench` package importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common


@dataclass(frozen=True)
class Settings:
    space: str
    trials: int
    epochs: int
    workers: int = 2
    quick_data: bool = False


FULL = Settings("stock", trials=12, epochs=4)
QUICK = Settings("stock_small", trials=2, epochs=1, quick_data=True)
SPARK_MASTER = "local[2]"


def spark_missing() -> str | None:
    """Why the Spark part cannot run here, or None when it can."""
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed (pip install 'tpetune[spark]')"
    java_home = os.environ.get("JAVA_HOME")
    if shutil.which("java") is None and not (java_home and Path(java_home).exists()):
        return "no Java runtime (install Java 17 or set JAVA_HOME)"
    return None


def start_spark(master: str) -> tuple[Any, float]:
    """A local Spark session as tpetune's executor would build it, and its start-up seconds."""
    from pyspark.sql import SparkSession

    clock = time.perf_counter()
    session = (
        SparkSession.builder.master(master)
        .appName("tpetune-bench")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return session, time.perf_counter() - clock


def run_modes(s: Settings, spark: bool) -> tuple[dict[str, common.Run], float | None]:
    objective = common.stock_objective(quick=s.quick_data, epochs=s.epochs, patience=s.epochs)
    space = common.load_space(s.space)
    points = common.sample_points(space, s.trials, seed=0)
    same: dict[str, Any] = {"points": points, "pruning": {"rule": "none"}}
    modes: dict[str, dict[str, Any]] = {
        "serial": {},
        f"workers={s.workers}": {"workers": s.workers},
    }
    runs, startup = {}, None
    for mode, options in modes.items():
        runs[mode] = common.run_tune(
            objective, space, mode=mode, seed=0, max_evals=s.trials, **same, **options
        )
        print(f"  {mode:<14}: {runs[mode].wall_s:7.1f} s for {runs[mode].trials} trials")
    if spark:
        # The session tpetune's executor finds active and reuses (and leaves running).
        session, startup = start_spark(SPARK_MASTER)
        try:
            mode = f"spark {SPARK_MASTER}"
            runs[mode] = common.run_tune(
                objective,
                space,
                mode=mode,
                seed=0,
                max_evals=s.trials,
                spark=SPARK_MASTER,
                workers=s.workers,
                **same,
            )
            print(f"  {mode:<14}: {runs[mode].wall_s:7.1f} s (+ {startup:.1f} s session start)")
        finally:
            session.stop()
    return runs, startup


def summarise(
    runs: dict[str, common.Run], startup: float | None, s: Settings
) -> tuple[dict[str, Any], list[str], list]:
    serial = runs["serial"]
    workers = runs[f"workers={s.workers}"]
    figures: dict[str, Any] = {"trials": s.trials, "epochs": s.epochs}
    columns = ["mode", "wall time", "s / trial", "trials / hour", "ratio to serial", "failed"]
    rows = []
    for mode, r in runs.items():
        per_hour = 3600 * r.trials / r.wall_s
        speedup = common.ratio(serial.wall_s, r.wall_s)
        key = mode.split(" ")[0].split("=")[0]  # serial, workers, spark
        figures[f"trials_per_hour_{key}"] = per_hour
        figures[f"ratio_{key}_vs_serial"] = speedup
        rows.append(
            [
                mode,
                common.fmt(r.wall_s, ".1f", " s"),
                common.fmt(r.wall_s / r.trials, ".2f", " s"),
                common.fmt(per_hour, ".0f"),
                common.fmt(speedup, ".2f", "x"),
                str(r.failed),
            ]
        )
    spark = next((r for m, r in runs.items() if m.startswith("spark")), None)
    if spark is not None:
        figures["spark_startup_s"] = startup
        figures["spark_overhead_s_per_trial"] = (
            spark.wall_s / spark.trials - workers.wall_s / workers.trials
        )
        figures["spark_overhead_s_per_trial_vs_serial"] = (
            spark.wall_s / spark.trials - serial.wall_s / serial.trials
        )
    return figures, columns, rows


def plot(figures: dict[str, Any], rows: list, path: Path) -> str:
    fig, ax = common.new_axes(6.0, 3.6)
    modes = [r[0] for r in rows]
    keys = [m.split(" ")[0].split("=")[0] for m in modes]
    values = [figures[f"trials_per_hour_{k}"] for k in keys]
    bars = ax.bar(modes, values, color=["tab:gray", "tab:blue", "tab:orange"][: len(modes)])
    ax.bar_label(bars, labels=[f"{v:.0f}" for v in values])
    ax.margins(y=0.12)  # room for the labels under the title
    ax.set_ylabel("trials per hour")
    ax.set_title("Stock study throughput, same trials in every mode")
    return common.save_png(fig, path)


def main() -> None:
    p = common.parser(__doc__)
    common.add_budget_flags(p, "trials", "epochs")
    p.add_argument(
        "--spark",
        action=argparse.BooleanOptionalAction,
        help="run the Spark mode (default: yes, but not with --quick: its start-up alone "
        "would double the smoke run)",
    )
    args = p.parse_args()
    common.quiet()
    started = time.perf_counter()
    s = common.pick(args, FULL, QUICK)
    wanted = not args.quick if args.spark is None else args.spark
    missing = spark_missing() if wanted else "--no-spark" if args.spark is False else "--quick"
    print(
        f"spaces/{s.space}.py, {common.data_note(s.quick_data)}: the same {s.trials} trials x "
        f"{s.epochs} epochs in each mode, on {os.cpu_count()} cores"
    )
    if missing:
        print(f"spark skipped: {missing}")
    runs, startup = run_modes(s, spark=missing is None)
    figures, columns, rows = summarise(runs, startup, s)
    common.print_table(columns, rows)
    met = figures["ratio_workers_vs_serial"] >= 1.6
    print(
        f"workers={s.workers} / serial throughput: "
        f"{common.fmt(figures['ratio_workers_vs_serial'], '.2f')}x (target >= 1.6)"
        f" -> target {'met' if met else 'not met'}"
    )
    if "spark_overhead_s_per_trial" in figures:
        print(
            f"spark overhead: {figures['spark_overhead_s_per_trial']:+.2f} s per trial vs "
            f"workers={s.workers}, {figures['spark_overhead_s_per_trial_vs_serial']:+.2f} s vs "
            f"serial; session start {startup:.1f} s"
        )
    figures["spark_skipped"] = missing
    png = plot(figures, rows, common.png_path(args, "parallel"))
    common.Report(
        "parallel",
        settings=s,
        figures=figures,
        target=f"workers={s.workers} at least 1.6x the serial throughput",
        target_met=met,
        table=(columns, rows),
        png=png,
        runs=[r.to_json() for r in runs.values()],
    ).write(args, started)


if __name__ == "__main__":
    main()
