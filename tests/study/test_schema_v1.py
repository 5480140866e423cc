"""A study made by the previous release (schema 1) opens, shows and resumes exactly."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tpetune import load_study

FIXTURE = Path(__file__).parents[1] / "fixtures" / "v1_quadratic"


def _same_params(got: dict[str, Any], want: dict[str, Any]) -> bool:
    """The same labels and choices, and floats equal to 1e-12 relative: the same proposals.

    Not bit-equal floats: a log-uniform value can move by one ulp between numpy releases or
    CPUs (trial 7's lr was 0.004702303664689803 when the fixture was made and came out
    ...802 with numpy 2.4.6 on 2026-12-02), and nothing else changes."""
    if got.keys() != want.keys():
        return False
    for label, value in want.items():
        if isinstance(value, float) and not math.isclose(got[label], value, rel_tol=1e-12):
            return False
        if not isinstance(value, float) and got[label] != value:
            return False
    return True


def test_a_schema_1_study_reads_and_resumes_to_what_the_old_release_proposed(
    tmp_path: Path,
) -> None:
    study_dir = tmp_path / "quadratic"
    study_dir.mkdir()
    shutil.copy(FIXTURE / "study.db", study_dir / "study.db")
    old = load_study(study_dir)
    assert len(old.records) == 6 and old.meta["schema_version"] == 1
    shown = subprocess.run(
        [sys.executable, "-m", "tpetune", "show", str(study_dir), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    argv = [sys.executable, "-m", "tpetune", "run", "quadratic", "--max-evals", "10"]
    done = subprocess.run(
        [*argv, "--study-dir", str(study_dir), "--quiet", "--no-plots"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    expected = json.loads((FIXTURE / "expected_10.json").read_text())
    resumed = load_study(study_dir)
    assert [r.tid for r in resumed.records] == [e["tid"] for e in expected]
    for record, old_release in zip(resumed.records, expected, strict=True):
        assert _same_params(record.params, old_release["params"]), (record.tid, record.params)
    assert [r.loss for r in resumed.records] == pytest.approx([e["loss"] for e in expected])
    assert resumed.meta["schema_version"] == 3  # migrated by the writer (schema 3: paused trials)


STOCK = Path(__file__).parents[1] / "fixtures" / "v1_stock"


def test_a_schema_1_stock_study_shows_plots_and_exports(tmp_path: Path) -> None:
    study_dir = tmp_path / "stock"
    shutil.copytree(STOCK, study_dir)
    base = [sys.executable, "-m", "tpetune"]
    for argv in (
        ["show", str(study_dir)],
        ["plot", str(study_dir)],
        ["export", str(study_dir), "--format", "csv", "-o", str(tmp_path / "t.csv")],
    ):
        done = subprocess.run([*base, *argv], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (argv, done.stderr)
    assert (study_dir / "loss_history.png").stat().st_size > 0
    assert (study_dir / "predictions.png").stat().st_size > 0  # the stock study's own plot
    assert len(load_study(study_dir).records) == 3
