"""report / should_prune / TrialPruned from a plain-Python objective: serially, in worker
processes, through the CLI, and across a crash (recorded rung decisions replay)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from hyperopt import hp

import tpetune
from tpetune import ASHAPruner, MedianPruner, NoPruner, Search, TrialState, Workers, load_study
from tpetune.pruners.policies import Decision, MemoryBoard

SPACE = {"x": hp.uniform("x", 0.0, 1.0)}
EPOCHS = 9


def objective(params: dict[str, float]) -> float:
    """A learning curve that flattens at (x - 0.3)^2: bad x are hopeless from epoch 1."""
    value = 0.0
    for epoch in range(1, EPOCHS + 1):
        value = (params["x"] - 0.3) ** 2 + 1.0 / epoch
        tpetune.report(epoch, value)
        if tpetune.should_prune():
            raise tpetune.TrialPruned()
    return value


def _rows(study_dir: Path) -> list[tuple[int, int, float, int | None, float | None, int | None]]:
    with sqlite3.connect(study_dir / "study.db") as conn:
        return list(
            conn.execute(
                "SELECT tid, step, value, rung, rung_value, pruned FROM steps ORDER BY rowid"
            )
        )


def test_outside_a_study_report_does_nothing_and_should_prune_is_false() -> None:
    assert objective({"x": 0.3}) == pytest.approx(1.0 / EPOCHS)
    assert tpetune.should_prune() is False
    tpetune.report(0, 1.0)  # step 0 is a step (Keras and Optuna count epochs from 0)
    with pytest.raises(tpetune.ConfigError, match="step=.*non-negative integer"):
        tpetune.report(-1, 1.0)


def zero_based(params: dict[str, float]) -> float:
    """:func:`objective` reporting epochs counted from 0, as Optuna users and Keras do."""
    value = 0.0
    for epoch in range(EPOCHS):
        value = (params["x"] - 0.3) ** 2 + 1.0 / (epoch + 1)
        tpetune.report(epoch, value)
        if tpetune.should_prune():
            raise tpetune.TrialPruned()
    return value


@pytest.mark.parametrize("pruner", [ASHAPruner(), MedianPruner(warmup_trials=3, warmup_steps=2)])
def test_steps_from_0_prune_exactly_as_steps_from_1(tmp_path: Path, pruner: Any) -> None:
    """The pruners count the values reported as the steps done, so reporting epoch 0, 1, ...
    decides (rungs, warm-up, median reference) exactly as reporting 1, 2, ... does."""
    studies = {}
    for name, fn in (("one", objective), ("zero", zero_based)):
        studies[name] = tpetune.tune(
            fn,
            SPACE,
            study_dir=tmp_path / name,
            max_evals=15,
            search=Search(seed=3),
            pruner=pruner,
            progress=False,
        )
    one, zero = studies["one"].records, studies["zero"].records
    assert [r.state for r in one] == [r.state for r in zero]
    assert TrialState.PRUNED in [r.state for r in one]
    assert [r.loss for r in one] == [r.loss for r in zero]
    rows_one, rows_zero = _rows(tmp_path / "one"), _rows(tmp_path / "zero")
    assert [(t, s - 1, *rest) for t, s, *rest in rows_one] == rows_zero  # labels shift only
    assert min(s for _, s, *_ in rows_zero) == 0


def test_asha_prunes_a_plain_objective_through_the_library(tmp_path: Path) -> None:
    study = tune_asha(tmp_path, max_evals=24)
    states = [r.state for r in study.records]
    assert TrialState.PRUNED in states and TrialState.OK in states
    for r in study.records:
        steps = [v for (tid, _, v, *_rest) in _rows(tmp_path) if tid == r.tid]
        assert r.curves["val_loss"] == pytest.approx(steps)  # the reported curve is stored
        if r.state is TrialState.PRUNED:
            assert len(steps) <= EPOCHS and r.loss == pytest.approx(min(steps))
        else:
            assert len(steps) == EPOCHS
    assert load_study(tmp_path).meta["pruner"] == ASHAPruner().to_json()
    # Pruned trials train fewer epochs: the point of pruning.
    assert sum(len(r.curves["val_loss"]) for r in study.records) < 24 * EPOCHS


def tune_asha(study_dir: Path, max_evals: int, **kwargs: Any) -> tpetune.Study:
    return tpetune.tune(
        objective,
        SPACE,
        study_dir=study_dir,
        max_evals=max_evals,
        pruner=ASHAPruner(),
        progress=False,
        **kwargs,
    )


def test_every_rung_decision_is_the_rule_applied_in_commit_order_with_two_workers(
    tmp_path: Path,
) -> None:
    """Two workers reach the same rung at once: each decision was taken inside its own
    transaction, so replaying the rows in commit order reproduces every decision."""
    tune_asha(tmp_path, max_evals=16, executor=Workers(2))
    rule, board = ASHAPruner(), MemoryBoard()
    rung_rows = [row for row in _rows(tmp_path) if row[3] is not None]
    assert len({row[0] for row in rung_rows if row[3] == 0}) == 16  # every trial hit rung 0
    for tid, step, _value, rung, rung_value, pruned in rung_rows:
        assert rung_value is not None
        again = rule.decide(tid, step, [rung_value], board)
        assert again == Decision(bool(pruned), rung, rung_value)
        board.record(tid, again)


def test_a_crashed_trial_replays_its_recorded_decisions_and_the_study_matches(
    tmp_path: Path,
) -> None:
    straight = tune_asha(tmp_path / "straight", max_evals=12, search=Search(seed=3))
    calls = {"n": 0}

    def crashes_once(params: dict[str, float]) -> float:
        calls["n"] += 1
        if calls["n"] == 8:  # trial 7, after its rung decisions at steps 1 and 3
            for epoch in range(1, 5):
                tpetune.report(epoch, (params["x"] - 0.3) ** 2 + 1.0 / epoch)
            _ctrl_c()
        return objective(params)

    study_dir = tmp_path / "crashed"
    kwargs: dict[str, Any] = {
        "study_dir": study_dir,
        "max_evals": 12,
        "pruner": ASHAPruner(),
        "search": Search(seed=3),
        "progress": False,
    }
    with pytest.raises(KeyboardInterrupt):
        tpetune.tune(crashes_once, SPACE, **kwargs)
    left = [row for row in _rows(study_dir) if row[0] == 7]
    assert [row[1] for row in left] == [1, 2, 3, 4] and left[0][3] == 0  # stored as it ran
    resumed = tpetune.tune(crashes_once, SPACE, **kwargs)
    assert [(r.params, r.state, r.loss) for r in resumed.records] == [
        (r.params, r.state, r.loss) for r in straight.records
    ]


def test_the_median_rule_and_no_pruner_on_the_same_seam(tmp_path: Path) -> None:
    median = tpetune.tune(
        objective,
        SPACE,
        study_dir=tmp_path / "median",
        max_evals=15,
        pruner=MedianPruner(warmup_trials=3, warmup_steps=1),
        progress=False,
    )
    assert any(r.state is TrialState.PRUNED for r in median.records)
    none = tpetune.tune(
        objective, SPACE, study_dir=tmp_path / "none", max_evals=6, pruner=NoPruner()
    )
    assert all(r.state is TrialState.OK for r in none.records)
    assert all(len(r.curves["val_loss"]) == EPOCHS for r in none.records)


def test_a_resume_with_another_pruner_is_refused_naming_the_fix(tmp_path: Path) -> None:
    tune_asha(tmp_path, max_evals=2)
    with pytest.raises(
        tpetune.ConfigError, match="made with pruner ASHAPruner, not MedianPruner: leave pruner"
    ):
        tpetune.tune(objective, SPACE, study_dir=tmp_path, max_evals=3, pruner=MedianPruner())
    other = ASHAPruner(min_steps=1, reduction_factor=2)
    with pytest.raises(
        tpetune.ConfigError, match=r"made with ASHAPruner.reduction_factor=3 \(not 2\): "
    ):
        tpetune.tune(objective, SPACE, study_dir=tmp_path, max_evals=3, pruner=other)
    assert len(tune_asha(tmp_path, max_evals=3).records) == 3  # the same pruner resumes


def test_tpetune_run_file_with_prune_asha(tmp_path: Path) -> None:
    source = tmp_path / "curvy.py"
    source.write_text(
        textwrap.dedent(
            """
            from hyperopt import hp
            import tpetune

            space = {"x": hp.uniform("x", 0.0, 1.0)}

            def objective(params):
                value = 0.0
                for epoch in range(1, 10):
                    value = (params["x"] - 0.3) ** 2 + 1.0 / epoch
                    tpetune.report(epoch, value)
                    if tpetune.should_prune():
                        raise tpetune.TrialPruned()
                return value
            """
        )
    )
    study_dir = tmp_path / "study"
    argv = [sys.executable, "-m", "tpetune", "run", str(source), "--max-evals", "20"]
    argv += ["--study-dir", str(study_dir), "--prune", "asha", "--prune-reduction-factor", "2"]
    argv += ["--quiet", "--no-plots"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    study = load_study(study_dir)
    assert study.meta["pruner"] == ASHAPruner(reduction_factor=2).to_json()
    assert sum(r.state is TrialState.PRUNED for r in study.records) > 0
    stray = subprocess.run(
        [*argv[:-2], "--prune-min-epochs", "2", "--prune", "median"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert stray.returncode == 2
    assert "--prune-min-epochs applies to --prune asha only" in stray.stderr


def test_no_submodule_shadows_the_trial_side_functions() -> None:
    """``import tpetune.X`` sets ``tpetune.X``: a module named like report/should_prune would
    replace the function for every objective after the CLI imported it."""
    import importlib
    import pkgutil

    for info in pkgutil.walk_packages(tpetune.__path__, "tpetune."):
        if not info.name.startswith(("tpetune.spaces", "tpetune.__main__")):
            importlib.import_module(info.name)
    assert callable(tpetune.report) and tpetune.report.__module__ == "tpetune.trial.report"
    assert tpetune.should_prune.__module__ == "tpetune.trial.report"
    assert tpetune.TrialPruned.__module__ == "tpetune.trial.report"


def _ctrl_c() -> None:
    """A real Ctrl-C (SIGINT) in the middle of a trial; a KeyboardInterrupt the objective
    raised itself would fail its trial instead (tpetune._signals)."""
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(60)  # the signal's KeyboardInterrupt ends this at once
