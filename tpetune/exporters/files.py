"""Export a study: CSV (one row per trial), JSON (as ``show --json``), hyperopt pickle.

The pickle is an explicit export for code written against hyperopt (``Trials`` with choice
*indices* in ``misc.vals``, as hyperopt itself stores them); tpetune never reads pickles.

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
from tpetune.study.study import Study

FORMATS = ("csv", "json", "pickle")
#: Formats written into another tool's own store by :mod:`tpetune.exporters` (optional extras),
#: name -> what the target is. ``tpetune.exporters.export_to`` writes them.
TOOL_FORMATS = {
    "optuna": "an Optuna RDB storage file (default STUDY_DIR/optuna.db)",
    "tensorboard": "a TensorBoard log folder (default STUDY_DIR/tensorboard)",
    "mlflow": "an MLflow tracking URI (default sqlite:///STUDY_DIR/mlflow.db)",
}
ALL_FORMATS = (*FORMATS, *TOOL_FORMATS)


def export(study: Study, fmt: str, path: str | Path) -> Path:
    """Write ``study`` to ``path`` in ``fmt`` atomically (a crash leaves no half file).

    Raises:
        ConfigError: unknown format, or the target folder does not exist.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if not path.parent.is_dir():
        raise ConfigError(f"folder {path.parent} does not exist: create it or choose another -o")
    if fmt == "csv":
        data = _csv(study).encode()
    elif fmt == "json":
        data = (json.dumps(study.to_dict(), indent=2) + "\n").encode()
    else:
        data = pickle.dumps(study.trials, protocol=pickle.HIGHEST_PROTOCOL)
    atomic_write(path, data)
    return path


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
