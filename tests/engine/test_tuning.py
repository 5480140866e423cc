"""tune(): resume, determinism, failure policy and stop rules, on a fast quadratic objective."""

from __future__ import annotations

import math
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from hyperopt import hp

from tpetune import (
    ConfigError,
    ObjectiveError,
    SearchFailedError,
    SpaceError,
    SpaceMismatchError,
    TrialState,
    load_study,
    tune,
)
from tpetune.engine.options import Search, StopRules
from tpetune.search.space import load_file

QUAD = load_file("quadratic", need_objective=True)
SPACE, OBJECTIVE = QUAD["space"], QUAD["objective"]
FAST_TPE = Search(options={"n_startup_jobs": 4})  # reach the TPE phase within a few trials


def _history(study_dir: Path) -> list[tuple[int, str, Any, float | None]]:
    return [(r.tid, r.state.value, r.params, r.loss) for r in load_study(study_dir).records]


def test_best_args_are_what_the_objective_received(tmp_path: Path) -> None:
    seen: list[Any] = []

    def objective(params: Any) -> Any:
        seen.append(params)
        return OBJECTIVE(params)

    study = tune(objective, SPACE, study_dir=tmp_path, max_evals=15, progress=False)
    assert study.best is not None and study.best_loss == study.best.loss
    assert study.best_args == seen[study.best.tid]
    assert OBJECTIVE(study.best_args)["loss"] == study.best_loss
    assert load_study(tmp_path).best_args == study.best_args  # the stored JSON copy
    assert isinstance(study.best_args["optimizer"], str)  # a value, never an index
    assert study.best_params == study.best.params  # flat label -> value, as in Optuna


def test_max_evals_is_the_study_total_and_reruns_continue(tmp_path: Path) -> None:
    tune(OBJECTIVE, SPACE, study_dir=tmp_path, max_evals=6, progress=False)
    study = tune(OBJECTIVE, SPACE, study_dir=tmp_path, max_evals=6, progress=False)
    assert len(study.records) == 6  # the same command again adds nothing
    study = tune(OBJECTIVE, SPACE, study_dir=tmp_path, max_evals=10, progress=False)
    assert [r.tid for r in study.records] == list(range(10))


def test_resumed_study_equals_an_uninterrupted_one(tmp_path: Path) -> None:
    straight = tmp_path / "straight"
    tune(OBJECTIVE, SPACE, study_dir=straight, max_evals=24, search=FAST_TPE, progress=False)

    interrupted = tmp_path / "interrupted"
    calls = {"n": 0}

    def flaky_process(params: Any) -> Any:
        # Ctrl-C in the middle of trials 5, 11 and 17, as a user or a crash would.
        calls["n"] += 1
        if calls["n"] in (6, 13, 20):
            _ctrl_c()
        return OBJECTIVE(params)

    for _ in range(3):
        with pytest.raises(KeyboardInterrupt):
            tune(
                flaky_process,
                SPACE,
                study_dir=interrupted,
                max_evals=24,
                search=FAST_TPE,
                progress=False,
            )
        assert load_study(interrupted).records[-1].state is TrialState.RUNNING
    tune(
        flaky_process,
        SPACE,
        study_dir=interrupted,
        max_evals=24,
        search=FAST_TPE,
        progress=False,
    )
    assert _history(interrupted) == _history(straight)


def test_a_trial_running_at_a_crash_is_rerun_with_the_same_params(tmp_path: Path) -> None:
    received: list[Any] = []

    def crash_on_third(params: Any) -> Any:
        received.append(params)
        if len(received) == 3:
            _ctrl_c()
        return OBJECTIVE(params)

    with pytest.raises(KeyboardInterrupt):
        tune(crash_on_third, SPACE, study_dir=tmp_path, max_evals=5, progress=False)
    stale = load_study(tmp_path).records[2]
    assert stale.state is TrialState.RUNNING
    tune(crash_on_third, SPACE, study_dir=tmp_path, max_evals=5, progress=False)
    assert received[3] == received[2]  # same params on resume
    assert load_study(tmp_path).records[2].state is TrialState.OK


def test_a_crashed_trial_reruns_when_the_resume_asks_for_fewer_trials(tmp_path: Path) -> None:
    received: list[Any] = []

    def crash_on_fourth(params: Any) -> Any:
        received.append(params)
        if len(received) == 4:
            _ctrl_c()
        return OBJECTIVE(params)

    with pytest.raises(KeyboardInterrupt):
        tune(crash_on_fourth, SPACE, study_dir=tmp_path, max_evals=6, progress=False)
    # 3 trials finished and trial 3 was running: a budget of 3 is spent, yet trial 3 is
    # counted already and its run was cut short, so the resume finishes it and adds nothing.
    study = tune(crash_on_fourth, SPACE, study_dir=tmp_path, max_evals=3, progress=False)
    assert received[4] == received[3]
    assert [(r.tid, r.state) for r in study.records] == [(t, TrialState.OK) for t in range(4)]


def test_a_lowered_budget_keeps_the_trials_and_says_how_to_add_more(tmp_path: Path) -> None:
    tune(OBJECTIVE, SPACE, study_dir=tmp_path, max_evals=4, progress=False)
    study = tune(OBJECTIVE, SPACE, study_dir=tmp_path, max_evals=2, progress=False)
    assert len(study.records) == 4 and study.progress.lowered
    assert study.stop_reason == (
        "the study holds 4 trials, more than max_evals=2: raise max_evals to add more"
    )
    no_progress = StopRules(no_progress=1)  # a stop rule that fires is the reason given
    again = tune(OBJECTIVE, SPACE, study_dir=tmp_path, max_evals=2, stop=no_progress)
    assert again.stop_reason == "no better trial in the last 1 trials"


def test_a_changed_space_is_refused_and_the_study_is_untouched(tmp_path: Path) -> None:
    tune(OBJECTIVE, SPACE, study_dir=tmp_path, max_evals=3, progress=False)
    before = _history(tmp_path)
    changed = {**SPACE, "x": hp.uniform("x", -1.0, 1.0)}
    with pytest.raises(SpaceMismatchError, match=r"changed x \(uniform\(-5.0, 5.0\).*fresh"):
        tune(OBJECTIVE, changed, study_dir=tmp_path, max_evals=5, progress=False)
    with pytest.raises(ConfigError, match="made with seed 0, not 7"):
        tune(
            OBJECTIVE, SPACE, study_dir=tmp_path, max_evals=5, search=Search(seed=7), progress=False
        )
    with pytest.raises(ConfigError, match="made with epochs=3, not 5"):
        tune(
            OBJECTIVE,
            SPACE,
            study_dir=tmp_path / "cfg",
            max_evals=2,
            progress=False,
            objective_config={"epochs": 3},
        )
        tune(
            OBJECTIVE,
            SPACE,
            study_dir=tmp_path / "cfg",
            max_evals=2,
            progress=False,
            objective_config={"epochs": 5},
        )
    assert _history(tmp_path) == before
    fresh = tune(OBJECTIVE, changed, study_dir=tmp_path, max_evals=2, fresh=True, progress=False)
    assert len(fresh.records) == 2


@pytest.mark.parametrize("max_evals", [0, -3, 2.5, True])
def test_bad_max_evals_is_refused(tmp_path: Path, max_evals: Any) -> None:
    with pytest.raises(ConfigError, match="max_evals must be a positive integer"):
        tune(OBJECTIVE, SPACE, study_dir=tmp_path, max_evals=max_evals, progress=False)
    assert not (tmp_path / "study.db").exists()


def test_failed_trials_are_recorded_and_the_search_goes_on(tmp_path: Path) -> None:
    def picky(params: Any) -> Any:
        if params["optimizer"] == "sgd":
            raise ValueError("sgd diverged")
        if params["x"] > 3:
            return math.nan
        return OBJECTIVE(params)

    study = tune(
        picky,
        SPACE,
        study_dir=tmp_path,
        max_evals=20,
        stop=StopRules(max_failures=20),
        progress=False,
    )
    assert len(study.records) == 20
    failed = [r for r in study.records if r.state is TrialState.FAIL]
    assert failed, "the space makes some trials fail"
    for r in failed:
        assert r.loss is None
        assert ("ValueError: sgd diverged" in (r.error or "")) or r.error == "loss is nan"
    assert study.best is not None and study.best.params["optimizer"] == "adam"


def test_consecutive_failures_stop_the_search_with_the_last_error(tmp_path: Path) -> None:
    def broken(params: Any) -> float:
        raise RuntimeError("CUDA out of memory")

    with pytest.raises(SearchFailedError, match="3 trials failed in a row.*CUDA out of memory"):
        tune(
            broken,
            SPACE,
            study_dir=tmp_path,
            max_evals=10,
            stop=StopRules(max_failures=3),
            progress=False,
        )
    assert [r.state for r in load_study(tmp_path).records] == [TrialState.FAIL] * 3


def test_a_non_numeric_loss_breaks_the_contract(tmp_path: Path) -> None:
    with pytest.raises(ObjectiveError, match="returned str 'low' as loss"):
        tune(lambda p: "low", SPACE, study_dir=tmp_path, max_evals=5, progress=False)
    with pytest.raises(ObjectiveError, match="without 'loss'"):
        tune(lambda p: {"acc": 1}, SPACE, study_dir=tmp_path / "b", max_evals=5, progress=False)
    assert load_study(tmp_path).records[0].state is TrialState.FAIL


def test_dict_results_keep_curves_metrics_and_pruned_state(tmp_path: Path) -> None:
    def rich(params: Any) -> dict[str, Any]:
        return {
            "loss": 1.5,
            "curves": {"val_loss": [3.0, 2.0, 1.5]},
            "metrics": {"acc": 0.5},
            "pruned": params["x"] < 0,
            "note": "kept",
        }

    study = tune(rich, SPACE, study_dir=tmp_path, max_evals=8, progress=False)
    for r in study.records:
        assert r.curves == {"val_loss": [3.0, 2.0, 1.5]}
        assert r.metrics == {"acc": 0.5, "note": "kept"}
        assert r.state is (TrialState.PRUNED if r.params["x"] < 0 else TrialState.OK)


def test_timeout_is_cumulative_across_runs(tmp_path: Path) -> None:
    def slow(params: Any) -> Any:
        time.sleep(0.05)
        return OBJECTIVE(params)

    first = tune(
        slow, SPACE, study_dir=tmp_path, max_evals=200, stop=StopRules(timeout=0.3), progress=False
    )
    assert first.stop_reason == "timeout of 0.3s reached"
    assert len(first.records) < 200
    again = tune(
        slow, SPACE, study_dir=tmp_path, max_evals=200, stop=StopRules(timeout=0.3), progress=False
    )
    assert len(again.records) == len(first.records)  # the budget is already spent
    assert again.progress.elapsed_s >= 0.3


def test_loss_threshold_and_no_progress_stop_early(tmp_path: Path) -> None:
    study = tune(
        OBJECTIVE,
        SPACE,
        study_dir=tmp_path / "a",
        max_evals=100,
        stop=StopRules(loss_threshold=2.0),
        progress=False,
    )
    assert study.best_loss is not None and study.best_loss <= 2.0
    assert "threshold" in (study.stop_reason or "")
    assert all(r.loss is not None and r.loss > 2.0 for r in study.records[:-1])

    def failing_tail(params: Any) -> Any:
        if params["x"] > 0:
            raise ValueError("no")
        return OBJECTIVE(params)

    study = tune(
        failing_tail,
        SPACE,
        study_dir=tmp_path / "b",
        max_evals=100,
        stop=StopRules(no_progress=5, max_failures=100),
        progress=False,
    )
    assert study.stop_reason == "no better trial in the last 5 trials"
    best_tid = study.best.tid if study.best else -1
    assert len(study.records) - 1 - best_tid == 5


def test_points_are_evaluated_first_and_stored_by_value(tmp_path: Path) -> None:
    points = [
        {"x": 1.0, "lr": 0.001, "model": "poly", "degree": 3, "optimizer": "adam"},
        {"x": 0.0, "lr": 0.01, "model": "linear", "optimizer": "sgd"},
    ]
    study = tune(
        OBJECTIVE,
        SPACE,
        study_dir=tmp_path,
        max_evals=5,
        search=Search(points=points),
        progress=False,
    )
    assert study.records[0].params == points[0]
    assert study.records[1].params == points[1]
    assert study.records[0].loss == pytest.approx(0.0)
    assert study.best is not None and study.best.tid == 0


def test_trials_interop_rebuilds_a_hyperopt_trials(tmp_path: Path) -> None:
    study = tune(OBJECTIVE, SPACE, study_dir=tmp_path, max_evals=6, progress=False)
    trials = load_study(tmp_path).trials
    assert trials.tids == list(range(6))
    assert trials.losses() == [r.loss for r in study.records]
    assert trials.best_trial["tid"] == study.best.tid  # type: ignore[union-attr]


def _ctrl_c() -> None:
    """A real Ctrl-C (SIGINT) in the middle of a trial; a KeyboardInterrupt the objective
    raised itself would fail its trial instead (tpetune._signals)."""
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(60)  # the signal's KeyboardInterrupt ends this at once


def test_points_a_resume_ignores_are_not_checked_against_the_space(tmp_path: Path) -> None:
    space = {"d": hp.quniform("d", 2, 5, 1)}

    def objective(p: Any) -> float:
        return float(p["d"])

    tune(objective, space, study_dir=tmp_path, max_evals=2, progress=False,
         search=Search(points=[{"d": 3}]))  # fmt: skip
    # the same command with a point a new study would refuse: the stored points stand
    again = tune(objective, space, study_dir=tmp_path, max_evals=3, progress=False,
                 search=Search(points=[{"d": 2.6}]))  # fmt: skip
    assert again.records[0].params == {"d": 3} and len(again.records) == 3
    with pytest.raises(SpaceError, match="d=2.6 is not a value"):
        tune(objective, space, study_dir=tmp_path / "new", max_evals=1, progress=False,
             search=Search(points=[{"d": 2.6}]))  # fmt: skip
    assert not (tmp_path / "new").exists()
