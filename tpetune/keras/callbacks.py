"""The callbacks :class:`~tpetune.keras.trial.KerasTrial` adds to a fit inside a study.

- :class:`EpochLog` appends each epoch's values to a small CSV in the trial's workdir, so the
  curves of epochs trained before a crash are not lost with the process.
- :class:`AdaptiveBackup` wraps ``keras.callbacks.BackupAndRestore`` and writes a backup only
  when the training a crash would lose is worth more than writing it costs, and always at
  the epoch a freeze-thaw pruner paused the trial, whose backup is then kept for the thaw.
- :class:`StopOnNaN` is ``keras.callbacks.TerminateOnNaN`` that says so through logging, once
  per trial, instead of printing a line per fold on stdout.

Both use only Keras' public callback API. This module imports Keras; import it lazily.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import keras

from tpetune.trial.context import current_trial
from tpetune.trial.report import paused_now

__all__ = ["AdaptiveBackup", "EpochLog", "StopOnNaN"]

_log = logging.getLogger("tpetune")
_told: set[object] = set()  # trials already told about (one line per trial, not per fold)


class StopOnNaN(keras.callbacks.TerminateOnNaN):
    """Stops training at a NaN or infinite batch loss, as ``TerminateOnNaN`` does, and logs
    it once per trial on the ``tpetune`` logger (Keras prints "Batch N: Invalid loss,
    terminating training" on stdout for every fold of every such trial)."""

    def on_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        self.model.stop_training = True

        ctx = current_trial()
        key: object = self if ctx is None else (ctx.study_dir, ctx.tid)
        if key not in _told:
            _told.add(key)
            who = "training" if ctx is None else f"trial {ctx.tid}"
            _log.info("%s: the loss became %s at batch %d; training stopped", who, loss, batch)


class EpochLog(keras.callbacks.Callback):
    """Appends ``epoch,<key>...`` per epoch to a CSV that outlives a crashed trial.

    When a fit resumes at epoch ``e`` (restored by the backup), rows of epochs ``>= e`` are
    stale (from the crashed run after its last backup) and are dropped before training goes
    on. The stock study's files (``epoch,loss,val_loss``) have kept this layout since before
    this class was shared.
    """

    def __init__(self, path: Path, keys: Sequence[str] = ("loss", "val_loss")) -> None:
        super().__init__()
        self.path = path
        self.keys = tuple(keys)
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
            csv.writer(fh).writerow([epoch, *(float(logs.get(k, math.nan)) for k in self.keys)])

    def read(self) -> dict[str, list[float]]:
        """The logged values by key, one per epoch in epoch order."""
        rows = self._rows()
        epochs = sorted(rows)
        return {k: [rows[e][i] for e in epochs] for i, k in enumerate(self.keys)}

    def _rows(self) -> dict[int, tuple[float, ...]]:
        by_epoch: dict[int, tuple[float, ...]] = {}
        if not self.path.exists():
            return by_epoch
        with self.path.open(newline="") as fh:
            for row in csv.reader(fh):
                if len(row) == 1 + len(self.keys):  # a torn last line from a crash is skipped
                    by_epoch[int(row[0])] = tuple(float(v) for v in row[1:])
        return by_epoch


class AdaptiveBackup(keras.callbacks.Callback):
    """``BackupAndRestore`` written only when losing the training since the last one matters.

    At an epoch end a backup is written when all of these hold:

    - at least ``every_s`` seconds passed since the last backup, or since the fit began (so
      the first epoch counts, graph tracing included);
    - that time is at least ``cost_factor`` times what writing the last backup took (writing
      the weights costs ~40 ms for the bundled models; on 0.5 s epochs a backup per epoch
      alone would slow training by 8%);
    - the epoch is not the fit's last (a finished fit deletes its backup anyway).

    A fit of short epochs thus writes few or no backups and pays nearly nothing, while a fit
    of long epochs backs up every epoch. A crash loses at most about ``every_s`` seconds of
    training (or one epoch, when epochs are longer). The previous backup is kept
    (``double_checkpoint``), so a backup torn by the crash itself falls back to the one
    before instead of failing the resume. Early-stopping state is not part of the backup: a
    resumed fit restarts its patience.
    """

    def __init__(
        self,
        backup_dir: Path,
        *,
        every_s: float,
        cost_factor: float,
    ) -> None:
        super().__init__()
        try:
            self.inner = keras.callbacks.BackupAndRestore(str(backup_dir), double_checkpoint=True)
        except TypeError:  # Keras before 3.5 has no double_checkpoint
            self.inner = keras.callbacks.BackupAndRestore(str(backup_dir))
        self.every_s = every_s
        self.cost_factor = cost_factor
        self.saves = 0
        self._last_save = 0.0
        self._save_cost = 0.0

    def set_model(self, model: Any) -> None:
        super().set_model(model)
        self.inner.set_model(model)

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        self.inner.on_train_begin(logs)  # restores weights and the epoch to resume at
        self._last_save = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        if epoch + 1 >= int((self.params or {}).get("epochs") or math.inf):
            return  # the last epoch: the fit ends now and removes its backup
        since = time.monotonic() - self._last_save
        cheap = since < max(self.every_s, self.cost_factor * self._save_cost)
        if cheap and not paused_now():  # a paused trial's thaw continues from this epoch
            return
        started = time.monotonic()
        self.inner.on_epoch_end(epoch, logs)  # records epoch + 1 as the one to resume at
        self._last_save = time.monotonic()
        self._save_cost = self._last_save - started
        self.saves += 1

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        if paused_now():
            return  # paused (freeze-thaw): the backup waits for the thaw
        self.inner.on_train_end(logs)  # a finished fit removes its backup
