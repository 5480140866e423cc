"""KerasTuner's Hyperband on the digits study: bench/live.py's ``keras-tuner`` mode.

``keras_tuner.Hyperband`` (``pip install 'tpetune[bench]'``; a benchmark-only dependency) on
the same search space, data, folds, model, training and loss as ``tpetune digits``:

- **Space.** :class:`DigitsHyperModel` declares every label of the space file (``spaces/
  digits.py``, or ``digits_small`` for ``--quick``) from its stored description
  (:func:`tpetune.exporters._params.domains`, the map the Optuna exporter uses), so the
  choices and ranges are the file's: a choice is ``hp.Choice`` of its option values,
  ``uniform`` is ``hp.Float``, ``loguniform`` ``hp.Float(sampling="log")``, ``quniform(a, b,
  q)`` ``hp.Int(step=q)``. The branches are ``hp.conditional_scope``: ``units2`` is active
  for 2 and 3 hidden layers, ``units3`` for 3, ``momentum``/``nesterov`` for SGD, ``decay``
  for the ``time`` schedule, ``rate`` for ``exponential``. The values go through the study's
  own :func:`tpetune.digits.model.build_model` (same layers, initialisers, schedules counted
  in epochs, optimizers, ``jit_compile=False``).
- **Not mapped exactly.** (1) ``epochs`` (a choice of 10, 20, 40) is no hyperparameter:
  Hyperband allocates epochs itself, up to ``max_epochs`` = the largest choice (40; 3 for
  ``digits_small``). (2) hyperopt's ``quniform`` gives its two end values half the weight
  of the inner ones; ``hp.Int(step=q)`` draws every grid value alike. (3) Hyperband
  continues a promoted trial from the saved weights of its parent's best epoch with a
  *fresh* optimizer, as KerasTuner does (``Hyperband._build_hypermodel`` loads weights only):
  momentum, Adam's moments and the schedule's step count restart; a tpetune thaw restores
  them from the Keras backup. (4) KerasTuner samples with its own seeded generator, so its
  first models are not tpetune's (no common random numbers for this mode).
- **Data and loss.** KerasTuner validates on one split; here :meth:`CVHyperband.run_trial`
  (the documented override point) cross-validates every trial on the study's own folds
  (``DigitsObjective.folds``: stratified, the data seed) and returns the mean over folds of
  each fold's best validation loss, which is exactly the study's loss. So Hyperband ranks
  the same quantity tpetune does, pays the same per-trial cost, and its losses can be held
  against the same target. Per fold: the study's session reset and seeding
  (``fresh_session``, the trial's seed ``derive_seed(seed, trial number, "objective")``),
  ``steps_per_execution``, batch sizes, ``EarlyStopping(patience=4,
  restore_best_weights=True)`` and ``StopOnNaN``; the best weights are saved per trial and
  fold (``fold<k>.weights.h5``), the checkpoint a promoted trial continues from.
- **Budget.** Hyperband with ``max_epochs`` as above and ``factor=3``, one
  iteration (``hyperband_iterations=1``: all its brackets), stopped at the first trial
  boundary after ``budget_s`` seconds (bench/live.py gives the longest wall time of the
  other modes on the same seed, so KerasTuner never has less time than any mode it is
  compared with); a trial running at the deadline finishes and counts.
- **Timing.** The clock starts before the data are loaded (as for every mode), earlier by
  the Keras import a fresh process pays (this process imported it before any clock), and each
  finished trial is stamped when :meth:`CVHyperband.run_trial` returns, with its
  cross-validated loss: a trial Hyperband stopped after few epochs counts with the loss its
  model reached (a real model with that cross-validated loss; unlike a pruned tpetune trial,
  whose loss covers its first fold only). A failed trial (no finite loss) counts as failed.
"""

from __future__ import annotations

import math
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from bench import common

#: Hyperband's reduction factor (KerasTuner's default and the brief's).
FACTOR = 3

#: The hyperparameters active only under some branch values: label -> (parent, values).
CONDITIONS: dict[str, tuple[str, tuple[Any, ...]]] = {
    "units2": ("hidden_layers", (2, 3)),
    "units3": ("hidden_layers", (3,)),
    "momentum": ("optimizer", ("sgd",)),
    "nesterov": ("optimizer", ("sgd",)),
    "decay": ("schedule", ("time",)),
    "rate": ("schedule", ("exponential",)),
}


def space_domains(space_name: str) -> dict[str, Any]:
    """The space file's labels as exporter :class:`~tpetune.exporters._params.Domain` s."""
    from tpetune.exporters._params import domains

    space = common.load_space(space_name)
    found = domains(space.describe())
    missing = sorted(set(space.labels) - set(found))
    if missing:
        raise ValueError(f"spaces/{space_name}.py: no KerasTuner domain for {missing}")
    return found


def max_epochs(doms: dict[str, Any]) -> int:
    """Hyperband's ``max_epochs``: the largest ``epochs`` choice of the space."""
    return int(max(doms["epochs"].choices))


def declare(hp: Any, label: str, dom: Any) -> Any:
    """Declare one label on ``hp`` (a ``keras_tuner.HyperParameters``) from its domain."""
    if dom.kind == "categorical":
        return hp.Choice(label, list(dom.choices))
    if dom.kind == "int":
        return hp.Int(label, int(dom.low), int(dom.high), step=int(dom.step or 1))
    sampling = "log" if dom.log else "linear"
    return hp.Float(label, dom.low, dom.high, step=dom.step, sampling=sampling)


def hp_params(hp: Any, doms: dict[str, Any], epochs: int) -> dict[str, Any]:
    """The digits objective's params (the shape ``spaces/digits.py`` evaluates to) from
    KerasTuner's ``hp``, declaring every label with its branch condition."""

    def value(label: str) -> Any:
        if label not in CONDITIONS:
            return declare(hp, label, doms[label])
        parent, values = CONDITIONS[label]
        with hp.conditional_scope(parent, list(values)):
            return declare(hp, label, doms[label])  # None where the branch is not taken

    layers = int(value("hidden_layers"))
    hidden: dict[str, Any] = {"layers": layers}
    for i in range(1, 4):
        units = value(f"units{i}")
        if i <= layers:
            hidden[f"units{i}"] = int(units)
    optimizer: dict[str, Any] = {"name": value("optimizer")}
    momentum, nesterov = value("momentum"), value("nesterov")
    if optimizer["name"] == "sgd":
        optimizer.update(momentum=float(momentum), nesterov=bool(nesterov))
    schedule: dict[str, Any] = {"name": value("schedule")}
    knobs = {"time": ("decay", value("decay")), "exponential": ("rate", value("rate"))}
    if schedule["name"] in knobs:
        key, knob = knobs[schedule["name"]]
        schedule[key] = float(knob)
    return {
        "hidden_layers": hidden,
        "activation": value("activation"),
        "initializer": value("initializer"),
        "optimizer": optimizer,
        "schedule": schedule,
        "lr": float(value("lr")),
        "batch_size": int(value("batch_size")),
        "epochs": epochs,  # Hyperband's resource, not a hyperparameter (see the module)
    }


def make_hypermodel(objective: Any, doms: dict[str, Any]) -> Any:
    """A ``keras_tuner.HyperModel`` of the digits space for ``objective`` (a
    ``DigitsObjective``): ``build(hp)`` compiles the study's model for its first fold."""
    import keras_tuner

    epochs = max_epochs(doms)

    class DigitsHyperModel(keras_tuner.HyperModel):
        def params(self, hp: Any) -> dict[str, Any]:
            return hp_params(hp, doms, epochs)

        def build(self, hp: Any) -> Any:
            return objective.build(self.params(hp), objective.folds[0])

    return DigitsHyperModel(name="digits")


class BudgetSpent(Exception):
    """Raised (as a ``keras_tuner.errors.FatalError``) to end the search at the deadline."""


def make_tuner(
    objective: Any,
    doms: dict[str, Any],
    *,
    seed: int,
    directory: str,
    on_trial: Any,
    deadline: float | None,
) -> Any:
    """A :class:`CVHyperband` over the digits space; ``on_trial(loss, epochs)`` is called at
    each trial's end (loss ``None`` when it failed)."""
    import keras
    import keras_tuner
    import numpy as np

    from tpetune.keras.trial import fresh_session
    from tpetune.trial.context import derive_seed

    class Fatal(BudgetSpent, keras_tuner.errors.FatalError):
        pass

    class CVHyperband(keras_tuner.Hyperband):
        """Hyperband whose trials cross-validate on the study's folds (see the module)."""

        def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> float:
            if deadline is not None and time.perf_counter() >= deadline:
                raise Fatal("the wall-time budget is spent")
            hp = trial.hyperparameters
            params = self.hypermodel.params(hp)
            epochs = int(hp.values.get("tuner/epochs", params["epochs"]))
            initial = int(hp.values.get("tuner/initial_epoch", 0))
            parent = hp.values.get("tuner/trial_id")
            losses, trained = [], 0
            for k, fold in enumerate(objective.folds):
                fresh_session(derive_seed(seed, int(trial.trial_id), "objective"))
                model = objective.apply_steps_per_execution(objective.build(params, fold))
                if parent is not None:
                    with warnings.catch_warnings():
                        # The fresh model's optimizer is not built yet, so Keras skips the
                        # saved optimizer state, as in KerasTuner's own continuation.
                        warnings.filterwarnings("ignore", "Skipping variable loading for opt")
                        model.load_weights(self._fold_file(parent, k))
                early = keras.callbacks.EarlyStopping(
                    monitor="val_loss", patience=objective.patience, restore_best_weights=True
                )
                fit = model.fit(
                    **{**objective.fit_args(params, fold), "epochs": epochs},
                    initial_epoch=initial,
                    verbose=0,
                    callbacks=[early, *objective.fit_callbacks(params, fold)],
                )
                values = [float(v) for v in fit.history.get("val_loss", [])]
                trained += len(values)
                finite = [v for v in values if math.isfinite(v)]
                losses.append(min(finite) if finite else math.nan)
                model.save_weights(self._fold_file(trial.trial_id, k))  # the best epoch's
            loss = float(np.mean(losses))
            if not math.isfinite(loss):
                on_trial(None, trained)
                raise keras_tuner.errors.FailedTrialError("no finite validation loss")
            on_trial(loss, trained)
            return loss

        def _fold_file(self, trial_id: str, fold: int) -> str:
            return str(Path(self.get_trial_dir(trial_id)) / f"fold{fold}.weights.h5")

    return CVHyperband(
        hypermodel=make_hypermodel(objective, doms),
        objective=keras_tuner.Objective("val_loss", "min"),
        max_epochs=max_epochs(doms),
        factor=FACTOR,
        hyperband_iterations=1,
        seed=seed,
        # A diverging learning rate fails a trial; tpetune goes on after such trials, and
        # so does KerasTuner here (its default stops the search after 3 in a row).
        max_consecutive_failed_trials=10**6,
        directory=directory,
        project_name="digits",
        overwrite=True,
    )


def run_keras_tuner(
    st: Any, seed: int, budget_s: float | None, import_s: float = 0.0
) -> common.Run:
    """One search (mode ``keras-tuner``) on ``st`` (a live.py ``StudySetting`` for digits),
    stopped at the first trial boundary after ``budget_s`` seconds (``None``: one Hyperband
    iteration); its clock starts ``import_s`` early (the Keras import a fresh script pays,
    done in this process before any clock: live.py's ``import_seconds``)."""
    from tpetune.bundled import bundled_study

    ends: list[common.TrialEnd] = []
    clock = time.perf_counter() - import_s
    deadline = None if budget_s is None else clock + budget_s

    def on_trial(loss: float | None, epochs: int) -> None:
        ends.append(common.TrialEnd(time.perf_counter() - clock, loss, epochs))

    bundle = bundled_study(st.study)
    with tempfile.TemporaryDirectory(prefix="tpetune-live-kt-") as tmp:
        settings = bundle.settings({}, study_dir=Path(tmp), **st.data)
        objective = bundle.make_objective(settings)
        doms = space_domains(st.space)
        tuner = make_tuner(
            objective, doms, seed=seed, directory=tmp, on_trial=on_trial, deadline=deadline
        )
        stopped = "iteration"
        try:
            tuner.search(verbose=0)
        except BudgetSpent:
            stopped = "budget"
        wall = time.perf_counter() - clock
    failed = sum(e.loss is None for e in ends)
    extra = {
        "max_epochs": max_epochs(doms),
        "factor": FACTOR,
        "budget_s": budget_s,
        "stopped_by": stopped,
    }
    return common.Run("keras-tuner", seed, wall, ends, failed=failed, extra=extra)
