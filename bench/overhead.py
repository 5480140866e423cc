"""What the study store and bookkeeping cost, against bare hyperopt, measured in one run.

    python bench/overhead.py                 # 500 trials, as the core issue asks
    python bench/overhead.py --trials 100 --open-trials 5000 --json out.json

Three ways to run N trials of a zero-cost objective over the same nested space with TPE:
  (a) bare ``hyperopt.fmin`` with an in-memory ``Trials`` (the baseline: no persistence),
  (b) ``hyperopt.fmin(trials_save_file=...)``: hyperopt's own persistence, a pickle per trial,
  (c) ``tpetune.tune``: SQLite commit per trial (fsync), exact-resume seeding, records.
Then it opens a synthetic study of ``--open-trials`` trials with ``tpetune.load_study``.
Printed: seconds, ms per trial, ratio to (a); store sizes; open time. Target: (c)/(a) <= 1.10
and (c) faster than (b); opening 5,000 trials under a second.
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


def time_fmin(n: int, save_file: Path | None) -> float:
    start = time.perf_counter()
    fmin(
        zero_cost,
        SPACE,
        algo=tpe.suggest,
        max_evals=n,
        trials=Trials(),
        rstate=np.random.default_rng(0),
        show_progressbar=False,
        trials_save_file=str(save_file) if save_file else "",
    )
    return time.perf_counter() - start


def time_tune(n: int, study_dir: Path) -> float:
    start = time.perf_counter()
    tpetune.tune(zero_cost, SPACE, study_dir=study_dir, max_evals=n, progress=False)
    return time.perf_counter() - start


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
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    logging.getLogger("hyperopt").setLevel(logging.WARNING)
    n = args.trials
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bare = time_fmin(n, None)
        pickled = time_fmin(n, root / "trials.pkl")
        ours = time_tune(n, root / "study")
        opened = time_open(args.open_trials, root / "big")
        figures = {
            "trials": n,
            "fmin_s": bare,
            "fmin_pickle_s": pickled,
            "tpetune_s": ours,
            "ratio_tpetune_vs_fmin": ours / bare,
            "ratio_tpetune_vs_fmin_pickle": ours / pickled,
            "pickle_bytes": size(root / "trials.pkl"),
            "study_bytes": size(root / "study"),
            "open_trials": args.open_trials,
            "open_s": opened,
        }
    print(f"{n} zero-cost trials, TPE, nested 4-parameter space")
    for name, key in (
        ("hyperopt.fmin, in-memory Trials", "fmin_s"),
        ("hyperopt.fmin, trials_save_file", "fmin_pickle_s"),
        ("tpetune.tune, SQLite store", "tpetune_s"),
    ):
        secs = figures[key]
        print(
            f"  {name:<34} {secs:7.2f} s  {1000 * secs / n:6.2f} ms/trial  ratio {secs / bare:5.3f}"
        )
    print(
        f"  tpetune vs fmin: {figures['ratio_tpetune_vs_fmin']:.3f} (target <= 1.10); "
        f"vs pickle persistence: {figures['ratio_tpetune_vs_fmin_pickle']:.3f} (target < 1)"
    )
    print(
        f"  store size: pickle {figures['pickle_bytes'] / 1e3:.0f} kB, "
        f"study.db {figures['study_bytes'] / 1e3:.0f} kB"
    )
    print(f"open a {args.open_trials}-trial study: {opened:.3f} s (target < 1 s)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
