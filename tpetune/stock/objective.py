"""The stock objective: train one LSTM per trial, return its best validation loss and curves.

:class:`StockObjective` loads and windows the prices once (per ``time_steps``, cached), then
each call trains a model from the *values* of one point of ``spaces/stock.py`` and returns
``{"loss", "curves", "metrics"}``. :meth:`StockObjective.final_report` retrains the best params
and is the only place the test split is ever looked at.

Default budget of ``tpetune stock``, measured on this project's 2-core CPU machine (TensorFlow
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

Per trial: ``keras.backend.clear_session()`` (Keras' global state would otherwise pile up trial
after trial; TensorFlow itself still keeps ~10–16 MiB of traced training graphs per fit, an
upstream leak, see ``bench/memory.py``: bound it by running trials in recycled worker processes),
``keras.utils.set_random_seed`` with the trial's seed, ``EarlyStopping(restore_best_weights)``,
and, when the trial has a private workdir, ``BackupAndRestore`` so a crashed trial resumes from
its last backup (taken at an epoch end, at most every 5 s of training, to keep its cost near
1%); per-epoch losses are appended to a small CSV in the same workdir so the curves survive the
crash too. Early-stopping state is not part of the backup: a resumed fit restarts its patience.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from tpetune.context import current_trial
from tpetune.errors import ConfigError, SpaceError
from tpetune.stock.data import load_prices, recent_years
from tpetune.stock.model import build_model
from tpetune.stock.windows import DEFAULT_SPLIT, Dataset, prepare, prepare_folds

__all__ = [
    "DEFAULT_EPOCHS",
    "DEFAULT_MAX_EVALS",
    "DEFAULT_PATIENCE",
    "DEFAULT_YEARS",
    "StockObjective",
]

#: Trials of the default ``tpetune stock`` run.
DEFAULT_MAX_EVALS = 30
#: Upper bound on epochs per trial (early stopping usually ends sooner).
DEFAULT_EPOCHS = 12
#: Epochs without a better validation loss before a trial stops.
DEFAULT_PATIENCE = 3
#: Years of the bundled series used by default (the most recent ones).
DEFAULT_YEARS = 10

# Seconds of training a crash may lose at most; see _ThrottledBackup for why not every epoch.
_BACKUP_EVERY_S = 5.0

CallbackSpec = Any  # a keras.callbacks.Callback, or a zero-argument factory returning one


class StockObjective:
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
        callbacks: extra Keras callbacks for every fit (e.g. a pruning callback); give a
            zero-argument factory instead of an instance when it keeps per-trial state.
        split: train/val/test fractions.

    Raises:
        ConfigError: a non-positive ``epochs``, negative ``patience`` or ``folds`` < 1.
    """

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
        if patience < 0:
            raise ConfigError(f"patience must be >= 0, got {patience}")
        if folds is not None and folds < 1:
            raise ConfigError(f"folds must be >= 1 or None, got {folds}")
        self.prices = recent_years(load_prices(), DEFAULT_YEARS) if prices is None else prices
        self.epochs = epochs
        self.seed = seed
        self.folds = folds
        self.patience = patience
        self.verbose = verbose
        self.callbacks = list(callbacks)
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
            ``naive_val_loss``, ``best_epoch``, ``epochs_trained`` and ``train_seconds``.

        Raises:
            SpaceError: ``params`` lack a stock-space label.
            DataError: the series is too short for ``params["time_steps"]``.
        """
        ctx = current_trial()
        seed = ctx.seed if ctx is not None else self.seed
        workdir = ctx.ensure_workdir() if ctx is not None else None
        datasets = self.datasets(_int_param(params, "time_steps"), folds=self.folds)
        results = []
        for i, ds in enumerate(datasets):
            stem = f"fold{i}_" if self.folds else ""
            done = None if workdir is None else workdir / f"{stem}result.json"
            if done is not None and done.exists():
                # This fold finished before a crash; its result is final.
                results.append(json.loads(done.read_text()))
                continue
            result = self._fit_one(params, ds, seed=seed, workdir=workdir, stem=stem)
            if done is not None:
                done.write_text(json.dumps(result))
            results.append(result)
        return _combine(results)

    def final_report(
        self, params: Mapping[str, Any], *, out_dir: Path | None, seed: int | None = None
    ) -> dict[str, Any]:
        """Retrain ``params`` on the train split and evaluate it on the test split.

        Args:
            params: the best params (values).
            out_dir: where to write ``best_model.keras`` and ``predictions.csv`` (columns
                ``date, actual, predicted, naive``), or ``None`` to write nothing.
            seed: training seed; ``None`` means the current trial's seed, else ``self.seed``.
                Pass the best trial's seed to retrain it as it was trained.

        Returns:
            A JSON-able summary: ``params``, ``val_loss``, test ``rmse``/``mae`` in price
            units, ``naive_rmse``/``naive_mae`` (tomorrow = today), ``rmse_ratio`` and
            ``mae_ratio`` (model / naive), ``n_train``/``n_val``/``n_test``, ``test_start``
            and ``test_end`` (ISO dates), ``epochs_trained``, ``best_epoch`` and ``curves``.
        """
        ctx = current_trial()
        if seed is None:
            seed = ctx.seed if ctx is not None else self.seed
        ds = self.datasets(_int_param(params, "time_steps"))[0]
        model, history = self._train(params, ds, seed=seed, callbacks=[])
        predicted = ds.to_price(_predict(model, ds.part("test")[0]), "test")
        actual, naive = ds.actual_price("test"), ds.naive_price("test")
        rmse, mae = _rmse(predicted, actual), _mae(predicted, actual)
        naive_rmse, naive_mae = _rmse(naive, actual), _mae(naive, actual)
        dates = ds.dates("test")
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            model.save(out_dir / "best_model.keras")
            pd.DataFrame(
                {"actual": actual, "predicted": predicted, "naive": naive},
                index=pd.Index(dates.strftime("%Y-%m-%d"), name="date"),
            ).to_csv(out_dir / "predictions.csv")
        val_loss = history["val_loss"]
        return {
            "params": _jsonable(params),
            "val_loss": _best(val_loss),
            "rmse": rmse,
            "mae": mae,
            "naive_rmse": naive_rmse,
            "naive_mae": naive_mae,
            "rmse_ratio": rmse / naive_rmse if naive_rmse > 0 else math.nan,
            "mae_ratio": mae / naive_mae if naive_mae > 0 else math.nan,
            "n_train": ds.size("train"),
            "n_val": ds.size("val"),
            "n_test": ds.size("test"),
            "test_start": str(dates[0].date()),
            "test_end": str(dates[-1].date()),
            "epochs_trained": len(val_loss),
            "best_epoch": _best_epoch(val_loss),
            "curves": history,
        }

    def _fit_one(
        self, params: Mapping[str, Any], ds: Dataset, *, seed: int, workdir: Path | None, stem: str
    ) -> dict[str, Any]:
        callbacks: list[Any] = []
        log = None
        if workdir is not None:
            log = _EpochLog(workdir / f"{stem}epochs.csv")
            # The log keeps the curves of epochs run before a crash; on resume it drops the
            # epochs after the restored backup, which are then trained again.
            backup = _ThrottledBackup(workdir / f"{stem}backup", every_s=_BACKUP_EVERY_S)
            callbacks += [log, backup]
        started = time.perf_counter()
        model, history = self._train(params, ds, seed=seed, callbacks=callbacks)
        seconds = time.perf_counter() - started
        if log is not None:
            history = log.read()  # includes epochs run before a crash
        x_val, y_val = ds.part("val")
        actual, naive = ds.actual_price("val"), ds.naive_price("val")
        rmse = _rmse(ds.to_price(_predict(model, x_val), "val"), actual)
        naive_rmse = _rmse(naive, actual)
        return {
            "loss": _best(history["val_loss"]),
            "curves": history,
            "metrics": {
                "val_rmse_price": rmse,
                "naive_val_rmse_price": naive_rmse,
                "val_rmse_ratio": rmse / naive_rmse if naive_rmse > 0 else math.nan,
                "naive_val_loss": float(np.mean(np.square(y_val, dtype=np.float64))),
                "best_epoch": float(_best_epoch(history["val_loss"])),
                "epochs_trained": float(len(history["val_loss"])),
                "train_seconds": seconds,
            },
        }

    def _train(
        self, params: Mapping[str, Any], ds: Dataset, *, seed: int, callbacks: list[Any]
    ) -> tuple[Any, dict[str, list[float]]]:
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)
        model = build_model(params, time_steps=ds.time_steps, n_features=ds.n_features)
        extra = [cb if isinstance(cb, keras.callbacks.Callback) else cb() for cb in self.callbacks]
        early = keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=self.patience, restore_best_weights=True
        )
        x_train, y_train = ds.part("train")
        fit = model.fit(
            x_train,
            y_train,
            validation_data=ds.part("val"),
            epochs=self.epochs,
            batch_size=_int_param(params, "batch_size"),
            verbose=self.verbose,
            callbacks=[*callbacks, early, *extra],
        )
        history = {k: [float(v) for v in fit.history.get(k, [])] for k in ("loss", "val_loss")}
        return model, history


class _EpochLog(keras.callbacks.Callback):
    """Appends ``epoch,loss,val_loss`` per epoch to a CSV that outlives a crashed trial.

    When a fit resumes at epoch ``e`` (restored by the backup), rows of epochs ``>= e`` are
    stale (from the crashed run after its last backup) and are dropped before training goes on.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._first_epoch: int | None = None

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        self._first_epoch = None

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self._first_epoch is None:
            self._first_epoch = epoch
            rows = self._rows()
            with self.path.open("w", newline="") as fh:
                csv.writer(fh).writerows([e, *v] for e, v in sorted(rows.items()) if e < epoch)

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        logs = logs or {}
        with self.path.open("a", newline="") as fh:
            csv.writer(fh).writerow(
                [epoch, float(logs.get("loss", math.nan)), float(logs.get("val_loss", math.nan))]
            )

    def read(self) -> dict[str, list[float]]:
        """The logged curves, one value per epoch in epoch order."""
        rows = self._rows()
        epochs = sorted(rows)
        return {
            "loss": [rows[e][0] for e in epochs],
            "val_loss": [rows[e][1] for e in epochs],
        }

    def _rows(self) -> dict[int, tuple[float, float]]:
        by_epoch: dict[int, tuple[float, float]] = {}
        if self.path.exists():
            with self.path.open(newline="") as fh:
                for row in csv.reader(fh):
                    if len(row) == 3:  # a torn last line from a crash is skipped
                        by_epoch[int(row[0])] = (float(row[1]), float(row[2]))
        return by_epoch


class _ThrottledBackup(keras.callbacks.Callback):
    """``BackupAndRestore`` that backs up at an epoch end only if ``every_s`` seconds passed.

    Writing the weights file costs ~40 ms; on a 0.5 s epoch that alone would slow training by
    8%. Backing up at most every few seconds keeps the overhead near 1%, and a crash loses at
    most those few seconds of training. The previous backup is kept (``double_checkpoint``), so
    a backup torn by the crash itself falls back to the one before instead of failing the
    resume. Wraps rather than subclasses, to use only Keras' public callback API.
    """

    def __init__(self, backup_dir: Path, *, every_s: float) -> None:
        super().__init__()
        try:
            self.inner = keras.callbacks.BackupAndRestore(str(backup_dir), double_checkpoint=True)
        except TypeError:  # Keras before 3.5 has no double_checkpoint
            self.inner = keras.callbacks.BackupAndRestore(str(backup_dir))
        self.every_s = every_s
        self._last_save = 0.0

    def set_model(self, model: Any) -> None:
        super().set_model(model)
        self.inner.set_model(model)

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        self.inner.on_train_begin(logs)  # restores weights and the epoch to resume at
        self._last_save = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        if time.monotonic() - self._last_save >= self.every_s:
            self.inner.on_epoch_end(epoch, logs)  # records epoch + 1 as the one to resume at
            self._last_save = time.monotonic()

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        self.inner.on_train_end(logs)  # a finished fit removes its backup


def _combine(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One objective result from per-fold results (the identity for a single split)."""
    if len(results) == 1:
        return results[0]
    curves = {}
    for key in ("loss", "val_loss"):
        series = [r["curves"][key] for r in results]
        longest = max(len(s) for s in series)
        curves[key] = [float(np.mean([s[e] for s in series if e < len(s)])) for e in range(longest)]
    metrics = {k: float(np.mean([r["metrics"][k] for r in results])) for k in results[0]["metrics"]}
    metrics["epochs_trained"] = float(sum(r["metrics"]["epochs_trained"] for r in results))
    metrics["train_seconds"] = float(sum(r["metrics"]["train_seconds"] for r in results))
    for i, r in enumerate(results):
        metrics[f"fold{i}_loss"] = float(r["loss"])
    return {
        "loss": float(np.mean([r["loss"] for r in results])),
        "curves": curves,
        "metrics": metrics,
    }


def _int_param(params: Mapping[str, Any], key: str) -> int:
    if key not in params:
        raise SpaceError(
            f"params lack {key}; the stock objective needs a space with the labels of "
            "spaces/stock.py"
        )
    return int(params[key])


def _predict(model: Any, x: np.ndarray) -> np.ndarray:
    # One batch: no backward pass, a few MB at most, and less overhead than predict()'s loop.
    return np.asarray(model.predict_on_batch(x)).reshape(-1)


def _best(values: Sequence[float]) -> float:
    """Best (lowest) finite value; NaN when training never produced one."""
    finite = [v for v in values if math.isfinite(v)]
    return min(finite) if finite else math.nan


def _best_epoch(values: Sequence[float]) -> int:
    """1-based epoch of :func:`_best` (0 when there is none)."""
    best = _best(values)
    return 0 if math.isnan(best) else list(values).index(best) + 1


def _rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(predicted - actual))))


def _mae(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.mean(np.abs(predicted - actual)))


def _jsonable(value: Any) -> Any:
    """Params as plain JSON types (hyperopt may hand numpy scalars)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
