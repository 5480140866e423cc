"""Trained models kept with their trials: saved as ``.keras``, the best K retained.

An objective keeps a model in either of two ways:

- it returns it in its result dict under any key (the hyperopt pattern
  ``{"loss": val_error, "status": STATUS_OK, "model": model}``), or
- it calls ``tpetune.current_trial().save_model(model)``.

The model is saved where the trial runs (the driver's process or a worker) into
``STUDY/models/<tid>.keras`` (``<tid>-<key>.keras`` for a key other than ``model``), written
to a temporary name and renamed, so a crash never leaves half a file. The result then holds
the file's path relative to the study (``metrics["model"] == "models/7.keras"``), or
``"unavailable: ..."`` when the executor cannot see the study folder (a Spark executor on
another machine). :class:`Retention` keeps the files of the best ``keep`` finished trials and
deletes the others as better trials arrive; files of trials still running are never touched.

Loading (:func:`load`, ``Study.best_model()``, ``tpetune best-model``) uses Keras' safe mode,
which refuses to run code stored in a file (``Lambda`` layers).

Keras is never imported here to *detect* a model: a value is a model when a class in its MRO
is a ``Model`` from a ``keras`` module. Other non-JSON values in a result are reported once,
by key and type (:func:`report_non_json`), instead of being stored as repr strings.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tpetune._io import check_int, is_json_value
from tpetune.errors import ConfigError, StoreError
from tpetune.study.store import Store, TrialRecord, TrialState

if TYPE_CHECKING:
    from tpetune.study.study import Study
    from tpetune.trial.context import TrialContext

log = logging.getLogger("tpetune")

MODELS_DIR = "models"
DEFAULT_KEEP = 3
UNAVAILABLE = "unavailable"
_WARNED: set[tuple[str, str]] = set()


def is_keras_model(obj: Any) -> bool:
    """True for a ``keras.Model`` (Keras 3 or tf.keras), decided without importing Keras."""
    for cls in type(obj).__mro__:
        module = getattr(cls, "__module__", "") or ""
        if cls.__name__ in ("Model", "Functional", "Sequential") and (
            module.startswith(("keras", "tf_keras")) or ".keras" in module
        ):
            return True
    return False


def model_path(study_dir: Path, tid: int, key: str = "model") -> Path:
    name = f"{tid}.keras" if key == "model" else f"{tid}-{_safe(key)}.keras"
    return Path(study_dir) / MODELS_DIR / name


def _safe(key: str) -> str:
    return "".join(c if c.isalnum() or c in "_." else "_" for c in key)[:60] or "model"


def save(model: Any, ctx: TrialContext, key: str = "model") -> str:
    """Save ``model`` for the trial ``ctx``; returns the path relative to the study folder,
    or ``"unavailable: <why>"`` when it cannot be saved there. Never raises."""
    study_dir = ctx.study_dir
    if study_dir is None or not Path(study_dir).is_dir():
        why = (
            f"{UNAVAILABLE}: the trial ran where the study folder is not visible (e.g. a "
            "Spark executor on another machine); the model was not kept"
        )
        ctx.notes.setdefault("models", {})[key] = why
        return why
    path = model_path(Path(study_dir), ctx.tid, key)
    tmp = path.with_name(f".partial-{os.getpid()}-{path.name}")  # Keras wants .keras at the end
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save(tmp)
        os.replace(tmp, path)
    except Exception as exc:  # a full disk or an unsavable layer fails the model, not the trial
        tmp.unlink(missing_ok=True)
        why = f"{UNAVAILABLE}: saving failed ({type(exc).__name__}: {exc})"
        log.warning("trial %d: model %r not kept: %s", ctx.tid, key, why)
        ctx.notes.setdefault("models", {})[key] = why
        return why
    rel = path.relative_to(Path(study_dir)).as_posix()
    ctx.notes.setdefault("models", {})[key] = rel
    return rel


def capture(raw: Any, ctx: TrialContext) -> Any:
    """The objective's result with every Keras model saved and replaced by its path.

    Models saved through ``ctx.save_model`` join the result the same way, so a trial's
    ``metrics`` always say where its model is. A bare-float result stays a float unless a
    model was saved (it then becomes ``{"loss": raw, "model": path}``)."""
    if isinstance(raw, Mapping):
        out = dict(raw)
        for key, value in raw.items():
            if is_keras_model(value):
                out[key] = save(value, ctx, key=str(key))
        metrics = out.get("metrics")
        if isinstance(metrics, Mapping):
            out["metrics"] = {
                k: save(v, ctx, key=str(k)) if is_keras_model(v) else v for k, v in metrics.items()
            }
    else:
        out = raw
    saved = ctx.notes.get("models") or {}
    if saved:
        if not isinstance(out, Mapping):
            out = {"loss": raw}
        for key, where in saved.items():
            out.setdefault(key, where)
    return out


def report_non_json(items: Mapping[str, Any]) -> dict[str, Any]:
    """``items`` without the values that are not plain data; each dropped (key, type) is
    logged once per process as a warning naming what to do instead."""
    kept = {}
    for key, value in items.items():
        if is_json_value(value):
            kept[key] = value
            continue
        kind = f"{type(value).__module__}.{type(value).__qualname__}"
        if (key, kind) not in _WARNED:
            _WARNED.add((key, kind))
            log.warning(
                "result key %r holds a %s, which is not stored (only numbers, strings, lists "
                "and dicts are; Keras models are saved as files)",
                key,
                kind,
            )
    return kept


class Retention:
    """A :func:`tpetune.tune` callback keeping the model files of the best ``keep`` trials.

    Ranking is by loss among ``ok`` trials that have a model file (ties: the earlier trial);
    files of failed and pruned trials go at once; files of trials not yet finished stay.
    """

    def __init__(self, study_dir: str | Path, keep: int = DEFAULT_KEEP) -> None:
        check_int("keep_models (--keep-models)", keep, 0)
        self.study_dir = Path(study_dir)
        self.keep = keep
        self._records: dict[int, TrialRecord] | None = None

    def __call__(self, trials: Any, record: TrialRecord) -> None:
        if self._records is None:
            store = Store.open(self.study_dir, readonly=True)
            try:
                self._records = {r.tid: r for r in store.records()}
            finally:
                store.close()
        self._records[record.tid] = record
        self.apply()

    def apply(self) -> list[Path]:
        """Delete the files outside the best ``keep``; returns the deleted paths."""
        folder = self.study_dir / MODELS_DIR
        if not folder.is_dir():
            return []
        files: dict[int, list[Path]] = {}
        for path in folder.glob("*.keras"):
            head = path.name.split(".")[0].split("-")[0]
            if not path.name.startswith(".") and head.isdigit():
                files.setdefault(int(head), []).append(path)
        records = self._records or {}
        finished = {
            t: r for t, r in records.items() if t in files and r.state is not TrialState.RUNNING
        }
        ranked = sorted(
            (r for r in finished.values() if r.finished_ok), key=lambda r: (r.loss, r.tid)
        )
        keep = {r.tid for r in ranked[: self.keep]}
        deleted = []
        for tid in finished:
            if tid not in keep:
                for path in files[tid]:
                    path.unlink(missing_ok=True)
                    deleted.append(path)
        return deleted


def best_model_path(study: Study, key: str = "model") -> Path:
    """The model file of the study's best trial.

    Raises:
        StoreError: no trial finished, or the best one kept no model (with the reason).
    """
    best = study.best
    if best is None:
        raise StoreError(f"study {study.study_dir} has no finished trial, so no best model")
    path = model_path(study.study_dir, best.tid, key)
    if not path.is_file():
        where = best.metrics.get(key)
        why = (
            where
            if isinstance(where, str) and where.startswith(UNAVAILABLE)
            else "its objective returned no Keras model (return one in the result dict, or "
            "call tpetune.current_trial().save_model(model))"
        )
        raise StoreError(f"the best trial ({best.tid}) of {study.study_dir} kept no model: {why}")
    return path


def load(path: str | Path) -> Any:
    """Load a ``.keras`` file with Keras' safe mode (stored code is never run)."""
    import keras

    return keras.saving.load_model(str(path), safe_mode=True)


def best_model(study: Study, key: str = "model") -> Any:
    """The best trial's model, loaded in safe mode (what ``Study.best_model()`` returns)."""
    return load(best_model_path(study, key))


def copy_best_model(study: Study, target: str | Path) -> Path:
    """Copy the best trial's model file to ``target`` (a file, or a folder to put it in)."""
    source = best_model_path(study)
    target = Path(target)
    if target.is_dir():
        target = target / f"best_model_trial{study.best.tid if study.best else ''}.keras"
    if not target.parent.is_dir():
        raise ConfigError(f"folder {target.parent} does not exist: create it or choose another -o")
    tmp = target.with_name(f".{target.name}.partial")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)
    return target
