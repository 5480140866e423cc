"""``tpetune digits`` end to end: run_digits_study on a subset, resume, refusals, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tpetune.digits import DEFAULT_PATIENCE
from tpetune.engine.options import Serial
from tpetune.errors import ConfigError, DataError
from tpetune.study.store import TrialState

pytest.importorskip("keras")

from tpetune.digits.study import format_summary, run_digits_study

pytestmark = pytest.mark.keras

# In this process (Keras already imported here): worker processes and their resume are
# tested in tests/executors and tests/engine/test_lag.py; here the digits study's own parts.
QUICK = {
    "space": "digits_small",
    "folds": 2,
    "limit": 150,
    "progress": False,
    "executor": Serial(),
}


def test_a_study_runs_resumes_and_extends(tmp_path: Path) -> None:
    study_dir = tmp_path / "study"
    study, summary = run_digits_study(study_dir=study_dir, max_evals=3, **QUICK)
    assert [r.state for r in study.records] == [TrialState.OK] * 3
    assert summary is not None and summary["best_tid"] == study.best.tid
    assert summary["n_train"] == 150 and summary["n_test"] == 360
    assert summary["cv_loss"] == study.best_loss
    assert json.loads((study_dir / "summary.json").read_text()) == summary
    assert study.meta["objective_config"] == {
        "folds": 2,
        "patience": DEFAULT_PATIENCE,
        "limit": 150,
        "data": "sklearn:digits",
    }
    model_mtime = (study_dir / "best_model.keras").stat().st_mtime_ns

    # The bare call resumes with the stored folds, subset and budget: nothing new to do, and
    # the final report is reused because the best trial did not change.
    again, same = run_digits_study(study_dir=study_dir, progress=False, space="digits_small")
    assert len(again.records) == 3 and same == summary
    assert (study_dir / "best_model.keras").stat().st_mtime_ns == model_mtime

    more, _ = run_digits_study(study_dir=study_dir, max_evals=4, **QUICK)
    assert [r.tid for r in more.records] == [0, 1, 2, 3]
    assert [r.params for r in more.records[:3]] == [r.params for r in study.records]

    with pytest.raises(ConfigError, match="made with folds=2, not 3"):
        run_digits_study(study_dir=study_dir, max_evals=4, **{**QUICK, "folds": 3})


def test_format_summary_reads_like_a_report(tmp_path: Path) -> None:
    summary = {
        "best_tid": 4,
        "cv_loss": 0.1234,
        "cv_val_accuracy": 0.961,
        "test_loss": 0.1,
        "test_accuracy": 0.975,
        "macro_f1": 0.9749,
        "per_class": {
            str(d): {"precision": 0.9, "recall": 1.0, "f1": 0.95, "support": 36} for d in range(10)
        },
        "n_train": 1437,
        "n_test": 360,
        "epochs": 12,
        "data": "sklearn:digits",
    }
    text = format_summary(summary)
    assert text.splitlines()[0] == (
        "test split: 360 images (scikit-learn 8x8 digits), best trial 4 retrained on all 1437 "
        "training images for 12 epochs:"
    )
    assert "test accuracy           97.50%   (macro F1 0.9749)" in text
    assert "(val accuracy 96.10%)" in text
    assert "  recall      1.00  1.00" in text


def test_bad_data_is_refused_before_the_study_folder_exists(tmp_path: Path) -> None:
    study_dir = tmp_path / "study"
    with pytest.raises(DataError, match="not found"):
        run_digits_study(study_dir=study_dir, mnist=tmp_path / "missing.npz", **QUICK)
    with pytest.raises(DataError, match="fewer than the 20 folds"):
        run_digits_study(study_dir=study_dir, **{**QUICK, "folds": 20, "limit": 100})
    assert not study_dir.exists()


def test_cli_digits_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tpetune.cli.main import main

    study_dir = tmp_path / "cli"
    argv = ["digits", "--space", "digits_small", "--max-evals", "2", "--folds", "2"]
    assert main([*argv, "--study-dir", str(study_dir), "--quiet", "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out
    summary = json.loads((study_dir / "summary.json").read_text())
    assert summary["n_train"] == 1437 and summary["n_test"] == 360
