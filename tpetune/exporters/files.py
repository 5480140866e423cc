"""Snapshot exports: CSV (one row per trial), JSON (as ``show --json``), hyperopt pickle.

Each rewrites one file atomically (a crash leaves no half file), by default
``STUDY_DIR/trials.EXT``. The pickle is an explicit export for code written against hyperopt
(``Trials`` with choice *indices* in ``misc.vals``, as hyperopt itself stores them).

CSV: a parameter whose values are all integers is written as integers (``24``, not ``24.0``,
also where it is inactive in some trials); dict/list values as JSON. A text cell or header
that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or
a carriage return; OWASP's CSV injection advice) is prefixed with ``'``; numbers, negative
ones included, are written as they are.
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
    """One row per trial, one column per param (see the module docstring)."""
    return _write(study, target, "csv", _csv(study).encode())


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
        ConfigError: the target folder does not exist, or the target is a folder.
    """
    path = Path(target) if target is not None else study.study_dir / f"trials.{ext}"
    if not path.parent.is_dir():
        raise ConfigError(f"folder {path.parent} does not exist: create it or choose another -o")
    if path.is_dir():
        example = path / f"trials.{ext}"
        raise ConfigError(f"{path} is a folder: give -o a file path, e.g. {example}")
    atomic_write(path, data)
    n = len(study.records)
    return Exported(str(path), added=n, updated=0, total=n, snapshot=True)


_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _csv(study: Study) -> str:
    import pandas as pd

    frame = study.to_dataframe()
    for col in study.param_labels:
        raw = [r.params.get(col) for r in study.records]  # the frame has made ints floats
        present = [v for v in raw if v is not None]
        if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
            frame[col] = pd.array(raw, dtype="Int64")
        else:  # JSON-encode dict/list params so a cell reads back unambiguously
            frame[col] = frame[col].map(
                lambda v: json.dumps(v) if isinstance(v, dict | list) else v
            )
    for col in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[col]):  # numbers stay numbers
            frame[col] = frame[col].map(_inert)
    frame.columns = [_inert(c) for c in frame.columns]
    return str(frame.to_csv())


def _inert(cell: object) -> object:
    """A text cell a spreadsheet will not evaluate: ``'`` before a leading formula character,
    unless the text is just a number (``-5`` reads as minus five, not a formula)."""
    if not isinstance(cell, str) or not cell.startswith(_FORMULA):
        return cell
    try:
        float(cell)
    except ValueError:
        return "'" + cell
    return cell
