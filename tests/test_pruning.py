"""The median pruning rule, and a pruned trial's record through tune()."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hyperopt import hp

from tpetune import ConfigError, TrialState, tune
from tpetune.context import TrialContext, current_trial, trial_scope
from tpetune.pruning import MedianRule, finished_curves, with_reference_curves

FINISHED = [
    [1.0, 0.8, 0.6, 0.5],
    [1.2, 0.9, 0.7, 0.65],
    [0.9, 0.7, 0.5],  # early-stopped after 3 epochs: counts with its best (0.5) later on
    [1.5, 1.4, 1.3, 1.2],
    [1.1, 1.0, 0.9, 0.85],
]


def test_reference_is_the_median_of_best_so_far_at_each_epoch() -> None:
    rule = MedianRule(warmup_trials=5, warmup_epochs=1)
    assert rule.reference(FINISHED, 0) == pytest.approx(1.1)
    assert rule.reference(FINISHED, 2) == pytest.approx(np.median([0.6, 0.7, 0.5, 1.3, 0.9]))
    assert rule.reference(FINISHED, 3) == pytest.approx(np.median([0.5, 0.65, 0.5, 1.2, 0.85]))
    assert rule.reference(FINISHED[:4], 2) is None  # warm-up: fewer than 5 finished trials


def test_should_prune_respects_warmup_and_best_so_far() -> None:
    rule = MedianRule(warmup_trials=5, warmup_epochs=3)
    assert not rule.should_prune([5.0, 5.0], FINISHED)  # epoch 2 < warm-up of 3 epochs
    assert rule.should_prune([5.0, 5.0, 5.0], FINISHED)  # worse than the median at epoch 3
    assert not rule.should_prune([1.0, 0.6, 0.9], FINISHED)  # best so far 0.6 < median 0.7
    loose = MedianRule(warmup_trials=5, warmup_epochs=3, percentile=90)
    assert not loose.should_prune([1.0, 1.0, 1.0], FINISHED)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rule": "hyperband"}, "unknown pruning rule"),
        ({"rule": "median", "percentile": 100}, "percentile must lie in"),
        ({"rule": "median", "warmup_trials": 0}, "warm-up must be"),
        ({"rule": "median", "patience": 3}, "unknown pruning option"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        MedianRule.from_options(options)
    assert MedianRule.from_options({"rule": "none"}) is None


def test_finished_curves_reads_ok_trials_of_the_current_study(tmp_path: Path) -> None:
    def objective(params: dict[str, float]) -> dict[str, Any]:
        curve = [params["x"] + 1.0 / (e + 1) for e in range(3)]
        return {"loss": min(curve), "curves": {"val_loss": curve}}

    tune(objective, {"x": hp.uniform("x", 0, 1)}, study_dir=tmp_path, max_evals=4, progress=False)
    with trial_scope(TrialContext(tid=99, seed=0, study_dir=tmp_path)):
        curves = finished_curves("val_loss")
    assert len(curves) == 4 and all(len(c) == 3 for c in curves)
    assert finished_curves("val_loss") == []  # outside a trial: nothing to compare with


def test_shipped_reference_curves_stand_in_for_an_unreachable_store(tmp_path: Path) -> None:
    """A Spark executor on another node may not see the study folder: the driver ships the
    finished trials' curves with the trial, and the pruner reads those instead."""

    def objective(params: dict[str, float]) -> dict[str, Any]:
        curve = [params["x"] + 1.0 / (e + 1) for e in range(3)]
        return {"loss": min(curve), "curves": {"val_loss": curve}}

    tune(objective, {"x": hp.uniform("x", 0, 1)}, study_dir=tmp_path, max_evals=3, progress=False)
    ctx = TrialContext(tid=9, seed=0, study_dir=tmp_path, pruning={"rule": "median"})
    shipped = with_reference_curves(ctx)
    assert shipped.reference_curves is not None
    with trial_scope(ctx):
        from_store = finished_curves("val_loss")
    assert shipped.reference_curves["val_loss"] == from_store and len(from_store) == 3
    remote = replace(shipped, study_dir=tmp_path / "not-on-this-node")
    with trial_scope(remote):
        assert finished_curves("val_loss") == from_store
        assert finished_curves("loss") == []  # a metric no trial logged
    off = replace(ctx, pruning={"rule": "none"})
    assert with_reference_curves(off) is off  # nothing to ship when pruning is off


def test_a_trial_noted_as_pruned_is_recorded_pruned_with_its_curve(tmp_path: Path) -> None:
    def objective(params: dict[str, float]) -> dict[str, Any]:
        ctx = current_trial()
        assert ctx is not None and ctx.pruning == {"rule": "median", "warmup_trials": 2}
        curve = [1.0, 0.9]
        if params["x"] > 0.5:  # what the Keras callback does when the rule fires
            ctx.notes["pruned_at_epoch"] = 2
        return {"loss": min(curve), "curves": {"val_loss": curve}}

    study = tune(
        objective,
        {"x": hp.uniform("x", 0, 1)},
        study_dir=tmp_path,
        max_evals=10,
        pruning={"rule": "median", "warmup_trials": 2},
        progress=False,
    )
    for r in study.records:
        pruned = r.params["x"] > 0.5
        assert r.state is (TrialState.PRUNED if pruned else TrialState.OK)
        assert r.curves == {"val_loss": [1.0, 0.9]} and r.loss == 0.9
        assert (r.metrics.get("pruned_at_epoch") == 2) is pruned
    # TPE saw the pruned losses: the hyperopt view holds a loss for every trial.
    assert None not in study.trials.losses()


@pytest.mark.keras
def test_keras_callback_stops_a_losing_fit(tmp_path: Path) -> None:
    import keras

    from tpetune.pruning import keras_pruning_callback

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
        points=points,
        pruning={"rule": "median", "warmup_trials": 2, "warmup_epochs": 2},
        progress=False,
    )
    last = study.records[-1]
    assert last.state is TrialState.PRUNED
    assert len(last.curves["val_loss"]) == 2 == last.metrics["pruned_at_epoch"]
    assert all(len(r.curves["val_loss"]) == 6 for r in study.records[:3])
