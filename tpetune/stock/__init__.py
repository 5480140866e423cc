"""The flagship study: tune an LSTM that forecasts the next daily close of a price series.

``data`` loads and validates price CSVs (or the bundled S&P 500), ``windows`` cuts them into
scaled, chronologically split windows, ``model`` builds the LSTM from one point of
``spaces/stock.py`` and ``objective`` trains it per trial and reports on the test split.

Importing this package imports neither TensorFlow/Keras nor pandas: the names below are
loaded on first access, so data errors surface (and ``--help`` runs) without paying for
either import.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "DEFAULT_EPOCHS",
    "DEFAULT_MAX_EVALS",
    "DEFAULT_PATIENCE",
    "DEFAULT_YEARS",
    "PREDICTIONS_CSV",
    "Dataset",
    "StockObjective",
    "build_model",
    "check_length",
    "load_prices",
    "make_windows",
    "prepare",
    "prepare_folds",
    "recent_years",
    "walk_forward_folds",
]

# The default budget lives here, so the CLI and the study can show it without importing
# TensorFlow; how it was measured is written down in tpetune.stock.objective.
#: Trials of the default ``tpetune stock`` run.
DEFAULT_MAX_EVALS = 30
#: Upper bound on epochs per trial (early stopping usually ends sooner).
DEFAULT_EPOCHS = 12
#: Epochs without a better validation loss before a trial stops.
DEFAULT_PATIENCE = 3
#: Years of the bundled series used by default (the most recent ones).
DEFAULT_YEARS = 10
#: The best model's test-split forecasts beside the naive one, written by the final report.
PREDICTIONS_CSV = "predictions.csv"

# Names served lazily: the model and objective import Keras, data and windows pandas; the
# CLI reads this package's defaults (and the study's flags) without either.
_LAZY = {
    "StockObjective": "tpetune.stock.objective",
    "build_model": "tpetune.stock.model",
    "load_prices": "tpetune.stock.data",
    "recent_years": "tpetune.stock.data",
    **dict.fromkeys(
        (
            "Dataset",
            "check_length",
            "make_windows",
            "prepare",
            "prepare_folds",
            "walk_forward_folds",
        ),
        "tpetune.stock.windows",
    ),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tpetune.stock' has no attribute {name!r}")
