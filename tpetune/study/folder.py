"""The study folder as a whole: what tpetune writes into it, what a look at it tells without
opening it for writing (its meta, its trial count), and ``fresh``'s moving a study aside.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tpetune.errors import StoreError, from_os_error
from tpetune.study.store import Store

__all__ = ["DISCARDED_DIR", "STUDY_FILES", "discard", "stored_meta", "stored_trial_count"]

log = logging.getLogger("tpetune")
T = TypeVar("T")

#: Where ``fresh`` puts the study it discards (inside the study folder; the next one replaces it).
DISCARDED_DIR = "discarded"
#: What tpetune writes into a study folder (the store, trial folders, models, the bundled
#: studies' reports, plots, default exports): ``fresh`` moves these aside, and only these,
#: so a study folder shared with other files (``--study-dir .``) keeps them in place.
STUDY_FILES = (
    "study.db*", ".study.db.new*", "trials", "models", "summary.json", "*.png", "*.keras",
    "predictions.csv", "test_folds.csv", "classification_report.txt", "trials.csv",
    "trials.json", "trials.pkl", "optuna.db", "tensorboard", "mlflow.db",
)  # fmt: skip


def stored_trial_count(study_dir: str | Path) -> int | None:
    """How many trials the study in ``study_dir`` holds: 0 without one, ``None`` when its
    database cannot be read (a damaged study, which ``fresh`` is also there to replace)."""
    if not Store.exists(study_dir):
        return 0
    try:
        return _read(study_dir, lambda store: len(store.records()))
    except StoreError:
        return None


def discard(study_dir: Path) -> None:
    """``fresh``: move the old study's files (:data:`STUDY_FILES`) into ``discarded/``.

    Nothing of the old study stays where plots, reports and ``best-model`` look (summary,
    models, predictions, PNGs), and an unintended fresh start can still be undone by hand.
    """
    count = stored_trial_count(study_dir)
    entries = sorted({p for pattern in STUDY_FILES for p in study_dir.glob(pattern)})
    if not entries:
        return
    aside = study_dir / DISCARDED_DIR
    try:
        shutil.rmtree(aside, ignore_errors=True)
        aside.mkdir()
        for entry in entries:
            os.replace(entry, aside / entry.name)
    except OSError as exc:
        raise from_os_error(exc, study_dir, "discard the study") from None
    what = "an unreadable study" if count is None else f"the {count} trials of study {study_dir}"
    log.warning("discarded %s (kept in %s until the next fresh start)", what, aside)


def stored_meta(study_dir: str | Path, *, strict: bool = False) -> dict[str, Any]:
    """The meta of the study in ``study_dir``, read without its trials; empty when there is
    none. One that cannot be read gives empty too (the caller's own error then stands), or
    with ``strict`` its :class:`StoreError`."""
    if not Store.exists(study_dir):
        return {}
    try:
        return _read(study_dir, Store.meta)
    except StoreError:
        if strict:
            raise
        return {}


def _read(study_dir: str | Path, read: Callable[[Store], T]) -> T:
    """``read`` of the study opened read-only, closed after."""
    store = Store.open(study_dir, readonly=True)
    try:
        return read(store)
    finally:
        store.close()
