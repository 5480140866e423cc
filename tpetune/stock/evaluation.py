"""The stock study's verdict beyond one number: rolling-origin test blocks and the search's top K.

:func:`tpetune.stock.report.stock_report` makes the final report (the best params' model,
trained on the train split, forecasts the test split once: ``predictions.csv``) and adds:

- **Rolling-origin evaluation** over ``test_folds`` consecutive blocks of the test split. For
  block ``j`` the best params are retrained on everything before it (the validation part, for
  early stopping, is the ``n_val`` days just before the block; the training part all days
  before those) and forecast the block once. Block 1's training and validation days are the
  final report's, so its forecast is the first days of ``predictions.csv`` and is not
  retrained. The blocks lie inside the test split on purpose: earlier days were the search's
  training and validation data, and a block there would grade the params on the days that
  chose them. Written to ``test_folds.csv`` (``date, actual, predicted, naive, block``); the
  summary gets each block's RMSE ratio and the Diebold–Mariano test on the pooled errors.
- **Top-K forecasts** for Hansen's SPA test: the ``spa_top`` best trials (by validation loss,
  the best included), each the model its trial trained (kept with the trial; retrained with
  its own params and seed only where none was kept), forecasting the test split. Only the
  top K of the N trials are candidates, so the SPA test accounts for those K, not for all N.

Then :func:`tpetune.stock.verdict.forecast_verdict` turns the arrays into the significance
tests and the verdict in words. Forecasting needs Keras (through
:class:`~tpetune.stock.objective.StockObjective`); this module imports it lazily.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tpetune.errors import ConfigError, DataError, MissingDependencyError
from tpetune.stock import DEFAULT_YEARS, PREDICTIONS_CSV
from tpetune.stock.series import SERIES, load_series
from tpetune.stock.verdict import diebold_mariano, format_verdict, verdict_text
from tpetune.stock.windows import DEFAULT_SPLIT, split_sizes
from tpetune.study.artifacts import model_path
from tpetune.trial.context import derive_seed

if TYPE_CHECKING:
    from tpetune.stock.objective import StockObjective  # imports Keras
    from tpetune.study.store import TrialRecord
    from tpetune.study.study import Study

__all__ = [
    "DEFAULT_SPA_TOP",
    "DEFAULT_TEST_FOLDS",
    "FOLDS_CSV",
    "FoldMark",
    "block_forecast",
    "block_split",
    "bundled_series",
    "fold_marks",
    "folds_summary",
    "format_folds",
    "kept_model",
    "read_forecast",
    "rolling_blocks",
    "rolling_origin",
    "top_trial_forecasts",
    "verdict_lines",
]

#: Test blocks of the rolling-origin evaluation (``tpetune stock --test-folds``).
DEFAULT_TEST_FOLDS = 3
#: Best trials retrained for the SPA test (the best one included).
DEFAULT_SPA_TOP = 5
#: The rolling-origin forecasts, in the study folder.
FOLDS_CSV = "test_folds.csv"


def rolling_blocks(
    n_rows: int, k: int, *, split: tuple[float, float, float] = DEFAULT_SPLIT
) -> list[range]:
    """``k`` consecutive day ranges covering the test split of ``n_rows`` days (the last
    block takes the remainder).

    Raises:
        ConfigError: ``k`` < 1.
        DataError: a block would hold fewer than 3 days.
    """
    if k < 1:
        raise ConfigError(f"test folds must be >= 1, got {k}")
    n_train, n_val, n_test = split_sizes(n_rows, split)
    size = n_test // k
    if size < 3:
        raise DataError(
            f"the test split has {n_test} days, too few for {k} test folds of 3 days or more; "
            "use fewer --test-folds or a longer price history"
        )
    start = n_train + n_val
    return [
        range(start + j * size, n_rows if j == k - 1 else start + (j + 1) * size) for j in range(k)
    ]


def block_split(n_rows: int, n_val: int, n_block: int) -> tuple[float, float, float]:
    """Fractions for which :func:`~tpetune.stock.windows.split_sizes` of ``n_rows`` gives
    exactly ``(n_rows - n_val - n_block, n_val, n_block)`` days."""
    # split_sizes rounds val and test down: aim half a day above each count.
    val, test = (n_val + 0.5) / n_rows, (n_block + 0.5) / n_rows
    split = (1.0 - val - test, val, test)
    assert split_sizes(n_rows, split) == (n_rows - n_val - n_block, n_val, n_block)
    return split


def read_forecast(folder: Path) -> pd.DataFrame:
    """A final report's ``predictions.csv`` (``date`` index; actual, predicted, naive)."""
    # round_trip: the floats written, bit for bit (pandas' default parser may be 1 ulp off)
    return pd.read_csv(folder / PREDICTIONS_CSV, index_col="date", float_precision="round_trip")


def _forecast(objective: StockObjective, params: Any, seed: int) -> pd.DataFrame:
    """Retrain ``params`` on ``objective``'s train split and forecast its test split once."""
    return objective.test_forecast(params, seed=seed)


def rolling_origin(
    objective: StockObjective,
    params: Any,
    *,
    seed: int,
    k: int,
    first: pd.DataFrame,
) -> pd.DataFrame:
    """The rolling-origin forecasts of the test split in ``k`` blocks (see module docstring).

    Args:
        objective: the study's objective (its prices, epochs, patience and split).
        params: the best trial's params (the argument the objective received).
        seed: the best trial's training seed.
        k: blocks.
        first: the final report's forecast (``read_forecast``), reused for block 1.

    Returns:
        ``date``-indexed ``actual, predicted, naive, block`` (block 1..k) over the test split.
    """
    n_rows = len(objective.prices)
    _, n_val, _ = split_sizes(n_rows, objective.split)
    parts = []
    for j, days in enumerate(rolling_blocks(n_rows, k, split=objective.split)):
        if j == 0:
            frame = first.iloc[: len(days)].copy()
        else:
            split = block_split(days.stop, n_val, len(days))
            frame = block_forecast(objective, params, seed=seed, stop=days.stop, split=split)
        if len(frame) != len(days):
            raise DataError(f"test fold {j + 1} forecast {len(frame)} days, not {len(days)}")
        parts.append(frame.assign(block=j + 1))
    return pd.concat(parts)


def block_forecast(
    objective: StockObjective,
    params: Any,
    *,
    seed: int,
    stop: int,
    split: tuple[float, float, float],
) -> pd.DataFrame:
    """``params`` retrained (with ``seed``) on ``objective``'s prices before day ``stop``,
    split by ``split``: the forecast of that split's test part (one rolling-origin block)."""
    from tpetune.stock.objective import StockObjective

    sub = StockObjective(
        prices=objective.prices.iloc[:stop],
        epochs=objective.epochs,
        patience=objective.patience,
        split=split,
    )
    return sub.test_forecast(params, seed=seed)


def kept_model(study: Study, record: TrialRecord) -> str | None:
    """The path of the model ``record``'s trial kept (``STUDY/models/<tid>.keras``), or
    ``None`` when it kept none (see :mod:`tpetune.stock.report`)."""

    path = model_path(Path(study.study_dir), record.tid)
    return str(path) if path.is_file() else None


def top_trial_forecasts(
    objective: StockObjective,
    study: Study,
    best: TrialRecord,
    *,
    k: int,
) -> list[np.ndarray]:
    """Test-split forecasts of the ``k`` best trials other than ``best`` (the best one's
    forecast is the final report's), in this process: each trial's kept model, or where it
    kept none, its params retrained with its own training seed."""

    out = []
    for record in study.top(k):
        if record.tid == best.tid:
            continue
        seed = derive_seed(int(study.meta["seed"]), record.tid, "objective")
        frame = objective.test_forecast(record.args, seed=seed, model=kept_model(study, record))
        out.append(frame["predicted"].to_numpy(float))
    return out


def _ratio(frame: pd.DataFrame) -> float:
    err_m = frame["predicted"] - frame["actual"]
    err_n = frame["naive"] - frame["actual"]
    return float(np.sqrt(np.mean(err_m**2) / np.mean(err_n**2)))


def folds_summary(folds: pd.DataFrame) -> dict[str, Any]:
    """Per-block RMSE ratios, the pooled ratio and the pooled Diebold–Mariano test."""
    blocks = []
    for block in sorted(folds["block"].unique()):
        frame = folds[folds["block"] == block]
        blocks.append(
            {
                "block": int(block),
                "start": str(frame.index[0]),
                "end": str(frame.index[-1]),
                "n": len(frame),
                "rmse_ratio": _ratio(frame),
            }
        )
    out: dict[str, Any] = {"blocks": blocks, "pooled_rmse_ratio": _ratio(folds)}
    y, f, b = (folds[c].to_numpy(float) for c in ("actual", "predicted", "naive"))
    try:
        dm = diebold_mariano(y, f, b, criterion="mse")
        out["dm_p_better"], out["dm_statistic"] = dm.p_better, dm.statistic
        out["verdict"] = verdict_text(dm.p_better, None)
    except MissingDependencyError as exc:
        out["missing"] = str(exc)
        out["verdict"] = verdict_text(None, None)
    return out


def format_folds(folds: Mapping[str, Any], *, indent: str = "  ") -> str:
    """The rolling-origin lines of the printed report."""
    ratios = ", ".join(f"{b['start']}..{b['end']} {b['rmse_ratio']:.4f}" for b in folds["blocks"])
    return (
        f"{indent}rolling origin, {len(folds['blocks'])} test blocks (RMSE ratio): {ratios}\n"
        f"{indent}  pooled ratio {folds['pooled_rmse_ratio']:.4f}: {folds['verdict']}"
    )


def verdict_lines(summary: Mapping[str, Any]) -> list[str]:
    """The printed verdict block; empty for a summary made before the verdict existed."""

    sig = summary.get("significance")
    if not isinstance(sig, Mapping):
        return [f"  verdict: {summary['verdict']}"] if "verdict" in summary else []
    return [format_verdict(sig), format_folds(sig["test_folds"])]


def bundled_series(series: str | None, stored: Mapping[str, Any]) -> tuple[str, Any]:
    """The bundled series to use and its prices: ``series``, else the stored study's, else
    ``sp500``; its last :data:`~tpetune.stock.DEFAULT_YEARS` years (``None`` for ``sp500``,
    which the objective loads by default).

    Raises:
        ConfigError: an unknown series name.
    """
    from tpetune.stock.data import recent_years  # imports pandas

    stored_id = str(stored.get("data", ""))
    if series is None and stored_id.startswith("bundled:"):
        series = stored_id.split(":", 1)[1]
    series = series or "sp500"
    if series not in SERIES:
        load_series(series)  # raises the one-line ConfigError naming the choices
    if series == "sp500":
        return series, None
    return series, recent_years(load_series(series), DEFAULT_YEARS)


@dataclass(frozen=True)
class FoldMark:
    """One rolling-origin test block as the predictions plot marks it."""

    block: int
    start: np.datetime64
    end: np.datetime64
    rmse_ratio: float


def fold_marks(study_dir: str | Path) -> list[FoldMark]:
    """The blocks of ``test_folds.csv`` in ``study_dir`` (empty when there is none)."""
    path = Path(study_dir) / FOLDS_CSV
    if not path.is_file():
        return []
    folds = pd.read_csv(path, parse_dates=["date"], index_col="date")
    marks = []
    for block in sorted(folds["block"].unique()):
        frame = folds[folds["block"] == block]
        dates = frame.index.to_numpy()
        marks.append(FoldMark(int(block), dates[0], dates[-1], _ratio(frame)))
    return marks
