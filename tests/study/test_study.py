"""Study: best_params (flat label -> value) and best_args (what the objective received)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from hyperopt import hp
from hyperopt.pyll import scope

from tpetune.engine.tuning import tune
from tpetune.study.store import TrialState
from tpetune.study.study import load_study


def test_best_args_of_a_space_with_random_nodes_are_the_received_ones(tmp_path: Path) -> None:
    # As hyperopt's own test domains n_arms and gauss_wave2: a stochastic node drawn from an
    # rng inside the space, so evaluating the graph again gives another value every time.
    mu = hp.uniform("mu", -1, 1)
    space = {"mu": mu, "noisy": scope.normal(mu, 1.0, rng=np.random.default_rng(0))}
    seen: dict[float, Any] = {}

    def objective(args: dict[str, Any]) -> float:
        seen[float(args["mu"])] = json.loads(json.dumps(args, default=float))
        return float(args["mu"]) ** 2

    study = tune(objective, space, study_dir=tmp_path, max_evals=6, progress=False)
    assert study.best is not None
    received = seen[float(study.best_args["mu"])]
    assert study.best_args == received  # what the objective got, not a fresh draw
    assert study.best_args == study.best_args  # stable across reads
    assert type(study.best_args["noisy"]) is float  # a number, never a 0-d array
    assert load_study(tmp_path).best_args == study.best_args
    # best_params is the flat label -> value map of the trial (Optuna's meaning).
    assert study.best_params == {"mu": study.best_args["mu"]} == load_study(tmp_path).best_params


def test_best_of_a_study_without_a_finished_trial_is_none(make_study: Any) -> None:
    study = make_study([(0, TrialState.FAIL, None, {"x": 1}, {}, "boom")], space={})
    assert study.best_params is None and study.best_args is None
