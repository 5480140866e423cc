"""Live confirmation, wall clock: the bundled studies with tpetune's defaults against bare fmin.

    python bench/live.py --json docs/bench/live.json       # digits, then stock (~40 min)
    python bench/live.py --studies digits --seeds 3        # digits only
    python bench/live.py --quick                           # a smoke run (< 1 min)
    python bench/live.py --studies digits --modes fmin,tpetune,freeze-thaw,keras-tuner
                                                           # issue 24: freeze-thaw, KerasTuner

Modes (``--modes``; default: the first three) on the same objective, the same seeds, one
seed at a time (seed 0: a, b, c; seed 1: a, b, c; ...) so that drifting machine load hits
every mode alike:

  (a) fmin:          bare ``hyperopt.fmin``, TPE with hyperopt's own defaults (20 random
                     start-up trials), an in-memory ``Trials``, serial, no pruning;
  (b) tpetune:       the bundled study's runner (:func:`tpetune.bundled.run_bundled`) with
                     what a new study gets when no flag is given: the study's default pruner
                     (``BundledStudy.default_pruner``: median for stock, none for digits) and
                     TPE start-up :func:`tpetune.search.algos.tpe_startup` (``max_evals``)
                     and executor (:func:`tpetune.bundled.default_executor`: since issue 23
                     two worker processes with a proposal lag of 2; one before);
  (c) other pruner:  (b) with the pruning choice flipped: ``--prune none`` where the study
                     prunes by default, ``--prune median`` where it does not;
  freeze-thaw:       (b) with ``--prune freeze-thaw`` (``tpetune.FreezeThawPruner()``, its
                     defaults): a paused trial keeps its Keras backup, a thaw continues it;
                     it has no lag, so it runs on the default's one worker;
  keras-tuner:       ``keras_tuner.Hyperband`` on the same space, data, folds and loss
                     (digits only; bench/live_keras_tuner.py says how, and what does not map
                     exactly), run last in each seed and stopped at the first trial boundary
                     after the longest wall time of the other modes on that seed
                     (``--keras-tuner-budget iteration``: one full Hyperband iteration).

Common random numbers: (a) gets tpetune's per-trial seeds, the proposal seed
``derive_seed(seed, tid)`` through an algo wrapper and the training seed
``derive_seed(seed, tid, "objective")`` through a :class:`~tpetune.trial.context.TrialContext`
(no study folder, so no checkpoints and no pruning), so the three modes train the same first
(random) models and differ in driver, start-up rule and pruning only. (b) and (c) skip the
runner's final test report (one retrain of the best trial, which (a) does not do); their
clock, like (a)'s, starts before the data and the objective are built and stops when the
search returns. (a) and keras-tuner train in this process, where the objective module and
Keras are imported before any clock (``warm_up``); their clocks start earlier by the wall
time a fresh process takes for those imports, measured just before each of their runs
(``import_seconds``): the import a user's script pays once and tpetune's worker processes
pay inside their clock. Each finished trial's end is stamped (a tune callback; inside the
objective for fmin; a freeze-thaw trial at its pause and again when a thaw ends it), giving the best
loss so far (ok trials only: a pruned or paused trial's partial loss is no cross-validated
loss) against wall time.

Target: the median, over every run of the study (all modes but keras-tuner, all seeds), of
the final best loss: a level a typical run reaches within the study's trial budget
(``--target`` fixes it). keras-tuner's runs are left out because their budget is the other
modes' wall time, not the study's trials: the tuner under comparison would move the bar.
Time to target is the wall time until the best loss so far is at or below it; a run that
never got there counts as never (the median is "not reached" when more than half did not).
Also shown: how many runs came within 0.5% of the best loss any run found.

Targets: issue 13, tpetune (b) >= 2x less wall time to target than fmin (a); issue 24, with
``freeze-thaw`` among the modes, its wall time to target <= 0.5x fmin's. Both: median over
seeds, and faster in every seed where either got there.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as `python bench/live.py`: make the `bench` package importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common


@dataclass(frozen=True)
class StudySetting:
    """One bundled study as this benchmark runs it."""

    study: str  # a name in tpetune.bundled.BUNDLED
    space: str  # a file in spaces/
    trials: int
    data: dict[str, Any]  # the study's data flags (BundledStudy.settings)

    @property
    def label(self) -> str:
        """The setting in words, for the page."""
        d = self.data
        if self.study == "digits":
            images = f"a stratified {d['limit']}-image subset of" if d.get("limit") else "all"
            data = f"scikit-learn 8x8 digits ({images} the 1,437 training images), "
            data += f"{d.get('folds', 3)}-fold CV"
        else:
            data = f"bundled S&P 500 (last 10 years), {d.get('epochs', 12)} epochs"
        return f"spaces/{self.space}.py, {data}, {self.trials} trials"


@dataclass(frozen=True)
class Settings:
    seeds: int
    studies: tuple[StudySetting, ...] = field(default_factory=tuple)
    modes: tuple[str, ...] = ("fmin", "tpetune", "other pruner")
    keras_tuner_budget: str = "others"  # or "iteration" (see the module docstring)

    def modes_of(self, study: str) -> tuple[str, ...]:
        """The modes run on ``study``: keras-tuner has a digits HyperModel only."""
        return tuple(m for m in self.modes if m != "keras-tuner" or study == "digits")


FULL = Settings(
    seeds=3,
    studies=(
        StudySetting(
            "digits",
            "digits",
            trials=20,
            data={"folds": 2},  # the default study: 3 folds, 25 trials
        ),
        StudySetting(
            "stock",
            "stock_small",
            trials=15,
            data={"epochs": 6},  # the default study: spaces/stock.py, 12 epochs, 30 trials
        ),
    ),
)
QUICK = Settings(
    seeds=1,
    studies=(
        StudySetting(
            "digits",
            "digits_small",
            trials=2,
            data={"folds": 2, "limit": 120},
        ),
        StudySetting(
            "stock",
            "stock_small",
            trials=2,
            data={"epochs": 1},
        ),
    ),
)
#: The default modes (issue 13's comparison).
MODES = ("fmin", "tpetune", "other pruner")
#: Every mode ``--modes`` may name, in the order a seed runs them (keras-tuner last: its
#: budget is the others' wall time).
ALL_MODES = (*MODES, "freeze-thaw", "keras-tuner")
COLORS = {
    "fmin": "tab:gray",
    "tpetune": "tab:blue",
    "other pruner": "tab:orange",
    "freeze-thaw": "tab:green",
    "keras-tuner": "tab:red",
}
#: Figure keys of each mode's ratios: ``<key>_over_b`` against tpetune (b), ``<key>_over_a``
#: against fmin (a).
KEYS = {"fmin": "a", "other pruner": "c", "freeze-thaw": "ft", "keras-tuner": "kt"}
#: Modes also compared with fmin (issue 24).
VS_FMIN = ("freeze-thaw", "keras-tuner")
#: Modes whose final best sets the target (keras-tuner's budget is the others' wall time).
TARGET_MODES = ("fmin", "tpetune", "other pruner", "freeze-thaw")
#: The issues' targets: wall time to target of (a) / (b) >= 2 (issue 13); of freeze-thaw /
#: (a) <= 1/2 (issue 24); median over seeds, and faster in every seed.
TARGET_RATIO = 2.0


# -- the modes -------------------------------------------------------------------------------
def _ended(clock: float, loss: Any, ok: bool, metrics: Any, curves: Any) -> common.TrialEnd:
    epochs = (metrics or {}).get("epochs_trained")
    if not isinstance(epochs, int | float):
        epochs = len((curves or {}).get("val_loss", []))
    good = ok and isinstance(loss, int | float) and math.isfinite(loss)
    return common.TrialEnd(time.perf_counter() - clock, float(loss) if good else None, int(epochs))


def run_fmin(st: StudySetting, seed: int) -> common.Run:
    """(a): bare ``fmin`` on the bundled study's objective, with tpetune's per-trial seeds."""
    import numpy as np
    from hyperopt import STATUS_FAIL, STATUS_OK, Trials, fmin, tpe

    from tpetune.bundled import bundled_study
    from tpetune.trial.context import TrialContext, derive_seed, trial_scope

    ends: list[common.TrialEnd] = []
    charged = import_seconds(st)
    clock = time.perf_counter() - charged  # the import a script pays (warm_up)
    bundle = bundled_study(st.study)
    with tempfile.TemporaryDirectory(prefix="tpetune-live-") as tmp:  # named in errors only
        settings = bundle.settings({}, study_dir=Path(tmp), **st.data)
    objective = bundle.make_objective(settings)
    space = common.load_space(st.space)

    def algo(new_ids: list[int], domain: Any, trials: Any, _: int) -> Any:
        # tpetune's proposal seed for this trial in place of fmin's own stream; TPE's knobs
        # stay hyperopt's defaults (n_startup_jobs=20).
        return tpe.suggest(new_ids, domain, trials, derive_seed(seed, new_ids[0]))

    def fn(args: Any) -> dict[str, Any]:
        tid = len(ends)  # serial: trials end in tid order
        with trial_scope(TrialContext(tid, derive_seed(seed, tid, "objective"))):
            result = objective(args)
        loss = float(result["loss"])
        end = _ended(clock, loss, True, result.get("metrics"), result.get("curves"))
        ends.append(end)
        # A diverged fit fails, as a NaN loss would break TPE.
        return {"loss": loss, "status": STATUS_OK if end.loss is not None else STATUS_FAIL}

    fmin(
        fn,
        space.tree,
        algo=algo,
        max_evals=st.trials,
        trials=Trials(),
        rstate=np.random.default_rng(seed),
        show_progressbar=False,
    )
    failed = sum(e.loss is None for e in ends)
    wall = time.perf_counter() - clock
    return common.Run("fmin", seed, wall, ends, failed=failed, extra={"import_s": charged})


class _SearchOnly:
    """A bundled study without its final test report (bare fmin has none to match); every
    other attribute is the bundle's own."""

    report_files: tuple[str, ...] = ()

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def final_report(self, objective: Any, best: Any, **_: Any) -> dict[str, Any]:
        return {}


def run_tpetune(st: StudySetting, seed: int, mode: str) -> common.Run:
    """(b) ``tpetune``, (c) ``other pruner`` and ``freeze-thaw``: the bundled study's runner
    on a fresh study in a temp folder; (c) flips the pruning choice of (b) (none where the
    study prunes by default, the median rule where it does not)."""
    from tpetune.bundled import bundled_study, run_bundled
    from tpetune.engine.options import Search
    from tpetune.pruners.freeze_thaw import FreezeThawPruner
    from tpetune.pruners.policies import MedianPruner, NoPruner
    from tpetune.study.store import TrialState

    bundle = bundled_study(st.study)
    pruner: Any = None  # what a new study of this bundle gets by default
    if mode == "other pruner":
        pruner = NoPruner() if bundle.default_pruner != "none" else MedianPruner()
    elif mode == "freeze-thaw":
        pruner = FreezeThawPruner()

    ends: list[common.TrialEnd] = []
    counted: dict[int, int] = {}  # epochs stamped per trial: a thaw re-reports its earlier ones
    clock = time.perf_counter()

    def stamp(trials: Any, record: Any) -> None:
        ok = record.state is TrialState.OK
        end = _ended(clock, record.loss, ok, record.metrics, record.curves)
        new = max(0, end.epochs - counted.get(record.tid, 0))
        counted[record.tid] = max(end.epochs, counted.get(record.tid, 0))
        ends.append(replace(end, epochs=new))

    with tempfile.TemporaryDirectory(prefix="tpetune-live-") as tmp:
        study, _ = run_bundled(
            _SearchOnly(bundle),
            study_dir=tmp,
            space=common.SPACES / f"{st.space}.py",
            max_evals=st.trials,
            progress=False,
            data=st.data,
            search=Search(seed=seed),
            pruner=pruner,
            callbacks=[stamp],
        )
        wall = time.perf_counter() - clock
        meta = study.meta
    states = [r.state for r in study.records]
    extra = {
        "pruner": meta.get("pruner"),
        "algo_options": meta.get("algo_options"),
        # freeze-thaw: trials ever paused, thaws run, and those still paused at the end
        "paused_ever": sum(bool(r.metrics.get("paused_at")) for r in study.records),
        "thaws": sum(int(r.metrics.get("thaws") or 0) for r in study.records),
        "paused_at_end": states.count(TrialState.PAUSED),
    }
    return common.Run(
        mode,
        seed,
        wall,
        ends,
        pruned=states.count(TrialState.PRUNED),
        failed=states.count(TrialState.FAIL),
        extra=extra,
    )


def objective_imports(st: StudySetting) -> list[str]:
    """What a script training the study's objective imports: its module and Keras (the
    objective modules import Keras only where a model trains, so the module alone is not it)."""
    from tpetune.bundled import BUNDLED

    return [BUNDLED[st.study].split(":")[0].replace(".study", ".objective"), "keras"]


def warm_up(st: StudySetting) -> None:
    """Import the study's objective module and Keras in this process before any clock starts;
    the modes that train here pay for it through :func:`import_seconds` instead."""
    import importlib

    for name in objective_imports(st):
        importlib.import_module(name)


def import_seconds(st: StudySetting) -> float:
    """Wall seconds a fresh Python process takes for :func:`objective_imports` (Keras and
    TensorFlow included), measured now. A mode that trains in this already-warm process
    (fmin, keras-tuner) starts its clock this much earlier: a user's script pays the import
    once, as tpetune's worker processes pay it inside their clock."""
    names = objective_imports(st)
    code = f"import time; t = time.perf_counter(); import {', '.join(names)}; "
    code += "print(time.perf_counter() - t)"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=common.ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"importing {', '.join(names)} failed:\n{done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def runners(
    st: StudySetting, budget: str = "others"
) -> dict[str, Callable[[int, list[common.Run]], common.Run]]:
    """Each mode as ``run(seed, runs of this seed so far)``."""

    def keras_tuner(seed: int, before: list[common.Run]) -> common.Run:
        from bench.live_keras_tuner import run_keras_tuner  # imports keras_tuner

        limit = max((r.wall_s for r in before), default=None) if budget == "others" else None
        return run_keras_tuner(st, seed, limit, import_seconds(st))

    return {
        "fmin": lambda seed, _: run_fmin(st, seed),
        "tpetune": lambda seed, _: run_tpetune(st, seed, "tpetune"),
        "other pruner": lambda seed, _: run_tpetune(st, seed, "other pruner"),
        "freeze-thaw": lambda seed, _: run_tpetune(st, seed, "freeze-thaw"),
        "keras-tuner": keras_tuner,
    }


def run_seed(st: StudySetting, seed: int, s: Settings | None = None) -> list[common.Run]:
    """Every mode for one seed, one after the other."""
    s = s or Settings(seeds=1)
    modes = runners(st, s.keras_tuner_budget)
    runs: list[common.Run] = []
    for mode in s.modes_of(st.study):
        r = modes[mode](seed, list(runs))
        r.extra["study"] = st.study
        runs.append(r)
        more = ""
        if mode == "freeze-thaw":
            more = f", {r.extra['paused_ever']} paused, {r.extra['thaws']} thaws"
        elif mode == "keras-tuner":
            more = f", stopped by its {r.extra['stopped_by']}"
        print(
            f"  {st.study} seed {seed} {mode:<12}: best {common.fmt(r.best_loss, '.5g')} "
            f"after {r.trials} trials ({r.pruned} pruned, {r.failed} failed, "
            f"{r.epochs} epochs{more}), {r.wall_s:.1f} s",
            flush=True,
        )
    return runs


# -- figures ---------------------------------------------------------------------------------
def paired_ratio(a: float, b: float) -> float:
    """One seed's time to target of ``a`` / ``b``: inf when only ``b`` reached it, 0 when
    only ``a`` did, NaN when neither."""
    if math.isinf(a) and math.isinf(b):
        return math.nan
    if math.isinf(a):
        return math.inf
    return common.ratio(a, b) if math.isfinite(b) else 0.0


def ratio_of_medians(a: float, b: float) -> float:
    """Median time to target of ``a`` / ``b``, with :func:`paired_ratio`'s inf, 0 and NaN."""
    return paired_ratio(a, b)


def study_figures(runs: Sequence[common.Run], target: float) -> dict[str, Any]:
    present = {r.mode for r in runs}
    by_mode = {m: [r for r in runs if r.mode == m] for m in ALL_MODES if m in present}
    best_found = min(r.best_loss for r in runs if math.isfinite(r.best_loss))
    near = best_found * 1.005
    modes: dict[str, Any] = {}
    for mode, mine in by_mode.items():
        times = [r.time_to(target) for r in mine]
        finals = [r.best_loss for r in mine]
        modes[mode] = {
            "runs": len(mine),
            "reached": sum(math.isfinite(t) for t in times),
            "time_to_target_s": times,
            "median_time_to_target_s": common.median(times),
            "within_0.5pct_of_best": sum(math.isfinite(r.time_to(near)) for r in mine),
            "median_best_loss": common.median(finals),
            "min_best_loss": min(finals),
            "max_best_loss": max(finals),
            "median_wall_s": common.median(r.wall_s for r in mine),
            "total_wall_s": sum(r.wall_s for r in mine),
            "trials": sum(r.trials for r in mine),
            "pruned": sum(r.pruned for r in mine),
            "epochs": sum(r.epochs for r in mine),
        }
    figures: dict[str, Any] = {"target_loss": target, "best_loss_found": best_found}
    pairs = [(m, "tpetune", "b") for m in modes if m in KEYS and "tpetune" in modes]
    pairs += [(m, "fmin", "a") for m in VS_FMIN if m in modes and "fmin" in modes]
    for other, base, letter in pairs:
        key = f"{KEYS[other]}_over_{letter}"
        o, b = modes[other], modes[base]
        figures[f"time_to_target_{key}"] = ratio_of_medians(
            o["median_time_to_target_s"], b["median_time_to_target_s"]
        )
        figures[f"time_to_target_{key}_per_seed"] = [
            paired_ratio(x, y)
            for x, y in zip(o["time_to_target_s"], b["time_to_target_s"], strict=True)
        ]
        figures[f"total_wall_{key}"] = common.ratio(o["total_wall_s"], b["total_wall_s"])
        figures[f"final_loss_{key}"] = final_loss_verdict(o, b, base)
    figures["modes"] = modes
    return figures


def target_loss(runs: Sequence[common.Run], given: float | None = None) -> float:
    """``given``, else the median final best over the runs of :data:`TARGET_MODES`."""
    if given is not None:
        return given
    return common.median(r.best_loss for r in runs if r.mode in TARGET_MODES)


def final_loss_verdict(o: dict[str, Any], b: dict[str, Any], base: str = "tpetune") -> str:
    """Which final best loss is lower, only where the seeds' ranges do not overlap."""
    if o["max_best_loss"] < b["min_best_loss"]:
        return f"lower than {base} in every seed"
    if o["min_best_loss"] > b["max_best_loss"]:
        return f"higher than {base} in every seed"
    return "ranges overlap: no difference shown"


def target_met(figures: dict[str, Any]) -> bool | None:
    """≥ 2x less wall time to target than fmin (median over seeds), and faster in every
    seed, so that a ratio inside the seeds' spread does not count as a win; ``None`` when
    either mode was not run."""
    if "time_to_target_a_over_b" not in figures:
        return None
    per_seed = figures["time_to_target_a_over_b_per_seed"]
    return figures["time_to_target_a_over_b"] >= TARGET_RATIO and all(
        r > 1 for r in per_seed if r == r
    )


def freeze_thaw_target_met(figures: dict[str, Any]) -> bool | None:
    """Issue 24: freeze-thaw's wall time to target ≤ 0.5x fmin's (median over seeds), and
    shorter in every seed where either got there; ``None`` when either mode was not run."""
    if "time_to_target_ft_over_a" not in figures:
        return None
    per_seed = figures["time_to_target_ft_over_a_per_seed"]
    return figures["time_to_target_ft_over_a"] <= 1 / TARGET_RATIO and all(
        r < 1 for r in per_seed if r == r
    )


def verdict(met: bool | None) -> str:
    return "not measured" if met is None else "met" if met else "MISSED"


def fmt_ratio(value: float, mode: str = "", base: str = "tpetune") -> str:
    if math.isinf(value):
        return f"only {base} reached it"
    if value == 0 and mode:
        return f"only {mode} reached it"
    return common.fmt(value, ".2f", "x")


def spread(f: dict[str, Any]) -> str:
    low, high = common.fmt(f["min_best_loss"], ".4f"), common.fmt(f["max_best_loss"], ".4f")
    return f"{common.fmt(f['median_best_loss'], '.4f')} ({low}–{high})"


def table_rows(study: str, figures: dict[str, Any]) -> list[list[str]]:
    rows = []
    for mode, f in figures["modes"].items():
        key = f"{KEYS[mode]}_over_b" if mode in KEYS else None
        base = key is None or f"time_to_target_{key}" not in figures
        rows.append(
            [
                study,
                mode,
                f"{f['reached']}/{f['runs']}",
                common.fmt(f["median_time_to_target_s"], ".0f", " s"),
                "1 (base)" if base else fmt_ratio(figures[f"time_to_target_{key}"], mode),
                spread(f),
                f"{f['within_0.5pct_of_best']}/{f['runs']}",
                common.fmt(f["total_wall_s"], ".0f", " s"),
                "1 (base)" if base else common.fmt(figures[f"total_wall_{key}"], ".2f", "x"),
                f"{f['pruned']}/{f['trials']}",
            ]
        )
    return rows


COLUMNS = [
    "study",
    "mode",
    "reached",
    "median time to target",
    "/ tpetune",
    "final best loss: median (min–max)",
    "within 0.5% of best",
    "total wall",
    "/ tpetune",
    "pruned / trials",
]


def print_ratios(figures: dict[str, Any]) -> None:
    """Each comparison's per-seed time-to-target ratios, and the final-loss verdicts."""
    names = {"a": "fmin", "b": "tpetune", **{k: m for m, k in KEYS.items()}}
    for name in figures:
        if not (name.startswith("time_to_target_") and name.endswith("_per_seed")):
            continue
        key = name[len("time_to_target_") : -len("_per_seed")]
        mode, base = (names[part] for part in key.split("_over_"))
        per_seed = ", ".join(fmt_ratio(v, mode, base) for v in figures[name])
        print(
            f"  time to target {mode} / {base}: "
            f"{fmt_ratio(figures[f'time_to_target_{key}'], mode, base)} (medians); "
            f"per seed {per_seed}; final best {figures[f'final_loss_{key}']}",
            flush=True,
        )


# -- the plot --------------------------------------------------------------------------------
def curve_band(runs: Sequence[common.Run], grid: Any) -> tuple[Any, Any, Any]:
    """Median, min and max over runs of the best loss so far at each grid time (a finished
    run keeps its final best); NaN where fewer than half the runs had an ok trial yet."""
    import numpy as np

    rows = []
    for r in runs:
        points = r.best_by_time()
        row = np.full(len(grid), np.nan)
        for t, best in points:
            row[grid >= t] = best
        rows.append(row)
    values = np.array(rows)
    enough = np.sum(~np.isnan(values), axis=0) * 2 > len(runs)
    with np.errstate(all="ignore"):
        filled = np.where(np.isnan(values), np.inf, values)  # no trial yet: no best yet
        med = np.where(enough, np.median(filled, axis=0), np.nan)
        low = np.where(enough, np.min(filled, axis=0), np.nan)
        high = np.where(enough, np.max(filled, axis=0), np.nan)
    return med, low, np.where(np.isfinite(high), high, np.nan)


def plot(results: dict[str, tuple[list[common.Run], dict[str, Any]]], path: Path) -> str:
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5 * len(results), 4.2), layout="constrained")  # no pyplot
    FigureCanvasAgg(fig)
    axes = list(np.atleast_1d(fig.subplots(1, len(results))))
    for ax, (study, (runs, figures)) in zip(axes, results.items(), strict=True):
        end = max(r.wall_s for r in runs)
        grid = np.linspace(0.0, end, 400)
        tops: list[float] = []
        for mode in figures["modes"]:
            mine = [r for r in runs if r.mode == mode]
            med, low, high = curve_band(mine, grid)
            ax.plot(grid, med, color=COLORS[mode], lw=1.6, label=f"{mode} (median)")
            ax.fill_between(grid, low, high, color=COLORS[mode], alpha=0.18, lw=0)
            tops.extend(v for v in med if v == v)
        target = figures["target_loss"]
        ax.axhline(target, color="black", ls="--", lw=0.8, label=f"target {target:.4g}")
        if tops:  # the start of the curves is far above the rest: show where they settle
            floor = min(figures["best_loss_found"], target)
            top = max(float(np.quantile(tops, 0.9)), target)
            pad = 0.05 * (top - floor) or 0.02 * abs(floor) or 0.01
            ax.set_ylim(floor - pad, top + pad)
        ax.set_xlim(0.0, end)
        ax.set_xlabel("wall time (s)")
        ax.set_ylabel("best validation loss so far")
        seeds = len({r.seed for r in runs})
        ax.set_title(f"{study}: best loss vs wall time ({seeds} seeds, band min–max)")
        ax.legend(fontsize="small")
    return common.save_png(fig, path)


# -- main ------------------------------------------------------------------------------------
def chosen(args: argparse.Namespace) -> Settings:
    base = QUICK if args.quick else FULL
    names = [n.strip() for n in args.studies.split(",")] if args.studies else None
    studies = tuple(
        replace(st, trials=args.trials or st.trials, data={**st.data, **data_flags(args, st)})
        for st in base.studies
        if names is None or st.study in names
    )
    if not studies:
        known = ", ".join(st.study for st in base.studies)
        raise SystemExit(f"--studies {args.studies}: choose from {known}")
    modes = tuple(m.strip() for m in args.modes.split(",")) if args.modes else MODES
    unknown = [m for m in modes if m not in ALL_MODES]
    if unknown or "tpetune" not in modes:
        raise SystemExit(
            f"--modes {args.modes}: choose from {', '.join(ALL_MODES)}, with tpetune "
            "(the base of every ratio)"
        )
    return Settings(
        seeds=args.seeds or base.seeds,
        studies=studies,
        modes=tuple(m for m in ALL_MODES if m in modes),  # keras-tuner last: its budget
        keras_tuner_budget=args.keras_tuner_budget,
    )


def data_flags(args: argparse.Namespace, st: StudySetting) -> dict[str, Any]:
    """``--limit`` (digits) and ``--epochs`` (stock), where given."""
    flag = {"digits": "limit", "stock": "epochs"}[st.study]
    value = getattr(args, flag, None)
    return {} if value is None else {flag: value}


TPETUNE_TARGET = (
    f"live digits study: >= {TARGET_RATIO:g}x less wall time to target than bare fmin with "
    "the same seeds (median over seeds, and faster in every seed)"
)
FREEZE_THAW_TARGET = (
    f"live digits study, --prune freeze-thaw: wall time to target <= {1 / TARGET_RATIO:g}x "
    "bare fmin's with the same seeds (median over seeds, and shorter in every seed)"
)


def report(
    s: Settings, results: dict[str, tuple[list[common.Run], dict[str, Any]]], png: str | None
) -> common.Report:
    rows = [row for study, (_, f) in results.items() for row in table_rows(study, f)]
    digits = results["digits"][1] if "digits" in results else None
    if "freeze-thaw" in s.modes:
        met = None if digits is None else freeze_thaw_target_met(digits)
        target = FREEZE_THAW_TARGET
    else:
        met = None if digits is None else target_met(digits)
        target = TPETUNE_TARGET
    return common.Report(
        "live",
        settings={
            "seeds": s.seeds,
            "seeds_done": {
                study: len({r.seed for r in runs}) for study, (runs, _) in results.items()
            },
            "studies": [{**vars(st), "label": st.label} for st in s.studies],
            "modes": list(s.modes),
            "keras_tuner_budget": s.keras_tuner_budget,
        },
        figures={study: f for study, (_, f) in results.items()},
        table=(COLUMNS, rows),
        target=target,
        target_met=met,
        png=png,
        runs=[r.to_json() for runs, _ in results.values() for r in runs],
    )


def main() -> None:
    p = common.parser(__doc__)
    common.add_budget_flags(p, "trials", "seeds")
    p.add_argument("--limit", type=int, metavar="N", help="digits: tune on N training images")
    p.add_argument("--epochs", type=int, metavar="N", help="stock: epochs per trial")
    p.add_argument("--studies", metavar="A,B", help="digits and/or stock (default: both)")
    p.add_argument("--target", type=float, help="the loss to reach (default: see above)")
    p.add_argument(
        "--modes",
        metavar="A,B",
        help=f"modes to run, of {', '.join(ALL_MODES)} (default: {','.join(MODES)})",
    )
    p.add_argument(
        "--keras-tuner-budget",
        choices=("others", "iteration"),
        default="others",
        help="keras-tuner stops after the longest wall time of the other modes on the same "
        "seed (others, the default) or after one full Hyperband iteration",
    )
    args = p.parse_args()
    common.quiet()
    started = time.perf_counter()
    s = chosen(args)
    results: dict[str, tuple[list[common.Run], dict[str, Any]]] = {}
    for st in s.studies:
        warm_up(st)
        modes = ", ".join(s.modes_of(st.study))
        print(f"{st.study}: {st.label}; {s.seeds} seeds x {modes}", flush=True)
        runs: list[common.Run] = []
        for seed in range(s.seeds):
            runs += run_seed(st, seed, s)
            target = target_loss(runs, args.target)
            results[st.study] = (runs, study_figures(runs, target))
            # Written after every seed, so a run cut short keeps the seeds it finished.
            png = plot(results, common.png_path(args, "live"))
            report(s, results, png).write(args, started)
        how = "given" if args.target is not None else "median of every run's final best"
        if args.target is None and "keras-tuner" in s.modes_of(st.study):
            how += ", keras-tuner's left out"
        figures = results[st.study][1]
        print(f"{st.study}: target loss {figures['target_loss']:.5g} ({how})", flush=True)
        common.print_table(COLUMNS, table_rows(st.study, figures))
        print_ratios(figures)
    if "digits" in results:
        digits = results["digits"][1]
        print(f"target, issue 13 ({TPETUNE_TARGET}): {verdict(target_met(digits))}")
        if "freeze-thaw" in s.modes:
            met = verdict(freeze_thaw_target_met(digits))
            print(f"target, issue 24 ({FREEZE_THAW_TARGET}): {met}")


if __name__ == "__main__":
    main()
