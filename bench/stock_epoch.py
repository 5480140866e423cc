"""Per-epoch training time: StockObjective vs a plain ``model.fit`` on the same arrays.

Both train the same model (the median point of ``spaces/stock.py``) on the same numpy arrays of
the default data (last 10 years of the bundled S&P 500), with early stopping disabled by a large
patience so both run every epoch. The objective runs inside a trial context with a workdir, so
its full per-trial machinery is timed: EarlyStopping, BackupAndRestore, the epoch log. The first
epoch (graph tracing) is left out; runs alternate to cancel drift.

    python bench/stock_epoch.py [--quick]

Prints the median epoch time of each and the ratio objective / plain (target <= 1.05).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import keras

from tpetune.context import TrialContext, trial_scope
from tpetune.stock.model import build_model
from tpetune.stock.objective import StockObjective

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
    """Collects wall-clock seconds per epoch into a shared list."""

    def __init__(self, sink: list[float]) -> None:
        super().__init__()
        self.sink = sink
        self.started = 0.0

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.sink.append(time.perf_counter() - self.started)


def plain_epochs(objective: StockObjective, epochs: int, seed: int) -> list[float]:
    ds = objective.datasets(PARAMS["time_steps"])[0]
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = build_model(PARAMS, time_steps=ds.time_steps, n_features=ds.n_features)
    times: list[float] = []
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


def objective_epochs(objective: StockObjective, seed: int, tid: int, root: Path) -> list[float]:
    times: list[float] = []
    objective.callbacks = [EpochTimer(times)]
    with trial_scope(TrialContext(tid=tid, seed=seed, study_dir=root)):
        objective(PARAMS)
    return times[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs and repeats")
    args = parser.parse_args()
    epochs, repeats = (4, 1) if args.quick else (8, 3)

    objective = StockObjective(epochs=epochs, patience=epochs)
    ds = objective.datasets(PARAMS["time_steps"])[0]
    print(
        f"data: {len(objective.prices)} days, {ds.size('train')} train / {ds.size('val')} val "
        f"windows of {ds.time_steps} days; {epochs} epochs x {repeats} repeats "
        "(first epoch of each run left out)"
    )
    plain: list[float] = []
    ours: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            plain += plain_epochs(objective, epochs, seed=r)
            ours += objective_epochs(objective, seed=r, tid=r, root=Path(tmp))
    p, o = statistics.median(plain), statistics.median(ours)
    # The minimum is the least disturbed by other processes on a shared machine.
    pm, om = min(plain), min(ours)
    print(f"{'':22}{'median':>10}{'min':>10}  ms/epoch over {len(plain)} epochs each")
    print(f"{'plain model.fit':22}{p * 1000:10.1f}{pm * 1000:10.1f}")
    print(f"{'StockObjective':22}{o * 1000:10.1f}{om * 1000:10.1f}")
    print(f"{'ratio objective/plain':22}{o / p:10.3f}{om / pm:10.3f}  (target <= 1.05)")


if __name__ == "__main__":
    main()
