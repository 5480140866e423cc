"""tpetune.fmin against hyperopt.fmin: same answers and Trials, resumes, hyperopt's own tests."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import hyperopt
import numpy as np
import pytest
from hyperopt import Trials, anneal, hp, rand, space_eval, tpe
from hyperopt.early_stop import no_progress_loss
from hyperopt.fmin import generate_trials_to_calculate
from hyperopt.pyll import scope

import tpetune
from tpetune.errors import ConfigError
from tpetune.migrate.fmin_args import algo_spec, study_seed

SPACE = {
    "x": hp.uniform("x", -5.0, 5.0),
    "model": hp.choice(
        "model",
        [
            {"kind": "linear"},
            {
                "kind": "poly",
                "degree": scope.int(hp.quniform("degree", 2, 5, 1)),
                "reg": hp.loguniform("reg", -6, 0),
            },
        ],
    ),
    "optimizer": hp.choice("optimizer", ["sgd", "adam"]),
}


def objective(p: dict[str, Any]) -> dict[str, Any]:
    m = p["model"]
    loss = (p["x"] - 1.0) ** 2 + (0.5 if m["kind"] == "linear" else abs(m["degree"] - 3) / 10)
    return {"loss": loss + (0.2 if p["optimizer"] == "sgd" else 0.0), "status": "ok", "x": p["x"]}


def same_trials(a: Trials, b: Trials) -> None:
    assert [t["tid"] for t in a.trials] == [t["tid"] for t in b.trials]
    assert [t["misc"]["vals"] for t in a.trials] == [t["misc"]["vals"] for t in b.trials]
    assert a.losses() == b.losses()
    assert a.statuses() == b.statuses()
    assert [t["result"] for t in a.trials] == [t["result"] for t in b.trials]
    assert a.best_trial["tid"] == b.best_trial["tid"]


MIX = functools.partial(
    hyperopt.mix.suggest,
    p_suggest=[(0.2, rand.suggest), (0.3, anneal.suggest), (0.5, tpe.suggest)],
)
ALGOS = {
    "tpe": tpe.suggest,
    "rand": rand.suggest,
    "anneal": anneal.suggest,
    "tpe-partial": functools.partial(tpe.suggest, n_startup_jobs=5, gamma=0.3),
    "mix": MIX,
}


def hyperopt_and_tpetune(
    tmp_path: Path,
    algo: Any,
    *,
    max_evals: int = 30,
    rstate: Any = 7,
    make_trials: Any = Trials,
    **kwargs: Any,
) -> tuple[Any, Trials, Any, Trials]:
    """The same call to hyperopt.fmin and tpetune.fmin (global random states equal, for atpe,
    which draws from them); their answers and Trials."""
    import random

    out = []
    for run in (hyperopt.fmin, tpetune.fmin):
        random.seed(0)
        np.random.seed(0)
        trials = make_trials()
        extra = {"study_dir": tmp_path / "s"} if run is tpetune.fmin else {}
        gen = None if rstate is None else np.random.default_rng(rstate)
        best = run(
            objective,
            SPACE,
            algo=algo,
            max_evals=max_evals,
            trials=trials,
            rstate=gen,
            show_progressbar=False,
            **kwargs,
            **extra,
        )
        out += [best, trials]
    return tuple(out)  # type: ignore[return-value]


@pytest.mark.parametrize("name", list(ALGOS))
def test_same_answer_and_trials_as_hyperopt_for_the_same_rstate(tmp_path: Path, name: str) -> None:
    theirs, their_trials, ours, our_trials = hyperopt_and_tpetune(tmp_path, ALGOS[name])
    assert ours == theirs
    assert repr(ours) == repr(theirs)  # numpy scalars, labels in hyperopt's order: prints alike
    assert repr(our_trials.argmin) == repr(their_trials.argmin)
    same_trials(our_trials, their_trials)


def test_same_answer_as_hyperopt_for_atpe(tmp_path: Path) -> None:
    """atpe seeds from Python's and numpy's global random states, not from the seed it is
    given (hyperopt's own runs differ unless those are equal): with them equal, it answers
    alike too."""
    pytest.importorskip("lightgbm")
    theirs, their_trials, ours, our_trials = hyperopt_and_tpetune(
        tmp_path, hyperopt.atpe.suggest, max_evals=14
    )
    assert ours == theirs
    same_trials(our_trials, their_trials)


def test_hyperopt_fmin_seed_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HYPEROPT_FMIN_SEED", "11")
    theirs, their_trials, ours, our_trials = hyperopt_and_tpetune(
        tmp_path, tpe.suggest, rstate=None, max_evals=25
    )
    assert ours == theirs
    same_trials(our_trials, their_trials)


def test_points_then_max_evals_proposals_as_hyperopt(tmp_path: Path) -> None:
    points = [  # every label given: hyperopt's TPE fails on a point without one
        {"x": 0.5, "model": 1, "degree": 3.0, "reg": 0.1, "optimizer": 1},
        {"x": -9.0, "model": 1, "degree": 2.0, "reg": 0.5, "optimizer": 0},
    ]
    theirs, their_trials, ours, our_trials = hyperopt_and_tpetune(
        tmp_path,
        tpe.suggest,
        max_evals=24,
        make_trials=lambda: generate_trials_to_calculate(points),  # points_to_evaluate's way
    )
    assert len(our_trials.trials) == 26  # the points (one outside x's range), then 24
    assert ours == theirs
    same_trials(our_trials, their_trials)
    given = our_trials.trials[0]["misc"]["vals"]  # a point's values as given, as hyperopt's
    assert {k: type(v[0]) for k, v in given.items()} == {k: type(v) for k, v in points[0].items()}
    assert type(our_trials.trials[2]["misc"]["vals"]["x"][0]) is np.float64


def test_caught_exceptions_and_failed_statuses_answer_as_hyperopt(tmp_path: Path) -> None:
    def fn(p: dict[str, Any]) -> Any:
        if p["x"] > 3.5:
            raise ValueError("too far")
        if p["optimizer"] == "sgd" and p["x"] < -2:
            return {"status": "fail"}
        return objective(p)

    out = []
    for run in (hyperopt.fmin, tpetune.fmin):
        trials = Trials()
        extra = {"study_dir": tmp_path / "s"} if run is tpetune.fmin else {}
        best = run(
            fn,
            SPACE,
            algo=tpe.suggest,
            max_evals=40,
            trials=trials,
            rstate=np.random.default_rng(5),
            catch_eval_exceptions=True,
            show_progressbar=False,
            **extra,
        )
        out += [best, trials]
    theirs, their_trials, ours, our_trials = out
    assert "fail" in their_trials.statuses()
    assert len(their_trials._dynamic_trials) > len(their_trials.trials)  # some raised
    assert ours == theirs
    same_trials(our_trials, their_trials)
    states = [d["state"] for d in our_trials._dynamic_trials]
    assert states == [d["state"] for d in their_trials._dynamic_trials]


def test_a_killed_run_resumes_to_the_uninterrupted_answer_and_rstate(tmp_path: Path) -> None:
    """hyperopt's stream is continued from the position stored with the study: a run cut
    short (here: max_evals 9, then a SIGKILL test below) and re-run equals one run straight
    through, and the caller's rstate ends where hyperopt.fmin leaves it."""
    straight_rstate = np.random.default_rng(3)
    straight = Trials()
    hyperopt.fmin(
        objective,
        SPACE,
        algo=tpe.suggest,
        max_evals=30,
        trials=straight,
        rstate=straight_rstate,
        show_progressbar=False,
    )
    for max_evals in (9, 22, 30):
        rstate = np.random.default_rng(3)
        later = Trials()
        best = tpetune.fmin(
            objective,
            SPACE,
            algo=tpe.suggest,
            max_evals=max_evals,
            trials=later,
            rstate=rstate,
            show_progressbar=False,
            study_dir=tmp_path / "s",
        )
    assert best == straight.argmin
    same_trials_but_results(later, straight)
    assert rstate.integers(2**31 - 1) == straight_rstate.integers(2**31 - 1)


def same_trials_but_results(a: Trials, b: Trials) -> None:
    """Earlier runs' results come from the store (loss and status kept, as floats)."""
    assert [t["misc"]["vals"] for t in a.trials] == [t["misc"]["vals"] for t in b.trials]
    assert a.losses() == b.losses()
    assert a.statuses() == b.statuses()


def test_resume_continues_and_refills_trials(tmp_path: Path) -> None:
    kwargs: dict[str, Any] = dict(
        algo=tpe.suggest, rstate=None, show_progressbar=False, study_dir=tmp_path / "s"
    )
    tpetune.fmin(objective, SPACE, max_evals=8, **kwargs)
    later = Trials()
    best = tpetune.fmin(objective, SPACE, max_evals=20, trials=later, **kwargs)
    straight = Trials()
    tpetune.fmin(
        objective, SPACE, max_evals=20, trials=straight, **{**kwargs, "study_dir": tmp_path / "t"}
    )
    assert len(later.trials) == 20
    assert [t["misc"]["vals"] for t in later.trials] == [t["misc"]["vals"] for t in straight.trials]
    assert best == straight.argmin
    # earlier runs' trials carry what the store kept: loss, status and the other JSON keys
    assert later.trials[0]["result"] == straight.trials[0]["result"]
    assert tpetune.load_study(tmp_path / "s").best_args == space_eval(SPACE, best)


def test_a_filled_trials_passed_in_is_imported_and_continued(tmp_path: Path) -> None:
    old = Trials()
    hyperopt.fmin(
        objective,
        SPACE,
        algo=tpe.suggest,
        max_evals=10,
        trials=old,
        rstate=np.random.default_rng(1),
        show_progressbar=False,
    )
    before = [(t["misc"]["vals"], t["result"]["loss"]) for t in old.trials]
    tpetune.fmin(
        objective, SPACE, max_evals=15, trials=old, show_progressbar=False, study_dir=tmp_path
    )
    assert len(old.trials) == 15
    assert [(t["misc"]["vals"], t["result"]["loss"]) for t in old.trials[:10]] == before
    assert len(tpetune.load_study(tmp_path).records) == 15


def test_early_stop_state_survives_a_resume(tmp_path: Path) -> None:
    def run(study_dir: Path, max_evals: int) -> int:
        trials = Trials()
        tpetune.fmin(
            objective,
            SPACE,
            algo=rand.suggest,
            max_evals=max_evals,
            trials=trials,
            early_stop_fn=no_progress_loss(4),
            show_progressbar=False,
            study_dir=study_dir,
        )
        return len(trials.trials)

    whole = run(tmp_path / "whole", 200)
    assert whole < 200  # it stopped early
    first = run(tmp_path / "split", whole - 2)  # interrupted before the stop...
    assert first == whole - 2
    assert run(tmp_path / "split", 200) == whole  # ...resumed: stops where the whole run did
    assert run(tmp_path / "split", 300) == whole  # already stopped: no more trials


def test_return_argmin_false_gives_values(tmp_path: Path) -> None:
    got = tpetune.fmin(
        objective,
        SPACE,
        max_evals=10,
        return_argmin=False,
        show_progressbar=False,
        study_dir=tmp_path / "s",
    )
    assert got == tpetune.load_study(tmp_path / "s").best_args


def test_exception_is_recorded_then_raised(tmp_path: Path) -> None:
    calls = []

    def fn(p: dict[str, Any]) -> float:
        calls.append(p)
        if len(calls) == 3:
            raise ValueError("boom")
        return float(p["x"] ** 2)

    trials = Trials()
    with pytest.raises(ValueError, match="boom"):
        tpetune.fmin(
            fn, SPACE, max_evals=10, trials=trials, show_progressbar=False, study_dir=tmp_path
        )
    assert len(trials.trials) == 2 and len(trials._dynamic_trials) == 3  # as hyperopt leaves it
    study = tpetune.load_study(tmp_path)
    assert [r.state.value for r in study.records] == ["ok", "ok", "fail"]


def test_rejected_algo_and_rstate(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tpe.suggest"):
        algo_spec(lambda *a: [])
    assert algo_spec(hyperopt.partial(tpe.suggest, n_startup_jobs=3)) == (
        "tpe",
        {"n_startup_jobs": 3},
    )
    with pytest.raises(ConfigError, match="Generator"):
        study_seed("seed")


def test_trials_save_file_is_written_never_read(tmp_path: Path) -> None:
    save = tmp_path / "trials.pkl"
    study_dir = tmp_path / "s"
    kw: dict[str, Any] = dict(max_evals=5, show_progressbar=False, trials_save_file=str(save))
    tpetune.fmin(objective, SPACE, study_dir=study_dir, **kw)
    assert save.is_file()
    tpetune.fmin(objective, SPACE, study_dir=study_dir, **{**kw, "max_evals": 6})  # resumes
    with pytest.raises(ConfigError, match="never unpickles"):  # a new study beside the pickle
        tpetune.fmin(objective, SPACE, study_dir=tmp_path / "other", **kw)


def _quad(p: dict[str, Any], target: float = 1.0) -> float:
    return float((p["x"] - target) ** 2)


class _Model3:
    def __new__(cls, p: dict[str, Any]) -> Any:  # type: ignore[misc]
        return _quad(p, 3.0)


class _ModelMinus2:
    def __new__(cls, p: dict[str, Any]) -> Any:  # type: ignore[misc]
        return _quad(p, -2.0)


class _Target:
    """A callable objective object: its settings tell two instances apart."""

    def __init__(self, target: float) -> None:
        self.target = target
        self.calls: list[float] = []  # state it fills: not a setting

    def __call__(self, p: dict[str, Any]) -> float:
        self.calls.append(p["x"])
        return _quad(p, self.target)


def test_objectives_of_one_name_bound_to_other_values_get_their_own_studies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the default folder is runs/fmin-<name>-<hash> here
    space = {"x": hp.uniform("x", -5, 5)}
    answers = {}
    for run in (hyperopt.fmin, tpetune.fmin):
        got = []
        for model in (_Model3, _ModelMinus2):  # a loop rebinding the class one objective reads
            monkeypatch.setitem(globals(), "MODEL", model)

            def objective(p: dict[str, Any]) -> float:
                return MODEL(p)  # type: ignore[name-defined, no-any-return]  # noqa: F821

            got.append(run(objective, space, algo=tpe.suggest, max_evals=8,
                           rstate=np.random.default_rng(0), show_progressbar=False))  # fmt: skip
        for target in (3.0, -2.0):  # partials of one function
            bound = functools.partial(_quad, target=target)
            got.append(run(bound, space, algo=tpe.suggest, max_evals=8,
                           rstate=np.random.default_rng(0), show_progressbar=False))  # fmt: skip
        answers[run] = got
    assert answers[tpetune.fmin] == answers[hyperopt.fmin]
    ours = answers[tpetune.fmin]
    assert ours[0] != ours[1] and ours[2] != ours[3]  # each target searched for itself
    assert len(list((tmp_path / "runs").iterdir())) == 4  # in four studies
    again = tpetune.fmin(functools.partial(_quad, target=-2.0), space, algo=tpe.suggest,
                         max_evals=8, rstate=np.random.default_rng(0))  # fmt: skip
    assert again == answers[hyperopt.fmin][3] and len(list((tmp_path / "runs").iterdir())) == 4


def test_a_smaller_max_evals_answers_from_the_study_s_first_trials(tmp_path: Path) -> None:
    space = {"x": hp.uniform("x", -5, 5)}
    for n in (20, 6):
        theirs, ours = Trials(), Trials()
        best = hyperopt.fmin(_quad, space, algo=tpe.suggest, max_evals=n, trials=theirs,
                             rstate=np.random.default_rng(1), show_progressbar=False)  # fmt: skip
        ours_best = tpetune.fmin(_quad, space, algo=tpe.suggest, max_evals=n, trials=ours,
                                 rstate=np.random.default_rng(1),
                                 study_dir=tmp_path / "s")  # fmt: skip
        assert ours_best == best
        same_trials(ours, theirs)
    assert len(tpetune.load_study(tmp_path / "s").records) == 20  # nothing stored is dropped


def test_bad_arguments_are_refused_before_any_trial_runs(tmp_path: Path) -> None:
    calls: list[Any] = []

    def fn(p: dict[str, Any]) -> float:
        calls.append(p)
        return _quad(p)

    space = {"x": hp.uniform("x", -5, 5)}
    bad = [
        ({"trials": []}, "trials must be a hyperopt Trials"),
        ({"max_evals": "10"}, "max_evals must be a whole number"),
        ({"points_to_evaluate": {"x": 0.5}}, "points_to_evaluate must be a list of dicts"),
        ({"points_to_evaluate": [{"y": 1.0}]}, "y is no label of the space"),
    ]
    for kwargs, message in bad:
        with pytest.raises(ConfigError, match=message):
            tpetune.fmin(fn, space, **{"max_evals": 3, **kwargs}, study_dir=tmp_path / "s")
    assert calls == [] and not (tmp_path / "s").exists()
    assert tpetune.fmin(
        fn, space, max_evals=3.0, study_dir=tmp_path / "s", rstate=np.random.default_rng(0)
    )
    with pytest.raises(ConfigError, match="made with algo 'tpe', not 'rand': pass the algo it"):
        tpetune.fmin(fn, space, algo=rand.suggest, max_evals=4, study_dir=tmp_path / "s")


HISTORY: list[Any] = []


def test_state_an_objective_keeps_does_not_move_a_second_call_to_another_study(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    HISTORY.clear()
    calls = 0

    def logged(p: dict[str, Any]) -> float:
        nonlocal calls
        calls += 1  # a counter it rebinds, a log it fills: its state, not its settings
        HISTORY.append(p)
        return _quad(p)

    space = {"x": hp.uniform("x", -5, 5)}
    for fn in (logged, _Target(2.0)):
        trials = Trials()
        for n in (4, 7):  # hyperopt's way to continue: the same Trials, a larger max_evals
            tpetune.fmin(fn, space, max_evals=n, trials=trials, rstate=np.random.default_rng(0))
        assert len(trials.trials) == 7
    assert len(list((tmp_path / "runs").iterdir())) == 2
    other = tpetune.fmin(_Target(-4.0), space, max_evals=4, rstate=np.random.default_rng(0))
    assert len(list((tmp_path / "runs").iterdir())) == 3 and other["x"] < 0
    HISTORY.clear()


def test_a_study_an_earlier_tpetune_made_is_continued_in_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tpetune.migrate import fmin_args

    monkeypatch.chdir(tmp_path)
    space = {"x": hp.uniform("x", -5, 5)}
    with monkeypatch.context() as m:  # the folder name before it covered the binding
        m.setattr(fmin_args, "binding", lambda fn: [])
        tpetune.fmin(_quad, space, max_evals=3, rstate=np.random.default_rng(0))
    (old,) = (tmp_path / "runs").iterdir()
    tpetune.fmin(_quad, space, max_evals=5, rstate=np.random.default_rng(0))
    assert list((tmp_path / "runs").iterdir()) == [old]
    assert len(tpetune.load_study(old).records) == 5
