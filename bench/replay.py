"""Replay search methods on the recorded-curves tables: epochs to quality, over many seeds.

    python bench/replay.py                      # both tables, 30 seeds, every method (~40 min)
    python bench/replay.py --tables digits --seeds 30 --methods tpe,tpe-asha,optuna-sha
    python bench/replay.py --quick              # 3 seeds, 3 methods, a small budget (~1 min)

Each method searches a table (bench/tables/*.json.gz, recorded by bench/record_curves.py) by
lookup, under the same budget of epochs, with the same early stopping (patience 3); see
bench/replay_sim.py for the rules. The budget is ``trials`` times the mean length of an
early-stopped trial over the table, i.e. the epochs that ``trials`` unpruned trials cost;
tpetune's budget-scaled start-up rules read ``trials`` as ``max_evals``.

Per table and method: epochs until the best loss is within 0.5% of the table's best (median,
interquartile range, seeds that never got there), the best loss at 25/50/100% of the budget,
and the ratio of the median epochs against ``tpe`` (tpetune's TPE without pruning) measured in
the same run, with a two-sided Mann-Whitney U p-value: a ratio whose p >= 0.05 is inside the
spread and is no win. Also the full grid (every configuration for every epoch) against the
candidate default. Writes one PNG per table (best loss vs epochs, median and IQR band).
Optuna and DEHB methods are skipped, with a note, when optuna or dehb is not installed.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import multiprocessing
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common, replay_sim, tabular

TARGET_TOLERANCE = 0.005  # "within 0.5% of the table's best loss"
POINTS = 100  # points of each run's trace kept for the plot


@dataclass(frozen=True)
class Settings:
    tables: tuple[str, ...] = ("digits", "stock")
    seeds: int = 30
    #: table -> (main, small) budget in trials (see the module docstring); the small one is
    #: the second budget of the start-up question.
    budgets: Mapping[str, tuple[int, int]] = field(
        default_factory=lambda: {"digits": (80, 30), "stock": (30, 15), "digits-cnn": (30, 15)}
    )
    trials: int | None = None  # --trials: the main budget of every table
    methods: tuple[str, ...] = ()  # empty: every method, and the start-up variants
    default: str = "default"  # the method the targets are checked for
    jobs: int = 2


FULL = Settings()
QUICK = Settings(
    seeds=3,
    budgets={"digits": (15, 8), "stock": (8, 5), "digits-cnn": (8, 5)},
    methods=("default", "tpe", "tpe-asha", "random"),
    jobs=1,  # a worker pool's start-up would cost more than these replays
)


def _tpe_startup(n: int) -> int:
    from tpetune.search.algos import tpe_startup

    return tpe_startup(n)


#: n_startup_jobs rules for a study of ``n`` trials (question ii); 20 is hyperopt's default.
STARTUP_RULES: dict[str, Callable[[int], int]] = {
    "20 (hyperopt)": lambda n: 20,
    "10 (Optuna 5)": lambda n: 10,
    "max(5, n//10)": lambda n: max(5, n // 10),
    "max(5, min(20, n//5))": lambda n: max(5, min(20, n // 5)),
    "max(5, min(20, n//10))": lambda n: max(5, min(20, n // 10)),
    "tpetune's tpe_startup": _tpe_startup,
}


#: Method name -> (runner, options). ``tpe-asha-nN`` (TPE with N start-up trials, ASHA) is
#: built on demand, and a name ending in ``@small`` runs at the table's small budget.
METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    # what a new study of the table's bundled study gets with no flag: its default pruner
    # (BundledStudy.default_pruner: median for stock, none for digits), tpe_startup(max_evals)
    "default": ("tpetune", {"pruner": "default", "n_startup": "rule"}),
    # the same with --prune none
    "default-noprune": ("tpetune", {"n_startup": "rule"}),
    # "default" as two lagged workers run it (Search(lag=2), the bundled studies' default
    # since issue 23): trial n proposed and pruned from trials up to n - 2
    "default-lag2": ("tpetune", {"pruner": "default", "n_startup": "rule", "lag": 2}),
    # the same with a lag of 3: two workers never wait for the older trial in flight
    "default-lag3": ("tpetune", {"pruner": "default", "n_startup": "rule", "lag": 3}),
    "tpe": ("tpetune", {}),
    "tpe-median": ("tpetune", {"pruner": "median"}),
    "tpe-asha": ("tpetune", {"pruner": "asha"}),
    "random": ("tpetune", {"algo": "rand"}),
    "fmin": ("fmin", {}),
    "optuna-median": ("optuna", {"pruner": "median"}),
    "optuna-sha": ("optuna", {"pruner": "sha"}),
    "optuna-hyperband": ("optuna", {"pruner": "hyperband"}),
    # pause instead of prune, thaw by a learning-curve model (bench/replay_pause.py)
    "tpe-freeze-thaw": ("pause", {"method": "freeze-thaw"}),
    # the two above as a new study proposes since Search(allow_duplicates=False) became its
    # default: a proposal repeating a trial's params is drawn again (tpetune.search.distinct);
    # the other tpetune methods here propose as hyperopt does, repeats included
    "tpe-distinct": ("tpetune", {"allow_duplicates": False}),
    "tpe-freeze-thaw-distinct": ("pause", {"method": "freeze-thaw", "allow_duplicates": False}),
    # Egele et al. 2023: screen random configurations one epoch each, train the best on
    "one-epoch-top-k": ("pause", {"method": "one-epoch-top-k"}),
    # DEHB (the dehb package): Hyperband brackets, each evaluation trained from scratch
    "dehb": ("dehb", {}),
    # ASHA whose first rung is at epoch 3 (rungs 3, 9): slow starters survive epochs 1-2
    "tpe-asha-r3": ("tpetune", {"pruner": "asha3"}),
    # (i) how a pruned trial is shown to TPE: +inf (a missing loss) instead of its best value
    "tpe-asha-inf": ("tpetune", {"pruner": "asha", "pruned_as": "inf"}),
    "tpe-median-inf": ("tpetune", {"pruner": "median", "pruned_as": "inf"}),
    # (iii) what of Optuna 5's TPE defaults hyperopt's TPE can express: its good/bad split
    # gamma(n) = min(ceil(0.1 n), 25) (n_startup_trials=10 is question ii; multivariate
    # and constant_liar have no counterpart in hyperopt's tpe.suggest)
    "tpe-ogamma": ("tpetune", {"gamma": "optuna"}),
    "tpe-ogamma-n10": ("tpetune", {"gamma": "optuna", "n_startup": 10}),
}

#: The freeze-thaw pruner's knobs in the replay (its defaults; max_steps: the table's epochs).
FREEZE_THAW: dict[str, Any] = {}

#: The methods drawn in the PNGs (the design-question variants only in the tables).
PLOTTED = (
    "default", "tpe", "tpe-median", "tpe-asha", "tpe-asha-r3", "random", "fmin",
    "optuna-median", "optuna-sha", "optuna-hyperband",
)  # fmt: skip


def method_spec(name: str) -> tuple[str, dict[str, Any]]:
    """The runner and options of a method name (see :data:`METHODS`).

    Raises:
        KeyError: an unknown name.
    """
    base = name.removesuffix("@small")
    if base.startswith("tpe-asha-n") and base[len("tpe-asha-n") :].isdigit():
        return "tpetune", {"pruner": "asha", "n_startup": int(base[len("tpe-asha-n") :])}
    return METHODS[base]


def startup_variants(main: int, small: int) -> list[str]:
    """The methods that answer question (ii): each distinct start-up count of the rules at the
    main budget (20 is ``tpe-asha`` itself) and at the small one."""
    at_main = sorted({rule(main) for rule in STARTUP_RULES.values()} - {20})
    at_small = sorted({rule(small) for rule in STARTUP_RULES.values()})
    return [f"tpe-asha-n{n}" for n in at_main] + [f"tpe-asha-n{n}@small" for n in at_small]


def _pruner(name: str | None, table: str) -> Any:
    """The pruner a method names; ``default``: that of a new study of the table's study."""
    from tpetune.bundled import bundled_study
    from tpetune.pruners.policies import PRUNERS, ASHAPruner, MedianPruner

    if name == "default":
        return PRUNERS[bundled_study(table).default_pruner]()
    pruners = {
        "median": MedianPruner(),
        "asha": ASHAPruner(),
        "asha3": ASHAPruner(min_steps=3),
    }
    return None if name is None else pruners[name]


def budget_trials(settings: Settings, table: str, method: str) -> int:
    main, small = settings.budgets[table]
    if method.endswith("@small"):
        return small
    return settings.trials or main


def mean_trial_epochs(table: tabular.Table) -> float:
    """Mean epochs of an early-stopped, unpruned trial over the table's configurations."""
    lengths = []
    for key in table.val_loss:
        sim = replay_sim.Sim(table, budget=10**9)
        lengths.append(len(sim.train(json.loads(key)).curve))
    return sum(lengths) / len(lengths)


def run_one(job: tuple[str, str, int, int, int]) -> dict[str, Any]:
    """Replay ``method`` on ``table`` with ``seed`` under ``budget`` epochs."""
    table_name, method, seed, budget, trials = job
    table = _table(table_name)
    runner, options = method_spec(method)
    sim = replay_sim.Sim(table, budget)
    started = time.perf_counter()
    if runner == "tpetune":
        from tpetune.search.algos import tpe_startup

        n_startup = options.get("n_startup", 20)
        replay_sim.run_tpetune(
            sim,
            seed,
            pruner=_pruner(options.get("pruner"), table_name),
            algo=options.get("algo", "tpe"),
            n_startup=tpe_startup(trials) if n_startup == "rule" else n_startup,
            pruned_as=options.get("pruned_as", "partial"),
            gamma=options.get("gamma", "hyperopt"),
            lag=options.get("lag", 1),
            allow_duplicates=options.get("allow_duplicates", True),
        )
    elif runner == "fmin":
        replay_sim.run_fmin(sim, seed)
    elif runner == "dehb":
        from bench import replay_dehb

        replay_dehb.run_dehb(sim, seed)
    elif runner == "pause":
        from bench import replay_pause
        from tpetune import FreezeThawPruner

        if options["method"] == "freeze-thaw":
            pruner = FreezeThawPruner(**{"max_steps": table.epochs, **FREEZE_THAW})
            replay_pause.run_freeze_thaw(
                sim, seed, pruner=pruner, allow_duplicates=options.get("allow_duplicates", True)
            )
        else:
            replay_pause.run_one_epoch_top_k(sim, seed)
    else:
        replay_sim.run_optuna(sim, seed, pruner=options["pruner"])
    target = _grid(table_name)[0] * (1 + TARGET_TOLERANCE)
    return {
        "table": table_name,
        "method": method,
        "seed": seed,
        "budget": budget,
        "max_evals": trials,
        "trials": sim.trials,
        "pruned": sim.pruned,
        "paused": getattr(sim, "paused", 0),
        "thaws": getattr(sim, "thaws", 0),
        "epochs_to_target": sim.epochs_to(target),
        "trace": sim.trace,
        "best": {f"{q}": sim.best_at(budget * q / 100) for q in (25, 50, 100)},
        "curve": [sim.best_at(budget * i / POINTS) for i in range(POINTS + 1)],
        "seconds": time.perf_counter() - started,
    }


_TABLES: dict[str, tabular.Table] = {}
_GRIDS: dict[str, tuple[float, int]] = {}


def _grid(name: str) -> tuple[float, int]:
    """The table's best loss under the replay's rules and the early-stopped grid's epochs."""
    if name not in _GRIDS:
        _GRIDS[name] = replay_sim.grid(_table(name))
    return _GRIDS[name]


def _table(name: str) -> tabular.Table:
    if name not in _TABLES:
        _TABLES[name] = tabular.load_table(name)
    return _TABLES[name]


# -- statistics ---------------------------------------------------------------------------------
def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile by the nearest rank (keeps inf: a seed that never got there)."""
    ordered = sorted(v for v in values if v == v)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def p_value(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided Mann-Whitney U p-value (inf ranks last); NaN without scipy."""
    try:
        from scipy.stats import mannwhitneyu  # type: ignore[import-untyped]
    except ImportError:
        return math.nan
    big = 1e18
    a2 = [big if math.isinf(v) else v for v in a]
    b2 = [big if math.isinf(v) else v for v in b]
    if a2 == b2:
        return 1.0
    return float(mannwhitneyu(a2, b2, alternative="two-sided").pvalue)


def summarize(
    runs: Sequence[dict[str, Any]], baseline: str = "tpe", top: float | None = None
) -> dict[str, dict[str, Any]]:
    """Per method: median/IQR of epochs to target, never-reached seeds, best at 25/50/100%,
    the ratio of median epochs to ``baseline``'s with its p-value, and (``top``) the median
    epochs to the secondary target ``top``."""
    by: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        by.setdefault(r["method"], []).append(r)
    base = [r["epochs_to_target"] for r in by.get(baseline, [])]
    out = {}
    for method, rs in by.items():
        e = [r["epochs_to_target"] for r in rs]
        med = quantile(e, 0.5)
        out[method] = {
            "seeds": len(rs),
            "budget": rs[0]["budget"],
            "epochs_median": med,
            "epochs_q25": quantile(e, 0.25),
            "epochs_q75": quantile(e, 0.75),
            "never": sum(math.isinf(v) for v in e),
            **{f"best_{q}": quantile([r["best"][q] for r in rs], 0.5) for q in ("25", "50", "100")},
            "trials": quantile([r["trials"] for r in rs], 0.5),
            "pruned": quantile([r["pruned"] for r in rs], 0.5),
            "ratio": common.ratio(med, quantile(base, 0.5)) if base else math.nan,
            "p": p_value(e, base) if base and method != baseline else math.nan,
        }
        if top is not None and all("trace" in r for r in rs):
            t = [_epochs_to(r["trace"], top) for r in rs]
            out[method].update(top_median=quantile(t, 0.5), top_never=sum(map(math.isinf, t)))
    return out


def _epochs_to(trace: Sequence[Sequence[float]], target: float) -> float:
    return next((float(e) for e, b in trace if b is not None and b <= target), math.inf)


# -- output -------------------------------------------------------------------------------------
def plot(
    table: tabular.Table, runs: Sequence[dict[str, Any]], methods: Sequence[str], path: Path
) -> str:
    """Best loss vs epochs spent: the median over seeds with the interquartile band."""
    import numpy as np

    runs = [r for r in runs if r["method"] in methods]
    fig, ax = common.new_axes(8.0, 4.8)
    budget = runs[0]["budget"]
    x = np.linspace(0, budget, POINTS + 1)
    for method in methods:
        curves = np.array([r["curve"] for r in runs if r["method"] == method], dtype=float)
        if not len(curves):
            continue
        curves[~np.isfinite(curves)] = np.nan
        with warnings.catch_warnings():  # before any trial finished: all NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(curves, axis=0)
            lo, hi = np.nanpercentile(curves, 25, axis=0), np.nanpercentile(curves, 75, axis=0)
        (line,) = ax.plot(x, med, label=method, lw=1.4)
        ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.12, lw=0)
    best = _grid(table.name)[0]
    ax.axhline(best * (1 + TARGET_TOLERANCE), color="k", ls=":", lw=1, label="target (best +0.5%)")
    finite = [v for r in runs for v in r["curve"] if math.isfinite(v)]
    top = quantile(finite, 0.9) if finite else best * 2
    ax.set_ylim(best * 0.995, max(top, best * 1.02))
    ax.set_xlabel("epochs spent")
    ax.set_ylabel("best validation loss so far")
    ax.set_title(f"{table.name}: median over {len({r['seed'] for r in runs})} seeds, IQR band")
    ax.legend(fontsize=7, ncol=2)
    return common.save_png(fig, path)


def _row(method: str, s: dict[str, Any]) -> list[str]:
    f = common.fmt
    p = "" if math.isnan(s["p"]) else f"{s['p']:.2g}"
    return [
        method,
        "{} [{}, {}]".format(
            *(f(s[k], ".0f") for k in ("epochs_median", "epochs_q25", "epochs_q75"))
        ),
        f"{s['never']}/{s['seeds']}",
        f(s["best_25"], ".5g"),
        f(s["best_50"], ".5g"),
        f(s["best_100"], ".5g"),
        f(s["ratio"], ".2f"),
        p,
        f"{s['trials']:.0f} ({s['pruned']:.0f})",
        f"{f(s.get('top_median', math.nan), '.0f')} ({s.get('top_never', '-')})",
    ]


COLUMNS = [
    "method",
    "epochs to target: median [IQR]",
    "never",
    "best @25%",
    "best @50%",
    "best @100%",
    "epochs / tpe",
    "p",
    "trials (pruned)",
    "epochs to top-5% (never)",
]


def _methods(settings: Settings, table: str) -> tuple[list[str], list[str]]:
    """The methods to run on ``table`` and a note on those skipped."""
    if settings.methods:
        names = list(settings.methods)
    else:
        main, small = settings.budgets[table]
        names = [*METHODS, *startup_variants(settings.trials or main, small)]
    notes = []
    from tpetune.bundled import BUNDLED

    if table not in BUNDLED:  # "default" is what a new study of the table's bundled study gets
        skipped = [m for m in names if m.startswith("default")]
        names = [m for m in names if m not in skipped]
        if skipped:
            notes.append(f"skipped {', '.join(skipped)} on {table}: no bundled study")
    for runner, package in (("optuna", "optuna"), ("dehb", "dehb")):
        if importlib.util.find_spec(package) is None:
            skipped = [m for m in names if method_spec(m)[0] == runner]
            names = [m for m in names if m not in skipped]
            if skipped:
                notes.append(
                    f"skipped {', '.join(skipped)}: {package} is not installed "
                    f"(pip install {package})"
                )
    return names, notes


def run_all(settings: Settings, jobs_fn: Callable[[list], list]) -> dict[str, Any]:
    """Every (table, method, seed) replay; returns per-table summaries and the runs."""
    results: dict[str, Any] = {"notes": [], "tables": {}}
    for name in settings.tables:
        if not (tabular.TABLES / f"{name}.json.gz").exists():
            results["notes"].append(
                f"table {name} is not recorded yet: run python bench/record_curves.py {name}"
            )
            continue
        methods, notes = _methods(settings, name)
        results["notes"] = sorted(set(results["notes"]) | set(notes))
        table = _table(name)
        per_trial = mean_trial_epochs(table)
        jobs = []
        for method in methods:
            trials = budget_trials(settings, name, method)
            budget = round(trials * per_trial)
            jobs += [(name, method, seed, budget, trials) for seed in range(settings.seeds)]
        runs = jobs_fn(jobs)
        main, small = settings.budgets[name]
        results["tables"][name] = {
            "meta": table.meta,
            "best_loss": _grid(name)[0],  # the target's base (see replay_sim.grid)
            "table_best_loss": table.best_loss(),  # at any epoch, early stopping or not
            "grid_es_epochs": _grid(name)[1],
            "configurations": len(table.val_loss),
            "grid_epochs": table.grid_epochs(),
            "mean_trial_epochs": per_trial,
            "budgets": {"main": settings.trials or main, "small": small},
            "top_loss": replay_sim.top_loss(table),
            "summary": summarize(runs, top=replay_sim.top_loss(table) * (1 + TARGET_TOLERANCE)),
            "runs": runs,
        }
    return results


def run_jobs(jobs: list[tuple[str, str, int, int, int]], n: int, cache: Path | None) -> list:
    """Run the replays in ``n`` processes; with ``cache``, finished ones are kept there (JSON
    lines) and not run again, so a killed run resumes."""
    done: dict[tuple, dict[str, Any]] = {}
    if cache is not None and cache.exists():
        for line in cache.read_text().splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line
            done[(r["table"], r["method"], r["seed"], r["budget"])] = _inf(r)
    todo = [j for j in jobs if j[:4] not in done]
    # Long ones first (pruned searches run many short trials), so the pool ends together.
    todo.sort(key=lambda j: ("asha" not in j[1] and "optuna" not in j[1], j[1]))
    if todo:
        pool = multiprocessing.get_context("spawn").Pool(n) if n > 1 else None
        results = pool.imap_unordered(run_one, todo) if pool else map(run_one, todo)
        for r in results:
            done[(r["table"], r["method"], r["seed"], r["budget"])] = r
            if cache is not None:
                with cache.open("a") as f:
                    f.write(json.dumps(common.finite_or_none(r)) + "\n")
        if pool is not None:
            pool.close()
            pool.join()
    return [done[j[:4]] for j in jobs]


def _inf(r: dict[str, Any]) -> dict[str, Any]:
    """A cached run with JSON's nulls turned back into inf (never reached / nothing yet)."""
    inf = math.inf
    r["epochs_to_target"] = inf if r["epochs_to_target"] is None else r["epochs_to_target"]
    r["best"] = {k: inf if v is None else v for k, v in r["best"].items()}
    r["curve"] = [inf if v is None else v for v in r["curve"]]
    return r


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.split("\n\n")[0])
    common.add_budget_flags(p, "seeds", "trials", "jobs")
    p.add_argument("--tables", help="comma-separated tables (default: digits,stock)")
    p.add_argument(
        "--methods", help=f"comma-separated, of: {', '.join(METHODS)}, tpe-asha-nN[@small]"
    )
    p.add_argument("--cache", type=Path, help="keep finished replays here (JSON lines); resume")
    args = p.parse_args(argv)
    settings = common.pick(args, FULL, QUICK)
    if args.tables:
        settings = dataclass_replace(settings, tables=tuple(args.tables.split(",")))
    if args.methods:
        unknown = sorted(m for m in args.methods.split(",") if not _known(m))
        if unknown:
            p.error(f"unknown method(s) {', '.join(unknown)}: choose from {', '.join(METHODS)}")
        settings = dataclass_replace(settings, methods=tuple(args.methods.split(",")))
    started = time.perf_counter()
    common.quiet()

    results = run_all(settings, lambda jobs: run_jobs(jobs, settings.jobs, args.cache))
    return publish(args, settings, results, started)


#: (iv) table -> the trial counts at which pruning is compared with not pruning when the
#: budget is a number of trials (``max_evals``), as in a real study: the bundled study's
#: default and the table's main budget.
FIXED_TRIALS: Mapping[str, tuple[int, ...]] = {"digits": (25, 80), "stock": (30,)}


def fixed_trials(table_name: str, counts: Sequence[int], seeds: int) -> dict[str, Any]:
    """(iv): TPE (start-up ``tpe_startup(n)``) with and without the median rule, stopped after
    ``n`` trials instead of an epoch budget: what pruning costs in final best loss and saves
    in epochs when a study runs the trials it was asked for. Paired by seed."""
    from tpetune.pruners.policies import MedianPruner
    from tpetune.search.algos import tpe_startup

    table = _table(table_name)
    out: dict[str, Any] = {}
    for n in counts:
        runs: dict[str, list[replay_sim.Sim]] = {}
        for label, pruner in (("none", None), ("median", MedianPruner())):
            runs[label] = []
            for seed in range(seeds):
                sim = replay_sim.Sim(table, budget=10**9, max_trials=n)
                replay_sim.run_tpetune(sim, seed, pruner=pruner, n_startup=tpe_startup(n))
                runs[label].append(sim)
        none_best = [s.best for s in runs["none"]]
        med_best = [s.best for s in runs["median"]]
        ratios = [
            m.spent / max(x.spent, 1) for x, m in zip(runs["none"], runs["median"], strict=True)
        ]
        out[str(n)] = {
            "final_best_none": common.median(none_best),
            "final_best_median": common.median(med_best),
            "median_worse_seeds": sum(
                m > x + 1e-12 for x, m in zip(none_best, med_best, strict=True)
            ),
            "median_better_seeds": sum(
                m < x - 1e-12 for x, m in zip(none_best, med_best, strict=True)
            ),
            "p_final_best": p_value(none_best, med_best),
            "epochs_ratio_median": common.median(ratios),
            "epochs_ratio_range": [min(ratios), max(ratios)],
            "seeds": seeds,
        }
    return out


def _fixed_lines(fixed: Mapping[str, Any]) -> list[str]:
    return [
        f"(iv) {n} trials: median rule / none: epochs {f['epochs_ratio_median']:.2f}x "
        f"[{f['epochs_ratio_range'][0]:.2f}, {f['epochs_ratio_range'][1]:.2f}]; final best "
        f"{f['final_best_median']:.5g} vs {f['final_best_none']:.5g} (worse in "
        f"{f['median_worse_seeds']}/{f['seeds']} seeds, better in {f['median_better_seeds']}, "
        f"p {f['p_final_best']:.2g})"
        for n, f in fixed.items()
    ]


def _known(method: str) -> bool:
    try:
        method_spec(method)
    except KeyError:
        return False
    return True


def dataclass_replace(settings: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(settings, **changes)


def publish(args: Any, settings: Settings, results: dict[str, Any], started: float) -> int:
    """Print the per-table tables, draw the PNGs, write the JSON report."""
    rows, figures, pngs = [], {}, []
    for note in results["notes"]:
        print(f"note: {note}")
    for name, res in results["tables"].items():
        summary = res["summary"]
        print(
            f"\n{name}: {res['configurations']} configurations; best loss with early stopping "
            f"{res['best_loss']:.5g} (at any epoch {res['table_best_loss']:.5g}), target "
            f"{res['best_loss'] * (1 + TARGET_TOLERANCE):.5g}; budget "
            f"{next(iter(summary.values()))['budget']} epochs; full grid {res['grid_epochs']} "
            f"epochs, early-stopped grid {res['grid_es_epochs']}"
        )
        table_rows = [_row(m, s) for m, s in summary.items()]
        common.print_table(COLUMNS, table_rows)
        rows += [[name, *r] for r in table_rows]
        figures[name] = {
            "summary": summary,
            **targets(res, settings.default),
            "design": design(res),
            "budgets": res["budgets"],
            "best_loss": res["best_loss"],
            "grid_epochs": res["grid_epochs"],
            "grid_es_epochs": res["grid_es_epochs"],
            "table_best_loss": res["table_best_loss"],
            "mean_trial_epochs": res["mean_trial_epochs"],
            "fixed_trials": fixed_trials(name, FIXED_TRIALS.get(name, ()), settings.seeds),
        }
        base = common.png_path(args, "replay")
        png = base.with_name(f"{base.stem}_{name}.png")
        shown = [m for m in PLOTTED if m in summary]
        pngs.append(plot(_table(name), res["runs"], shown, png))
        lines = figures[name]["lines"] + figures[name]["design"]["lines"]
        for line in lines + _fixed_lines(figures[name]["fixed_trials"]):
            print("  " + line)
    met = [
        t["met"] for f in figures.values() for t in f["targets"].values() if t["met"] is not None
    ]
    runs = [
        {k: v for k, v in r.items() if k not in ("curve", "trace")}
        for res in results["tables"].values()
        for r in res["runs"]
    ]
    common.Report(
        "replay",
        settings={**dataclasses.asdict(settings), "notes": results["notes"]},
        figures=figures,
        target="the default: <= 0.5x TPE's epochs to target, final loss within 0.5%; <= the best "
        "Optuna combination's epochs; the grid's best within 1/10 of the grid's epochs",
        target_met=all(met) if met else None,
        table=(["table", *COLUMNS], rows),
        png=pngs,
        runs=runs,
    ).write(args, started)
    return 0


def targets(res: dict[str, Any], default: str) -> dict[str, Any]:
    """Issue 13's replay targets for the ``default`` method on one table."""
    s = res["summary"]
    d, tpe = s.get(default), s.get("tpe")
    out: dict[str, Any] = {}
    lines = []
    if d and tpe:
        r = common.ratio(d["epochs_median"], tpe["epochs_median"])
        loss_gap = common.ratio(d["best_100"], tpe["best_100"]) - 1
        met = r <= 0.5 and loss_gap <= TARGET_TOLERANCE
        out["half_epochs_of_tpe"] = {
            "ratio": r,
            "final_loss_gap": loss_gap,
            "p": d["p"],
            "met": met,
        }
        lines.append(
            f"{default} / tpe epochs to target {r:.2f} (target <= 0.5, p {d['p']:.2g}), final "
            f"loss {loss_gap:+.2%} (target <= +0.5%): {'met' if met else 'missed'}"
        )
    optunas = {m: v for m, v in s.items() if m.startswith("optuna-")}
    if d and optunas:
        best_m = min(optunas, key=lambda m: (optunas[m]["epochs_median"], optunas[m]["best_100"]))
        o = optunas[best_m]
        p = p_value(_epochs(res, default), _epochs(res, best_m))
        met = math.isfinite(d["epochs_median"]) and d["epochs_median"] <= o["epochs_median"]
        out["vs_best_optuna"] = {
            "optuna": best_m,
            "ratio": common.ratio(d["epochs_median"], o["epochs_median"]),
            "p": p,
            "met": met,
        }
        lines.append(
            f"{default} {common.fmt(d['epochs_median'], '.0f')} vs {best_m} "
            f"{common.fmt(o['epochs_median'], '.0f')} epochs (p {p:.2g}): "
            f"{'met' if met else 'missed'}"
        )
    if d and tpe and "top_median" in d:
        tops = {m: v["top_median"] for m, v in s.items() if "@" not in m and "-n" not in m}
        fastest = min(tops, key=lambda m: tops[m])
        r = common.ratio(d["top_median"], tpe["top_median"])
        p = p_value(_top_epochs(res, default), _top_epochs(res, "tpe"))
        out["top5_vs_tpe"] = {"ratio": r, "p": p, "fastest": fastest, "met": None}
        lines.append(
            f"secondary target (top-5% config level {res['top_loss']:.5g} +0.5%): {default} "
            f"{common.fmt(d['top_median'], '.0f')} vs tpe {common.fmt(tpe['top_median'], '.0f')} "
            f"epochs, ratio {common.fmt(r, '.2f')} (p {p:.2g}); fastest {fastest} "
            f"{common.fmt(tops[fastest], '.0f')}"
        )
    if d:
        grid = res["grid_epochs"]
        r = common.ratio(d["epochs_median"], grid)
        met = r <= 0.1
        out["grid_tenth"] = {"grid_epochs": grid, "ratio": r, "met": met}
        lines.append(
            f"grid: {grid} epochs; {default} reaches its best (+0.5%) in "
            f"{common.fmt(d['epochs_median'], '.0f')} = {r:.3f} of it (target <= 0.1): "
            f"{'met' if met else 'missed'}"
        )
    return {"targets": out, "lines": lines}


def design(res: dict[str, Any]) -> dict[str, Any]:
    """The two design questions on one table: (i) a pruned trial shown to TPE with its partial
    loss or as +inf; (ii) which start-up rule reaches the target soonest, per budget."""
    s, f, lines = res["summary"], common.fmt, []
    pruned: dict[str, Any] = {}
    for base in ("tpe-asha", "tpe-median"):
        inf = f"{base}-inf"
        if base in s and inf in s:
            p = p_value(_epochs(res, base), _epochs(res, inf))
            r = common.ratio(s[inf]["epochs_median"], s[base]["epochs_median"])
            top_p = p_value(_top_epochs(res, base), _top_epochs(res, inf))
            pruned[base] = {
                "partial": s[base], "inf": s[inf], "ratio_inf_vs_partial": r, "p": p,
                "top_p": top_p,
            }  # fmt: skip
            lines.append(
                f"(i) {base}: partial loss {f(s[base]['epochs_median'], '.0f')} epochs "
                f"(never {s[base]['never']}), +inf {f(s[inf]['epochs_median'], '.0f')} "
                f"(never {s[inf]['never']}); inf/partial {f(r, '.2f')}, p {p:.2g}; final best "
                f"{s[base]['best_100']:.5g} vs {s[inf]['best_100']:.5g}; to top-5%: "
                f"{f(s[base].get('top_median', math.nan), '.0f')} vs "
                f"{f(s[inf].get('top_median', math.nan), '.0f')} epochs (p {top_p:.2g})"
            )
    startup: dict[str, Any] = {}
    for budget, suffix in (("main", ""), ("small", "@small")):
        n_trials = res["budgets"][budget]
        rows = {}
        for rule, fn in STARTUP_RULES.items():
            n = fn(n_trials)
            method = f"tpe-asha{suffix}" if n == 20 and not suffix else f"tpe-asha-n{n}{suffix}"
            if method in s:
                rows[rule] = {"n_startup": n, "method": method, **s[method]}
        if not rows:
            continue
        best_rule = min(
            rows, key=lambda k: (rows[k]["epochs_median"], rows[k]["never"], rows[k]["best_100"])
        )
        fixed = rows.get("20 (hyperopt)")
        p = (
            p_value(_epochs(res, rows[best_rule]["method"]), _epochs(res, fixed["method"]))
            if fixed
            else math.nan
        )
        top_rule = min(
            rows, key=lambda k: (rows[k].get("top_median", math.inf), rows[k]["best_100"])
        )
        top_p = (
            p_value(_top_epochs(res, rows[top_rule]["method"]), _top_epochs(res, fixed["method"]))
            if fixed
            else math.nan
        )
        startup[budget] = {
            "trials": n_trials, "rules": rows, "best": best_rule, "p_vs_20": p,
            "best_top": top_rule, "top_p_vs_20": top_p,
        }  # fmt: skip
        cells = ", ".join(
            f"{k} = {v['n_startup']}: {f(v['epochs_median'], '.0f')} (never {v['never']}), "
            f"top-5% {f(v.get('top_median', math.nan), '.0f')}"
            for k, v in rows.items()
        )
        lines.append(
            f"(ii) {n_trials} trials: {cells}; soonest {best_rule} (p vs 20: {p:.2g}); "
            f"to top-5% soonest {top_rule} (p vs 20: {top_p:.2g})"
        )
    return {"pruned_as": pruned, "startup": startup, "lines": lines}


def _top_epochs(res: dict[str, Any], method: str) -> list[float]:
    target = res["top_loss"] * (1 + TARGET_TOLERANCE)
    return [_epochs_to(r["trace"], target) for r in res["runs"] if r["method"] == method]


def _epochs(res: dict[str, Any], method: str) -> list[float]:
    return [r["epochs_to_target"] for r in res["runs"] if r["method"] == method]


if __name__ == "__main__":
    sys.exit(main())
