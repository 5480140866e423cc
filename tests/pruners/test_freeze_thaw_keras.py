"""Freeze-thaw with a plain Keras objective (no KerasTrial): the README's recipe. Its own
``BackupAndRestore(delete_checkpoint=False)`` carries a paused fit into the thaw, which trains
only the epochs it has not trained, and ``tpetune.reported()`` gives the whole curve's loss."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hyperopt import hp

import tpetune
from tpetune import FreezeThawPruner, Search, tune
from tpetune.study.store import TrialState

keras = pytest.importorskip("keras")

EPOCHS = 6
SPACE = {"lr": hp.loguniform("lr", np.log(1e-4), np.log(3e-2))}


def objective(params: dict[str, Any]) -> dict[str, Any]:
    from tpetune.pruners.keras import keras_pruning_callback

    ctx = tpetune.current_trial()
    assert ctx is not None and ctx.study_dir is not None
    trained_log = ctx.study_dir / "trained.log"  # the epochs each trial trained
    workdir = ctx.ensure_workdir()
    assert workdir is not None
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 4)).astype("float32")
    y = x @ np.array([1.0, -2.0, 0.5, 3.0], dtype="float32")
    keras.utils.set_random_seed(ctx.seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(params["lr"]), loss="mse")

    class Trained(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            with trained_log.open("a") as fh:
                fh.write(f"{ctx.tid} {epoch + 1}\n")

    backup = keras.callbacks.BackupAndRestore(str(workdir / "backup"), delete_checkpoint=False)
    model.fit(
        x, y, validation_split=0.25, epochs=EPOCHS, batch_size=64, verbose=0,
        callbacks=[backup, Trained(), keras_pruning_callback()],
    )  # fmt: skip
    return {"loss": min(tpetune.reported().values())}


def test_a_plain_keras_objective_thaws_from_its_backup(tmp_path: Path) -> None:
    study_dir = tmp_path / "study"
    study_dir.mkdir()
    rule = FreezeThawPruner(pause_below=0.9, prune_below=0.0, warmup_trials=2, max_steps=EPOCHS)
    study = tune(
        objective, SPACE, study_dir=study_dir, max_evals=6, search=Search(seed=1),
        pruner=rule, progress=False,
    )  # fmt: skip
    trained: dict[int, list[int]] = {}
    for line in (study_dir / "trained.log").read_text().splitlines():
        tid, epoch = map(int, line.split())
        trained.setdefault(tid, []).append(epoch)
    thawed = [r for r in study.records if r.metrics.get("thaws")]
    assert thawed, "no trial was paused and thawed"
    for r in study.records:
        # each epoch trained once: a thaw continues from the backup, not from epoch 1
        assert trained[r.tid] == sorted(set(trained[r.tid])), (r.tid, trained[r.tid])
        if r.state is TrialState.OK:
            assert trained[r.tid] == list(range(1, EPOCHS + 1))
            assert r.loss == pytest.approx(min(r.curves["val_loss"]))
            assert len(r.curves["val_loss"]) == EPOCHS  # the whole curve, not the thaw's part
