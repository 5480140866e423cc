"""tpetune.stock.report and tpetune.executors.calls: the final report takes the models the study
kept instead of training them again, and runs the fits it still needs in the executor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.stock.test_stock_evaluation import synthetic
from tpetune.engine.options import Serial, Workers
from tpetune.errors import DataError, ExecutorError
from tpetune.executors.calls import Call, report_executor, run_calls


class Target:
    """A report target without Keras: values, a frame, and a failure."""

    def double(self, x: int) -> int:
        return 2 * x

    def frame(self, n: int) -> pd.DataFrame:
        index = pd.Index([f"2020-01-0{i + 1}" for i in range(n)], name="date")
        return pd.DataFrame({"a": np.arange(n, dtype=float), "b": [np.nan] * n}, index=index)

    def short(self) -> None:
        raise DataError("the series is too short")

    def broken(self) -> None:
        raise RuntimeError("boom")


@pytest.mark.parametrize("executor", [Serial(), Workers(2)], ids=["serial", "workers"])
def test_run_calls_returns_values_in_order_and_frames_whole(executor: Any) -> None:
    calls = [Call("double", {"x": 3}), Call("frame", {"n": 3}), Call("double", {"x": 5})]
    six, frame, ten = run_calls(Target(), calls, executor=executor)
    assert (six, ten) == (6, 10)
    pd.testing.assert_frame_equal(frame, Target().frame(3))


def test_failed_calls_raise_one_error_naming_what_failed() -> None:
    with pytest.raises(DataError, match="^the series is too short$"):
        run_calls(Target(), [Call("short")])
    with pytest.raises(ExecutorError, match="the report's broken failed: RuntimeError: boom"):
        run_calls(Target(), [Call("double", {"x": 1}), Call("broken")], executor=Workers(1))


def test_report_runs_where_the_trials_ran() -> None:
    assert report_executor(Workers(2, trial_timeout=5), 7) == Workers(2, recycle_after=8)
    assert report_executor(Workers(4), 2) == Workers(2, recycle_after=3)
    assert report_executor(None, 3) == Serial()
    assert report_executor(Serial(), 3) == Serial()


# -- the stock report ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stock_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    """Three trials of the small stock space on a synthetic series, kept models and all."""
    pytest.importorskip("keras")
    import tpetune
    from tpetune.search.space import load_space
    from tpetune.stock.objective import StockObjective

    objective = StockObjective(prices=synthetic(300), epochs=2)
    study = tpetune.tune(
        objective,
        load_space("stock_small"),
        study_dir=tmp_path_factory.mktemp("stock") / "study",
        max_evals=3,
        keep_models=5,
        progress=False,
    )
    return objective, study


@pytest.mark.keras
def test_a_kept_model_predicts_exactly_what_a_retrain_does(stock_study: tuple[Any, Any]) -> None:
    """The trial's fit and the report's retrain are the same fit (tpetune/stock/report.py)."""
    from tpetune.stock.evaluation import kept_model
    from tpetune.trial.context import derive_seed

    objective, study = stock_study
    for record in study.top(3):
        path = kept_model(study, record)
        assert path is not None and record.metrics["model"] == f"models/{record.tid}.keras"
        seed = derive_seed(int(study.meta["seed"]), record.tid, "objective")
        kept = objective.test_forecast(record.args, seed=seed, model=path)
        retrained = objective.test_forecast(record.args, seed=seed)
        np.testing.assert_array_equal(kept["predicted"], retrained["predicted"])
        pd.testing.assert_frame_equal(
            kept.drop(columns="predicted"), retrained.drop(columns="predicted")
        )


@pytest.mark.keras
def test_stock_report_trains_only_the_rolling_origin_blocks(
    stock_study: tuple[Any, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("arch.bootstrap")
    from tpetune.keras.trial import KerasTrial
    from tpetune.stock.evaluation import read_forecast, rolling_blocks
    from tpetune.stock.report import stock_report

    objective, study = stock_study
    fits: list[int] = []
    train = KerasTrial._train

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        fits.append(len(self.prices))
        return train(self, *args, **kwargs)

    monkeypatch.setattr(KerasTrial, "_train", counted)
    out = Path(study.study_dir)
    summary = stock_report(objective, study, study.best, seed=1, out_dir=out, test_folds=3)
    blocks = rolling_blocks(len(objective.prices), 3)
    assert sorted(fits) == sorted(b.stop for b in blocks[1:])  # blocks 2 and 3, nothing else
    sig = summary["significance"]
    assert sig["spa_models"] == 3 and [b["block"] for b in sig["test_folds"]["blocks"]] == [1, 2, 3]
    assert summary["val_loss"] == pytest.approx(study.best.loss)
    assert summary["epochs_trained"] == len(study.best.curves["val_loss"])
    kept = objective.test_forecast(study.best.args, seed=1, model=out / "best_model.keras")
    np.testing.assert_array_equal(read_forecast(out)["predicted"], kept["predicted"])


def test_the_stock_study_keeps_the_models_its_report_reads() -> None:
    from tpetune.stock.evaluation import DEFAULT_SPA_TOP
    from tpetune.stock.study import STOCK

    assert STOCK.keep_models >= DEFAULT_SPA_TOP
