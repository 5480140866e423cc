"""Snapshot exports: CSV (one row per trial), JSON (as ``show --json``), hyperopt pickle.

Each rewrites one file atomically (a crash leaves no half file), by default
``STUDY_DIR/trials.EXT``. The pickle is an explicit export for code written against hyperopt
(``Trials`` with choice *indices* in ``misc.vals``, as hyperopt itself stores them); tpetune
never reads pickles it did not write unless ``tpetune import`` is asked to.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

from tpetune._io import atomic_write
from tpetune.errors import ConfigError
from tpetune.exporters import Exported
from tpetune.study.study import Study

__all__ = ["export_csv", "export_json", "export_pickle"]


def export_csv(study: Study, target: str | Path | None = None) -> Exported:
    """One row per trial, one column per param (dicts and lists JSON-encoded)."""
    frame = study.to_dataframe()
    # JSON-encode dict/list params so a cell reads back unambiguously.
    for col in study.param_labels:
        frame[col] = frame[col].map(lambda v: json.dumps(v) if isinstance(v, dict | list) else v)
    return _write(study, target, "csv", frame.to_csv().encode())


def export_json(study: Study, target: str | Path | None = None) -> Exported:
    """The study as ``tpetune show --json`` prints it."""
    return _write(study, target, "json", (json.dumps(study.to_dict(), indent=2) + "\n").encode())


def export_pickle(study: Study, target: str | Path | None = None) -> Exported:
    """A hyperopt ``Trials`` pickle for code written against hyperopt."""
    data = pickle.dumps(study.trials, protocol=pickle.HIGHEST_PROTOCOL)
    return _write(study, target, "pkl", data)


def _write(study: Study, target: str | Path | None, ext: str, data: bytes) -> Exported:
    """Write ``data`` to ``target`` (default ``STUDY_DIR/trials.EXT``) atomically.

    Raises:
        ConfigError: the target folder does not exist.
    """
    path = Path(target) if target is not None else study.study_dir / f"trials.{ext}"
    if not path.parent.is_dir():
        raise ConfigError(f"folder {path.parent} does not exist: create it or choose another -o")
    atomic_write(path, data)
    n = len(study.records)
    return Exported(str(path), added=n, updated=0, total=n, snapshot=True)
