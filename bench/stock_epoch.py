"""Per-epoch training time: StockObjective vs a plain ``model.fit`` on the same arrays.

Both train the same model (the median point of ``spaces/stock.py``) on the same numpy arrays of
the default data (last 10 years of the bundled S&P 500), with early stopping disabled by a large
patience so both run every epoch. The objective runs inside a trial context with a workdir, so
its full per-trial machinery is timed: EarlyStopping, BackupAndRestore, the epoch log. The first
epoch of each run (graph tracing) and one warm-up run of each are left out; runs alternate to
cancel drift. Wall time is noisy on a shared machine, so CPU time of this process is printed too.

    python bench/stock_epoch.py [--quick]

Prints the median epoch time of each and the ratio objective / plain (target <= 1.05).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras

from bench import common
from tpetune.stock.model import build_model
from tpetune.stock.objective import StockObjective
from tpetune.trial.context import TrialContext, trial_scope

PARAMS: dict[str, Any] = {
    "batch_size": 64,
    "time_steps": 60,
    "lstm1_nodes": 40,
    "lstm1_dropout": 0.2,
    "lstm_layers": {"layers": 1},
    "dense_layers": {"layers": 0},
    "optimizer": {"name": "adam"},
    "lr": 1e-3,
}


class EpochTimer(keras.callbacks.Callback):
    """Collects (wall seconds, process CPU seconds) per epoch into a shared list.

    CPU time (all threads of this process) is far less disturbed than wall time by other
    processes on a shared machine, so it is the fairer measure of our own overhead.
    """

    def __init__(self, sink: list[tuple[float, float]]) -> None:
        super().__init__()
        self.sink = sink
        self.started = (0.0, 0.0)

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.started = (time.perf_counter(), time.process_time())

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        wall, cpu = self.started
        self.sink.append((time.perf_counter() - wall, time.process_time() - cpu))


def plain_epochs(objective: StockObjective, epochs: int, seed: int) -> list[tuple[float, float]]:
    ds = objective.datasets(PARAMS["time_steps"])[0]
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = build_model(PARAMS, time_steps=ds.time_steps, n_features=ds.n_features)
    times: list[tuple[float, float]] = []
    x, y = ds.part("train")
    model.fit(
        x,
        y,
        validation_data=ds.part("val"),
        epochs=epochs,
        batch_size=PARAMS["batch_size"],
        verbose=0,
        callbacks=[EpochTimer(times)],
    )
    return times[1:]


def objective_epochs(
    objective: StockObjective, seed: int, tid: int, root: Path
) -> list[tuple[float, float]]:
    times: list[tuple[float, float]] = []
    objective.callbacks = [EpochTimer(times)]
    with trial_scope(TrialContext(tid=tid, seed=seed, study_dir=root)):
        objective(PARAMS)
    return times[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs and repeats")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    started = time.perf_counter()
    epochs, repeats = (4, 2) if args.quick else (8, 4)

    objective = StockObjective(epochs=epochs, patience=epochs)
    ds = objective.datasets(PARAMS["time_steps"])[0]
    print(
        f"data: {len(objective.prices)} days, {ds.size('train')} train / {ds.size('val')} val "
        f"windows of {ds.time_steps} days; {epochs} epochs x {repeats} repeats "
        "(first epoch of each run left out)"
    )
    plain: list[tuple[float, float]] = []
    ours: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        # Warm-up, discarded: a process's first fits pay one-off allocation and setup costs.
        plain_epochs(objective, 2, seed=0)
        objective_epochs(objective, seed=0, tid=99, root=Path(tmp))
        for r in range(repeats):
            # Alternate which goes first, so a slow start or drift favours neither.
            if r % 2:
                ours += objective_epochs(objective, seed=r, tid=r, root=Path(tmp))
            plain += plain_epochs(objective, epochs, seed=r)
            if not r % 2:
                ours += objective_epochs(objective, seed=r, tid=r, root=Path(tmp))
    rows = {
        "wall, median": (
            statistics.median(w for w, _ in plain),
            statistics.median(w for w, _ in ours),
        ),
        # The minimum is the least disturbed by other processes on a shared machine.
        "wall, min": (min(w for w, _ in plain), min(w for w, _ in ours)),
        "CPU, median": (
            statistics.median(c for _, c in plain),
            statistics.median(c for _, c in ours),
        ),
    }
    print(
        f"{'ms/epoch':16}{'plain fit':>12}{'objective':>12}{'ratio':>9}  ({len(plain)} epochs each)"
    )
    for name, (p, o) in rows.items():
        print(f"{name:16}{p * 1000:12.1f}{o * 1000:12.1f}{o / p:9.3f}")
    (p, o), (pm, om), (pc, oc) = rows.values()
    print(f"ratio objective/plain: {o / p:.3f} (median wall time; target <= 1.05)")
    figures = {
        "plain_ms_per_epoch": p * 1000,
        "objective_ms_per_epoch": o * 1000,
        "ratio_objective_vs_plain": o / p,
        "ratio_objective_vs_plain_min_wall": om / pm,
        "plain_cpu_ms_per_epoch": pc * 1000,
        "objective_cpu_ms_per_epoch": oc * 1000,
        "ratio_objective_vs_plain_cpu": oc / pc,
        "epochs_each": len(plain),
    }
    common.Report(
        "stock_epoch",
        settings={"epochs": epochs, "repeats": repeats},
        figures=figures,
        table=common.figure_table(figures),
        target="StockObjective / plain model.fit <= 1.05 per epoch (median wall time)",
        target_met=o / p <= 1.05,
    ).write(args, started)


if __name__ == "__main__":
    main()
