"""`tpetune stock` end to end on a short synthetic series and the small space: the store,
the kept model, the summary and its verdict, the plots, resume and extension."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tpetune.cli.main import main
from tpetune.stock.evaluation import fold_marks
from tpetune.study.study import load_study

ROOT = Path(__file__).resolve().parents[2]


def _write_prices(path: Path, n: int = 260, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0003, 0.01, n)))
    frame = pd.DataFrame(
        {
            "Date": pd.bdate_range("2020-01-01", periods=n).strftime("%Y-%m-%d"),
            "Open": close * (1 + rng.normal(0, 0.002, n)),
            "High": close * 1.01,
            "Low": close * 0.99,
            "Close": close,
            "Adj Close": close,
            "Volume": rng.integers(1_000_000, 2_000_000, n),
        }
    )
    frame.to_csv(path, index=False)
    return path


@pytest.mark.keras
def test_three_trials_write_store_model_summary_plots_and_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first run is the real command in its own process, as a newcomer runs it (issue 26,
    items 14 and 15: its files named, no leading blank line, no stale lock, the verdict and
    the install line said at most once); the resumes run in-process."""
    csv = _write_prices(tmp_path / "prices.csv")
    study_dir = tmp_path / "study"
    argv = ["stock", "--csv", str(csv), "--space", "stock_small", "--epochs", "1",
            "--max-evals", "3", "--test-folds", "2", "--study-dir", str(study_dir)]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "tpetune", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.strip() and not out.startswith("\n"), out[:200]
    assert "naive (tomorrow = today)" in out and "ratio LSTM / naive" in out
    files = next(line for line in out.splitlines() if line.startswith("files:"))
    for name in ("summary.json", "best_model.keras", "predictions.csv", "test_folds.csv"):
        assert str(study_dir / name) in files, name
    assert not (study_dir / "lock").exists()  # removed on a clean exit: no stale pid
    assert "beats the naive forecast on RMSE" not in out
    assert out.count("pip install") <= 1
    for name in (
        "study.db",
        "best_model.keras",
        "summary.json",
        "predictions.csv",
        "test_folds.csv",
        "loss_history.png",
        "learning_curves.png",
        "params.png",
        "predictions.png",
    ):
        assert (study_dir / name).is_file(), name
    summary = json.loads((study_dir / "summary.json").read_text())
    assert summary["rmse_ratio"] == pytest.approx(summary["rmse"] / summary["naive_rmse"])
    study = load_study(study_dir)
    assert len(study.records) == 3 and summary["best_tid"] == study.best.tid  # type: ignore[union-attr]
    assert all(r.curves.get("val_loss") for r in study.records)
    assert study.meta["objective_config"]["epochs"] == 1
    # The verdict: printed and stored, over the best and the two other trials, two test blocks.
    sig = summary["significance"]
    assert summary["verdict"] == sig["verdict"] and summary["verdict"] in out
    assert 0.0 <= sig["dm"]["mse"]["p_better"] <= 1.0 and 0.0 <= sig["spa_p"] <= 1.0
    assert sig["spa_models"] == 3
    assert [b["block"] for b in sig["test_folds"]["blocks"]] == [1, 2]
    assert "rolling origin, 2 test blocks" in out and "Diebold-Mariano" in out
    marks = fold_marks(study_dir)
    assert [m.block for m in marks] == [1, 2]
    assert marks[0].rmse_ratio == pytest.approx(sig["test_folds"]["blocks"][0]["rmse_ratio"])

    # The bare command again (stored epochs and data are the defaults) adds nothing.
    again = [
        "stock",
        "--csv",
        str(csv),
        "--space",
        "stock_small",
        "--study-dir",
        str(study_dir),
        "--quiet",
        "--no-plots",
    ]
    assert main(again) == 0
    assert len(load_study(study_dir).records) == 3
    # A larger budget continues the same study.
    assert main([*again, "--max-evals", "4"]) == 0
    assert [r.tid for r in load_study(study_dir).records] == [0, 1, 2, 3]
    capsys.readouterr()
    # Other data for the same study is refused.
    other = _write_prices(tmp_path / "other.csv", seed=1)
    assert (
        main(
            [
                "stock",
                "--csv",
                str(other),
                "--space",
                "stock_small",
                "--study-dir",
                str(study_dir),
                "--quiet",
            ]
        )
        == 2
    )
    assert "data=" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("Date,Open,High,Low,Volume\n2020-01-01,1,1,1,1\n", "Close"),
        ("Date,Open,High,Low,Close,Volume\n2020-01-01,1,1,1,abc,1\n", "non-numeric"),
    ],
)
def test_bad_data_exits_2_before_touching_the_study(
    tmp_path: Path, content: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text(content)
    study_dir = tmp_path / "study"
    assert main(["stock", "--csv", str(csv), "--study-dir", str(study_dir), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not study_dir.exists()


def test_missing_csv_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["stock", "--csv", str(tmp_path / "nope.csv"), "--study-dir", str(tmp_path / "s")])
        == 2
    )
    assert "nope.csv" in capsys.readouterr().err


def test_stock_help_shows_the_real_default_budget() -> None:
    from tpetune.cli.main import build_parser
    from tpetune.stock.objective import DEFAULT_EPOCHS, DEFAULT_MAX_EVALS, DEFAULT_PATIENCE

    sub = next(a for a in build_parser()._actions if hasattr(a, "choices") and a.choices)
    text = " ".join(sub.choices["stock"].format_help().split())
    assert f"default: {DEFAULT_MAX_EVALS};" in text
    assert f"(default {DEFAULT_EPOCHS}; early stopping after {DEFAULT_PATIENCE} " in text


@pytest.mark.keras
def test_a_series_too_short_for_the_space_exits_2_before_the_study_exists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # stock_small proposes time_steps up to 20, which needs 54 days; the check names that one.
    csv = _write_prices(tmp_path / "short.csv", n=45)
    study_dir = tmp_path / "study"
    argv = ["stock", "--csv", str(csv), "--space", "stock_small", "--study-dir", str(study_dir)]
    assert main([*argv, "--quiet", "--max-evals", "1", "--epochs", "1", "--no-plots"]) == 2
    err = capsys.readouterr().err.strip()
    assert "time_steps=20" in err and len(err.splitlines()) == 1
    assert not study_dir.exists()
