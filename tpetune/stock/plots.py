"""The stock study's own plot: test-period predictions against the naive forecast.

The final report (:meth:`~tpetune.stock.objective.StockObjective.final_report`) writes
``predictions.csv`` into the study folder; :func:`extra_plots`, the study's hook that
``tpetune plot`` and the end of ``tpetune stock`` call, draws ``predictions.png`` from it. As in
:mod:`tpetune.views.plot_data`, one function computes a record (:func:`predictions_data`, tested
exactly) and another draws it. No TensorFlow here; numpy, pandas and matplotlib are imported
inside the functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tpetune.errors import DataError
from tpetune.stock import PREDICTIONS_CSV
from tpetune.study.study import Study
from tpetune.views.plots import new_figure, write_pngs

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["PREDICTIONS_CSV", "PredictionsData", "extra_plots", "plot_predictions"]

#: What the final report writes: ``date, actual, predicted, naive`` per test day.
_ZOOM_DAYS = 60


@dataclass(frozen=True, eq=False)  # eq=False: numpy arrays have no single truth value
class PredictionsData:
    """The stock study's test-period predictions, in price units, with their RMSEs."""

    dates: np.ndarray
    actual: np.ndarray
    predicted: np.ndarray
    naive: np.ndarray
    rmse_model: float
    rmse_naive: float


def predictions_data(study_dir: str | Path) -> PredictionsData | None:
    """Read ``predictions.csv`` (``date, actual, predicted, naive``); ``None`` when absent.

    Raises:
        DataError: the file lacks one of the four columns, or a date does not parse.
    """
    import numpy as np
    import pandas as pd

    path = Path(study_dir) / PREDICTIONS_CSV
    if not path.is_file():
        return None
    frame = pd.read_csv(path)
    missing = [c for c in ("date", "actual", "predicted", "naive") if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path} lacks column(s) {', '.join(missing)}; it needs date, actual, predicted, naive"
        )
    try:
        frame = frame.assign(date=pd.to_datetime(frame["date"])).sort_values("date")
    except ValueError as exc:  # pandas' date parse errors are ValueErrors
        raise DataError(f"{path}: the date column has a value that is not a date ({exc})") from None
    actual, predicted, naive = (frame[c].to_numpy(float) for c in ("actual", "predicted", "naive"))

    def rmse(guess: np.ndarray) -> float:
        keep = np.isfinite(guess) & np.isfinite(actual)
        errors = guess[keep] - actual[keep]
        return float(np.sqrt(np.mean(errors**2))) if keep.any() else math.nan

    dates = frame["date"].to_numpy()
    return PredictionsData(dates, actual, predicted, naive, rmse(predicted), rmse(naive))


def plot_predictions(study_dir: str | Path) -> Figure | None:
    """Actual vs model vs naive ("tomorrow = today") prices over the test dates.

    Top: the whole test period; bottom: the last 60 trading days, where a lagging model shows.
    Returns ``None`` when the study folder has no ``predictions.csv``.

    Raises:
        DataError: the file lacks one of its columns.
    """
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    data = predictions_data(study_dir)
    if data is None:
        return None
    fig = new_figure(10, 7)
    top, bottom = fig.subplots(2, 1, height_ratios=[3, 2])
    ratio = data.rmse_model / data.rmse_naive if data.rmse_naive else math.nan
    fig.suptitle(
        f"{Path(study_dir).name}: test-period predictions\nRMSE model {data.rmse_model:.4g}, "
        f"naive {data.rmse_naive:.4g} (model / naive = {ratio:.3f}; below 1 beats naive)"
    )
    model = f"model (RMSE {data.rmse_model:.4g})"
    naive = f"naive: tomorrow = today (RMSE {data.rmse_naive:.4g})"
    views = (
        (top, slice(None), "whole test period", None),
        (bottom, slice(-_ZOOM_DAYS, None), f"last {_ZOOM_DAYS} trading days", "."),
    )
    for ax, part, title, marker in views:
        dates = data.dates[part]
        ax.plot(dates, data.actual[part], color="black", linewidth=1.4, label="actual")
        ax.plot(dates, data.predicted[part], color="C0", marker=marker, label=model)
        ax.plot(dates, data.naive[part], color="C1", linestyle="--", marker=marker, label=naive)
        ax.set_title(title, fontsize="medium")
        ax.set_ylabel("price")
        locator = AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    _mark_test_folds(top, study_dir)
    top.legend(loc="best", fontsize="small")
    bottom.set_xlabel("date")
    return fig


def _mark_test_folds(ax: Axes, study_dir: str | Path) -> None:
    """Shade the rolling-origin test blocks (``test_folds.csv``) and print their ratios."""
    from matplotlib.dates import date2num

    from tpetune.stock.evaluation import fold_marks

    for mark in fold_marks(study_dir):
        start, end = float(date2num(mark.start)), float(date2num(mark.end))
        ax.axvspan(start, end, color="0.5", alpha=0.08 if mark.block % 2 else 0.16)
        ax.text(
            start, 0.02, f" fold {mark.block}: ratio {mark.rmse_ratio:.3f}",
            transform=ax.get_xaxis_transform(), fontsize="small", va="bottom",
        )  # fmt: skip


def extra_plots(study: Study, out_dir: Path) -> list[Path]:
    """The stock study's hook: ``predictions.png`` when the folder has ``predictions.csv``."""
    return write_pngs(out_dir, [("predictions.png", lambda: plot_predictions(study.study_dir))])
