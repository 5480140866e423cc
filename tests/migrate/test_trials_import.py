"""`tpetune import`: a hyperopt Trials pickle becomes a study that `tpetune run` continues."""

from __future__ import annotations

import copy
import pickle
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import hyperopt
import numpy as np
import pytest
from hyperopt import Trials, tpe

import tpetune
from tpetune.cli.main import main
from tpetune.migrate.trials_import import PICKLE_WARNING, check_vals
from tpetune.search.space import Space
from tpetune.study.store import Store

SPACE_FILE = """
from hyperopt import hp
from hyperopt.pyll import scope

space = {
    "x": hp.uniform("x", -5.0, 5.0),
    "model": hp.choice("model", [
        {"kind": "linear"},
        {"kind": "poly", "degree": scope.int(hp.quniform("degree", 2, 5, 1)),
         "reg": hp.loguniform("reg", -6, 0)},
    ]),
    "optimizer": hp.choice("optimizer", ["sgd", "adam"]),
    "units": hp.randint("units", 4, 9),
}


def objective(p):
    m = p["model"]
    loss = (p["x"] - 1.0) ** 2 + (0.5 if m["kind"] == "linear" else abs(m["degree"] - 3) / 10)
    loss += 0.01 * p["units"]
    return {"loss": loss, "status": "ok", "curves": {"val_loss": [2 * loss, loss]}, "note": "n"}
"""


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, Path, Trials]:
    """A space file and the pickle hyperopt.fmin(trials_save_file=...) wrote over it."""
    space_file = tmp_path / "nested.py"
    space_file.write_text(SPACE_FILE)
    ns = runpy.run_path(str(space_file))
    pkl = tmp_path / "trials.pkl"
    hyperopt.fmin(
        ns["objective"],
        ns["space"],
        algo=tpe.suggest,
        max_evals=15,
        rstate=np.random.default_rng(3),
        trials_save_file=str(pkl),
        show_progressbar=False,
    )
    with open(pkl, "rb") as fh:
        trials = pickle.load(fh)
    return space_file, pkl, trials


def test_import_then_run_continues_the_same_search(
    saved: tuple[Path, Path, Trials], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space_file, pkl, trials = saved
    study_dir = tmp_path / "study"
    assert (
        main(["import", str(pkl), "--space", str(space_file), "--study-dir", str(study_dir)]) == 0
    )
    captured = capsys.readouterr()
    assert PICKLE_WARNING in captured.err  # said once, before unpickling
    assert "imported 15 trials" in captured.out
    run = ["run", str(space_file), "--study-dir", str(study_dir), "--max-evals", "25"]
    assert main([*run, "--quiet", "--no-plots"]) == 0
    study = tpetune.load_study(study_dir)
    assert len(study.records) == 25 and all(r.finished_ok for r in study.records)
    space = Space(runpy.run_path(str(space_file))["space"])
    for record, doc in zip(study.records[:15], trials.trials, strict=True):
        vals = {k: v[0] for k, v in doc["misc"]["vals"].items() if v}
        assert record.tid == doc["tid"]
        assert record.params == space.params(vals)  # by value
        assert record.args == hyperopt.space_eval(space.tree, vals)
        assert record.loss == doc["result"]["loss"]
        assert record.curves == doc["result"]["curves"]
        assert record.metrics == {"note": "n"}
    # TPE continues as the pickle's search ran: hyperopt's default startup of 20 is kept
    assert study.meta["algo_options"]["n_startup_jobs"] == 20
    assert study.meta["provenance"][0]["event"] == "create"
    assert study.meta["imported_from"]["trials"] == 15


def test_trials_not_fitting_the_space_are_refused_with_their_tids(
    saved: tuple[Path, Path, Trials], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space_file, _, trials = saved
    bad = copy.deepcopy(trials)
    docs = bad._dynamic_trials
    docs[2]["misc"]["vals"]["x"] = [7.5]  # out of range
    docs[4]["misc"]["vals"]["bogus"] = [1]  # unknown label
    linear = next(d for d in docs[5:] if d["misc"]["vals"]["model"] == [0])
    linear["misc"]["vals"]["degree"] = [3.0]  # a label of the branch it did not take
    pkl = tmp_path / "bad.pkl"
    pkl.write_bytes(pickle.dumps(bad))
    study_dir = tmp_path / "refused"
    args = ["import", str(pkl), "--space", str(space_file), "--study-dir", str(study_dir)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "3 trial(s) do not fit the space" in err
    assert "tid 2: x=7.5 is outside" in err and "tid 4: unknown label(s) bogus" in err
    assert f"tid {linear['tid']}: wrong active set (inactive label(s) set: degree)" in err
    assert not Store.exists(study_dir)


def test_check_vals_rules(saved: tuple[Path, Path, Trials]) -> None:
    space = Space(runpy.run_path(str(saved[0]))["space"])
    ok: dict[str, Any] = {"x": 0.0, "model": 1, "degree": 3.0, "reg": 0.1, "optimizer": 0}
    assert check_vals(space, {**ok, "units": 4}) is None
    assert "not an integer in [4, 9)" in str(check_vals(space, {**ok, "units": 9}))
    assert "active label(s) missing: reg" in str(
        check_vals(space, {k: v for k, v in ok.items() if k != "reg"} | {"units": 5})
    )
    assert "not an integer in [0, 2)" in str(check_vals(space, {**ok, "units": 5, "model": 2}))


def test_failed_and_unfinished_trials_keep_their_state(
    saved: tuple[Path, Path, Trials], tmp_path: Path
) -> None:
    space_file, _, trials = saved
    t = copy.deepcopy(trials)
    t._dynamic_trials[1]["result"] = {"status": "fail"}
    t._dynamic_trials[3]["state"] = hyperopt.JOB_STATE_ERROR
    t._dynamic_trials[3]["misc"]["error"] = ("<class 'ValueError'>", "nan loss")
    t._dynamic_trials[14]["state"] = hyperopt.JOB_STATE_RUNNING
    from tpetune.migrate.trials_import import import_trials

    space = Space(runpy.run_path(str(space_file))["space"], source=str(space_file))
    assert import_trials(t, space, tmp_path / "s") == 15
    records = tpetune.load_study(tmp_path / "s").records
    assert [records[i].state.value for i in (0, 1, 3, 14)] == ["ok", "fail", "fail", "running"]
    assert records[3].error == "<class 'ValueError'>: nan loss"
    with pytest.raises(tpetune.ConfigError, match="already holds a study"):
        import_trials(t, space, tmp_path / "s")


def test_not_a_trials_pickle(tmp_path: Path, saved: tuple[Path, Path, Trials]) -> None:
    pkl = tmp_path / "list.pkl"
    pkl.write_bytes(pickle.dumps([1, 2]))
    done = subprocess.run(
        [sys.executable, "-m", "tpetune", "import", str(pkl), "--space", str(saved[0])],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "holds a list, not a hyperopt Trials" in done.stderr


def test_a_numpy_array_metric_survives_import_as_a_live_run_keeps_it(
    saved: tuple[Path, Path, Trials], tmp_path: Path
) -> None:
    """One helper decides what is plain data (issue 22): a live run stores an array metric as a
    list, so an imported trial holding the same array keeps it too."""
    space_file, _, trials = saved
    trials.trials[0]["result"]["per_class"] = np.array([0.25, 0.5])
    trials.trials[0]["result"]["count"] = np.int64(3)
    pkl = tmp_path / "with_array.pkl"
    pkl.write_bytes(pickle.dumps(trials))
    study_dir = tmp_path / "imported"
    command = ["import", str(pkl), "--space", str(space_file), "--study-dir", str(study_dir)]
    assert main(command) == 0
    imported = tpetune.load_study(study_dir).records[0].metrics
    live = tmp_path / "live"
    ns = runpy.run_path(str(space_file))

    def objective(p: Any) -> dict[str, Any]:
        return {**ns["objective"](p), "per_class": np.array([0.25, 0.5]), "count": np.int64(3)}

    tpetune.tune(objective, ns["space"], study_dir=live, max_evals=1)
    kept = tpetune.load_study(live).records[0].metrics
    assert imported["per_class"] == kept["per_class"] == [0.25, 0.5]
    assert imported["count"] == kept["count"] == 3
