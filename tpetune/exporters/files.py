"""Export a study: CSV (one row per trial), JSON (as ``show --json``), hyperopt pickle.

The pickle is an explicit export for code written against hyperopt (``Trials`` with choice
*indices* in ``misc.vals``, as hyperopt itself stores them); tpetune never reads pickles.
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
        frame = study.to_dataframe()
        # JSON-encode dict/list params so a cell reads back unambiguously.
        for col in study.param_labels:
            frame[col] = frame[col].map(
                lambda v: json.dumps(v) if isinstance(v, dict | list) else v
            )
        data = frame.to_csv().encode()
    elif fmt == "json":
        data = (json.dumps(study.to_dict(), indent=2) + "\n").encode()
    else:
        data = pickle.dumps(study.trials, protocol=pickle.HIGHEST_PROTOCOL)
    atomic_write(path, data)
    return path
