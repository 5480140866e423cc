"""KerasTrial: a user's own Keras objective, fold results kept atomically, fold resume,
first-fold pruning, and the callbacks it adds inside a study (epoch log, adaptive backup)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tpetune.trial.context import TrialContext, current_trial, trial_scope

keras = pytest.importorskip("keras")

from tpetune._io import write_json  # noqa: E402
from tpetune.keras import trial as keras_trial  # noqa: E402
from tpetune.keras.callbacks import AdaptiveBackup, EpochLog  # noqa: E402
from tpetune.keras.trial import KerasTrial, read_fold_result  # noqa: E402

pytestmark = pytest.mark.keras

RNG = np.random.default_rng(0)
X = RNG.normal(size=(60, 3)).astype("float32")
Y = (X @ np.array([1.0, -2.0, 0.5]) + 0.1 * RNG.normal(size=60)).astype("float32")
PARAMS = {"units": 4, "batch_size": 16}


class Tiny(KerasTrial):
    """A user's own objective: a two-layer regressor, one fold per 20-row validation block."""

    name = "tiny objective"

    def __init__(self, n_folds: int = 1, epochs: int = 3, **kwargs: Any) -> None:
        super().__init__(patience=5, **kwargs)
        self.n_folds, self.epochs, self.built = n_folds, epochs, 0

    def fold_data(self, params: Mapping[str, Any]) -> Sequence[np.ndarray]:
        return [np.arange(i * 20, i * 20 + 20) for i in range(self.n_folds)]

    def build(self, params: Mapping[str, Any], fold: np.ndarray) -> Any:
        self.built += 1
        model = keras.Sequential(
            [keras.Input((3,)), keras.layers.Dense(self.int_param(params, "units")),
             keras.layers.Dense(1)]
        )  # fmt: skip
        model.compile(optimizer="adam", loss="mse")
        return model

    def fit_args(self, params: Mapping[str, Any], fold: np.ndarray) -> dict[str, Any]:
        train = np.setdiff1d(np.arange(len(X)), fold)
        return {
            "x": X[train],
            "y": Y[train],
            "validation_data": (X[fold], Y[fold]),
            "epochs": self.epochs,
            "batch_size": self.int_param(params, "batch_size"),
        }

    def fold_metrics(self, params: Any, fold: Any, model: Any, history: Any) -> dict[str, float]:
        return {"val_rows": float(len(fold))}


def test_a_single_fold_result_and_its_contract() -> None:
    result = Tiny()(PARAMS)
    assert set(result) == {"loss", "curves", "metrics"}
    assert result["loss"] == min(result["curves"]["val_loss"])
    assert len(result["curves"]["loss"]) == len(result["curves"]["val_loss"]) == 3
    assert result["metrics"]["val_rows"] == 20.0 and result["metrics"]["epochs_trained"] == 3
    assert 1 <= result["metrics"]["best_epoch"] <= 3
    json.dumps(result)


def test_folds_combine_into_means_and_per_fold_lists() -> None:
    result = Tiny(n_folds=3, epochs=2)(PARAMS)
    metrics = result["metrics"]
    assert metrics["folds_run"] == 3 and len(metrics["fold_loss"]) == 3
    assert result["loss"] == pytest.approx(np.mean(metrics["fold_loss"]))
    assert metrics["epochs_trained"] == 6  # summed, not averaged
    assert metrics["val_rows"] == 20.0  # averaged


def test_folds_reuse_the_first_folds_model_and_collect_garbage_once_per_trial(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    collected: list[bool] = []
    clear = keras.backend.clear_session

    def recording(free_memory: bool = True) -> None:
        collected.append(free_memory)
        clear(free_memory=free_memory)

    monkeypatch.setattr(keras.backend, "clear_session", recording)
    trained: list[Any] = []

    class Seen(Tiny):
        def fold_metrics(self, params: Any, fold: Any, model: Any, history: Any) -> Any:
            trained.append(model)
            return super().fold_metrics(params, fold, model, history)

    obj = Seen(n_folds=3, epochs=1)
    obj(PARAMS)
    obj(PARAMS)
    assert collected == [True, False, False] * 2
    assert obj.built == 6 and len({id(m) for m in trained}) == 1  # built fresh, traced once

    # A trial re-run with fold 0 finished: the first fold it trains collects.
    with trial_scope(TrialContext(tid=0, seed=3, study_dir=tmp_path)):
        obj(PARAMS)
        for stem in ("fold1_", "fold2_"):
            (tmp_path / "trials" / "0" / f"{stem}result.json").unlink()
        collected.clear()
        obj(PARAMS)
    assert collected == [True, False]


def test_a_missing_label_names_the_objective() -> None:
    with pytest.raises(Exception, match="params lack units; the tiny objective"):
        Tiny()({"batch_size": 8})


def test_a_users_objective_runs_in_a_study(tmp_path: Path) -> None:
    from hyperopt import hp

    from tpetune.engine.tuning import tune

    space = {"units": hp.choice("units", [2, 4]), "batch_size": 16}
    study = tune(Tiny(epochs=2), space, study_dir=tmp_path, max_evals=2, progress=False)
    assert [r.state.value for r in study.records] == ["ok", "ok"]
    assert all(len(r.curves["val_loss"]) == 2 for r in study.records)
    assert study.best_args["units"] in (2, 4)


def test_finished_folds_are_reused_and_a_torn_result_is_retrained(tmp_path: Path) -> None:
    obj = Tiny(n_folds=2, epochs=2)

    class CrashInFold1(keras.callbacks.Callback):  # type: ignore[misc]
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if obj.built == 2:
                raise KeyboardInterrupt("the process dies in fold 1")

    obj.callbacks = [CrashInFold1]
    ctx = TrialContext(tid=5, seed=11, study_dir=tmp_path)
    workdir = tmp_path / "trials" / "5"
    with trial_scope(ctx), pytest.raises(KeyboardInterrupt):
        obj(PARAMS)
    done = workdir / "fold0_result.json"
    saved = read_fold_result(done)
    assert saved is not None and not (workdir / "fold1_result.json").exists()
    obj.callbacks = []
    with trial_scope(ctx):
        result = obj(PARAMS)
    assert obj.built == 3  # fold 0 came from its file; only fold 1 trained again
    assert result["metrics"]["fold_loss"][0] == saved["loss"]

    # A torn file (a crash mid-write by an older version) reads as absent: that fold retrains.
    done.write_text('{"loss": 0.5, "curv')
    assert read_fold_result(done) is None
    with trial_scope(ctx):
        obj(PARAMS)
    assert obj.built == 4 and read_fold_result(done) is not None


def test_the_fold_result_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "fold0_result.json"
    write_json(path, {"loss": 1.0, "curves": {}, "metrics": {}})

    def dies(src: str, dst: str) -> None:
        raise OSError("disk gone mid-write")

    monkeypatch.setattr(os, "replace", dies)
    with pytest.raises(Exception, match="disk gone"):
        write_json(path, {"loss": 2.0, "curves": {}, "metrics": {}})
    assert read_fold_result(path) == {"loss": 1.0, "curves": {}, "metrics": {}}  # old, whole
    assert [p.name for p in tmp_path.iterdir()] == ["fold0_result.json"]  # no temp left


def test_the_old_flat_digits_fold_layout_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "fold0_result.json"
    curves = {"loss": [1.0], "val_loss": [0.9]}
    flat = {"loss": 0.9, "val_accuracy": 0.8, "best_epoch": 1, "epochs_trained": 1,
            "train_seconds": 0.1, "curves": curves}  # fmt: skip
    path.write_text(json.dumps(flat))
    assert read_fold_result(path) == {
        "loss": 0.9,
        "curves": curves,
        "metrics": {"val_accuracy": 0.8, "best_epoch": 1, "epochs_trained": 1,
                    "train_seconds": 0.1},
    }  # fmt: skip


def test_the_pruner_judges_the_first_fold_and_a_pruned_fold_ends_the_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    given: list[int] = []

    def pruning_callback() -> Any:
        given.append(1)

        class PruneNow(keras.callbacks.Callback):  # type: ignore[misc]
            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                trial = current_trial()
                assert trial is not None
                trial.notes["pruned_at_epoch"] = epoch + 1
                self.model.stop_training = True

        return PruneNow()

    import tpetune.pruners.keras

    monkeypatch.setattr(tpetune.pruners.keras, "keras_pruning_callback", pruning_callback)
    obj = Tiny(n_folds=3, epochs=3)
    ctx = TrialContext(tid=1, seed=3, study_dir=tmp_path)
    with trial_scope(ctx):
        result = obj(PARAMS)
    assert given == [1] and obj.built == 1  # fold 0 only; folds 1 and 2 never trained
    assert result["metrics"]["folds_run"] == 1 and len(result["curves"]["val_loss"]) == 1
    assert ctx.notes["pruned_at_epoch"] == 1
    # A re-run after a crash replays the pruned fold from its file and stays pruned.
    again = TrialContext(tid=1, seed=3, study_dir=tmp_path)
    with trial_scope(again):
        assert obj(PARAMS) == result
    assert again.notes["pruned_at_epoch"] == 1 and obj.built == 1


def test_no_pruning_callback_outside_the_first_fold(monkeypatch: pytest.MonkeyPatch) -> None:
    import tpetune.pruners.keras

    given: list[int] = []
    monkeypatch.setattr(
        tpetune.pruners.keras,
        "keras_pruning_callback",
        lambda: given.append(1) or keras.callbacks.Callback(),
    )
    Tiny(n_folds=2, epochs=1)(PARAMS)
    assert given == [1]


@pytest.mark.parametrize(("every_s", "saves"), [(0.0, 3), (1e9, 0)])
def test_adaptive_backup_skips_cheap_epochs_and_the_last_one(
    tmp_path: Path, every_s: float, saves: int
) -> None:
    backup = AdaptiveBackup(tmp_path / "backup", every_s=every_s, cost_factor=0.0)

    seen: list[bool] = []

    class Watch(keras.callbacks.Callback):  # type: ignore[misc]
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            seen.append((tmp_path / "backup").exists())

    model = Tiny().build(PARAMS, None)
    model.fit(X, Y, epochs=4, verbose=0, callbacks=[backup, Watch()])
    assert backup.saves == saves  # 4 epochs: never after the last one, which ends the fit
    assert seen[-1] is (saves > 0)
    assert not (tmp_path / "backup").exists()  # a finished fit removes its backup


def test_epoch_log_skips_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "epochs.csv"
    path.write_text("0,1.0,0.9\n1,0.8,0.7\n2,0.6")
    assert EpochLog(path).read() == {"loss": [1.0, 0.8], "val_loss": [0.9, 0.7]}


def test_helpers() -> None:
    assert keras_trial.best([float("nan"), 2.0, 1.0]) == 1.0
    assert keras_trial.best_epoch([3.0, 1.0, 2.0]) == 2
    assert keras_trial.best_epoch([]) == 0
    merged = keras_trial.merge_curves([{"loss": [1.0, 2.0]}, {"loss": [3.0]}])
    assert merged == {"loss": [2.0, 2.0], "val_loss": []}


def test_a_paused_trial_is_thawed_from_its_backup(tmp_path: Path) -> None:
    """Freeze-thaw: a paused fold keeps its backup and writes no result; thawed, the fit
    resumes at the epoch it paused at, and no epoch is trained twice."""
    from hyperopt import hp

    from tpetune import FreezeThawPruner, Search, TrialState, tune

    begun: list[tuple[int, int]] = []

    class Count(keras.callbacks.Callback):  # type: ignore[misc]
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            trial = current_trial()
            assert trial is not None
            begun.append((trial.tid, epoch + 1))

    obj = Tiny(epochs=6, callbacks=[Count])
    obj.backup_every_s = 1e9  # type: ignore[misc]  # backups only at pauses
    study = tune(
        obj,
        {"units": hp.choice("units", [1, 2, 8]), "batch_size": 16},
        study_dir=tmp_path,
        max_evals=4,
        search=Search(seed=0),
        pruner=FreezeThawPruner(pause_below=0.99, prune_below=0.0, min_steps=2, warmup_trials=1),
        progress=False,
    )
    thawed = [r for r in study.records if r.metrics.get("thaws")]
    assert thawed, "nothing was paused and thawed"
    assert not [r for r in study.records if r.state is TrialState.RUNNING]
    for r in thawed:
        epochs = [e for tid, e in begun if tid == r.tid]
        assert len(epochs) == len(set(epochs))  # resumed from the backup, not retrained
        assert len(r.curves["val_loss"]) == len(epochs)
