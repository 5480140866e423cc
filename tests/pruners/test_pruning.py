"""The Keras pruning callback over tpetune.report, a noted pruned trial's record, and the
snapshot that travels with a trial to an executor that cannot see the study folder."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hyperopt import hp

from tpetune import MedianPruner, NoPruner, Search, TrialState, tune
from tpetune.executors.base import Job, run_trial
from tpetune.trial.context import TrialContext, current_trial, trial_scope
from tpetune.trial.report import report, should_prune, with_reference


def _curvy(params: dict[str, float]) -> dict[str, Any]:
    curve = [params["x"] + 1.0 / (e + 1) for e in range(3)]
    return {"loss": min(curve), "curves": {"val_loss": curve}}


def test_shipped_snapshot_stands_in_for_an_unreachable_store(tmp_path: Path) -> None:
    """A Spark executor on another node may not see the study folder: the driver ships the
    finished curves and rung values with the trial, the pruner decides from those, and the
    steps travel back with the outcome."""
    tune(_curvy, {"x": hp.uniform("x", 0, 1)}, study_dir=tmp_path, max_evals=3, progress=False)
    rule = MedianPruner(warmup_trials=3, warmup_steps=1)
    ctx = TrialContext(tid=9, seed=0, study_dir=tmp_path, pruner=rule.to_json())
    shipped = with_reference(ctx)
    assert shipped.reference is not None and len(shipped.reference["curves"]) == 3
    remote = replace(shipped, study_dir=tmp_path / "not-on-this-node")

    def hopeless(params: Any) -> float:
        report(1, 99.0)
        assert should_prune()
        return 99.0

    outcome = run_trial(hopeless, Job(9, {}, remote))
    assert outcome.steps == [[1, 99.0, None, None, True, "prune"]]  # the decision travels too
    off = replace(ctx, pruner=NoPruner().to_json())
    assert with_reference(off) is off  # nothing to ship when nothing is pruned


def test_a_trial_noted_as_pruned_is_recorded_pruned_with_its_curve(tmp_path: Path) -> None:
    rule = MedianPruner(warmup_trials=2)

    def objective(params: dict[str, float]) -> dict[str, Any]:
        ctx = current_trial()
        assert ctx is not None and ctx.pruner == rule.to_json()
        curve = [1.0, 0.9]
        if params["x"] > 0.5:  # what the Keras callback does when the rule fires
            ctx.notes["pruned_at_epoch"] = 2
        return {"loss": min(curve), "curves": {"val_loss": curve}}

    study = tune(
        objective,
        {"x": hp.uniform("x", 0, 1)},
        study_dir=tmp_path,
        max_evals=10,
        pruner=rule,
        progress=False,
    )
    for r in study.records:
        pruned = r.params["x"] > 0.5
        assert r.state is (TrialState.PRUNED if pruned else TrialState.OK)
        assert r.curves == {"val_loss": [1.0, 0.9]} and r.loss == 0.9
        assert (r.metrics.get("pruned_at_epoch") == 2) is pruned
    # TPE saw the pruned losses: the hyperopt view holds a loss for every trial.
    assert None not in study.trials.losses()


def test_outside_a_trial_the_context_is_empty() -> None:
    assert current_trial() is None
    with trial_scope(TrialContext(tid=1, seed=0)):
        assert current_trial() is not None


@pytest.mark.keras
def test_keras_callback_stops_a_losing_fit(tmp_path: Path) -> None:
    import keras

    from tpetune.pruners.keras import keras_pruning_callback

    x = np.linspace(0, 1, 64, dtype="float32").reshape(-1, 1)
    y = 2 * x

    def objective(params: dict[str, float]) -> dict[str, Any]:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(params["lr"]), loss="mse")
        hist = model.fit(
            x, y, validation_split=0.25, epochs=6, verbose=0, callbacks=[keras_pruning_callback()]
        )
        return {"loss": min(hist.history["val_loss"]), "curves": hist.history}

    # Good learning rates first (each better than the ones before, so none is pruned), then a
    # hopeless one that must be pruned once the warm-up is over.
    points = [{"lr": 0.1}, {"lr": 0.2}, {"lr": 0.4}, {"lr": 1e-6}]
    study = tune(
        objective,
        {"lr": hp.loguniform("lr", -14, 0)},
        study_dir=tmp_path,
        max_evals=4,
        search=Search(points=points),
        pruner=MedianPruner(warmup_trials=2, warmup_steps=2),
        progress=False,
    )
    last = study.records[-1]
    assert last.state is TrialState.PRUNED
    assert len(last.curves["val_loss"]) == 2 == last.metrics["pruned_at_epoch"]
    assert all(len(r.curves["val_loss"]) == 6 for r in study.records[:3])
