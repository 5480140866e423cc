"""The stock study's verdict beyond one number: rolling-origin test blocks and the search's top K.

:func:`honest_evaluation` runs after the final report (which retrained the best params on the
train split and forecast the test split once, ``predictions.csv``) and adds:

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
  the best included) retrained with their own params and seeds, forecasting the test split.
  Only the top K of the N trials are retrained (a retrain costs about one trial), so the SPA
  test accounts for those K, not for all N trials.

Then :func:`tpetune.stock.verdict.forecast_verdict` turns the arrays into the significance
tests and the verdict in words. Retraining needs Keras (through
:class:`~tpetune.stock.objective.StockObjective`); this module imports it lazily.
"""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tpetune.errors import ConfigError, DataError, MissingDependencyError
from tpetune.stock import PREDICTIONS_CSV
from tpetune.stock.verdict import diebold_mariano, forecast_verdict, verdict_text
from tpetune.stock.windows import DEFAULT_SPLIT, split_sizes

if TYPE_CHECKING:
    from tpetune.stock.objective import StockObjective
    from tpetune.study.store import TrialRecord
    from tpetune.study.study import Study

__all__ = [
    "DEFAULT_SPA_TOP",
    "DEFAULT_TEST_FOLDS",
    "FOLDS_CSV",
    "FoldMark",
    "block_split",
    "bundled_series",
    "fold_marks",
    "format_folds",
    "honest_evaluation",
    "read_forecast",
    "rolling_blocks",
    "rolling_origin",
    "top_trial_forecasts",
    "verdict_lines",
    "verdict_report",
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
    return pd.read_csv(folder / PREDICTIONS_CSV, index_col="date")


def _forecast(objective: StockObjective, params: Any, seed: int) -> pd.DataFrame:
    """Retrain ``params`` on ``objective``'s train split and forecast its test split once."""
    with tempfile.TemporaryDirectory(prefix="tpetune-verdict-") as tmp:
        objective.final_report(params, out_dir=Path(tmp), seed=seed)
        return read_forecast(Path(tmp))


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
    from tpetune.stock.objective import StockObjective

    prices = objective.prices
    n_rows = len(prices)
    _, n_val, _ = split_sizes(n_rows, objective.split)
    parts = []
    for j, days in enumerate(rolling_blocks(n_rows, k, split=objective.split)):
        if j == 0:
            frame = first.iloc[: len(days)].copy()
        else:
            sub = StockObjective(
                prices=prices.iloc[: days.stop],
                epochs=objective.epochs,
                patience=objective.patience,
                split=block_split(days.stop, n_val, len(days)),
            )
            frame = _forecast(sub, params, seed)
        if len(frame) != len(days):
            raise DataError(f"test fold {j + 1} forecast {len(frame)} days, not {len(days)}")
        parts.append(frame.assign(block=j + 1))
    return pd.concat(parts)


def top_trial_forecasts(
    objective: StockObjective,
    study: Study,
    best: TrialRecord,
    *,
    k: int,
) -> list[np.ndarray]:
    """Test-split forecasts of the ``k`` best trials other than ``best``, each retrained with
    its own params and training seed (the best one's forecast is the final report's)."""
    from tpetune.trial.context import derive_seed

    out = []
    for record in study.top(k):
        if record.tid == best.tid:
            continue
        seed = derive_seed(int(study.meta["seed"]), record.tid, "objective")
        out.append(_forecast(objective, record.args, seed)["predicted"].to_numpy(float))
    return out


def _ratio(frame: pd.DataFrame) -> float:
    err_m = frame["predicted"] - frame["actual"]
    err_n = frame["naive"] - frame["actual"]
    return float(np.sqrt(np.mean(err_m**2) / np.mean(err_n**2)))


def _folds_summary(folds: pd.DataFrame) -> dict[str, Any]:
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


def honest_evaluation(
    objective: StockObjective,
    study: Study,
    best: TrialRecord,
    *,
    seed: int,
    out_dir: Path,
    test_folds: int = DEFAULT_TEST_FOLDS,
    spa_top: int = DEFAULT_SPA_TOP,
) -> dict[str, Any]:
    """The verdict of the final report in ``out_dir`` (which holds its ``predictions.csv``).

    Returns:
        :func:`~tpetune.stock.verdict.forecast_verdict`'s keys (the test split, best model
        against naive, SPA over the top ``spa_top`` trials) plus ``test_folds`` (per-block
        ratios, pooled ratio, pooled DM p-value and its verdict); writes ``test_folds.csv``.
    """
    main = read_forecast(out_dir)
    n_train, _, _ = split_sizes(len(objective.prices), objective.split)
    train_close = objective.prices["Close"].to_numpy(float)[:n_train]
    alternatives: list[np.ndarray] = []
    if spa_top > 1 and importlib.util.find_spec("arch") is not None:  # else no SPA: no retrains
        alternatives = top_trial_forecasts(objective, study, best, k=spa_top)
    # A diverged alternative (NaN forecast) is no candidate; the SPA tests the others.
    alternatives = [a for a in alternatives if np.isfinite(a).all()]
    y, f, b = (main[c].to_numpy(float) for c in ("actual", "predicted", "naive"))
    summary = forecast_verdict(y, f, b, train=train_close, alternatives=alternatives, seed=seed)
    folds = rolling_origin(objective, best.args, seed=seed, k=test_folds, first=main)
    folds.to_csv(out_dir / FOLDS_CSV)
    summary["test_folds"] = _folds_summary(folds)
    return summary


def format_folds(folds: Mapping[str, Any], *, indent: str = "  ") -> str:
    """The rolling-origin lines of the printed report."""
    ratios = ", ".join(f"{b['start']}..{b['end']} {b['rmse_ratio']:.4f}" for b in folds["blocks"])
    return (
        f"{indent}rolling origin, {len(folds['blocks'])} test blocks (RMSE ratio): {ratios}\n"
        f"{indent}  pooled ratio {folds['pooled_rmse_ratio']:.4f}: {folds['verdict']}"
    )


def verdict_report(
    objective: StockObjective,
    best: TrialRecord,
    *,
    seed: int,
    out_dir: Path,
    folds: int | None = None,
    spa_top: int = DEFAULT_SPA_TOP,
) -> dict[str, Any]:
    """The summary keys the stock study's final report adds: ``verdict`` (words) and
    ``significance`` (:func:`honest_evaluation`'s numbers); ``folds`` ``None`` means
    :data:`DEFAULT_TEST_FOLDS`."""
    from tpetune.study.study import load_study

    try:
        significance = honest_evaluation(
            objective,
            load_study(out_dir),
            best,
            seed=seed,
            out_dir=out_dir,
            test_folds=DEFAULT_TEST_FOLDS if folds is None else folds,
            spa_top=spa_top,
        )
    except DataError as exc:  # e.g. a diverged forecast or too many --test-folds: say so
        return {"verdict": f"no verdict: {exc}"}
    return {"verdict": significance["verdict"], "significance": significance}


def verdict_lines(summary: Mapping[str, Any]) -> list[str]:
    """The printed verdict block; empty for a summary made before the verdict existed."""
    from tpetune.stock.verdict import format_verdict

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
    from tpetune.stock import DEFAULT_YEARS
    from tpetune.stock.data import recent_years
    from tpetune.stock.series import SERIES, load_series

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
