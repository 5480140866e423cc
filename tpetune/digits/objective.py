"""The digits objective: stratified k-fold cross-validation of one dense classifier per trial.

:class:`DigitsObjective` loads the images once and fixes the folds once (stratified, with the
data seed, so every trial is judged on the same folds); each call trains one model per fold
from the *values* of one point of ``spaces/digits.py`` and returns
``{"loss", "curves", "metrics"}``. :meth:`DigitsObjective.final_report` retrains the best params
on all training images and is the only place the test split is ever looked at.

- ``loss``: the mean over folds of each fold's best validation loss (sparse categorical
  cross-entropy, the epoch whose weights early stopping restores).
- ``curves``: ``loss`` and ``val_loss`` per epoch, the *mean over the folds* still training at
  that epoch (rather than fold 0's alone: one fold's curve is noisy, and the pruning rule
  compares a running fold against these means).
- ``metrics``: ``val_accuracy`` (mean over folds, at each fold's best epoch),
  ``fold_val_accuracy`` and ``fold_loss`` (per fold), ``best_epoch`` (median of the folds'
  best epochs: how long the final retrain trains), ``fold_best_epoch``, ``epochs_trained``,
  ``train_seconds`` and ``folds_run``.

Per fold the shared machinery (:class:`~tpetune.keras.trial.KerasTrial`) resets Keras'
session and seeds it with the trial's seed (folds after the first train on the first fold's
already-traced model, with the fresh model's weights copied in: :mod:`tpetune.keras.reuse`;
the images reach ``fit`` as lean datasets in Keras' own batch order:
:mod:`tpetune.keras.inputs`), early-stops with ``restore_best_weights=True``, adds
``StopOnNaN`` (a quiet ``TerminateOnNaN``) and, on the first fold, the study's pruning
callback. A pruned fold ends the trial (the remaining folds would be wasted on a trial the
pruner has already judged); its loss is then the mean of the folds run. Each finished fold's
result is written atomically to the trial's workdir, so a trial interrupted by a crash re-runs
only unfinished folds.

Default budget of ``tpetune digits`` (the constants live in :mod:`tpetune.digits`), measured on
this project's 2-core CPU (shared with other jobs), TensorFlow 2.21 / Keras 3, scikit-learn's
8x8 digits, :data:`~tpetune.digits.DEFAULT_FOLDS` = 3, patience 4, pruning off:

- a trial took 17.1 s on average over ``spaces/digits.py`` (median 14.8 s, 7–37 s): about
  1.5 s per fold to build and trace a fresh model, then ~0.25 s per epoch per fold, which at
  this size is Keras' per-epoch overhead more than arithmetic;
- :data:`~tpetune.digits.DEFAULT_MAX_EVALS` = 25 trials, with the final retrain and test
  report, took 3 min 49 s on a quiet 2-core machine (2026-12-02, no pruning, the digits
  default; 7.4 minutes on a busier one with median pruning); the target was 5–10 minutes.
  (A new study's TPE samples its first ``tpe_startup(25)`` = 12 trials at random.)

Since issue 23 (two lagged workers, one traced model per trial, lean inputs, one garbage
collection per trial) the same 25 trials take about a minute: 58 s, the median of 5 seeds
(docs/benchmarks.md, "Cheaper fits", run 6); the figures above are the per-fold costs these
changes removed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from tpetune._io import jsonable
from tpetune.digits import DATA_SEED, DEFAULT_FOLDS, DEFAULT_PATIENCE
from tpetune.digits.data import N_CLASSES, Digits, load_digits_data, stratified_folds
from tpetune.digits.plots import CONFUSION_PNG, confusion_title, plot_confusion
from tpetune.keras.trial import (
    CallbackSpec,
    History,
    KerasTrial,
    Metrics,
    Params,
    best_epoch,
    fresh_session,
)

__all__ = ["DigitsObjective"]

# Evaluation has no backward pass; one large batch is fastest.
_EVAL_BATCH = 4096
Fold = tuple[np.ndarray, np.ndarray]  # training and validation indices into the train split


class DigitsObjective(KerasTrial):
    """Hyperopt objective for the digits classifier; build once, call once per trial.

    Args:
        data: images from :func:`~tpetune.digits.data.load_digits_data`; ``None`` loads
            ``mnist`` (or scikit-learn's digits when that is ``None`` too).
        mnist: a Keras-layout ``mnist.npz`` (only when ``data`` is ``None``).
        limit: use a stratified subset of this many training images (quick runs, tests).
        folds: stratified cross-validation folds (>= 2).
        patience: early-stopping patience in epochs, per fold.
        seed: seed of the folds, and of training outside a trial (inside one, the trial's
            own seed is used).
        verbose: Keras ``fit`` verbosity (0 silent, 2 one line per epoch).
        callbacks: extra Keras callbacks for every fit (the study's pruning callback is added
            to the first fold's); give a zero-argument factory when it keeps per-fit state.

    Raises:
        ConfigError: ``folds`` < 2, negative ``patience`` or ``limit`` < 10.
        DataError: unusable MNIST file, or a class with fewer images than ``folds``.
        MissingDependencyError: scikit-learn is not installed.
    """

    name: ClassVar[str] = "digits objective"
    space_file: ClassVar[str | None] = "spaces/digits.py"
    logged: ClassVar[tuple[str, ...]] = ("loss", "val_loss", "val_accuracy")
    combine_rules: ClassVar[Mapping[str, str]] = {
        **KerasTrial.combine_rules,
        "best_epoch": "median",  # how long the final retrain trains
    }
    per_fold: ClassVar[tuple[str, ...]] = ("val_accuracy", "best_epoch")

    def __init__(
        self,
        *,
        data: Digits | None = None,
        mnist: str | Path | None = None,
        limit: int | None = None,
        folds: int = DEFAULT_FOLDS,
        patience: int = DEFAULT_PATIENCE,
        seed: int = DATA_SEED,
        verbose: int = 0,
        callbacks: Sequence[CallbackSpec] = (),
    ) -> None:
        super().__init__(patience=patience, seed=seed, verbose=verbose, callbacks=callbacks)
        data = load_digits_data(mnist) if data is None else data
        self.data = data.limited(limit, seed=seed)
        self.folds = stratified_folds(self.data.y_train, folds, seed=seed)

    def __call__(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Cross-validate one point: train one model per fold.

        Returns:
            ``{"loss": float, "curves": {"loss": [...], "val_loss": [...]}, "metrics": {...}}``
            as described in the module docstring.

        Raises:
            SpaceError: ``params`` lack a digits-space label or hold an unknown value.
        """
        return super().__call__(params)

    # -- the KerasTrial hooks -----------------------------------------------------------------
    def fold_data(self, params: Mapping[str, Any]) -> Sequence[Fold]:
        return self.folds

    def build(self, params: Mapping[str, Any], fold: Fold) -> Any:
        return self._build(params, len(fold[0]))

    def fit_args(self, params: Mapping[str, Any], fold: Fold) -> dict[str, Any]:
        train, val = fold
        d = self.data
        return {
            "x": d.x_train[train],
            "y": d.y_train[train],
            "validation_data": (d.x_train[val], d.y_train[val]),
            "epochs": self.int_param(params, "epochs"),
            "batch_size": self.int_param(params, "batch_size"),
            # One validation batch per epoch instead of dozens: the fold's size, not the
            # training batch size, decides how fast it can be scored.
            "validation_batch_size": _EVAL_BATCH,
        }

    def fit_callbacks(self, params: Mapping[str, Any], fold: Fold) -> list[Any]:
        # Imported here, where a model trains: the driver builds this objective without Keras.
        from tpetune.keras.callbacks import StopOnNaN

        return [StopOnNaN()]

    def fold_metrics(self, params: Params, fold: Fold, model: Any, history: History) -> Metrics:
        epoch = best_epoch(history["val_loss"])
        accuracy = history.get("val_accuracy", [])
        return {
            "val_accuracy": float(accuracy[epoch - 1]) if 0 < epoch <= len(accuracy) else math.nan
        }

    # -- the final report ---------------------------------------------------------------------
    def final_report(
        self,
        params: Mapping[str, Any],
        *,
        out_dir: Path | None,
        seed: int | None = None,
        epochs: int | None = None,
        cv_loss: float | None = None,
    ) -> dict[str, Any]:
        """Retrain ``params`` on all training images, evaluate on the held-out test split.

        Args:
            params: the best params (values).
            out_dir: where to write ``best_model.keras``, ``classification_report.txt`` and
                ``confusion_matrix.png``, or ``None`` to write nothing.
            seed: training seed; ``None`` means the current trial's seed, else ``self.seed``.
                Pass the best trial's seed to retrain it as it was trained.
            epochs: epochs of the retrain, normally the best trial's ``best_epoch`` metric;
                ``None`` cross-validates ``params`` once to find it (and ``cv_loss``).
            cv_loss: the cross-validated loss to report (the best trial's loss).

        Returns:
            A JSON-able summary: ``params``, ``cv_loss``, ``test_loss``, ``test_accuracy``,
            ``macro_f1``, ``per_class`` (digit -> precision/recall/f1/support),
            ``confusion_matrix`` (rows true, columns predicted), ``n_train``, ``n_test``,
            ``epochs``, ``data`` and ``image_shape``.

        Raises:
            SpaceError: ``params`` lack a digits-space label or hold an unknown value.
        """
        from sklearn.metrics import classification_report, confusion_matrix

        from tpetune.keras.callbacks import StopOnNaN  # imports Keras: only where it trains

        seed = self.trial_seed() if seed is None else seed
        if epochs is None:
            cv = self(params)
            epochs = max(1, round(cv["metrics"]["best_epoch"]))
            cv_loss = cv["loss"] if cv_loss is None else cv_loss
        d = self.data
        fresh_session(seed)
        model = self.apply_steps_per_execution(self._build(params, len(d.y_train)))
        started = time.perf_counter()
        fit_args = {
            "x": d.x_train,
            "y": d.y_train,
            "epochs": int(epochs),
            "batch_size": self.int_param(params, "batch_size"),
        }
        model.fit(
            **self.fit_inputs(model, fit_args),
            verbose=self.verbose,
            callbacks=[StopOnNaN()],
        )
        seconds = time.perf_counter() - started
        test_loss, test_accuracy = model.evaluate(
            d.x_test, d.y_test, batch_size=_EVAL_BATCH, verbose=0
        )
        predicted = np.argmax(model.predict(d.x_test, batch_size=_EVAL_BATCH, verbose=0), axis=1)
        labels = list(range(N_CLASSES))
        names = [str(k) for k in labels]
        report = classification_report(
            d.y_test, predicted, labels=labels, target_names=names, digits=4, zero_division=0
        )
        scores = classification_report(
            d.y_test, predicted, labels=labels, target_names=names, output_dict=True,
            zero_division=0,
        )  # fmt: skip
        matrix = confusion_matrix(d.y_test, predicted, labels=labels)
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            model.save(out_dir / "best_model.keras")
            (out_dir / "classification_report.txt").write_text(report)
            title = confusion_title(len(d.y_test), float(test_accuracy))
            plot_confusion(matrix, title=title).figure.savefig(out_dir / CONFUSION_PNG, dpi=120)
        return {
            "params": jsonable(params),
            "cv_loss": None if cv_loss is None else float(cv_loss),
            "test_loss": float(test_loss),
            "test_accuracy": float(test_accuracy),
            "macro_f1": float(scores["macro avg"]["f1-score"]),
            "per_class": {
                k: {
                    "precision": float(scores[k]["precision"]),
                    "recall": float(scores[k]["recall"]),
                    "f1": float(scores[k]["f1-score"]),
                    "support": int(scores[k]["support"]),
                }
                for k in names
            },
            "confusion_matrix": matrix.astype(int).tolist(),
            "n_train": len(d.y_train),
            "n_test": len(d.y_test),
            "epochs": int(epochs),
            "train_seconds": seconds,
            "data": d.source,
            "image_shape": list(d.image_shape),
        }

    def _build(self, params: Mapping[str, Any], n_train: int) -> Any:
        steps = math.ceil(n_train / self.int_param(params, "batch_size"))
        from tpetune.digits.model import build_model  # imports Keras

        return build_model(params, n_features=self.data.n_features, steps_per_epoch=steps)
