"""`tpetune replay`: one trial re-run exactly, the study untouched, a changed space refused."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import tpetune
from tpetune.cli.main import main
from tpetune.engine.rerun import replay

#: A deterministic objective that uses its trial's seed (so a wrong seed would show).
SPACE_FILE = """
import random

from hyperopt import hp

import tpetune

space = {"x": hp.uniform("x", -3, 3), "opt": hp.choice("opt", ["sgd", {"name": "adam",
         "beta": hp.uniform("beta", 0.8, 0.99)}])}


def objective(p):
    ctx = tpetune.current_trial()
    rng = random.Random(ctx.seed if ctx else 0)
    noise = [rng.random() for _ in range(3)]
    extra = 0.0 if p["opt"] == "sgd" else p["opt"]["beta"]
    curve = [(p["x"] - 1) ** 2 + extra + n / (e + 1) for e, n in enumerate(noise)]
    return {"loss": min(curve), "curves": {"val_loss": curve}}
"""


@pytest.fixture
def study(tmp_path: Path) -> tuple[Path, Path]:
    space = tmp_path / "space.py"
    space.write_text(SPACE_FILE)
    study_dir = tmp_path / "study"
    args = ["run", str(space), "--study-dir", str(study_dir), "--max-evals", "6"]
    assert main([*args, "--quiet", "--no-plots"]) == 0
    return space, study_dir


def _digest(study_dir: Path) -> str:
    return hashlib.sha256((study_dir / "study.db").read_bytes()).hexdigest()


def test_replay_reproduces_the_loss_and_curves_exactly(
    study: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, study_dir = study
    before = _digest(study_dir)
    capsys.readouterr()
    assert main(["replay", str(study_dir), "4", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    stored = tpetune.load_study(study_dir).records[4]
    assert doc["identical"] is True
    assert doc["replayed"]["loss"] == stored.loss == doc["stored"]["loss"]
    assert doc["replayed"]["curves"] == stored.curves
    assert _digest(study_dir) == before  # the study is untouched
    assert main(["replay", str(study_dir), "4"]) == 0
    text = capsys.readouterr().out
    assert "identical" in text and "val_loss per epoch" in text and repr(stored.loss) in text


def test_a_wrong_seed_would_show(study: tuple[Path, Path]) -> None:
    space, study_dir = study
    import runpy

    objective = runpy.run_path(str(space))["objective"]
    result = replay(study_dir, 2, objective=lambda p: objective(p))
    assert result.identical  # the same function, the same seed
    import tpetune.trial.context as context

    stored = tpetune.load_study(study_dir).records[2]
    with context.trial_scope(context.TrialContext(2, 12345)):
        other = objective(stored.args)
    assert other["curves"]["val_loss"] != stored.curves["val_loss"]


def test_replay_after_editing_the_space_file_is_refused_without_force(
    study: tuple[Path, Path], tmp_path: Path
) -> None:
    space, study_dir = study
    space.write_text(SPACE_FILE.replace("n / (e + 1)", "n / (e + 2)"))
    done = subprocess.run(
        [sys.executable, "-m", "tpetune", "replay", str(study_dir), "1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "changed since the study recorded it" in lines[0]
    assert "--force" in lines[0]
    forced = subprocess.run(
        [sys.executable, "-m", "tpetune", "replay", str(study_dir), "1", "--force", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert forced.returncode == 0, forced.stderr
    doc = json.loads(forced.stdout)
    assert doc["identical"] is False and any("forced" in n for n in doc["notes"])


def test_a_study_made_in_code_replays_with_its_objective_and_space(tmp_path: Path) -> None:
    import runpy

    ns = runpy.run_path(str(_write(tmp_path)))
    tpetune.fmin(ns["objective"], ns["space"], max_evals=4, verbose=False, study_dir=tmp_path / "s")
    found = replay(tmp_path / "s", 1)  # from the file that defined the objective (its origin)
    assert found.identical
    result = replay(tmp_path / "s", 1, objective=ns["objective"], space=ns["space"])
    assert result.identical and result.loss == tpetune.load_study(tmp_path / "s").records[1].loss


def _write(folder: Path) -> Path:
    path = folder / "space.py"
    path.write_text(SPACE_FILE)
    return path


def test_unknown_trial(study: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(study[1]), "99"]) == 2
    assert "has no trial 99 (its trials are 0..5)" in capsys.readouterr().err


def test_a_stock_study_made_from_a_csv_file_says_why_it_cannot_be_replayed(
    tmp_path: Path,
) -> None:
    from hyperopt import hp

    from tpetune.engine.rerun import _bundled_objective

    meta = {"objective_config": {"epochs": 2, "folds": None, "data": "good.csv:b4999aa6"}}
    built, reasons = _bundled_objective(meta, tmp_path, {"x": hp.uniform("x", 0, 1)}, "s.py")
    assert built is None and len(reasons) == 1
    assert "tpetune stock --csv" in reasons[0] and "does not store the prices" in reasons[0]
