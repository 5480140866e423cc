"""Wall time to reach a validation loss on the stock study: the article's fmin against tpetune.

    python bench/time_to_quality.py            # 10 trials x 3 seeds per mode (~20 min)
    python bench/time_to_quality.py --quick    # 2 trials, 1 seed, stock_small, 3 years (~1 min)
    python bench/time_to_quality.py --target 0.43 --json out.json

Modes, each with the same budget (``--trials`` trials per run, ``--seeds`` seeds) on the same
objective (the stock LSTM, the default data, 5 epochs, early stopping after 3):

  (a) fmin:    the article's way: ``hyperopt.fmin`` with TPE, an in-memory ``Trials``, serial,
               no pruning, the objective wrapped to return a float;
  (b) tpetune: ``tune`` with its defaults: median pruning (5 warm-up trials, 3 warm-up epochs);
  (c) tpetune workers=2: (b) in two worker processes;
  (d) tpetune rand: (b) with random search (``algo="rand"``);
  (e) optuna:  Optuna's TPE sampler and MedianPruner (same warm-ups), a Keras callback calling
               ``trial.report``/``should_prune`` on val_loss each epoch (when optuna is installed).

Every TPE (a, b, c, e) starts modelling after 5 random trials: hyperopt's default of 20 would
make the whole budget random search. (a) gets tpetune's per-trial seeds (proposal and weight
initialisation, from ``derive_seed``) instead of fmin's own random stream: common random
numbers, so (a) and (b) train the same first models, and what differs between them is the
driver and pruning, not which models luck proposed (a 10-trial run's wall time varies by
+-30% with that alone). The clock of a run starts when the search is called and
each trial's end is stamped, giving the best loss so far against time.

The target loss is the median, over every run of every mode, of the final best validation loss
(``--target`` fixes it instead), so it is a level a typical run reaches within the budget. Per
mode it prints how many runs reached it, the median time to reach it ("not reached" when
more than half did not) and the speed-up against (a): (a)'s median time / the mode's. Writes a
plot of the best loss against time (time_to_quality.png) and, with ``--json``, every curve.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as `python bench/time_to_quality.py`: make the `bench` package importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common


@dataclass(frozen=True)
class Settings:
    space: str
    trials: int
    seeds: int
    epochs: int
    tpe_startup: int
    median_rule: dict[str, Any] = field(default_factory=dict)
    quick_data: bool = False
    skip: tuple[str, ...] = ()


FULL = Settings(
    "stock",
    trials=10,
    seeds=3,
    epochs=5,  # 5 modes x 3 seeds x 10 trials: ~20 min, a third of the suite's hour
    tpe_startup=5,
    median_rule={"rule": "median", "warmup_trials": 5, "warmup_epochs": 3, "percentile": 50.0},
)
# Worker start-up alone would double the smoke run; bench/parallel.py covers workers.
QUICK = Settings(
    "stock_small",
    trials=2,
    seeds=1,
    epochs=2,
    tpe_startup=1,
    median_rule={"rule": "median", "warmup_trials": 1, "warmup_epochs": 1, "percentile": 50.0},
    quick_data=True,
    skip=("tpetune workers=2",),
)
MODES = ("fmin", "tpetune", "tpetune workers=2", "tpetune rand", "optuna")
COLORS = {
    "fmin": "tab:gray",
    "tpetune": "tab:blue",
    "tpetune workers=2": "tab:cyan",
    "tpetune rand": "tab:orange",
    "optuna": "tab:purple",
}


# -- (a) the article's way ------------------------------------------------------------------------
def run_fmin(s: Settings, seed: int, objective: Any, space: Any) -> common.Run:
    import numpy as np
    from hyperopt import STATUS_FAIL, STATUS_OK, Trials, fmin, tpe

    from tpetune.trial.context import TrialContext, derive_seed, trial_scope

    ends: list[common.TrialEnd] = []
    clock = time.perf_counter()
    tid = iter(range(s.trials))

    def algo(new_ids: list[int], domain: Any, trials: Any, _: int) -> Any:
        # tpetune's proposal seed for this trial, in place of fmin's own stream (see above).
        seed_t = derive_seed(seed, new_ids[0])
        return tpe.suggest(new_ids, domain, trials, seed_t, n_startup_jobs=s.tpe_startup)

    def fn(args: Any) -> dict[str, Any]:
        # The trial's weight-initialisation seed as tune gives it; no study folder, so no
        # checkpoints and no pruning: the article's bare loop.
        t = next(tid)
        with trial_scope(TrialContext(t, derive_seed(seed, t, "objective"))):
            result = objective(args)
        loss = float(result["loss"])
        ok = math.isfinite(loss)  # a diverged fit: fail it, as a NaN loss would break TPE
        epochs = len(result["curves"]["val_loss"])
        ends.append(common.TrialEnd(time.perf_counter() - clock, loss if ok else None, epochs))
        return {"loss": loss, "status": STATUS_OK if ok else STATUS_FAIL}

    fmin(
        fn,
        space.tree,
        algo=algo,
        max_evals=s.trials,
        trials=Trials(),
        rstate=np.random.default_rng(seed),
        show_progressbar=False,
    )
    return common.Run("fmin", seed, time.perf_counter() - clock, ends)


# -- (e) Optuna ----------------------------------------------------------------------------------
def optuna_vals(trial: Any, expr: Any) -> dict[str, Any]:
    """Sample the active parameters of a hyperopt space with an Optuna trial, as hyperopt's
    flat assignment (choices as indices), so ``Space.evaluate`` builds the same nested params.
    Only a chosen branch's parameters are sampled, as hyperopt does."""
    vals: dict[str, Any] = {}

    def walk(node: Any) -> None:
        if node.name == "switch" and node.pos_args[0].name == "hyperopt_param":
            label = str(node.pos_args[0].arg["label"].obj)
            index = trial.suggest_categorical(label, list(range(len(node.pos_args) - 1)))
            vals[label] = index
            walk(node.pos_args[1 + index])
        elif node.name == "hyperopt_param":
            label = str(node.arg["label"].obj)
            vals.setdefault(label, _suggest(trial, label, node.arg["obj"]))
        else:
            for child in node.inputs():
                walk(child)

    walk(expr)
    return vals


def _suggest(trial: Any, label: str, dist: Any) -> float:
    args = [a.obj for a in dist.pos_args]
    if dist.name == "uniform":
        return float(trial.suggest_float(label, args[0], args[1]))
    if dist.name == "loguniform":  # hyperopt's bounds are logs; the value is not
        return float(trial.suggest_float(label, math.exp(args[0]), math.exp(args[1]), log=True))
    if dist.name == "quniform":
        return float(trial.suggest_float(label, args[0], args[1], step=args[2]))
    if dist.name == "randint":
        low, high = (0, args[0]) if len(args) == 1 else args
        return int(trial.suggest_int(label, low, high - 1))
    raise ValueError(f"no Optuna equivalent written for {label}: {dist.name}{tuple(args)}")


def optuna_callback(trial: Any) -> Any:
    """A Keras callback reporting val_loss to Optuna each epoch and stopping a pruned fit
    (the trial is marked pruned after the objective returns its curves)."""
    import keras

    class OptunaPruning(keras.callbacks.Callback):
        pruned = False

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            value = (logs or {}).get("val_loss")
            if value is None:
                return
            trial.report(float(value), step=epoch)
            if trial.should_prune():
                self.pruned = True
                self.model.stop_training = True

    return OptunaPruning()


def run_optuna(s: Settings, seed: int, objective: Any, space: Any) -> common.Run:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no line per trial
    rule = s.median_rule
    study = optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=s.tpe_startup),
        # Optuna's steps are 0-based epochs and it prunes from step n_warmup_steps on.
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=rule["warmup_trials"], n_warmup_steps=rule["warmup_epochs"] - 1
        ),
    )
    ends: list[common.TrialEnd] = []
    clock = time.perf_counter()

    def fn(trial: Any) -> float:
        callback = optuna_callback(trial)
        objective.callbacks = [callback]
        result = objective(space.evaluate(optuna_vals(trial, space.expr)))
        loss, epochs = float(result["loss"]), len(result["curves"]["val_loss"])
        ok = math.isfinite(loss) and not callback.pruned
        ends.append(common.TrialEnd(time.perf_counter() - clock, loss if ok else None, epochs))
        if callback.pruned:
            raise optuna.TrialPruned()
        return loss

    study.optimize(fn, n_trials=s.trials)
    states = [t.state for t in study.trials]
    pruned = states.count(optuna.trial.TrialState.PRUNED)
    failed = states.count(optuna.trial.TrialState.FAIL)
    return common.Run("optuna", seed, time.perf_counter() - clock, ends, pruned, failed)


# -- the runs --------------------------------------------------------------------------------------
def runners(s: Settings, space: Any) -> dict[str, Callable[[int], common.Run]]:
    objective = common.stock_objective(quick=s.quick_data, epochs=s.epochs)
    tpe = {"algo": "tpe", "algo_options": {"n_startup_jobs": s.tpe_startup}}

    def tuned(mode: str, **options: Any) -> Callable[[int], common.Run]:
        return lambda seed: common.run_tune(
            objective, space, mode=mode, seed=seed, max_evals=s.trials, **options
        )

    out = {
        "fmin": lambda seed: run_fmin(s, seed, objective, space),
        "tpetune": tuned("tpetune", pruning=s.median_rule, **tpe),
        "tpetune workers=2": tuned("tpetune workers=2", pruning=s.median_rule, workers=2, **tpe),
        "tpetune rand": tuned("tpetune rand", pruning=s.median_rule, algo="rand"),
    }
    if importlib.util.find_spec("optuna") is not None:
        # Its own objective: the Optuna callback replaces the tpetune one each trial.
        own = common.stock_objective(quick=s.quick_data, epochs=s.epochs)
        out["optuna"] = lambda seed: run_optuna(s, seed, own, space)
    return {m: run for m, run in out.items() if m not in s.skip}


def run_all(s: Settings, space: Any) -> list[common.Run]:
    modes = runners(s, space)
    for mode in MODES:
        if mode == "optuna" and mode not in modes and mode not in s.skip:
            print("  optuna: skipped: pip install optuna")
        elif mode not in modes:
            print(f"  {mode}: skipped in --quick")
    runs = []
    for seed in range(s.seeds):
        for mode, run in modes.items():
            r = run(seed)
            runs.append(r)
            print(
                f"  seed {seed} {mode:<18}: best {common.fmt(r.best_loss, '.5g')} after "
                f"{r.trials} trials ({r.pruned} pruned), {r.wall_s:.1f} s"
            )
    return runs


# -- figures -------------------------------------------------------------------------------------
def mode_figures(runs: list[common.Run], target: float, base: float) -> dict[str, Any]:
    """One mode's figures; ``base`` is fmin's median time to the target."""
    times = [r.time_to(target) for r in runs]
    median_t = common.median(times)
    speedup = common.ratio(base, median_t) if math.isfinite(median_t) else math.nan
    if math.isinf(base) and math.isfinite(median_t):
        speedup = math.inf  # this mode got there, fmin did not
    return {
        "reached": sum(math.isfinite(t) for t in times),
        "runs": len(runs),
        "median_time_to_target_s": median_t,
        "speedup_vs_fmin": speedup,
        "median_best_loss": common.median(r.best_loss for r in runs),
        "median_wall_s": common.median(r.wall_s for r in runs),
        "pruned": sum(r.pruned for r in runs),
        "trials": sum(r.trials for r in runs),
    }


def summarise(runs: list[common.Run], target: float) -> tuple[dict[str, Any], list[str], list]:
    by_mode = {m: [r for r in runs if r.mode == m] for m in MODES}
    by_mode = {m: mine for m, mine in by_mode.items() if mine}
    base = common.median(r.time_to(target) for r in by_mode.get("fmin", []))
    modes = {m: mode_figures(mine, target, base) for m, mine in by_mode.items()}
    columns = [
        "mode",
        "reached",
        "median time to target",
        "speed-up vs fmin",
        "median best loss",
        "median wall time",
        "pruned / trials",
    ]
    rows = [
        [
            m,
            f"{f['reached']}/{f['runs']}",
            common.fmt(f["median_time_to_target_s"], ".1f", " s"),
            fmt_speedup(f["speedup_vs_fmin"]),
            common.fmt(f["median_best_loss"], ".5g"),
            common.fmt(f["median_wall_s"], ".1f", " s"),
            f"{f['pruned']}/{f['trials']}",
        ]
        for m, f in modes.items()
    ]
    figures = {
        "target_loss": target,
        "median_time_to_target_s_fmin": base,
        "speedup_tpetune_vs_fmin": modes.get("tpetune", {}).get("speedup_vs_fmin", math.nan),
        "modes": modes,
    }
    return figures, columns, rows


def fmt_speedup(value: float) -> str:
    if math.isinf(value):
        return "fmin: not reached"
    return common.fmt(value, ".2f", "x")


def plot(runs: list[common.Run], target: float, path: Path) -> str:
    fig, ax = common.new_axes()
    labelled: set[str] = set()
    for r in runs:
        points = r.best_by_time()
        if not points:
            continue
        t, best = zip(*points, strict=True)
        label = None if r.mode in labelled else r.mode
        labelled.add(r.mode)
        ax.step(t, best, where="post", color=COLORS[r.mode], lw=1.2, alpha=0.8, label=label)
    ax.axhline(target, color="black", ls="--", lw=0.8, label=f"target {target:.4g}")
    ax.set_xlabel("wall time (s)")
    ax.set_ylabel("best validation loss so far")
    ax.set_title("Time to quality on the stock study (one line per seed)")
    ax.legend(fontsize="small")
    return common.save_png(fig, path)


def main() -> None:
    p = common.parser(__doc__)
    common.add_budget_flags(p, "trials", "seeds", "epochs")
    p.add_argument("--target", type=float, help="the loss to reach (default: see above)")
    args = p.parse_args()
    common.quiet()
    started = time.perf_counter()
    s = common.pick(args, FULL, QUICK)
    space = common.load_space(s.space)
    print(
        f"spaces/{s.space}.py, {common.data_note(s.quick_data)}, {s.trials} trials x "
        f"{s.seeds} seeds per mode, {s.epochs} epochs; TPE n_startup_jobs={s.tpe_startup}"
    )
    runs = run_all(s, space)
    finals = [r.best_loss for r in runs]
    target = args.target if args.target is not None else common.median(finals)
    how = "given" if args.target is not None else "median of every run's final best"
    figures, columns, rows = summarise(runs, target)
    print(f"target loss {target:.5g} ({how})")
    common.print_table(columns, rows)
    speedup = figures["speedup_tpetune_vs_fmin"]
    print(f"speed-up of tpetune's defaults against fmin to the target: {fmt_speedup(speedup)}")
    png = plot(runs, target, common.png_path(args, "time_to_quality"))
    common.Report(
        "time_to_quality",
        settings=s,
        figures=figures,
        target="none fixed: tpetune's median time to the target loss against fmin's",
        target_met=None,
        table=(columns, rows),
        png=png,
        runs=[r.to_json() for r in runs],
    ).write(args, started)


if __name__ == "__main__":
    main()
