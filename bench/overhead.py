"""What the study store and bookkeeping cost, against bare hyperopt, measured in one run.

    python bench/overhead.py                 # 500 trials, as the core issue asks
    python bench/overhead.py --trials 100 --open-trials 5000 --json out.json
    python bench/overhead.py --trials 5000 --no-pickle   # skip fmin's O(n^2) pickle rewrite

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

import argparse
import json
import logging
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from hyperopt import Trials, fmin, hp, tpe
from hyperopt.pyll import scope

import tpetune
from tpetune.context import derive_seed
from tpetune.store import Store, TrialRecord, TrialState

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

    def __call__(self, new_ids: list[int], domain: Any, trials: Any, seed: int) -> Any:
        start = time.perf_counter()
        try:
            return self.suggest(new_ids, domain, trials, derive_seed(SEED, new_ids[0]))
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
        study = tpetune.tune(
            zero_cost, SPACE, study_dir=study_dir, max_evals=n, seed=SEED, progress=False
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--open-trials", type=int, default=5000)
    parser.add_argument(
        "--no-pickle",
        action="store_true",
        help="skip (b): fmin rewrites the whole pickle after every trial, O(n^2) in all",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    logging.getLogger("hyperopt").setLevel(logging.WARNING)
    n = args.trials
    figures: dict[str, Any] = {"trials": n, "open_trials": args.open_trials}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # Warm-up, untimed: first-call imports and caches must not count as per-trial cost.
        time_fmin(3, root / "warm.pkl")
        time_tune(3, root / "warm")
        runs = {"fmin": time_fmin(n, None)}
        if not args.no_pickle:
            runs["fmin_pickle"] = time_fmin(n, root / "trials.pkl")
            figures["pickle_bytes"] = size(root / "trials.pkl")
        runs["tpetune"] = time_tune(n, root / "study")
        figures["study_bytes"] = size(root / "study")
        figures["open_s"] = time_open(args.open_trials, root / "big")
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
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


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
