"""DigitsObjective on a tiny subset: k-fold result, fold checkpoints, pruning, final report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tpetune.trial.context import TrialContext, current_trial, trial_scope

keras = pytest.importorskip("keras")

from tpetune.digits.data import load_digits_data  # noqa: E402
from tpetune.digits.objective import DigitsObjective  # noqa: E402
from tpetune.digits.plots import plot_confusion  # noqa: E402

pytestmark = pytest.mark.keras

PARAMS: dict[str, Any] = {
    "hidden_layers": {"layers": 1, "units1": 16},
    "activation": "relu",
    "initializer": "he_normal",
    "optimizer": {"name": "adam"},
    "schedule": {"name": "exponential", "rate": 0.9},
    "lr": 0.01,
    "batch_size": 32,
    "epochs": 3,
}


@pytest.fixture(scope="module")
def objective() -> DigitsObjective:
    return DigitsObjective(data=load_digits_data(limit=120), folds=2)


def test_result_is_the_mean_over_stratified_folds(objective: DigitsObjective) -> None:
    result = objective(PARAMS)
    metrics = result["metrics"]
    assert metrics["folds_run"] == 2
    assert result["loss"] == pytest.approx(np.mean(metrics["fold_loss"]))
    assert metrics["val_accuracy"] == pytest.approx(np.mean(metrics["fold_val_accuracy"]))
    assert all(0.0 <= a <= 1.0 for a in metrics["fold_val_accuracy"])
    assert all(1 <= e <= 3 for e in metrics["fold_best_epoch"])
    assert metrics["best_epoch"] == pytest.approx(np.median(metrics["fold_best_epoch"]))
    assert set(result["curves"]) == {"loss", "val_loss"}
    assert 1 <= len(result["curves"]["val_loss"]) <= 3


def test_final_report_without_epochs_cross_validates_first(
    objective: DigitsObjective, monkeypatch: pytest.MonkeyPatch
) -> None:
    cv = {"loss": 0.42, "metrics": {"best_epoch": 2.5}}
    calls: list[Any] = []
    monkeypatch.setattr(DigitsObjective, "__call__", lambda self, p: calls.append(p) or cv)
    summary = objective.final_report(PARAMS, out_dir=None, seed=0)
    assert calls == [PARAMS]
    assert summary["cv_loss"] == 0.42 and summary["epochs"] == 2  # the folds' median, rounded


def test_finished_folds_are_kept_for_a_crashed_trial(
    objective: DigitsObjective, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trained: list[int] = []

    def fake_fit(params: Any, fold: Any, *, seed: int, **_: Any) -> dict[str, Any]:
        trained.append(seed)
        if len(trained) == 2:
            raise KeyboardInterrupt  # the process dies in the second fold
        curves = {"loss": [1.0, 0.5], "val_loss": [1.2, 0.6]}
        return {"loss": 0.6, "val_accuracy": 0.8, "best_epoch": 2, "epochs_trained": 2,
                "train_seconds": 1.0, "curves": curves}  # fmt: skip

    monkeypatch.setattr(objective, "_fit_fold", fake_fit)
    with (
        trial_scope(TrialContext(tid=3, seed=7, study_dir=tmp_path)),
        pytest.raises(KeyboardInterrupt),
    ):
        objective(PARAMS)
    assert [p.name for p in (tmp_path / "trials" / "3").iterdir()] == ["fold0_result.json"]
    # The re-run trains only the unfinished fold, with the trial's seed.
    with trial_scope(TrialContext(tid=3, seed=7, study_dir=tmp_path)):
        result = objective(PARAMS)
    assert trained == [7, 7, 7] and result["metrics"]["folds_run"] == 2
    assert result["loss"] == pytest.approx(0.6)


def test_a_pruned_fold_ends_the_trial(objective: DigitsObjective) -> None:
    class PruneNow(keras.callbacks.Callback):  # type: ignore[misc]
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            ctx = current_trial()
            assert ctx is not None
            ctx.notes["pruned_at_epoch"] = epoch + 1
            self.model.stop_training = True

    pruning = DigitsObjective(data=objective.data, folds=2, callbacks=[PruneNow])
    with trial_scope(TrialContext(tid=0, seed=1)):
        result = pruning(PARAMS)
    assert result["metrics"]["folds_run"] == 1
    assert len(result["curves"]["val_loss"]) == 1


def test_final_report_writes_the_model_report_and_matrix(
    objective: DigitsObjective, tmp_path: Path
) -> None:
    summary = objective.final_report(PARAMS, out_dir=tmp_path, seed=0, epochs=2, cv_loss=0.5)
    assert {p.name for p in tmp_path.iterdir()} == {
        "best_model.keras",
        "classification_report.txt",
        "confusion_matrix.png",
    }
    assert "macro avg" in (tmp_path / "classification_report.txt").read_text()
    assert summary["n_train"] == 120 and summary["n_test"] == 360 and summary["epochs"] == 2
    assert summary["cv_loss"] == 0.5 and 0.0 <= summary["test_accuracy"] <= 1.0
    assert set(summary["per_class"]) == {str(d) for d in range(10)}
    assert sum(c["support"] for c in summary["per_class"].values()) == 360
    json.dumps(summary, allow_nan=False)  # JSON-able as it is
    restored = keras.models.load_model(tmp_path / "best_model.keras")
    assert restored.output_shape == (None, 10)


def test_plot_confusion_labels_every_cell() -> None:
    matrix = np.arange(9).reshape(3, 3)
    ax = plot_confusion(matrix, title="t")
    assert [t.get_text() for t in ax.texts] == [str(v) for v in range(9)]
    assert ax.get_xlabel() == "predicted digit" and ax.get_ylabel() == "true digit"
    assert ax.get_title() == "t"
    import io

    ax.figure.savefig(io.BytesIO(), format="png")


def test_the_driver_builds_the_objective_without_keras() -> None:
    """Only trials and the report (in the executor) train: building and checking the objective
    in the driver imports neither Keras nor TensorFlow (seconds per run, and its threads)."""
    import subprocess
    import sys

    code = (
        "import sys; from tpetune.digits.data import load_digits_data; "
        "from tpetune.digits.objective import DigitsObjective; "
        "DigitsObjective(data=load_digits_data(limit=120), folds=2); "
        "print([m for m in ('keras', 'tensorflow') if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
