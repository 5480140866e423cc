"""Median pruning on the stock study: the same searches with and without it, in one run.

    python bench/pruning.py              # spaces/stock.py, 2 seeds x 12 trials per mode (~12 min)
    python bench/pruning.py --quick      # spaces/stock_small.py, 2 seeds x 2 trials (~1 min)
    python bench/pruning.py --seeds 5 --trials 30 --json out.json

Per seed, the stock study runs twice as ``tpetune stock`` runs it (the default data, 12 epochs,
early stopping after 3 epochs without progress, TPE): with ``pruning={"rule": "none"}`` and with
the median rule at the CLI's defaults (5 warm-up trials, 3 warm-up epochs, 50th percentile).
The same seed proposes the same points while TPE is still in its random start-up (20 trials),
so with 12 trials both modes train the same models and differ only in when they stop. The order
of the two modes alternates from seed to seed to cancel drift in the machine's speed.

Prints, per run and in total: trials (pruned), epochs trained, wall time and the best
validation loss (of trials that finished, as ``Study.best_loss``); then the ratios wall time
no-prune / prune and best loss prune / no-prune (of the means over seeds). Target: at least
2x less time with the best loss within 5%. ``--quick`` (last 3 years of prices, 3 epochs, a
warm-up of 1 trial and 1 epoch so the rule acts at all) only checks that the figures come out.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as `python bench/pruning.py`: make the `bench` package importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common


@dataclass(frozen=True)
class Settings:
    space: str
    trials: int
    seeds: int
    epochs: int
    median_rule: dict[str, Any] = field(default_factory=dict)
    quick_data: bool = False


# The median rule at the CLI's defaults (tpetune stock --prune median).
FULL = Settings(
    "stock",
    trials=12,
    seeds=2,  # 2 x 2 x 12 trials of up to 12 epochs: ~12 min, a fifth of the suite's hour
    epochs=12,
    median_rule={"rule": "median", "warmup_trials": 5, "warmup_epochs": 3, "percentile": 50.0},
)
QUICK = Settings(
    "stock_small",
    trials=2,
    seeds=2,
    epochs=3,
    median_rule={"rule": "median", "warmup_trials": 1, "warmup_epochs": 1, "percentile": 50.0},
    quick_data=True,
)
MODES = ("no-prune", "prune")


def run_seed(s: Settings, seed: int, objective: Any, space: Any) -> dict[str, common.Run]:
    rules = {"no-prune": {"rule": "none"}, "prune": s.median_rule}
    order = MODES if seed % 2 == 0 else MODES[::-1]
    runs = {}
    for mode in order:
        runs[mode] = common.run_tune(
            objective, space, mode=mode, seed=seed, max_evals=s.trials, pruning=rules[mode]
        )
        r = runs[mode]
        print(
            f"  seed {seed} {mode:<8}: {r.trials} trials ({r.pruned} pruned), {r.epochs:4d} "
            f"epochs, "
            f"{r.wall_s:7.1f} s, best val loss {common.fmt(r.best_loss, '.5g')}"
        )
    return runs


def summarise(runs: list[dict[str, common.Run]]) -> dict[str, Any]:
    def total(mode: str, attr: str) -> float:
        return float(sum(getattr(r[mode], attr) for r in runs))

    def mean_best(mode: str) -> float:
        return total(mode, "best_loss") / len(runs)

    time_ratio = common.ratio(total("no-prune", "wall_s"), total("prune", "wall_s"))
    loss_ratio = common.ratio(mean_best("prune"), mean_best("no-prune"))
    return {
        "wall_s_no_prune": total("no-prune", "wall_s"),
        "wall_s_prune": total("prune", "wall_s"),
        "epochs_no_prune": total("no-prune", "epochs"),
        "epochs_prune": total("prune", "epochs"),
        "best_loss_no_prune": mean_best("no-prune"),
        "best_loss_prune": mean_best("prune"),
        "pruned_trials": total("prune", "pruned"),
        "time_ratio": time_ratio,
        "epochs_ratio": common.ratio(total("no-prune", "epochs"), total("prune", "epochs")),
        "loss_ratio": loss_ratio,
    }


def table(runs: list[dict[str, common.Run]], fig: dict[str, Any]) -> tuple[list[str], list]:
    columns = ["seed", "mode", "trials (pruned)", "epochs", "wall time", "best val loss"]
    rows = [
        [
            str(r.seed),
            r.mode,
            f"{r.trials} ({r.pruned})",
            str(r.epochs),
            common.fmt(r.wall_s, ".1f", " s"),
            common.fmt(r.best_loss, ".5g"),
        ]
        for by_mode in runs
        for r in by_mode.values()
    ]
    for mode, key in (("no-prune", "no_prune"), ("prune", "prune")):
        rows.append(
            [
                "all",
                mode,
                "",
                f"{fig[f'epochs_{key}']:.0f}",
                common.fmt(fig[f"wall_s_{key}"], ".1f", " s"),
                common.fmt(fig[f"best_loss_{key}"], ".5g") + " (mean)",
            ]
        )
    rows.append(
        [
            "ratio",
            "",
            "",
            common.fmt(fig["epochs_ratio"], ".2f", "x"),
            common.fmt(fig["time_ratio"], ".2f", "x"),
            common.fmt(fig["loss_ratio"], ".3f", " (prune / no-prune)"),
        ]
    )
    return columns, rows


def plot(runs: list[dict[str, common.Run]], path: Path) -> str:
    fig, ax = common.new_axes()
    colors = {"no-prune": "tab:gray", "prune": "tab:blue"}
    for by_mode in runs:
        for r in by_mode.values():
            t, best = zip(*r.best_by_time(), strict=True) if r.best_by_time() else ((), ())
            label = r.mode if r.seed == runs[0][r.mode].seed else None
            ax.step(t, best, where="post", color=colors[r.mode], alpha=0.8, label=label)
    ax.set_xlabel("wall time (s)")
    ax.set_ylabel("best validation loss so far")
    ax.set_title("Stock study with and without median pruning (one line per seed)")
    ax.legend()
    return common.save_png(fig, path)


def main() -> None:
    p = common.parser(__doc__)
    common.add_budget_flags(p, "trials", "seeds", "epochs")
    args = p.parse_args()
    common.quiet()
    started = time.perf_counter()
    s = common.pick(args, FULL, QUICK)
    objective = common.stock_objective(quick=s.quick_data, epochs=s.epochs)
    space = common.load_space(s.space)
    print(
        f"spaces/{s.space}.py, {common.data_note(s.quick_data)}, {s.trials} trials x {s.seeds} "
        f"seeds per mode, {s.epochs} epochs; median rule {s.median_rule}"
    )
    runs = [run_seed(s, seed, objective, space) for seed in range(s.seeds)]
    fig = summarise(runs)
    columns, rows = table(runs, fig)
    common.print_table(columns, rows)
    met = fig["time_ratio"] >= 2.0 and fig["loss_ratio"] <= 1.05
    print(
        f"time no-prune / prune: {common.fmt(fig['time_ratio'], '.2f')}x (target >= 2); "
        f"best loss prune / no-prune: {common.fmt(fig['loss_ratio'], '.3f')} (target <= 1.05)"
        f" -> target {'met' if met else 'not met'}"
    )
    png = plot(runs, common.png_path(args, "pruning"))
    common.Report(
        "pruning",
        settings=s,
        figures=fig,
        target=">= 2x less wall time, best loss within 5%",
        target_met=met,
        table=(columns, rows),
        png=png,
        runs=[r.to_json() for by_mode in runs for r in by_mode.values()],
    ).write(args, started)


if __name__ == "__main__":
    main()
