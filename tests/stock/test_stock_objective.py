"""StockObjective: result contract, trial context (seed, workdir, resume), folds, final report."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tpetune.errors import DataError
from tpetune.trial.context import TrialContext, trial_scope

pytestmark = pytest.mark.keras

keras = pytest.importorskip("keras")
objective_mod = pytest.importorskip("tpetune.stock.objective")
StockObjective = objective_mod.StockObjective
Callback: Any = keras.callbacks.Callback

PARAMS: dict[str, Any] = {
    "batch_size": 32,
    "time_steps": 8,
    "lstm1_nodes": 4,
    "lstm1_dropout": 0.0,
    "lstm_layers": {"layers": 1},
    "dense_layers": {"layers": 0},
    "optimizer": {"name": "adam"},
    "lr": 0.01,
}


def synthetic(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    return pd.DataFrame(
        {
            "Open": close * (1 + rng.normal(0, 0.002, n)),
            "High": close * 1.004,
            "Low": close * 0.996,
            "Close": close,
            "Volume": rng.integers(1_000, 10_000, n).astype(float),
        },
        index=pd.bdate_range("2020-01-01", periods=n, name="Date"),
    )


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    return synthetic()


def test_defaults_are_documented_ints() -> None:
    assert isinstance(objective_mod.DEFAULT_MAX_EVALS, int)
    assert isinstance(objective_mod.DEFAULT_EPOCHS, int)
    doc = objective_mod.__doc__ or ""
    assert "DEFAULT_MAX_EVALS" in doc and "DEFAULT_EPOCHS" in doc


def test_result_contract(prices: pd.DataFrame) -> None:
    result = StockObjective(prices=prices, epochs=2, patience=5)(PARAMS)
    assert set(result) == {"loss", "curves", "metrics"}
    curves, metrics = result["curves"], result["metrics"]
    assert len(curves["loss"]) == len(curves["val_loss"]) == 2
    assert all(type(v) is float for v in curves["loss"] + curves["val_loss"])
    assert type(result["loss"]) is float
    assert result["loss"] == min(curves["val_loss"])
    assert metrics["epochs_trained"] == 2
    assert all(type(v) is float for v in metrics.values())
    for key in ("val_rmse_price", "naive_val_rmse_price", "val_rmse_ratio", "naive_val_loss"):
        assert math.isfinite(metrics[key]) and metrics[key] > 0
    json.dumps(result)


def test_walk_forward_folds(prices: pd.DataFrame) -> None:
    result = StockObjective(prices=prices, epochs=1, folds=2)(PARAMS)
    metrics = result["metrics"]
    assert result["loss"] == pytest.approx(np.mean(metrics["fold_loss"]))
    assert len(metrics["fold_loss"]) == metrics["folds_run"] == 2
    assert metrics["epochs_trained"] == 2
    assert len(result["curves"]["val_loss"]) == 1


def test_time_steps_too_long_is_a_data_error(prices: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="time_steps=190"):
        StockObjective(prices=prices, epochs=1)(PARAMS | {"time_steps": 190})


def test_final_report_evaluates_test_split_against_naive(
    prices: pd.DataFrame, tmp_path: Path
) -> None:
    obj = StockObjective(prices=prices, epochs=1)
    report = obj.final_report(PARAMS, out_dir=tmp_path)
    json.dumps(report)
    assert (tmp_path / "best_model.keras").is_file()
    table = pd.read_csv(tmp_path / "predictions.csv")
    assert list(table.columns) == ["date", "actual", "predicted", "naive"]
    assert len(table) == report["n_test"] == obj.datasets(8)[0].size("test")
    assert report["test_start"] == table["date"].iloc[0]
    assert report["test_end"] == table["date"].iloc[-1] == "2020-10-06"
    close = prices["Close"]
    np.testing.assert_allclose(table["actual"], close.iloc[-len(table) :].to_numpy())
    np.testing.assert_allclose(table["naive"], close.iloc[-len(table) - 1 : -1].to_numpy())
    naive_rmse = float(np.sqrt(np.mean((table["naive"] - table["actual"]) ** 2)))
    assert report["naive_rmse"] == pytest.approx(naive_rmse)
    assert report["rmse_ratio"] == pytest.approx(report["rmse"] / report["naive_rmse"])
    assert report["mae_ratio"] == pytest.approx(report["mae"] / report["naive_mae"])
    assert report["n_train"] + report["n_val"] + report["n_test"] == 200 - 8
    assert report["params"] == PARAMS
    keras.models.load_model(tmp_path / "best_model.keras")


def test_trial_context_seeds_checkpoints_and_resumes(
    prices: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(StockObjective, "backup_every_s", 0.0)  # back up every epoch
    monkeypatch.setattr(StockObjective, "backup_cost_factor", 0.0)
    seeds: list[int] = []
    cleared: list[bool] = []
    ran: list[int] = []
    made: list[Any] = []
    state = {"crash": True}

    class Crash(Callback):
        """A per-fit extra callback (given as a factory) that crashes the first fit."""

        def __init__(self) -> None:
            super().__init__()
            made.append(self)

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            ran.append(epoch)
            if state["crash"] and epoch == 2:
                raise KeyboardInterrupt("simulated crash after epoch 2")

    original_seed, original_clear = keras.utils.set_random_seed, keras.backend.clear_session

    def spy_seed(seed: int) -> None:
        seeds.append(seed)
        original_seed(seed)

    def spy_clear(free_memory: bool = True) -> None:
        cleared.append(True)
        original_clear(free_memory=free_memory)

    monkeypatch.setattr(keras.utils, "set_random_seed", spy_seed)
    monkeypatch.setattr(keras.backend, "clear_session", spy_clear)
    obj = StockObjective(prices=prices, epochs=5, patience=10, seed=1, callbacks=[Crash])
    ctx = TrialContext(tid=3, seed=1234, study_dir=tmp_path)
    workdir = tmp_path / "trials" / "3"
    with trial_scope(ctx), pytest.raises(KeyboardInterrupt):
        obj(PARAMS)
    assert (workdir / "backup").is_dir()

    state["crash"] = False
    ran.clear()
    with trial_scope(ctx):
        result = obj(PARAMS)
    assert seeds == [1234, 1234]  # the trial's seed, not the objective's
    assert cleared == [True, True]  # once per fit
    assert len(made) == 2  # a fresh extra callback per fit
    assert ran == [3, 4]  # epochs 0-2 were restored from the backup, not retrained
    assert len(result["curves"]["val_loss"]) == 5  # ... but their curves were kept
    assert result["metrics"]["epochs_trained"] == 5
    assert (workdir / "epochs.csv").read_text().count("\n") == 5
    assert not (workdir / "backup").exists()  # removed after a clean finish

    # A re-run of a trial that already finished reuses its result instead of training again.
    monkeypatch.setattr(obj, "_train", None)  # would fail if called
    with trial_scope(ctx):
        again = obj(PARAMS)
    assert again == json.loads(json.dumps(result))
