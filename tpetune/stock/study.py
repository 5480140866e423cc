"""``tpetune stock`` as a bundled study: its data flags, objective, checks, report and plots.

:data:`STOCK` is what :func:`tpetune.bundled.run_bundled` and the CLI drive. Order matters for
safety: the prices and the space are checked before the study folder is touched, so bad input
changes nothing stored. On resume the study's stored settings (epochs,
folds, data) are the defaults, so re-running the bare command continues the same study.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tpetune.bundled import Settings, run_bundled
from tpetune.cli.types import positive_int
from tpetune.errors import ConfigError
from tpetune.keras.backend import add_backend_argument, study_backend
from tpetune.search.space import require_labels
from tpetune.stock import DEFAULT_EPOCHS, DEFAULT_MAX_EVALS, DEFAULT_PATIENCE, DEFAULT_YEARS
from tpetune.stock import plots as stock_plots
from tpetune.study.store import TrialRecord
from tpetune.study.study import Study, load_study

if TYPE_CHECKING:
    from tpetune.engine.options import ExecutorOption
    from tpetune.search.space import Space
    from tpetune.stock.objective import StockObjective  # imports Keras

__all__ = ["STOCK", "StockStudy", "format_summary", "run_stock_study"]

#: The labels the objective reads itself (the model reads the others).
_NEEDED = ("time_steps", "batch_size")
_BUNDLED_DATA = "bundled:sp500"


@dataclass(frozen=True)
class StockStudy:
    """The stock study as :func:`~tpetune.bundled.run_bundled` drives it (``tpetune stock``)."""

    name: str = "stock"
    help: str = "tune an LSTM forecasting a stock's next close (main job)"
    default_space: str = "stock"
    default_max_evals: int = DEFAULT_MAX_EVALS
    #: The replay: median pruning neither helps nor hurts here (inside the spread).
    default_pruner: str = "median"
    report_files: tuple[str, ...] = ("best_model.keras", "predictions.csv", "test_folds.csv")
    #: Kept models: at least the SPA test's top K, whose forecasts come from them
    #: (= stock.evaluation.DEFAULT_SPA_TOP, which imports pandas; a test checks).
    keep_models: int = 5
    #: A key only this study's stored settings hold (another bundled study's folder is told apart).
    config_marker: str = "epochs"

    def add_arguments(self, group: argparse._ArgumentGroup) -> None:
        group.add_argument(
            "--csv", type=Path,
            help="daily prices (Yahoo or Stooq layout); default: bundled S&P 500",
        )  # fmt: skip
        group.add_argument(
            # choices = tpetune.stock.series.SERIES (a test checks)
            "--data", dest="series", choices=("sp500", "nasdaq", "wti"),
            help=f"a bundled daily series, its last {DEFAULT_YEARS} years (default sp500; "
            "stored on resume)",
        )  # fmt: skip
        group.add_argument(
            "--test-folds", type=positive_int, metavar="K",
            help="rolling-origin test blocks of the verdict: each retrains the best params on "
            "the days before it (default 3)",
        )  # fmt: skip
        group.add_argument(
            "--epochs", type=positive_int,
            help=f"max epochs per trial (default {DEFAULT_EPOCHS}; early stopping after "
            f"{DEFAULT_PATIENCE} without improvement; stored on resume)",
        )  # fmt: skip
        group.add_argument(
            "--folds", type=positive_int,
            help="walk-forward folds, loss = mean over folds (default: one chronological "
            "70/15/15 train/validation/test split; stored on resume)",
        )  # fmt: skip
        add_backend_argument(group)

    def settings(
        self,
        stored: Mapping[str, Any],
        *,
        study_dir: Path,
        csv: Path | None = None,
        epochs: int | None = None,
        folds: int | None = None,
        series: str | None = None,
        test_folds: int | None = None,
        backend: str | None = None,
    ) -> Settings:
        """``csv`` or a bundled ``series`` (``None``: the stored one, else the S&P 500),
        ``epochs`` and ``folds`` (``None``: the stored value on resume, else the default),
        checked before anything is stored; ``test_folds`` (rolling-origin test blocks of the
        verdict, default 3) goes to the final report only."""
        from tpetune.stock.data import load_prices  # imports pandas
        from tpetune.stock.evaluation import bundled_series  # imports pandas

        if csv is not None and series is not None:
            raise ConfigError("--csv and --data both name the prices: pass only one of them")
        if csv is not None and not Path(csv).is_file():
            load_prices(csv)  # raises the one-line DataError for a missing file
        series, prices = bundled_series(series, stored) if csv is None else (None, None)
        data_id = _BUNDLED_DATA if series in (None, "sp500") else f"bundled:{series}"
        if csv is not None:
            digest = hashlib.sha256(Path(csv).read_bytes()).hexdigest()[:16]
            data_id = f"{Path(csv).name}:{digest}"
        if csv is None and stored.get("data", data_id) != data_id:
            raise ConfigError(
                f"study {study_dir} was made with other data ({stored['data']}): pass the same "
                "--csv or --data to resume, or use --fresh or another --study-dir"
            )
        config = {
            "epochs": epochs or stored.get("epochs") or DEFAULT_EPOCHS,
            "folds": folds or stored.get("folds"),
            "data": data_id,
        }
        # Last: it sets KERAS_BACKEND for this process and the workers (see keras.backend).
        config.update(study_backend(backend, stored, study_dir=study_dir))
        from tpetune.stock.evaluation import DEFAULT_TEST_FOLDS

        # the default spelled out is the default: the cached report stays (bundled.py)
        report = {} if test_folds in (None, DEFAULT_TEST_FOLDS) else {"test_folds": test_folds}
        return Settings(config, load_prices(csv) if csv is not None else prices, report)

    def make_objective(self, settings: Settings) -> StockObjective:
        from tpetune.stock.objective import StockObjective  # imports Keras

        config = settings.config
        return StockObjective(prices=settings.data, epochs=config["epochs"], folds=config["folds"])

    def validate(self, space: Space, objective: StockObjective) -> None:
        """The space has the labels the objective reads; the series is long enough for every
        ``time_steps`` the space can propose (when that is a choice of numbers)."""
        require_labels(
            space.labels,
            _NEEDED,
            objective="stock objective",
            like="spaces/stock.py",
            subject=f"space {space.source}",
        )
        desc = space.describe().get("time_steps", "")
        if desc.startswith("choice"):
            try:
                options = json.loads(desc[len("choice") :])
            except ValueError:
                return
            steps = [int(v) for v in options if isinstance(v, int | float)]
            if steps:
                objective.datasets(max(steps), folds=objective.folds)  # DataError if too short

    def final_report(
        self,
        objective: StockObjective,
        best: TrialRecord,
        *,
        seed: int,
        out_dir: Path,
        test_folds: int | None = None,
        executor: ExecutorOption | None = None,
    ) -> dict[str, Any]:
        """The best trial on the test split, with the verdict; its fits run on ``executor``
        (see :mod:`tpetune.stock.report`)."""
        from tpetune.stock.report import stock_report  # imports pandas

        return stock_report(
            objective,
            load_study(out_dir),
            best,
            seed=seed,
            out_dir=out_dir,
            test_folds=test_folds,
            executor=executor,
        )

    def format_summary(self, summary: Mapping[str, Any]) -> str:
        return format_summary(summary)

    extra_plots = staticmethod(stock_plots.extra_plots)


#: The stock study (registered in :data:`tpetune.bundled.BUNDLED`).
STOCK = StockStudy()


def run_stock_study(
    *,
    study_dir: str | Path,
    csv: Path | None = None,
    space: str | Path = "stock",
    epochs: int | None = None,
    folds: int | None = None,
    series: str | None = None,
    test_folds: int | None = None,
    **options: Any,
) -> tuple[Study, dict[str, Any] | None]:
    """Tune the stock LSTM and report the best model on the test split.

    Args:
        study_dir: the study folder; ``best_model.keras``, ``predictions.csv`` and
            ``summary.json`` are written there too.
        csv: the user's daily prices; ``None`` uses a bundled series (last 10 years).
        series: a bundled series (:data:`tpetune.stock.series.SERIES`); ``None``: the stored one on
            resume, else ``sp500``.
        test_folds: rolling-origin test blocks of the verdict (default 3).
        space: a space file or bundled name for the same objective.
        epochs, folds: ``None`` means the stored value on resume, else the default.
        options: ``max_evals``, ``fresh``, ``progress`` and further :func:`tpetune.tune`
            options, as for :func:`~tpetune.bundled.run_bundled`.

    Returns:
        The study and the test summary (``None`` when no trial finished).

    Raises:
        DataError, SpaceError, ConfigError, StoreError: bad input, before anything is changed.
    """
    data = {"csv": csv, "epochs": epochs, "folds": folds, "series": series}
    data["test_folds"] = test_folds
    return run_bundled(STOCK, study_dir=study_dir, space=space, data=data, **options)


def format_summary(summary: Mapping[str, Any]) -> str:
    """The honest-evaluation block printed after a stock run."""
    ratio = summary["rmse_ratio"]
    # Only the verdict below says whether the model beats naive: a ratio of 0.9993 is a lower
    # RMSE on these days, not evidence of skill.
    lower = f"{abs(1 - ratio):.2%} {'lower' if ratio < 1 else 'higher'} than naive's"
    verdict = _verdict_lines(summary)
    return "\n".join(
        [
            f"test split {summary['test_start']} .. {summary['test_end']} "
            f"({summary['n_test']} days), best trial {summary['best_tid']}'s model (trained on "
            "the days before it):",
            f"  {'':<26}{'RMSE':>10}{'MAE':>10}",
            f"  {'LSTM':<26}{summary['rmse']:>10.3f}{summary['mae']:>10.3f}",
            f"  {'naive (tomorrow = today)':<26}{summary['naive_rmse']:>10.3f}"
            f"{summary['naive_mae']:>10.3f}",
            f"  {'ratio LSTM / naive':<26}{summary['rmse_ratio']:>10.4f}"
            f"{summary['mae_ratio']:>10.4f}",
            f"  the model's test RMSE is {lower} (price units)"
            + ("; whether that is more than noise: the verdict below" if verdict else ""),
            *verdict,
        ]
    )


def _verdict_lines(summary: Mapping[str, Any]) -> list[str]:
    from tpetune.stock.evaluation import verdict_lines  # imports pandas

    return verdict_lines(summary)
