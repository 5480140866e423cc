"""The stock study's final report: every fit it needs in one batch, run in the study's executor.

What the report needs (:mod:`tpetune.stock.evaluation` says what each part means) and where
each comes from:

- **The best trial's test forecast** (``predictions.csv``, ``best_model.keras``): its kept
  model, ``STUDY/models/<tid>.keras``. A trial of one split trains exactly the final report's
  fit: the same params, training seed, train and validation days, early stopping and best
  weights; the trial's extra callbacks (epoch log, backup, pruning) change no weight, and
  Keras seeds every random draw from the trial's seed. So the kept model *is* the retrain, and
  it is evaluated instead of trained again (``tests/stock/test_stock_report.py`` checks that a
  retrain predicts exactly the same). Where the two could differ, the kept model is the right
  one: it is the model the search measured (a trial resumed from a backup after a crash
  restarts early stopping's patience). Retrained only where no model was kept: a study of
  ``--folds K`` (a trial of several folds keeps none: its folds are other splits than the
  report's), a trial run on a Spark executor that cannot see the study folder, or a study
  made before trials kept models.
- **The SPA test's top K** other trials: the same, from their kept models (the study keeps at
  least :data:`~tpetune.stock.evaluation.DEFAULT_SPA_TOP`, see
  :attr:`~tpetune.stock.study.StockStudy.keep_models`).
- **Rolling-origin blocks 2..k**: retrained by design, on the days before each block, which no
  trial saw. Block 1 is the best trial's forecast.

The fits and evaluations run as :func:`tpetune.executors.calls.run_calls` jobs: in the study's
worker processes, with the trials' thread settings, in parallel with ``--workers 2``; retrains
first (the longest last block first), then the kept models' forecasts.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tpetune.errors import DataError
from tpetune.executors.calls import Call, run_calls
from tpetune.stock.evaluation import (
    DEFAULT_SPA_TOP,
    DEFAULT_TEST_FOLDS,
    FOLDS_CSV,
    block_forecast,
    block_split,
    folds_summary,
    kept_model,
    read_forecast,
    rolling_blocks,
)
from tpetune.stock.verdict import forecast_verdict
from tpetune.stock.windows import split_sizes
from tpetune.trial.context import derive_seed

if TYPE_CHECKING:
    from tpetune.engine.options import ExecutorOption
    from tpetune.stock.objective import StockObjective
    from tpetune.study.store import TrialRecord
    from tpetune.study.study import Study

__all__ = ["StockReportFits", "stock_report"]


class StockReportFits:
    """The report's jobs on one objective (the target of :func:`run_calls`)."""

    def __init__(self, objective: StockObjective) -> None:
        self.objective = objective

    def report(
        self,
        params: Any,
        *,
        seed: int,
        out_dir: str,
        model: str | None = None,
        history: dict[str, list[float]] | None = None,
    ) -> dict[str, Any]:
        """:meth:`StockObjective.final_report` into ``out_dir``, from ``model`` when given."""
        return self.objective.final_report(
            params, out_dir=Path(out_dir), seed=seed, model=model, history=history
        )

    def forecast(self, params: Any, *, seed: int, model: str | None = None) -> pd.DataFrame:
        """The test split's forecast of ``model``, or of ``params`` retrained with ``seed``."""
        return self.objective.test_forecast(params, seed=seed, model=model)

    def block(
        self, params: Any, *, seed: int, stop: int, split: tuple[float, float, float]
    ) -> pd.DataFrame:
        """One rolling-origin block: :func:`~tpetune.stock.evaluation.block_forecast`."""
        return block_forecast(self.objective, params, seed=seed, stop=stop, split=split)


def stock_report(
    objective: StockObjective,
    study: Study,
    best: TrialRecord,
    *,
    seed: int,
    out_dir: Path,
    test_folds: int | None = None,
    spa_top: int = DEFAULT_SPA_TOP,
    executor: ExecutorOption | None = None,
) -> dict[str, Any]:
    """The stock study's final report of ``best`` (trained with ``seed``) into ``out_dir``.

    Returns:
        :meth:`StockObjective.final_report`'s summary without ``curves``, plus
        ``best_trial_loss``, ``verdict`` (words) and ``significance``
        (:func:`~tpetune.stock.verdict.forecast_verdict`'s numbers and ``test_folds``); a
        verdict that cannot be made (too many ``test_folds`` for the test split, a diverged
        forecast) is ``"no verdict: <why>"`` without ``significance``.
    """
    k = DEFAULT_TEST_FOLDS if test_folds is None else test_folds
    n_rows = len(objective.prices)
    _, n_val, _ = split_sizes(n_rows, objective.split)
    try:
        blocks = rolling_blocks(n_rows, k, split=objective.split)
    except DataError as exc:
        blocks, no_verdict = [], f"no verdict: {exc}"
    else:
        no_verdict = ""
    retrains = [
        Call(
            "block",
            {
                "params": best.args,
                "seed": seed,
                "stop": days.stop,
                "split": block_split(days.stop, n_val, len(days)),
            },
        )
        for days in reversed(blocks[1:])  # the longest fit first
    ]
    main = _main_call(study, best, seed=seed, out_dir=out_dir)
    others = []
    if blocks and spa_top > 1 and importlib.util.find_spec("arch") is not None:  # else no SPA
        for record in study.top(spa_top):
            if record.tid != best.tid:
                trial_seed = derive_seed(int(study.meta["seed"]), record.tid, "objective")
                model = kept_model(study, record)
                others.append(
                    Call("forecast", {"params": record.args, "seed": trial_seed, "model": model})
                )
    # Retrains first, so that with two workers they start at once; kept models' forecasts after.
    calls = [*retrains, *(c for c in [main, *others] if c.kwargs.get("model") is None)]
    calls += [c for c in [main, *others] if c.kwargs.get("model") is not None]
    results = run_calls(StockReportFits(objective), calls, executor=executor)
    values = dict(zip(map(id, calls), results, strict=True))
    summary = dict(values[id(main)])
    summary.pop("curves", None)
    report = {"best_trial_loss": best.loss, **summary}
    if no_verdict:
        return {**report, "verdict": no_verdict}
    first = read_forecast(out_dir)
    frames = [first.iloc[: len(blocks[0])], *(values[id(c)] for c in reversed(retrains))]
    try:
        significance = _significance(
            objective,
            first,
            [values[id(c)]["predicted"].to_numpy(float) for c in others],
            frames,
            blocks,
            seed=seed,
            out_dir=out_dir,
        )
    except DataError as exc:  # e.g. a diverged forecast: say so
        return {**report, "verdict": f"no verdict: {exc}"}
    return {**report, "verdict": significance["verdict"], "significance": significance}


def _main_call(study: Study, best: TrialRecord, *, seed: int, out_dir: Path) -> Call:
    model = kept_model(study, best)
    history = {k: list(v) for k, v in best.curves.items()} if model is not None else None
    kwargs = {"params": best.args, "seed": seed, "out_dir": str(out_dir)}
    return Call("report", {**kwargs, "model": model, "history": history})


def _significance(
    objective: StockObjective,
    main: pd.DataFrame,
    alternatives: list[np.ndarray],
    frames: list[pd.DataFrame],
    blocks: list[range],
    *,
    seed: int,
    out_dir: Path,
) -> dict[str, Any]:
    n_train, _, _ = split_sizes(len(objective.prices), objective.split)
    train_close = objective.prices["Close"].to_numpy(float)[:n_train]
    # A diverged alternative (NaN forecast) is no candidate; the SPA tests the others.
    alternatives = [a for a in alternatives if np.isfinite(a).all()]
    y, f, b = (main[c].to_numpy(float) for c in ("actual", "predicted", "naive"))
    summary = forecast_verdict(y, f, b, train=train_close, alternatives=alternatives, seed=seed)
    parts = []
    for j, (frame, days) in enumerate(zip(frames, blocks, strict=True)):
        if len(frame) != len(days):
            raise DataError(f"test fold {j + 1} forecast {len(frame)} days, not {len(days)}")
        parts.append(frame.assign(block=j + 1))
    folds = pd.concat(parts)
    folds.to_csv(out_dir / FOLDS_CSV)
    summary["test_folds"] = folds_summary(folds)
    return summary
