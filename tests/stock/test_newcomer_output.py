"""What a newcomer sees on stdout (issue 26, items 14 and 15): no Keras line per fold for a
diverged trial, and a verdict said once. The report's files named, no leading blank line and
no stale lock file are checked on the real command's first run in
``tests/stock/test_stock_cli.py``, which runs it anyway."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_a_diverging_digits_trial_is_told_once_through_logging_not_per_fold_on_stdout(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("keras")
    from tpetune.digits.data import load_digits_data
    from tpetune.digits.objective import DigitsObjective
    from tpetune.trial.context import TrialContext, trial_scope

    objective = DigitsObjective(data=load_digits_data(limit=120), folds=3)
    params = {
        "hidden_layers": {"layers": 1, "units1": 16},
        "activation": "relu",
        "initializer": "he_normal",
        "optimizer": {"name": "sgd", "momentum": 0.9, "nesterov": False},
        "schedule": {"name": "exponential", "rate": 0.9},
        "lr": 1e12,  # diverges in the first batches of every fold
        "batch_size": 8,
        "epochs": 2,
    }
    with caplog.at_level(logging.INFO, logger="tpetune"):
        for tid in (0, 1):
            with trial_scope(TrialContext(tid=tid, seed=tid)):
                objective(params)
    out = capfd.readouterr().out
    assert "Invalid loss" not in out
    told = [r.getMessage() for r in caplog.records if "training stopped" in r.getMessage()]
    assert len(told) == 2 and told[0].startswith("trial 0: the loss became"), told


def test_the_verdict_is_part_of_a_plain_install_and_said_once_at_a_ratio_of_0_9993() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert {d.split(">")[0] for d in deps} >= {"statsmodels", "arch"}

    from tpetune.stock.study import format_summary

    summary = {
        "test_start": "2017-07-03", "test_end": "2018-12-31", "n_test": 377, "best_tid": 7,
        "rmse": 25.983, "mae": 17.1, "naive_rmse": 26.001, "naive_mae": 17.0,
        "rmse_ratio": 0.9993, "mae_ratio": 1.006,
        "verdict": "no evidence that the model beats tomorrow = today (DM p = 0.45)",
    }  # fmt: skip
    text = format_summary(summary)
    assert "beats the naive forecast" not in text and "0.07% lower than naive's" in text
    assert sum("beat" in line for line in text.splitlines()) == 1, text


def test_without_statsmodels_and_arch_the_install_line_is_said_once_and_fits_a_clone() -> None:
    code = """
import sys
sys.modules["statsmodels"] = sys.modules["statsmodels.tsa.stattools"] = None
sys.modules["arch"] = sys.modules["arch.bootstrap"] = None
import numpy as np
import pandas as pd
from tpetune.stock.evaluation import folds_summary as _folds_summary
from tpetune.stock.verdict import forecast_verdict, format_verdict
from tpetune.stock.evaluation import format_folds
rng = np.random.default_rng(0)
y = 100 + np.cumsum(rng.normal(0, 1, 120))
naive = np.r_[y[0], y[:-1]]
model = naive + rng.normal(0, 0.1, 120)
v = forecast_verdict(y, model, naive, train=y[:60])
days = pd.bdate_range("2020-01-01", periods=120).strftime("%Y-%m-%d")
blocks = [1] * 60 + [2] * 60
frame = pd.DataFrame({"actual": y, "predicted": model, "naive": naive, "block": blocks}, days)
v["test_folds"] = _folds_summary(frame)
print(format_verdict(v))
print(format_folds(v["test_folds"]))
"""
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("pip install") == 1, done.stdout
    assert "tpetune[verdict]" not in done.stdout
