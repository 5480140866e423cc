"""Distinct proposals (tpetune.search.distinct): a new study never trains the same params twice
until the space runs out, resumes to the same proposals, and keeps hyperopt's repeats where it
promises hyperopt's answers (tpetune.fmin, stored older studies)."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hyperopt import hp, tpe

import tpetune
from tpetune import ConfigError, Search, TrialState, load_study, tune
from tpetune.search.distinct import propose_distinct
from tpetune.search.documents import vals_key
from tpetune.search.grid import combination_doc

# 3 * 2 * 2 = 12 points; the loss favours one corner, so TPE keeps proposing near it.
SPACE = {
    "a": hp.choice("a", [0, 1, 2]),
    "b": hp.choice("b", ["x", "y"]),
    "c": hp.choice("c", [0.1, 0.2]),
}


def objective(params: dict[str, Any]) -> float:
    return params["a"] + (params["b"] == "y") + 10 * params["c"]


def _points(study_dir: Path) -> list[str]:
    return [json.dumps(r.params, sort_keys=True) for r in load_study(study_dir).records]


def test_a_new_study_trains_every_point_once_before_any_repeat(tmp_path: Path) -> None:
    search = Search(seed=3, options={"n_startup_jobs": 3})
    tune(objective, SPACE, study_dir=tmp_path / "new", max_evals=12, search=search, progress=False)
    assert len(set(_points(tmp_path / "new"))) == 12  # the whole space, no fit repeated
    assert load_study(tmp_path / "new").meta["allow_duplicates"] is False

    repeats = Search(seed=3, options={"n_startup_jobs": 3}, allow_duplicates=True)
    tune(objective, SPACE, study_dir=tmp_path / "dup", max_evals=12, search=repeats,
         progress=False)  # fmt: skip
    counts = Counter(_points(tmp_path / "dup"))
    assert max(counts.values()) > 1  # hyperopt's TPE repeats its favourite points


def test_a_full_space_accepts_a_repeat_instead_of_stopping(tmp_path: Path) -> None:
    tune(objective, SPACE, study_dir=tmp_path, max_evals=14, search=Search(seed=0),
         progress=False)  # fmt: skip
    points = _points(tmp_path)
    assert len(points) == 14 and len(set(points)) == 12


def test_a_resumed_study_proposes_what_an_uninterrupted_one_does(tmp_path: Path) -> None:
    search = Search(seed=5, options={"n_startup_jobs": 2})
    tune(objective, SPACE, study_dir=tmp_path / "once", max_evals=10, search=search,
         progress=False)  # fmt: skip
    for n in (3, 7, 10):  # stopped and resumed twice
        tune(objective, SPACE, study_dir=tmp_path / "twice", max_evals=n, search=search,
             progress=False)  # fmt: skip
    assert _points(tmp_path / "twice") == _points(tmp_path / "once")
    assert len(set(_points(tmp_path / "once"))) == 10


def test_a_study_stored_before_the_option_keeps_proposing_repeats(tmp_path: Path) -> None:
    search = Search(seed=3, options={"n_startup_jobs": 3}, allow_duplicates=True)
    tune(objective, SPACE, study_dir=tmp_path, max_evals=4, search=search, progress=False)
    with sqlite3.connect(tmp_path / "study.db") as db:  # as tpetune before it stored the key
        db.execute("DELETE FROM meta WHERE key = 'allow_duplicates'")
    tune(objective, SPACE, study_dir=tmp_path, max_evals=12, progress=False)
    reference = tmp_path / "reference"
    tune(objective, SPACE, study_dir=reference, max_evals=12, progress=False, search=search)
    assert _points(tmp_path) == _points(reference)
    assert max(Counter(_points(tmp_path)).values()) > 1  # it went on proposing repeats
    with pytest.raises(ConfigError, match="allow_duplicates True, not False"):
        tune(objective, SPACE, study_dir=tmp_path, max_evals=13, progress=False,
             search=Search(allow_duplicates=False))  # fmt: skip
    assert len(load_study(tmp_path).records) == 12  # refused before anything changed


def test_tpetune_fmin_keeps_hyperopts_repeats(tmp_path: Path) -> None:
    import numpy as np

    best = tpetune.fmin(objective, SPACE, algo=tpe.suggest, max_evals=12,
                        rstate=np.random.default_rng(0), study_dir=tmp_path,
                        show_progressbar=False)  # fmt: skip
    assert best is not None
    assert load_study(tmp_path).meta["allow_duplicates"] is True


def test_a_bad_value_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"Search\(allow_duplicates=\.\.\.\) must be True"):
        Search(allow_duplicates="no")  # type: ignore[arg-type]


def test_redraws_are_seeded_and_fall_back_to_random_draws() -> None:
    from hyperopt import Domain, Trials

    domain = Domain(lambda _: 0.0, {"a": hp.choice("a", [0, 1, 2])})
    calls: list[int] = []

    def stubborn(new_ids: list[int], dom: Any, trials: Any, seed: int) -> Any:
        calls.append(seed)  # always the same point, as TPE on a tiny space
        return [combination_doc({"a": 0}, new_ids[0], dom, trials)]

    taken = {vals_key({"a": 0})}
    docs = propose_distinct(stubborn, 7, domain, Trials(), 11, taken=taken,
                            redraw_seed=lambda attempt: 100 + attempt)  # fmt: skip
    assert calls == [11, *range(101, 111)]  # the first draw, then its 10 redraws
    assert vals_key({"a": docs[0]["misc"]["vals"]["a"][0]}) != vals_key({"a": 0})
    again = propose_distinct(stubborn, 7, domain, Trials(), 11, taken=taken,
                             redraw_seed=lambda attempt: 100 + attempt)  # fmt: skip
    assert again[0]["misc"]["vals"] == docs[0]["misc"]["vals"]  # seeded: the same redraw
    everything = {vals_key({"a": v}) for v in (0, 1, 2)}
    full = propose_distinct(stubborn, 7, domain, Trials(), 11, taken=everything,
                            redraw_seed=lambda attempt: 100 + attempt)  # fmt: skip
    assert full[0]["misc"]["vals"] == {"a": [0]}  # nothing new: the first proposal stands
    one_left = everything - {vals_key({"a": 1})}
    # every random redraw is seeded 0, which draws a=2 (taken): the grid finds a=1
    grid = propose_distinct(stubborn, 7, domain, Trials(), 11, taken=one_left,
                            redraw_seed=lambda attempt: 0)  # fmt: skip
    assert grid[0]["misc"]["vals"]["a"] == [1]


def test_a_paused_or_failed_trials_point_is_not_proposed_again(tmp_path: Path) -> None:
    def flaky(params: dict[str, Any]) -> float:
        if params["a"] == 2:
            raise RuntimeError("diverged")
        return objective(params)

    tune(flaky, SPACE, study_dir=tmp_path, max_evals=12, search=Search(seed=1),
         progress=False)  # fmt: skip
    records = load_study(tmp_path).records
    assert len({json.dumps(r.params, sort_keys=True) for r in records}) == 12
    assert sum(r.state is TrialState.FAIL for r in records) == 4  # a=2: 4 points, each once


DISCRETE_FILE = """
import os, time
from hyperopt import hp

space = {"a": hp.choice("a", [0, 1, 2]), "b": hp.choice("b", ["x", "y"]),
         "c": hp.choice("c", [0.1, 0.2])}

def objective(params):
    time.sleep(os.urandom(1)[0] / 255 * 0.05)  # from the OS: the finish order varies per run
    return params["a"] + (params["b"] == "y") + 10 * params["c"]
"""


def test_two_lagged_workers_propose_the_distinct_points_a_serial_run_does(tmp_path: Path) -> None:
    from tpetune import Serial, Workers
    from tpetune.search.space import load_file

    path = tmp_path / "discrete.py"
    path.write_text(DISCRETE_FILE)
    ns = load_file(path, need_objective=True)
    search = Search(seed=2, lag=2, options={"n_startup_jobs": 3})
    for name, executor in (("serial", Serial()), ("two", Workers(2))):
        tune(ns["objective"], ns["space"], study_dir=tmp_path / name, max_evals=12,
             search=search, executor=executor, progress=False)  # fmt: skip
    assert _points(tmp_path / "two") == _points(tmp_path / "serial")
    assert len(set(_points(tmp_path / "two"))) == 12


def test_the_cli_flag_is_stored_and_a_conflicting_resume_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tpetune.cli.main import main

    path = tmp_path / "discrete.py"
    path.write_text(DISCRETE_FILE)
    common = ["--max-evals", "4", "--quiet", "--no-plots", "--seed", "1"]
    repeats, distinct = tmp_path / "repeats", tmp_path / "distinct"
    assert main(["run", str(path), "--study-dir", str(repeats), *common, "--allow-duplicates"]) == 0
    assert main(["run", str(path), "--study-dir", str(distinct), *common]) == 0
    assert load_study(repeats).meta["allow_duplicates"] is True
    assert load_study(distinct).meta["allow_duplicates"] is False
    capsys.readouterr()
    more = ["--max-evals", "6", "--quiet", "--no-plots"]
    assert main(["run", str(path), "--study-dir", str(distinct), *more, "--allow-duplicates"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--allow-duplicates" in err and "Traceback" not in err
    assert len(load_study(distinct).records) == 4  # nothing changed
    assert main(["run", str(path), "--study-dir", str(repeats), *more]) == 0  # stored: resumes
    assert len(load_study(repeats).records) == 6
