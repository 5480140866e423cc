"""Stop hopeless trials early: a median rule over the stored learning curves.

The rule (as Optuna's MedianPruner, over epochs): after a warm-up of ``warmup_trials``
finished trials and ``warmup_epochs`` epochs, a trial whose best validation loss so far at
epoch *e* is worse than the ``percentile`` of the finished trials' best-so-far at epoch *e*
is stopped. A finished trial that early-stopped before epoch *e* counts with its best loss:
it stopped because it had stopped improving, and dropping it would bias the reference towards
trials that trained longer.

Use in any Keras objective::

    from tpetune.pruning import keras_pruning_callback
    model.fit(..., callbacks=[keras_pruning_callback()])
    return {"loss": min(history.history["val_loss"]), "curves": history.history}

The trial is then recorded as ``pruned`` with its curve and the loss it reached (which TPE
sees), because the callback notes the epoch in the trial's context. Outside a study, or with
``--prune none``, the callback does nothing. The core part of this module imports no Keras.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tpetune.context import TrialContext, current_trial
from tpetune.errors import ConfigError

RULES = ("median", "none")


@dataclass(frozen=True)
class MedianRule:
    """The median (or any percentile) stopping rule; see the module docstring."""

    warmup_trials: int = 5
    warmup_epochs: int = 3
    percentile: float = 50.0
    monitor: str = "val_loss"

    def __post_init__(self) -> None:
        if self.warmup_trials < 1 or self.warmup_epochs < 1:
            raise ConfigError(
                f"pruning warm-up must be >= 1 trial and >= 1 epoch; got "
                f"{self.warmup_trials} trials, {self.warmup_epochs} epochs"
            )
        if not 0 < self.percentile < 100:
            raise ConfigError(f"pruning percentile must lie in (0, 100); got {self.percentile}")

    def reference(self, finished: Sequence[Sequence[float]], epoch: int) -> float | None:
        """The percentile of finished trials' best-so-far at ``epoch`` (0-based), or
        ``None`` while fewer than ``warmup_trials`` finished trials have curves."""
        import numpy as np

        bests = [min(curve[: epoch + 1]) for curve in finished if len(curve) > 0]
        if len(bests) < self.warmup_trials:
            return None
        return float(np.percentile(bests, self.percentile))

    def should_prune(self, curve: Sequence[float], finished: Sequence[Sequence[float]]) -> bool:
        """True if the trial with per-epoch ``curve`` (so far) should stop now."""
        epoch = len(curve) - 1
        if epoch + 1 < self.warmup_epochs:
            return False
        ref = self.reference(finished, epoch)
        return ref is not None and min(curve) > ref

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None) -> MedianRule | None:
        """The rule for a study's pruning options (``None`` when pruning is off).

        Raises:
            ConfigError: an unknown rule or a bad knob.
        """
        options = dict(options or {})
        rule = options.pop("rule", "none")
        if rule not in RULES:
            raise ConfigError(f"unknown pruning rule {rule!r}: choose one of {', '.join(RULES)}")
        if rule == "none":
            return None
        known = {"warmup_trials", "warmup_epochs", "percentile", "monitor"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"unknown pruning option(s) {unknown}: known are {sorted(known)}")
        return cls(**options)


def finished_curves(monitor: str) -> list[list[float]]:
    """The ``monitor`` curves of the current study's finished (ok) trials: those shipped with
    the trial if any (:func:`with_reference_curves`), else read from the store."""
    ctx = current_trial()
    if ctx is None:
        return []
    if ctx.reference_curves is not None:
        return [c for c in ctx.reference_curves.get(monitor, []) if c]
    if ctx.study_dir is None:
        return []
    return [c[monitor] for c in _stored_curves(ctx.study_dir) if c.get(monitor)]


def with_reference_curves(ctx: TrialContext) -> TrialContext:
    """``ctx`` carrying the finished trials' curves, read now from its study's store.

    For executors that may not see the study folder (Spark on a cluster): the curves travel
    with the trial. A context whose study prunes nothing is returned unchanged."""
    if MedianRule.from_options(ctx.pruning) is None or ctx.study_dir is None:
        return ctx
    by_metric: dict[str, list[list[float]]] = {}
    for curves in _stored_curves(ctx.study_dir):
        for metric, curve in curves.items():
            by_metric.setdefault(metric, []).append(curve)
    return replace(ctx, reference_curves=by_metric)


def _stored_curves(study_dir: Path) -> list[dict[str, list[float]]]:
    from tpetune.store import Store

    store = Store.open(study_dir, readonly=True)
    try:
        return list(store.curves().values())
    finally:
        store.close()


def keras_pruning_callback(monitor: str | None = None) -> Any:
    """A Keras callback applying the study's pruning rule after each epoch.

    Args:
        monitor: the logged metric to judge (default: the study's, ``val_loss``).
    """
    import keras

    class KerasPruningCallback(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            ctx = current_trial()
            self.rule = MedianRule.from_options(ctx.pruning if ctx else None)
            self.monitor = monitor or (self.rule.monitor if self.rule else "val_loss")
            self.curve: list[float] = []
            self._finished: list[list[float]] | None = None

        def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
            value = (logs or {}).get(self.monitor)
            if self.rule is None or value is None:
                return
            self.curve.append(float(value))
            if len(self.curve) < self.rule.warmup_epochs:
                return
            if self._finished is None:
                # Finished trials cannot change during this one in a serial study; with
                # workers, reading once per trial is still a fair, cheap reference.
                self._finished = finished_curves(self.monitor)
            if self.rule.should_prune(self.curve, self._finished):
                ctx = current_trial()
                if ctx is not None:
                    ctx.notes["pruned_at_epoch"] = epoch + 1
                self.model.stop_training = True

    return KerasPruningCallback()
