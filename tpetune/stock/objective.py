"""The stock objective: train one LSTM per trial, return its best validation loss and curves.

:class:`StockObjective` loads and windows the prices once (per ``time_steps``, cached), then
each call trains a model from the *values* of one point of ``spaces/stock.py`` and returns
``{"loss", "curves", "metrics"}``. :meth:`StockObjective.final_report` retrains the best params
and is the only place the test split is ever looked at.

Default budget of ``tpetune stock`` (the constants live in :mod:`tpetune.stock`, re-exported
here), measured on this project's 2-core CPU machine (TensorFlow
2.21, Keras 3.15), shared with other jobs while measuring, so these are upper figures:

- :data:`DEFAULT_YEARS` = 10: the last ten years of the bundled 1999–2018 S&P 500 (2,516 days;
  1,672–1,732 training, 377 validation and 377 test windows). The same 10 random points of
  ``spaces/stock.py`` took 22.2 s per trial on average on all 20 years and 15.5 s on the last
  ten, so 30 trials on the full series would overrun 10 minutes.
- :data:`DEFAULT_EPOCHS` = 12 with :data:`DEFAULT_PATIENCE` = 3: on this near-random-walk
  target the validation loss bottoms out within a few epochs, so many trials stop early.
  Epochs take 0.3–4 s depending on the point; ~2–3 s of every trial is graph tracing.
- :data:`DEFAULT_MAX_EVALS` = 30 trials: hyperopt's TPE proposes at random for its first 20,
  so 30 leaves 10 guided trials. A full default run (30 TPE trials with hyperopt ``fmin``, then
  :meth:`~StockObjective.final_report`) took 446 s: 7.7 s imports, trials 14.0 s mean / 11.1 s
  median / 45.1 s max, 18.7 s final retrain. About 7.5 minutes, inside the 10-minute target.

Per trial the shared machinery (:class:`~tpetune.keras.trial.KerasTrial`) resets Keras'
session and seeds it with the trial's seed, early-stops with ``restore_best_weights``, applies the
study's pruning callback, and inside a study keeps per-epoch losses and an adaptive
``BackupAndRestore`` checkpoint in the trial's workdir, so a crashed trial resumes from its last
backup (TensorFlow itself still keeps ~10–16 MiB of traced training graphs per fit, an upstream
leak, see ``bench/memory.py``: bound it by running trials in recycled worker processes). With
``folds`` each finished fold's result is kept, so a re-run trains only unfinished folds.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from tpetune._io import jsonable
from tpetune.errors import ConfigError
from tpetune.keras.trial import CallbackSpec, History, KerasTrial, Metrics, Params, best, best_epoch
from tpetune.stock import (
    DEFAULT_EPOCHS,
    DEFAULT_MAX_EVALS,
    DEFAULT_PATIENCE,
    DEFAULT_YEARS,
    PREDICTIONS_CSV,
)
from tpetune.stock.data import load_prices, recent_years
from tpetune.stock.windows import DEFAULT_SPLIT, Dataset, prepare, prepare_folds
from tpetune.study.artifacts import load

__all__ = [
    "DEFAULT_EPOCHS",
    "DEFAULT_MAX_EVALS",
    "DEFAULT_PATIENCE",
    "DEFAULT_YEARS",
    "StockObjective",
]


class StockObjective(KerasTrial):
    """Hyperopt objective for the stock LSTM; build once, call once per trial.

    Args:
        prices: a frame from :func:`~tpetune.stock.data.load_prices`; ``None`` uses the last
            :data:`DEFAULT_YEARS` years of the bundled S&P 500.
        epochs: most epochs per trial.
        seed: seed used outside a trial (inside one, the trial's own seed is used).
        folds: ``None`` for one chronological train/val split, or K for K expanding
            walk-forward folds over the train+val part (loss = mean of the folds' best).
        patience: early-stopping patience in epochs.
        verbose: Keras ``fit`` verbosity (0 silent, 2 one line per epoch).
        callbacks: extra Keras callbacks for every fit (the study's pruning callback is added
            to the first fold's); give a zero-argument factory instead of an instance when it
            keeps per-fit state.
        split: train/val/test fractions.

    Raises:
        ConfigError: a non-positive ``epochs``, negative ``patience`` or ``folds`` < 1.
    """

    name: ClassVar[str] = "stock objective"
    space_file: ClassVar[str | None] = "spaces/stock.py"

    def __init__(
        self,
        *,
        prices: pd.DataFrame | None = None,
        epochs: int = DEFAULT_EPOCHS,
        seed: int = 0,
        folds: int | None = None,
        patience: int = DEFAULT_PATIENCE,
        verbose: int = 0,
        callbacks: Sequence[CallbackSpec] = (),
        split: tuple[float, float, float] = DEFAULT_SPLIT,
    ) -> None:
        if epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {epochs}")
        if folds is not None and folds < 1:
            raise ConfigError(f"folds must be >= 1 or None, got {folds}")
        super().__init__(patience=patience, seed=seed, verbose=verbose, callbacks=callbacks)
        self.prices = recent_years(load_prices(), DEFAULT_YEARS) if prices is None else prices
        self.epochs = epochs
        self.folds = folds
        self.split = split
        self._cache: dict[tuple[int, int | None], list[Dataset]] = {}

    def datasets(self, time_steps: int, *, folds: int | None = None) -> list[Dataset]:
        """Prepared datasets for ``time_steps`` (one, or one per fold), cached.

        Raises:
            DataError: the series is too short for ``time_steps`` (and ``folds``).
        """
        key = (time_steps, folds)
        if key not in self._cache:
            if folds is None:
                self._cache[key] = [prepare(self.prices, time_steps, split=self.split)]
            else:
                self._cache[key] = prepare_folds(self.prices, time_steps, folds, split=self.split)
        return self._cache[key]

    def __call__(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Train one model per fold and report the best validation loss.

        Returns:
            ``{"loss": float, "curves": {"loss": [...], "val_loss": [...]}, "metrics": {...}}``;
            ``loss`` is the best validation MSE in model units (mean over folds); curves have
            one float per epoch (mean over the folds still training at that epoch); metrics
            hold ``val_rmse_price``, ``naive_val_rmse_price``, ``val_rmse_ratio``,
            ``naive_val_loss``, ``best_epoch``, ``epochs_trained`` and ``train_seconds``, and
            with ``folds`` also ``folds_run`` and ``fold_loss`` (one loss per fold).

        Raises:
            SpaceError: ``params`` lack a stock-space label.
            DataError: the series is too short for ``params["time_steps"]``.
        """
        return super().__call__(params)

    # -- the KerasTrial hooks -----------------------------------------------------------------
    def fold_data(self, params: Mapping[str, Any]) -> Sequence[Dataset]:
        return self.datasets(self.int_param(params, "time_steps"), folds=self.folds)

    def build(self, params: Mapping[str, Any], fold: Dataset) -> Any:
        from tpetune.stock.model import build_model  # imports Keras: only where a model trains

        return build_model(params, time_steps=fold.time_steps, n_features=fold.n_features)

    def fit_args(self, params: Mapping[str, Any], fold: Dataset) -> dict[str, Any]:
        x_train, y_train = fold.part("train")
        return {
            "x": x_train,
            "y": y_train,
            "validation_data": fold.part("val"),
            "epochs": self.epochs,
            "batch_size": self.int_param(params, "batch_size"),
        }

    def fold_metrics(self, params: Params, fold: Dataset, model: Any, history: History) -> Metrics:
        x_val, y_val = fold.part("val")
        actual, naive = fold.actual_price("val"), fold.naive_price("val")
        rmse = _rmse(fold.to_price(_predict(model, x_val), "val"), actual)
        naive_rmse = _rmse(naive, actual)
        return {
            "val_rmse_price": rmse,
            "naive_val_rmse_price": naive_rmse,
            "val_rmse_ratio": rmse / naive_rmse if naive_rmse > 0 else math.nan,
            "naive_val_loss": float(np.mean(np.square(y_val, dtype=np.float64))),
        }

    # -- the final report ---------------------------------------------------------------------
    def final_report(
        self,
        params: Mapping[str, Any],
        *,
        out_dir: Path | None,
        seed: int | None = None,
        model: Any = None,
        history: History | None = None,
    ) -> dict[str, Any]:
        """Retrain ``params`` on the train split (or take the given ``model``) and evaluate
        it on the test split.

        Args:
            params: the best params (values).
            out_dir: where to write ``best_model.keras`` and ``predictions.csv`` (columns
                ``date, actual, predicted, naive``), or ``None`` to write nothing.
            seed: training seed; ``None`` means the current trial's seed, else ``self.seed``.
                Pass the best trial's seed to retrain it as it was trained.
            model: the model these params already trained on this objective's train split
                (a ``.keras`` path, e.g. the trial's kept model, or a Keras model): it is
                evaluated instead of training another. Same seed, data and fit: a retrain
                gives the same weights (``tests/stock/test_stock_report.py``).
            history: that model's per-epoch ``loss``/``val_loss`` (the trial's curves), for
                the summary's ``val_loss``, ``epochs_trained`` and ``best_epoch``.

        Returns:
            A JSON-able summary: ``params``, ``val_loss``, test ``rmse``/``mae`` in price
            units, ``naive_rmse``/``naive_mae`` (tomorrow = today), ``rmse_ratio`` and
            ``mae_ratio`` (model / naive), ``n_train``/``n_val``/``n_test``, ``test_start``
            and ``test_end`` (ISO dates), ``epochs_trained``, ``best_epoch`` and ``curves``.
        """
        ds = self.datasets(self.int_param(params, "time_steps"))[0]
        kept = None if model is None or hasattr(model, "predict_on_batch") else Path(model)
        if model is None:
            seed = self.trial_seed() if seed is None else seed
            model, history = self._train(params, ds, seed=seed, callbacks=[])
        elif kept is not None:
            model = _load(kept)
        frame = _test_frame(ds, model)
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            if kept is not None:  # the kept file as it is (compiled, optimizer state and all)
                shutil.copyfile(kept, out_dir / "best_model.keras")
            else:
                model.save(out_dir / "best_model.keras")
            frame.to_csv(out_dir / PREDICTIONS_CSV)
        predicted, actual, naive = (
            frame[c].to_numpy(float) for c in ("predicted", "actual", "naive")
        )
        rmse, mae = _rmse(predicted, actual), _mae(predicted, actual)
        naive_rmse, naive_mae = _rmse(naive, actual), _mae(naive, actual)
        val_loss = list((history or {}).get("val_loss", []))
        return {
            "params": jsonable(params),
            "val_loss": best(val_loss),
            "rmse": rmse,
            "mae": mae,
            "naive_rmse": naive_rmse,
            "naive_mae": naive_mae,
            "rmse_ratio": rmse / naive_rmse if naive_rmse > 0 else math.nan,
            "mae_ratio": mae / naive_mae if naive_mae > 0 else math.nan,
            "n_train": ds.size("train"),
            "n_val": ds.size("val"),
            "n_test": ds.size("test"),
            "test_start": str(frame.index[0]),
            "test_end": str(frame.index[-1]),
            "epochs_trained": len(val_loss),
            "best_epoch": best_epoch(val_loss),
            "curves": {k: list(v) for k, v in (history or {}).items()},
        }

    def test_forecast(
        self, params: Mapping[str, Any], *, seed: int, model: Any = None
    ) -> pd.DataFrame:
        """The test split's forecast (``date``-indexed ``actual, predicted, naive``, as in
        ``predictions.csv``) of ``model`` (a ``.keras`` path or a model of these params), or,
        when ``None``, of ``params`` trained on the train split with ``seed``."""
        ds = self.datasets(self.int_param(params, "time_steps"))[0]
        if model is None:
            model, _ = self._train(params, ds, seed=seed, callbacks=[])
        elif not hasattr(model, "predict_on_batch"):
            model = _load(model)
        return _test_frame(ds, model)


def _load(path: str | Path) -> Any:

    return load(path, compile=False)  # to predict only: no optimizer to restore


def _test_frame(ds: Dataset, model: Any) -> pd.DataFrame:
    dates = ds.dates("test")
    return pd.DataFrame(
        {
            "actual": ds.actual_price("test"),
            "predicted": ds.to_price(_predict(model, ds.part("test")[0]), "test"),
            "naive": ds.naive_price("test"),
        },
        index=pd.Index(dates.strftime("%Y-%m-%d"), name="date"),
    )


def _predict(model: Any, x: np.ndarray) -> np.ndarray:
    # One batch: no backward pass, a few MB at most, and less overhead than predict()'s loop.
    return np.asarray(model.predict_on_batch(x)).reshape(-1)


def _rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(predicted - actual))))


def _mae(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.mean(np.abs(predicted - actual)))
