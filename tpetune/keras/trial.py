"""One Keras training machinery for every Keras objective: folds, resume, seeding, pruning.

Anchor: KerasTuner's ``Tuner.run_trial``, where a subclass supplies the model and the fit and
the tuner does the rest. Here a subclass of :class:`KerasTrial` supplies three things, the
data of each fold (:meth:`~KerasTrial.fold_data`), the model (:meth:`~KerasTrial.build`) and the
``fit`` arguments (:meth:`~KerasTrial.fit_args`), and may add per-fold metrics
(:meth:`~KerasTrial.fold_metrics`). The instance is then a tpetune objective. Per fold:

- ``keras.backend.clear_session()`` (graphs pile up otherwise) and the trial's seed
  (:attr:`KerasTrial.seed` outside a study): the same weights on resume and on any worker;
- ``EarlyStopping(restore_best_weights=True)`` on :attr:`~KerasTrial.monitor` and the user's
  extra callbacks; on the first fold also the study's pruning callback
  (:func:`tpetune.pruners.keras.keras_pruning_callback`: it reports each epoch through
  :func:`tpetune.report` and stops the fit when :func:`tpetune.should_prune` says so; outside
  a study it does nothing). A trial's steps are one curve, so later folds report nothing;
- inside a study, files in the trial's workdir, each prefixed ``fold{i}_`` when there are
  several folds: ``epochs.csv`` (the per-epoch values, kept across a crash), ``backup/``
  (a :class:`~tpetune.keras.callbacks.AdaptiveBackup`) and, once the fold finished,
  ``result.json``, written atomically. A trial re-run after a crash reuses finished folds and
  resumes the unfinished one from its last backup.
- :attr:`~KerasTrial.steps_per_execution` train steps per call of Keras' compiled step (for
  a model compiled without its own); the previous fit's model, already traced, when the new
  one is the same compiled model (:attr:`~KerasTrial.reuse_compiled`), with its optimizer and
  metric state created before ``fit`` (:attr:`~KerasTrial.prebuild`); and, for a trial of
  one fold inside a study, its trained model kept with the trial (``keep_model``), so a
  report evaluates it instead of training the same fit again.

A paused fold (freeze-thaw) keeps its backup and writes no ``result.json``: the thaw resumes
that fit from the epoch it paused at. A pruned fold ends the trial (the rest would be
wasted); its loss is then the mean over the folds run. The result is ``{"loss", "curves",
"metrics"}``: one fold's result as it is, or for several folds the mean loss,
``loss``/``val_loss`` curves averaged over the folds still training at each epoch, the
metrics combined by :attr:`~KerasTrial.combine_rules`, ``folds_run``, and per-fold
``fold_loss`` and ``fold_<name>`` (:attr:`~KerasTrial.per_fold`).

``fit_args`` may give ``fit`` arrays, a ``tf.data.Dataset`` or a Python generator (endless:
through ``from_generator`` with ``steps_per_epoch``), built per fit (datasets do not pickle for
workers; a fresh stream restarts with the trial's seed, which :meth:`~KerasTrial.trial_seed`
gives in tf.data's threads too). README: "Keras folds, tf.data and generators: KerasTrial".
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from tpetune._io import write_json
from tpetune.errors import ConfigError
from tpetune.keras import reuse
from tpetune.keras.inputs import lean_fit_args
from tpetune.keras.prebuild import build_before_fit, trainables_guard
from tpetune.keras.results import (
    CURVES,
    best,
    best_epoch,
    combine_folds,
    fold_layout,
    merge_curves,
    read_fold_result,
)
from tpetune.pruners import keras as pruning  # looked up per fit: tests swap the callback
from tpetune.search.space import require_labels
from tpetune.trial.context import TrialContext, current_trial
from tpetune.trial.report import paused_now

__all__ = [
    "CallbackSpec",
    "History",
    "KerasTrial",
    "Metrics",
    "Params",
    "best",
    "best_epoch",
    "fresh_session",
    "merge_curves",
]

CallbackSpec = Any  # a keras.callbacks.Callback, or a zero-argument factory returning one
Params = Mapping[str, Any]  # one point of the space: what the objective receives
History = Mapping[str, list[float]]  # logged metric -> one value per epoch
Metrics = dict[str, float]  # extra figures of one fold
_PRUNED_NOTE = "pruned_at_epoch"


class KerasTrial(ABC):
    """Base of a Keras objective: one model per fold, trained the same way everywhere.

    Args:
        patience: early-stopping patience in epochs, per fold.
        seed: training seed outside a study (inside one, the trial's own seed is used).
        verbose: Keras ``fit`` verbosity (0 silent, 2 one line per epoch).
        callbacks: extra Keras callbacks for every fit; give a zero-argument factory instead
            of an instance when it keeps per-fit state.
        keep_model: inside a study, save a single-fold trial's trained model (best weights)
            with the trial (``STUDY/models/<tid>.keras``, the best ``keep_models`` retained;
            see :mod:`tpetune.study.artifacts`), so a report can use it instead of training
            it again. Trials of several folds keep none (no one model is the trial's).

    Raises:
        ConfigError: a negative ``patience``.
    """

    #: The logged metric that early stopping, the fold's loss and ``best_epoch`` follow.
    monitor: ClassVar[str] = "val_loss"
    #: Imported by a worker once it has loaded this objective (:mod:`tpetune.executors.base`).
    preload: ClassVar[tuple[str, ...]] = ("keras",)
    #: Logged metrics kept per epoch (curves report ``loss`` and ``val_loss``; any others are
    #: there for :meth:`fold_metrics`, e.g. accuracy at the best epoch).
    logged: ClassVar[tuple[str, ...]] = CURVES
    #: How a metric of several folds combines: ``"sum"``, ``"median"``; any other is the mean.
    combine_rules: ClassVar[Mapping[str, str]] = {"epochs_trained": "sum", "train_seconds": "sum"}
    #: Metrics also kept per fold, as a ``fold_<name>`` list (``fold_loss`` is always kept).
    per_fold: ClassVar[tuple[str, ...]] = ()
    #: Least seconds of training between two backups: a crash loses at most about this much
    #: (see :class:`~tpetune.keras.callbacks.AdaptiveBackup`).
    backup_every_s: ClassVar[float] = 5.0
    #: ... and only after training for this many times what writing the last backup took.
    backup_cost_factor: ClassVar[float] = 50.0
    #: Train steps Keras runs per call of its compiled train function, for a model compiled
    #: without ``steps_per_execution``: fewer trips through Keras' Python loop, the same
    #: weights. Per-epoch callbacks (early stopping, pruning, backups) are unaffected; a
    #: per-batch callback is called every this many steps. 1 turns it off (docs/benchmarks.md).
    steps_per_execution: ClassVar[int] = 8
    #: Train on the previous fit's model (in this process) when the new one is the same
    #: compiled model, with the new one's weights, seeds and optimizer state copied in: the
    #: same fit without tracing its steps again. See :mod:`tpetune.keras.reuse`.
    reuse_compiled: ClassVar[bool] = True
    #: Hand ``fit`` array inputs as ``tf.data`` datasets in Keras' own row order: the same
    #: batches without Keras' four new iterators per epoch. See :mod:`tpetune.keras.inputs`.
    lean_inputs: ClassVar[bool] = True
    #: Make optimizer/metric variables before ``fit``: one trace, not two; the fit's last
    #: callback rebuilds the optimizer if a callback changes what is trainable (keras/prebuild.py).
    prebuild: ClassVar[bool] = True
    #: What the objective is called in messages, and the space file whose labels it needs.
    name: ClassVar[str] = "Keras objective"
    space_file: ClassVar[str | None] = None

    def __init__(
        self,
        *,
        patience: int,
        seed: int = 0,
        verbose: int = 0,
        callbacks: Sequence[CallbackSpec] = (),
        keep_model: bool = True,
    ) -> None:
        if patience < 0:
            raise ConfigError(f"patience must be >= 0, got {patience}")
        self.patience = patience
        self.seed = seed
        self.verbose = verbose
        self.callbacks = list(callbacks)
        self._running_seed: int | None = None  # the seed of the trial being trained
        self.keep_model = keep_model

    # -- what a subclass supplies -------------------------------------------------------------
    @abstractmethod
    def fold_data(self, params: Mapping[str, Any]) -> Sequence[Any]:
        """The data of each fold for ``params`` (one item for a single train/val split)."""

    @abstractmethod
    def build(self, params: Mapping[str, Any], fold: Any) -> Any:
        """A compiled Keras model for ``params`` (called after the session is reset).

        Return a new model each call; with :attr:`reuse_compiled` the fit may train an
        equal, already-traced model carrying this one's state instead."""

    @abstractmethod
    def fit_args(self, params: Mapping[str, Any], fold: Any) -> dict[str, Any]:
        """Keyword arguments of ``model.fit`` (data, ``epochs``, ``batch_size``, ...), with
        validation data; ``callbacks`` and ``verbose`` are added by the machinery."""

    def fit_callbacks(self, params: Mapping[str, Any], fold: Any) -> list[Any]:
        """Callbacks of this objective for every fit (e.g. ``TerminateOnNaN``)."""
        return []

    def fold_metrics(self, params: Params, fold: Any, model: Any, history: History) -> Metrics:
        """Extra figures of one trained fold; ``history`` holds :attr:`logged` per epoch
        (epochs trained before a crash included), ``model`` has the best weights.

        Use ``model`` here and now: with :attr:`reuse_compiled` the next fold's fit may train
        the same object (copy its weights, or save it, to keep this fold's)."""
        return {}

    # -- the machinery ------------------------------------------------------------------------
    def __call__(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Train one model per fold; return ``{"loss", "curves", "metrics"}`` (see module)."""
        ctx = current_trial()
        seed = self.trial_seed()
        # tf.data runs a generator (Dataset.from_generator) in its own threads, where the
        # trial's context is not set: trial_seed() there answers from this.
        self._running_seed = seed
        try:
            return self._run_folds(params, ctx, seed)
        finally:
            self._running_seed = None

    def _run_folds(self, params: Params, ctx: TrialContext | None, seed: int) -> dict[str, Any]:
        workdir = ctx.ensure_workdir() if ctx is not None else None
        folds = self.fold_data(params)
        results = []
        trained = False  # a fold fitted in this call (the first one collects garbage)
        for i, fold in enumerate(folds):
            stem = "" if len(folds) == 1 else f"fold{i}_"
            done = None if workdir is None else workdir / f"{stem}result.json"
            result = None if done is None else read_fold_result(done)
            if result is None:
                # The pruner judges the trial's first fold only: a trial's reported steps are
                # one curve, and later folds would report the same epochs again.
                result = self._fit_fold(
                    params,
                    fold,
                    seed=seed,
                    workdir=workdir,
                    stem=stem,
                    prune=i == 0,
                    # A full garbage collection costs ~0.2 s with TensorFlow loaded (half a
                    # million objects): once per call frees the previous trial's models; a
                    # fold leaves one small model behind, collected by the next trial's.
                    free_memory=not trained,
                    keep=ctx if self.keep_model and len(folds) == 1 and workdir else None,
                )
                trained = True
                result = fold_layout(result)
                pruned_at = _pruned_at(ctx)
                if pruned_at is not None:
                    result["pruned_at_epoch"] = pruned_at
                if done is not None and not paused_now():  # paused: a thaw resumes the fit
                    write_json(done, result)
            elif ctx is not None and "pruned_at_epoch" in result:
                ctx.notes.setdefault(_PRUNED_NOTE, result["pruned_at_epoch"])  # finished pruned
            results.append(result)
            if "pruned_at_epoch" in result:
                break  # the pruner stopped this fold: the trial is judged already
        results = [{k: r[k] for k in ("loss", "curves", "metrics")} for r in results]
        return results[0] if len(folds) == 1 else self.combine(results)

    def fit_inputs(self, model: Any, args: Mapping[str, Any]) -> dict[str, Any]:
        """``fit``'s ``args`` for ``model``: lean inputs, its state made (see the flags)."""
        out = lean_fit_args(args) if self.lean_inputs else dict(args)
        if self.prebuild:
            build_before_fit(model, out)
        return out

    def apply_steps_per_execution(self, model: Any) -> Any:
        """``model`` with :attr:`steps_per_execution` set, unless it was compiled with its own
        (call it on a model you train outside :meth:`_train`, e.g. in a final report)."""
        if getattr(model, "steps_per_execution", None) == 1 and self.steps_per_execution > 1:
            model.steps_per_execution = self.steps_per_execution  # read when fit traces
        return model

    def trial_seed(self) -> int:
        """The current trial's seed, or :attr:`seed` outside a study (also from the threads
        in which ``tf.data`` runs a generator while this objective trains)."""
        ctx = current_trial()
        if ctx is not None:
            return ctx.seed
        running = getattr(self, "_running_seed", None)
        return self.seed if running is None else int(running)

    def int_param(self, params: Mapping[str, Any], key: str) -> int:
        """``params[key]`` as an int.

        Raises:
            SpaceError: the label is missing (a space made for another objective).
        """
        require_labels(params, (key,), objective=self.name, like=self.space_file)
        return int(params[key])

    def combine(self, results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """One objective result from the results of the folds run (see the module docstring).

        A trial of a single fold returns that fold's result as it is, without this step."""
        return combine_folds(results, self.combine_rules, self.per_fold)

    def _fit_fold(
        self,
        params: Mapping[str, Any],
        fold: Any,
        *,
        seed: int,
        workdir: Path | None,
        stem: str,
        prune: bool,
        keep: TrialContext | None = None,
        free_memory: bool = True,
    ) -> dict[str, Any]:
        """Train one fold; with ``keep``, save its model with that trial."""
        from tpetune.keras.callbacks import AdaptiveBackup, EpochLog  # imports Keras

        callbacks: list[Any] = []
        log = None
        if workdir is not None:
            # The log keeps the curves of epochs run before a crash; on resume it drops the
            # epochs after the restored backup, which are then trained again.
            log = EpochLog(workdir / f"{stem}epochs.csv", self.logged)
            backup = AdaptiveBackup(
                workdir / f"{stem}backup",
                every_s=self.backup_every_s,
                cost_factor=self.backup_cost_factor,
            )
            callbacks += [log, backup]
        started = time.perf_counter()
        if prune:
            # First, so that the backup after it knows whether this epoch paused the trial.
            callbacks.insert(0, pruning.keras_pruning_callback())
        model, history = self._train(
            params, fold, seed=seed, callbacks=callbacks, free_memory=free_memory
        )
        seconds = time.perf_counter() - started
        if log is not None:
            history = log.read()  # includes epochs run before a crash
        values = history.get(self.monitor, [])
        extra = self.fold_metrics(params, fold, model, history)
        if keep is not None:
            keep.save_model(model)  # the result then names it (artifacts.capture); never raises
        return {
            "loss": best(values),
            "curves": {k: list(history.get(k, [])) for k in CURVES},
            "metrics": {
                **{k: float(v) for k, v in extra.items()},
                "best_epoch": float(best_epoch(values)),
                "epochs_trained": float(len(values)),
                "train_seconds": seconds,
            },
        }

    def _train(
        self,
        params: Mapping[str, Any],
        fold: Any,
        *,
        seed: int,
        callbacks: Sequence[Any],
        free_memory: bool = True,
    ) -> tuple[Any, dict[str, list[float]]]:
        """Fit a freshly built model on ``fold`` (or, with :attr:`reuse_compiled`, an equal
        traced one carrying its state); return it (best weights) and its logged history. The
        model returned may be the next fit's too (:attr:`reuse_compiled`): use it before training
        again. ``free_memory=False`` skips the session reset's garbage collection.
        ``callbacks`` run first, then early stopping, :meth:`fit_callbacks`, the user's, a guard."""
        import keras

        fresh_session(seed, free_memory=free_memory)
        model = self.apply_steps_per_execution(self.build(params, fold))
        if self.reuse_compiled:
            model = reuse.reuse_compiled(model)
        extra = [cb if isinstance(cb, keras.callbacks.Callback) else cb() for cb in self.callbacks]
        early = keras.callbacks.EarlyStopping(
            monitor=self.monitor, patience=self.patience, restore_best_weights=True
        )
        fit = model.fit(
            **self.fit_inputs(model, self.fit_args(params, fold)),
            verbose=self.verbose,
            callbacks=[
                *callbacks,
                early,
                *self.fit_callbacks(params, fold),
                *extra,
                *([trainables_guard()] if self.prebuild else []),  # last (keras/prebuild.py)
            ],
        )
        history = {k: [float(v) for v in fit.history.get(k, [])] for k in self.logged}
        return model, history


def fresh_session(seed: int, *, free_memory: bool = True) -> None:
    """``keras.backend.clear_session()`` then ``keras.utils.set_random_seed(seed)``: fresh
    layer names and global state per fit (they pile up otherwise) and the same initial weights
    for the same seed; ``free_memory=False`` skips the full garbage collection."""
    import keras

    keras.backend.clear_session(free_memory=free_memory)
    keras.utils.set_random_seed(seed)


def _pruned_at(ctx: TrialContext | None) -> int | None:
    """The epoch at which the pruner stopped the current fit, if it did."""
    if ctx is None:
        return None
    epoch = ctx.notes.get(_PRUNED_NOTE)
    return None if epoch is None else int(epoch)
