"""TPE against random and grid search: best validation loss by trial count, on one space.

    python bench/strategies.py            # 12 trials, TPE and random x 2 seeds, grid once (~6 min)
    python bench/strategies.py --quick    # 2 trials each, 1 seed, last 3 years of prices (~40 s)
    python bench/strategies.py --trials 40 --seeds 5 --json out.json

All three search ``spaces/stock_grid.py``, the stock space made discrete (384 combinations,
same labels and nesting), because grid search needs discrete parameters and a fair comparison
needs the same candidates. Trials train the stock LSTM for a few epochs (2; pruning off):
enough to rank configurations, cheap enough to run many. TPE starts modelling after
``n_startup_jobs`` = 5 random trials (hyperopt's default of 20 would make it random search for
the whole budget). Grid search is deterministic, so it runs once; it walks the grid in a fixed
order, so a budget far below the grid's size sees only a corner of the space.

Prints the median over seeds of the best loss so far at a few trial counts, per algorithm, and
its ratio to random search (below 1 is better); writes a plot of the curves (strategies.png)
and, with ``--json``, the curves of every run.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as `python bench/strategies.py`: make the `bench` package importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common


@dataclass(frozen=True)
class Settings:
    space: str
    trials: int
    seeds: int
    epochs: int
    tpe_startup: int
    quick_data: bool = False


# 2 seeds: 12 x (2 + 2 + 1) trials, ~6 min of the suite's hour.
FULL = Settings("stock_grid", trials=12, seeds=2, epochs=2, tpe_startup=5)
QUICK = Settings("stock_grid", trials=2, seeds=1, epochs=2, tpe_startup=1, quick_data=True)
ALGOS = ("tpe", "rand", "grid")
COLORS = {"tpe": "tab:blue", "rand": "tab:orange", "grid": "tab:green"}


def run_all(s: Settings) -> list[common.Run]:
    objective = common.stock_objective(quick=s.quick_data, epochs=s.epochs)
    space = common.load_space(s.space)
    runs = []
    for algo in ALGOS:
        for seed in range(1 if algo == "grid" else s.seeds):
            startup = {"n_startup_jobs": s.tpe_startup} if algo == "tpe" else {}
            run = common.run_tune(
                objective,
                space,
                mode=algo,
                seed=seed,
                max_evals=s.trials,
                algo=algo,
                algo_options=startup,
                pruning={"rule": "none"},
            )
            print(
                f"  {algo:<4} seed {seed}: best val loss {common.fmt(run.best_loss, '.5g')} "
                f"after {run.trials} trials, {run.wall_s:.1f} s"
            )
            runs.append(run)
    return runs


def checkpoints(trials: int) -> list[int]:
    """A few trial counts to report: quarters of the budget."""
    return sorted({max(1, round(trials * q / 4)) for q in (1, 2, 3, 4)})


def median_curve(runs: list[common.Run], algo: str, trials: int) -> list[float]:
    curves = [r.best_by_trial() for r in runs if r.mode == algo]
    return [common.median(c[i] for c in curves if i < len(c)) for i in range(trials)]


def summarise(runs: list[common.Run], s: Settings) -> tuple[dict[str, Any], list[str], list]:
    medians = {algo: median_curve(runs, algo, s.trials) for algo in ALGOS}
    marks = checkpoints(s.trials)
    columns = ["trials", *(f"{a} median best" for a in ALGOS), "tpe / rand", "grid / rand"]
    rows: list[list[str]] = []
    figures: dict[str, Any] = {}
    for n in marks:
        at = {a: medians[a][n - 1] for a in ALGOS}
        rows.append(
            [
                str(n),
                *(common.fmt(at[a], ".5g") for a in ALGOS),
                common.fmt(common.ratio(at["tpe"], at["rand"]), ".3f"),
                common.fmt(common.ratio(at["grid"], at["rand"]), ".3f"),
            ]
        )
    final = {a: medians[a][-1] for a in ALGOS}
    for a in ALGOS:
        figures[f"best_loss_{a}"] = final[a]
    figures["ratio_tpe_vs_rand"] = common.ratio(final["tpe"], final["rand"])
    figures["ratio_grid_vs_rand"] = common.ratio(final["grid"], final["rand"])
    figures["median_curves"] = medians
    return figures, columns, rows


def plot(runs: list[common.Run], medians: dict[str, list[float]], path: Path) -> str:
    fig, ax = common.new_axes()
    from matplotlib.ticker import MaxNLocator

    for r in runs:
        curve = r.best_by_trial()
        x = range(1, len(curve) + 1)
        ax.step(x, curve, where="post", color=COLORS[r.mode], alpha=0.25, lw=0.8)
    for algo, curve in medians.items():
        label = f"{algo} (median of seeds)" if algo != "grid" else "grid (one run)"
        x = range(1, len(curve) + 1)
        ax.step(x, curve, where="post", color=COLORS[algo], lw=2.2, label=label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trials")
    ax.set_ylabel("best validation loss so far")
    ax.set_title("TPE, random and grid search on spaces/stock_grid.py")
    ax.legend()
    return common.save_png(fig, path)


def main() -> None:
    p = common.parser(__doc__)
    common.add_budget_flags(p, "trials", "seeds", "epochs")
    args = p.parse_args()
    common.quiet()
    started = time.perf_counter()
    s = common.pick(args, FULL, QUICK)
    print(
        f"spaces/{s.space}.py, {common.data_note(s.quick_data)}, {s.epochs} epochs per trial, "
        f"{s.trials} trials; tpe and rand x {s.seeds} seeds, grid once; "
        f"TPE n_startup_jobs={s.tpe_startup}"
    )
    runs = run_all(s)
    figures, columns, rows = summarise(runs, s)
    print("median over seeds of the best validation loss so far (ratio < 1: better than rand)")
    common.print_table(columns, rows)
    png = plot(runs, figures["median_curves"], common.png_path(args, "strategies"))
    common.Report(
        "strategies",
        settings=s,
        figures=figures,
        target="none: the curves are the comparison (tpe / rand < 1 means TPE is ahead)",
        target_met=None,
        table=(columns, rows),
        png=png,
        runs=[r.to_json() for r in runs],
    ).write(args, started)


if __name__ == "__main__":
    main()
