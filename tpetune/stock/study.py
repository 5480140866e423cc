"""``tpetune stock`` end to end: data, search, final test report, summary.

Order matters for safety: the prices and the space are checked before the study folder is
touched, so bad input changes nothing stored. On resume the study's stored settings (epochs,
folds, data) are the defaults, so re-running the bare command continues the same study.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tpetune.errors import ConfigError
from tpetune.store import TrialRecord
from tpetune.study import Study, best_trial_report, stored_settings


def run_stock_study(
    *,
    study_dir: Path,
    csv: Path | None = None,
    space: str | Path = "stock",
    epochs: int | None = None,
    folds: int | None = None,
    max_evals: int | None = None,
    fresh: bool = False,
    progress: bool = True,
    pruning: Mapping[str, Any] | None = None,
    **search: Any,
) -> tuple[Study, dict[str, Any] | None]:
    """Tune the stock LSTM and report the best model on the test split.

    Args:
        study_dir: the study folder; ``best_model.keras``, ``predictions.csv`` and
            ``summary.json`` are written there too.
        csv: the user's daily prices; ``None`` uses the bundled S&P 500 (last 10 years).
        space: a space file or bundled name for the same objective.
        epochs, folds, max_evals: ``None`` means the stored value on resume, else the default.
        search: further :func:`tpetune.tune` options (algo, seed, timeout, stop rules, ...).

    Returns:
        The study and the test summary (``None`` when no trial finished).

    Raises:
        DataError, SpaceError, ConfigError, StoreError: bad input, before anything is changed.
    """
    from tpetune.space import load_space
    from tpetune.stock.data import load_prices
    from tpetune.stock.objective import DEFAULT_EPOCHS, DEFAULT_MAX_EVALS

    stored = stored_settings(study_dir, fresh=fresh)
    if csv is not None and not Path(csv).is_file():
        load_prices(csv)  # raises the one-line DataError for a missing file
    data_id = "bundled:sp500"
    if csv is not None:
        data_id = f"{Path(csv).name}:{hashlib.sha256(Path(csv).read_bytes()).hexdigest()[:16]}"
    if csv is None and stored.get("data", data_id) != data_id:
        raise ConfigError(
            f"study {study_dir} was made with --csv data ({stored['data']}): pass the same --csv "
            "to resume, or use --fresh or another --study-dir"
        )
    epochs = epochs or stored.get("epochs") or DEFAULT_EPOCHS
    folds = folds or stored.get("folds")
    max_evals = max_evals or stored.get("max_evals") or DEFAULT_MAX_EVALS
    prices = load_prices(csv) if csv is not None else None
    loaded_space = load_space(space)

    from tpetune.pruning import keras_pruning_callback
    from tpetune.stock.objective import StockObjective
    from tpetune.tuning import tune

    # The callback reads the study's pruning options from each trial's context (no-op when off).
    objective = StockObjective(
        prices=prices, epochs=epochs, folds=folds, callbacks=[keras_pruning_callback]
    )
    study = tune(
        objective,
        loaded_space,
        study_dir=study_dir,
        max_evals=max_evals,
        fresh=fresh,
        progress=progress,
        pruning=pruning,
        objective_config={"epochs": epochs, "folds": folds, "data": data_id},
        **search,
    )

    def report(best: TrialRecord, seed: int) -> dict[str, Any]:
        summary = objective.final_report(study.best_params, out_dir=study_dir, seed=seed)
        summary.pop("curves", None)
        return {"best_trial_loss": best.loss, **summary}

    return study, best_trial_report(study, ("best_model.keras",), report)


def format_summary(summary: Mapping[str, Any]) -> str:
    """The honest-evaluation block printed after a stock run."""
    verdict = (
        "beats" if summary["rmse_ratio"] < 1.0 else "does not beat"
    ) + " the naive forecast on RMSE"
    return "\n".join(
        [
            f"test split {summary['test_start']} .. {summary['test_end']} "
            f"({summary['n_test']} days), best trial {summary['best_tid']} retrained:",
            f"  {'':<26}{'RMSE':>10}{'MAE':>10}",
            f"  {'LSTM':<26}{summary['rmse']:>10.3f}{summary['mae']:>10.3f}",
            f"  {'naive (tomorrow = today)':<26}{summary['naive_rmse']:>10.3f}"
            f"{summary['naive_mae']:>10.3f}",
            f"  {'ratio LSTM / naive':<26}{summary['rmse_ratio']:>10.4f}"
            f"{summary['mae_ratio']:>10.4f}",
            f"  the model {verdict} (price units; ratio < 1 is better than naive)",
        ]
    )
