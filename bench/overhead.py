"""What the study store and bookkeeping cost, against bare hyperopt, measured in one run.

    python bench/overhead.py                 # 100, 1,000 and 5,000 trials (~30 min)
    python bench/overhead.py --quick         # 100 trials, a 1,000-trial study opened
    python bench/overhead.py --sizes 500:5000 --json out.json
    python bench/overhead.py --sizes 5000 --no-pickle   # skip fmin's O(n^2) pickle rewrite

Three ways to run N trials of a zero-cost objective over the same nested space with TPE:
  (a) bare ``hyperopt.fmin`` with an in-memory ``Trials`` (the baseline: no persistence),
  (b) ``hyperopt.fmin(trials_save_file=...)``: hyperopt's own persistence, a pickle per trial,
  (c) ``tpetune.tune``: SQLite commit per trial (fsync), exact-resume seeding, records.
All three give TPE the same per-trial seed (tpetune's ``derive_seed``), so they make the same
proposals: TPE's cost per proposal depends on the history (how many trials took the branch
with the quantised parameter), and with different seeds that alone moves the total by +-30%
at 1,000 trials. The time inside ``tpe.suggest`` is also measured apart, so the table shows
each driver's own cost per trial. Then it opens a synthetic study of ``--open-trials`` trials
with ``tpetune.load_study``. Target: (c)/(a) <= 1.10 and (c) faster than (b); opening 5,000
trials under a second.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hyperopt import Trials, fmin, hp, tpe
from hyperopt.pyll import scope

import tpetune
from bench import common
from tpetune.study.store import Store, TrialRecord, TrialState
from tpetune.trial.context import derive_seed

SPACE = {
    "x": hp.uniform("x", -5, 5),
    "lr": hp.loguniform("lr", -9, -1),
    "model": hp.choice(
        "model",
        [{"kind": "linear"}, {"kind": "poly", "degree": scope.int(hp.quniform("degree", 2, 5, 1))}],
    ),
    "optimizer": hp.choice("optimizer", ["sgd", "adam"]),
}


def zero_cost(params: dict[str, Any]) -> float:
    return float((params["x"] - 1) ** 2)


SEED = 0


class SuggestClock:
    """``tpe.suggest`` with tpetune's per-trial seed, timing every call.

    fmin passes a seed drawn from its own random stream; replacing it with
    ``derive_seed(SEED, tid)`` makes fmin propose exactly what ``tune(seed=SEED)`` does."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.suggest = tpe.suggest

    def __call__(self, new_ids: list[int], domain: Any, trials: Any, seed: int, **kw: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.suggest(new_ids, domain, trials, derive_seed(SEED, new_ids[0]), **kw)
        finally:
            self.seconds += time.perf_counter() - start


def time_fmin(n: int, save_file: Path | None) -> tuple[float, float, list[float]]:
    """(total seconds, seconds inside tpe.suggest, losses in trial order)."""
    clock, trials = SuggestClock(), Trials()
    start = time.perf_counter()
    fmin(
        zero_cost,
        SPACE,
        algo=clock,
        max_evals=n,
        trials=trials,
        rstate=np.random.default_rng(SEED),
        show_progressbar=False,
        trials_save_file=str(save_file) if save_file else "",
    )
    return time.perf_counter() - start, clock.seconds, [float(x) for x in trials.losses()]


def time_tune(n: int, study_dir: Path) -> tuple[float, float, list[float]]:
    """Like :func:`time_fmin`, for ``tpetune.tune``."""
    clock = SuggestClock()
    # tune resolves "tpe" to hyperopt.tpe.suggest when it starts: hand it the clock instead
    # (it seeds with derive_seed already; the clock's re-seeding gives the same number).
    tpe.suggest = clock
    try:
        start = time.perf_counter()
        # hyperopt's 20 start-up trials, as fmin uses: the same proposals in every driver.
        search = tpetune.Search(seed=SEED, options={"n_startup_jobs": 20})
        study = tpetune.tune(
            zero_cost, SPACE, study_dir=study_dir, max_evals=n, search=search, progress=False
        )
        took = time.perf_counter() - start
    finally:
        tpe.suggest = clock.suggest
    losses = [float(r.loss) for r in study.records if r.loss is not None]
    return took, clock.seconds, losses


def time_open(n: int, study_dir: Path) -> float:
    """Write ``n`` synthetic finished trials straight into a store, then time load_study."""
    store = Store.create(study_dir, {"max_evals": n, "seed": 0, "algo": "tpe"})
    for tid in range(n):
        rec = TrialRecord(
            tid,
            TrialState.RUNNING,
            None,
            {"x": tid * 0.001, "model": "poly", "degree": 3},
            {"x": tid * 0.001, "model": 1, "degree": 3.0},
            {"x": tid * 0.001},
            started=float(tid),
        )
        store.begin_trial(rec)
        curves = {
            "loss": [1.0 / (e + 1) for e in range(20)],
            "val_loss": [1.2 / (e + 1) for e in range(20)],
        }
        store.finish_trial(
            replace(
                rec,
                state=TrialState.OK,
                loss=float(tid),
                curves=curves,
                finished=tid + 1.0,
                duration_s=1.0,
            )
        )
    store.close()
    start = time.perf_counter()
    study = tpetune.load_study(study_dir)
    assert len(study.records) == n and study.best is not None
    return time.perf_counter() - start


def size(path: Path) -> int:
    return (
        sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        if path.is_dir()
        else path.stat().st_size
    )


TARGET = (
    "tpetune / fmin <= 1.10 from 500 trials on (the core issue's scale) and faster than fmin's "
    "pickle; opening 5,000 trials < 1 s"
)
#: (trials, open-trials) of a full and a quick run. TPE's cost per proposal grows with the
#: trials before it, so 5,000 trials take ~6 min per driver on 2 cores; fmin's pickle
#: persistence rewrites the whole file after every trial (~O(n^2), ~15 min more at 5,000), so
#: it is timed up to PICKLE_MAX_TRIALS only.
FULL_SIZES = ((100, 1000), (1000, 5000), (5000, 5000))
QUICK_SIZES = ((100, 1000),)
PICKLE_MAX_TRIALS = 1000


def measure(n: int, open_trials: int, *, pickle: bool) -> dict[str, Any]:
    """The figures of one size: the three drivers on ``n`` trials, and opening a study."""
    figures: dict[str, Any] = {"trials": n, "open_trials": open_trials}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # Warm-up, untimed: first-call imports and caches must not count as per-trial cost.
        time_fmin(3, root / "warm.pkl")
        time_tune(3, root / "warm")
        runs = {"fmin": time_fmin(n, None)}
        if pickle:
            runs["fmin_pickle"] = time_fmin(n, root / "trials.pkl")
            figures["pickle_bytes"] = size(root / "trials.pkl")
        runs["tpetune"] = time_tune(n, root / "study")
        figures["study_bytes"] = size(root / "study")
        figures["open_s"] = time_open(open_trials, root / "big")
    bare = runs["fmin"][0]
    for name, (total, suggest, _) in runs.items():
        figures[f"{name}_s"] = total
        figures[f"{name}_suggest_s"] = suggest
        figures[f"{name}_own_ms_per_trial"] = 1000 * (total - suggest) / n
    figures["same_proposals"] = all(r[2] == runs["fmin"][2] for r in runs.values())
    figures["ratio_tpetune_vs_fmin"] = runs["tpetune"][0] / bare
    if "fmin_pickle" in runs:
        figures["ratio_tpetune_vs_fmin_pickle"] = runs["tpetune"][0] / runs["fmin_pickle"][0]
    print_figures(figures, runs)
    return figures


def parse_sizes(text: str) -> tuple[tuple[int, int], ...]:
    """``"100:1000,5000"`` -> ((100, 1000), (5000, 5000)): trials and trials opened."""
    sizes = []
    for item in text.split(","):
        trials, _, opened = item.partition(":")
        n = int(trials)
        sizes.append((n, int(opened) if opened else (1000 if n < 1000 else 5000)))
    return tuple(sizes)


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        metavar="N[:OPEN],...",
        help="trial counts (and trials of the opened study); default 100:1000,1000:5000,"
        "5000:5000, quick 100:1000",
    )
    parser.add_argument(
        "--no-pickle",
        action="store_true",
        help="skip (b): fmin rewrites the whole pickle after every trial, O(n^2) in all",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    logging.getLogger("hyperopt").setLevel(logging.WARNING)
    sizes = args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES)
    runs = [
        measure(n, opened, pickle=not args.no_pickle and n <= PICKLE_MAX_TRIALS)
        for n, opened in sizes
    ]
    overhead_report(runs).write(args, started)


def overhead_report(runs: list[dict[str, Any]]) -> common.Report:
    """One report for runs of several sizes: a table row per size, the last size's figures."""
    columns = [
        "trials",
        "same proposals",
        "fmin ms/trial",
        "fmin+pickle ms/trial",
        "tpetune ms/trial",
        "tpetune / fmin",
        "tpetune / pickle",
        "own ms/trial: fmin, pickle, tpetune",
        "pickle size",
        "study.db size",
        "open time",
    ]

    def per_trial(r: dict[str, Any], key: str) -> str:
        return f"{1000 * r[key] / r['trials']:.2f}" if key in r else "not run"

    def own(r: dict[str, Any]) -> str:
        keys = ("fmin", "fmin_pickle", "tpetune")
        return ", ".join(
            f"{r[f'{k}_own_ms_per_trial']:.2f}" if f"{k}_own_ms_per_trial" in r else "-"
            for k in keys
        )

    rows = [
        [
            f"{r['trials']:,}",
            {"True": "yes", "False": "no"}.get(str(r.get("same_proposals")), "?"),
            *(per_trial(r, k) for k in ("fmin_s", "fmin_pickle_s", "tpetune_s")),
            f"{r['ratio_tpetune_vs_fmin']:.3f}",
            f"{r['ratio_tpetune_vs_fmin_pickle']:.3f}" if "fmin_pickle_s" in r else "not run",
            own(r),
            f"{r['pickle_bytes'] / 1e3:.0f} kB" if "pickle_bytes" in r else "not run",
            f"{r['study_bytes'] / 1e3:.0f} kB",
            f"{r['open_s']:.3f} s ({r['open_trials']:,} trials)",
        ]
        for r in runs
    ]
    last = runs[-1]
    figures = {
        "ratio_tpetune_vs_fmin": last["ratio_tpetune_vs_fmin"],
        "ms_per_trial_tpetune": 1000 * last["tpetune_s"] / last["trials"],
        "own_ms_per_trial_tpetune": last["tpetune_own_ms_per_trial"],
        "own_ms_per_trial_fmin": last["fmin_own_ms_per_trial"],
        "open_s": max(r["open_s"] for r in runs if r["open_trials"] == last["open_trials"]),
        "open_trials": last["open_trials"],
        "study_bytes": last["study_bytes"],
    }
    pickled = [r for r in runs if "ratio_tpetune_vs_fmin_pickle" in r]
    if pickled:
        figures["ratio_tpetune_vs_fmin_pickle"] = pickled[-1]["ratio_tpetune_vs_fmin_pickle"]
    met = (
        # The core issue's target is for 500 trials; at 100 most of TPE's proposals are its
        # random start-up, nearly free, so a fixed ~0.4 ms/trial weighs more (shown, not judged).
        all(r["ratio_tpetune_vs_fmin"] <= 1.10 for r in runs if r["trials"] >= 500)
        and all(r["ratio_tpetune_vs_fmin_pickle"] < 1 for r in pickled)
        and all(r.get("same_proposals", True) for r in runs)
        and (last["open_trials"] < 5000 or figures["open_s"] < 1.0)
    )
    return common.Report(
        "overhead",
        settings={"sizes": [[r["trials"], r["open_trials"]] for r in runs]},
        figures=figures,
        table=(columns, rows),
        target=TARGET,
        target_met=met,
        runs=runs,
    )


def print_figures(figures: dict[str, Any], runs: dict[str, tuple[float, float, list]]) -> None:
    n, bare = figures["trials"], figures["fmin_s"]
    same = "the same" if figures["same_proposals"] else "DIFFERENT"
    print(f"{n} zero-cost trials, TPE, nested 4-parameter space, {same} proposals in each run")
    labels = {
        "fmin": "hyperopt.fmin, in-memory Trials",
        "fmin_pickle": "hyperopt.fmin, trials_save_file",
        "tpetune": "tpetune.tune, SQLite store",
    }
    for name, (total, suggest, _) in runs.items():
        print(
            f"  {labels[name]:<34} {total:7.2f} s  {1000 * total / n:6.2f} ms/trial  "
            f"ratio {total / bare:5.3f}  (outside tpe.suggest: {1000 * (total - suggest) / n:.2f}"
            " ms/trial)"
        )
    line = f"  tpetune vs fmin: {figures['ratio_tpetune_vs_fmin']:.3f} (target <= 1.10)"
    if "ratio_tpetune_vs_fmin_pickle" in figures:
        line += f"; vs pickle persistence: {figures['ratio_tpetune_vs_fmin_pickle']:.3f} (< 1)"
        print(line)
        print(f"  store size: pickle {figures['pickle_bytes'] / 1e3:.0f} kB, ", end="")
    else:
        print(line)
        print("  store size: ", end="")
    print(f"study.db {figures['study_bytes'] / 1e3:.0f} kB")
    print(f"open a {figures['open_trials']}-trial study: {figures['open_s']:.3f} s (target < 1 s)")


if __name__ == "__main__":
    main()
