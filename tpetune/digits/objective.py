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

Per fold: ``keras.backend.clear_session()``, ``keras.utils.set_random_seed`` with the trial's
seed, ``EarlyStopping(restore_best_weights=True)``, ``TerminateOnNaN`` and the study's pruning
callback. A pruned fold ends the trial (the remaining folds would be wasted on a trial the rule
has already judged); its loss is then the mean of the folds run. Each finished fold's result is
written to the trial's workdir, so a trial interrupted by a crash re-runs only unfinished folds.

Default budget of ``tpetune digits`` (the constants live in :mod:`tpetune.digits`), measured on
this project's 2-core CPU (shared with other jobs), TensorFlow 2.21 / Keras 3, scikit-learn's
8x8 digits, :data:`~tpetune.digits.DEFAULT_FOLDS` = 3, patience 4, pruning off:

- a trial took 17.1 s on average over ``spaces/digits.py`` (median 14.8 s, 7–37 s): about
  1.5 s per fold to build and trace a fresh model, then ~0.25 s per epoch per fold, which at
  this size is Keras' per-epoch overhead more than arithmetic;
- :data:`~tpetune.digits.DEFAULT_MAX_EVALS` = 25 trials took 7.4 minutes of wall time
  including the final retrain (~1 s) and test report, inside the 5–10 minute target. The
  CLI's default median pruning ends hopeless trials after a few epochs, so it is faster.
  (hyperopt's TPE samples its first 20 trials at random; ``--tpe-startup 10`` gives TPE more
  of a short budget.)
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from tpetune.context import current_trial
from tpetune.digits import DATA_SEED, DEFAULT_FOLDS, DEFAULT_PATIENCE
from tpetune.digits.data import N_CLASSES, Digits, load_digits_data, stratified_folds
from tpetune.digits.model import build_model
from tpetune.errors import ConfigError, SpaceError
from tpetune.export import atomic_write
from tpetune.pruning import keras_pruning_callback
from tpetune.space import jsonable

__all__ = ["DigitsObjective", "plot_confusion"]

CallbackSpec = Any  # a keras.callbacks.Callback, or a zero-argument factory returning one

# Evaluation has no backward pass; one large batch is fastest.
_EVAL_BATCH = 4096


class DigitsObjective:
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
        callbacks: extra Keras callbacks for every fit (the pruning callback is always
            there); give a zero-argument factory when it keeps per-fit state.

    Raises:
        ConfigError: ``folds`` < 2, negative ``patience`` or ``limit`` < 10.
        DataError: unusable MNIST file, or a class with fewer images than ``folds``.
        MissingDependencyError: scikit-learn is not installed.
    """

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
        if patience < 0:
            raise ConfigError(f"patience must be >= 0, got {patience}")
        data = load_digits_data(mnist) if data is None else data
        self.data = data.limited(limit, seed=seed)
        self.folds = stratified_folds(self.data.y_train, folds, seed=seed)
        self.patience = patience
        self.seed = seed
        self.verbose = verbose
        self.callbacks = list(callbacks)

    def __call__(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Cross-validate one point: train one model per fold.

        Returns:
            ``{"loss": float, "curves": {"loss": [...], "val_loss": [...]}, "metrics": {...}}``
            as described in the module docstring.

        Raises:
            SpaceError: ``params`` lack a digits-space label or hold an unknown value.
        """
        ctx = current_trial()
        seed = ctx.seed if ctx is not None else self.seed
        workdir = ctx.ensure_workdir() if ctx is not None else None
        results = []
        for i, (train, val) in enumerate(self.folds):
            done = None if workdir is None else workdir / f"fold{i}_result.json"
            if done is not None and done.exists():
                results.append(json.loads(done.read_text()))  # finished before a crash
                continue
            result = self._fit_fold(params, train, val, seed=seed)
            if done is not None:
                atomic_write(done, json.dumps(result).encode())
            results.append(result)
            if ctx is not None and "pruned_at_epoch" in ctx.notes:
                break  # the pruning rule stopped this fold: the trial is judged already
        return _combine(results)

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
            ``macro_f1``, ``per_class`` (digit -> precision/recall/f1/support), ``n_train``,
            ``n_test``, ``epochs``, ``data`` and ``image_shape``.

        Raises:
            SpaceError: ``params`` lack a digits-space label or hold an unknown value.
        """
        from sklearn.metrics import classification_report, confusion_matrix

        ctx = current_trial()
        if seed is None:
            seed = ctx.seed if ctx is not None else self.seed
        if epochs is None:
            cv = self(params)
            epochs = max(1, round(cv["metrics"]["best_epoch"]))
            cv_loss = cv["loss"] if cv_loss is None else cv_loss
        d = self.data
        _fix_seed(seed)
        model = _build(params, d.n_features, len(d.y_train))
        started = time.perf_counter()
        model.fit(
            d.x_train,
            d.y_train,
            epochs=int(epochs),
            batch_size=_int_param(params, "batch_size"),
            verbose=self.verbose,
            callbacks=[keras.callbacks.TerminateOnNaN()],
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
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            model.save(out_dir / "best_model.keras")
            (out_dir / "classification_report.txt").write_text(report)
            matrix = confusion_matrix(d.y_test, predicted, labels=labels)
            ax = plot_confusion(
                matrix,
                title=f"Test split: {len(d.y_test)} images, accuracy {test_accuracy:.1%}",
            )
            ax.figure.savefig(out_dir / "confusion_matrix.png", dpi=120)
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
            "n_train": len(d.y_train),
            "n_test": len(d.y_test),
            "epochs": int(epochs),
            "train_seconds": seconds,
            "data": d.source,
            "image_shape": list(d.image_shape),
        }

    def _fit_fold(
        self, params: Mapping[str, Any], train: np.ndarray, val: np.ndarray, *, seed: int
    ) -> dict[str, Any]:
        d = self.data
        _fix_seed(seed)
        model = _build(params, d.n_features, len(train))
        extra = [cb if isinstance(cb, keras.callbacks.Callback) else cb() for cb in self.callbacks]
        early = keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=self.patience, restore_best_weights=True
        )
        started = time.perf_counter()
        fit = model.fit(
            d.x_train[train],
            d.y_train[train],
            validation_data=(d.x_train[val], d.y_train[val]),
            epochs=_int_param(params, "epochs"),
            batch_size=_int_param(params, "batch_size"),
            # One validation batch per epoch instead of dozens: the fold's size, not the
            # training batch size, decides how fast it can be scored.
            validation_batch_size=_EVAL_BATCH,
            verbose=self.verbose,
            callbacks=[
                early,
                keras.callbacks.TerminateOnNaN(),
                keras_pruning_callback(),
                *extra,
            ],
        )
        seconds = time.perf_counter() - started
        history = {k: [float(v) for v in fit.history.get(k, [])] for k in ("loss", "val_loss")}
        best_epoch = _best_epoch(history["val_loss"])
        accuracy = fit.history.get("val_accuracy", [])
        return {
            "loss": _best(history["val_loss"]),
            "val_accuracy": float(accuracy[best_epoch - 1]) if best_epoch else math.nan,
            "best_epoch": best_epoch,
            "epochs_trained": len(history["val_loss"]),
            "train_seconds": seconds,
            "curves": history,
        }


def plot_confusion(matrix: np.ndarray, *, title: str, ax: Any = None) -> Any:
    """Draw a confusion matrix (rows true, columns predicted) with the count in each cell.

    Args:
        matrix: square array of counts.
        title: the axes title.
        ax: a matplotlib Axes to draw on; ``None`` makes a new Agg figure (no pyplot state).

    Returns:
        The Axes (``ax.figure.savefig(...)`` writes it).
    """
    if ax is None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6.4, 5.6), layout="constrained")
        FigureCanvasAgg(fig)  # Agg explicitly: savefig never depends on the user's backend
        ax = fig.add_subplot()
    n = matrix.shape[0]
    image = ax.imshow(matrix, cmap="Blues")
    ax.figure.colorbar(image, ax=ax, label="images")
    # Dark text on light cells and light text on dark ones keeps every count legible.
    threshold = matrix.max() / 2 if matrix.size else 0
    for i in range(n):
        for j in range(n):
            ax.text(
                j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=8,
                color="white" if matrix[i, j] > threshold else "black",
            )  # fmt: skip
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    ax.set_title(title)
    return ax


def _build(params: Mapping[str, Any], n_features: int, n_train: int) -> Any:
    steps = math.ceil(n_train / _int_param(params, "batch_size"))
    return build_model(params, n_features=n_features, steps_per_epoch=steps)


def _fix_seed(seed: int) -> None:
    # A fresh graph per fit (they pile up otherwise) and the same initial weights per seed.
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)


def _combine(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One objective result from the per-fold results (see the module docstring)."""
    curves = {}
    for key in ("loss", "val_loss"):
        series = [r["curves"][key] for r in results]
        longest = max(len(s) for s in series)
        curves[key] = [float(np.mean([s[e] for s in series if e < len(s)])) for e in range(longest)]
    fold_loss = [float(r["loss"]) for r in results]
    fold_best = [int(r["best_epoch"]) for r in results]
    fold_acc = [float(r["val_accuracy"]) for r in results]
    return {
        "loss": float(np.mean(fold_loss)),
        "curves": curves,
        "metrics": {
            "val_accuracy": float(np.mean(fold_acc)),
            "best_epoch": float(np.median(fold_best)),
            "epochs_trained": float(sum(r["epochs_trained"] for r in results)),
            "train_seconds": float(sum(r["train_seconds"] for r in results)),
            "folds_run": len(results),
            "fold_loss": fold_loss,
            "fold_val_accuracy": fold_acc,
            "fold_best_epoch": fold_best,
        },
    }


def _int_param(params: Mapping[str, Any], key: str) -> int:
    if key not in params:
        raise SpaceError(
            f"params lack {key}; the digits objective needs a space with the labels of "
            "spaces/digits.py"
        )
    return int(params[key])


def _best(values: Sequence[float]) -> float:
    """Best (lowest) finite value; NaN when training never produced one."""
    finite = [v for v in values if math.isfinite(v)]
    return min(finite) if finite else math.nan


def _best_epoch(values: Sequence[float]) -> int:
    """1-based epoch of :func:`_best` (0 when there is none)."""
    best = _best(values)
    return 0 if math.isnan(best) else list(values).index(best) + 1
