"""Pruning for Keras objectives: a thin callback over :mod:`tpetune.trial.report`.

Use in any Keras objective::

    from tpetune.pruners.keras import keras_pruning_callback
    model.fit(..., callbacks=[keras_pruning_callback()])
    return {"loss": min(history.history["val_loss"]), "curves": history.history}

After each epoch the callback reports the monitored metric (``tpetune.report(epoch, value)``,
epochs counted from 1, restored epochs included) and stops the fit when the study's pruner
says so (``tpetune.should_prune()``). It notes the epoch in the trial's context, so the trial
is recorded ``pruned`` with its curve and the loss it reached, without the objective having
to say so. Outside a study, or with no pruner, it only reports, which does nothing.

With k-fold objectives, give the callback to the first fold only: the steps of a trial are
one curve, and later folds would report the same epochs again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tpetune.pruners.policies import pruner_from_json
from tpetune.trial.context import current_trial
from tpetune.trial.report import report, should_prune


def keras_pruning_callback(monitor: str | None = None) -> Any:
    """A Keras callback that reports each epoch and applies the study's pruner.

    Args:
        monitor: the logged metric to report and judge (default: the pruner's, ``val_loss``).
    """
    import keras

    ctx = current_trial()
    watched = monitor or pruner_from_json(ctx.pruner if ctx else None).monitor

    class KerasPruningCallback(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
            value = (logs or {}).get(watched)
            if value is None:
                return
            report(epoch + 1, float(value))
            if should_prune():
                trial = current_trial()
                if trial is not None:
                    trial.notes["pruned_at_epoch"] = epoch + 1
                self.model.stop_training = True

    return KerasPruningCallback()
