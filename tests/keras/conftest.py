"""Shared pieces of the Keras machinery's tests."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

#: digits_trials' results by the flags that differ from DigitsObjective's defaults, per
#: process: the tests comparing a flag off with the defaults share the defaults' run (they run
#: in one xdist group, so in one process).
_TRIALS_RUN: dict[tuple[tuple[str, bool], ...], list[dict[str, Any]]] = {}


@pytest.fixture(scope="module")
def digits_trials() -> Callable[..., list[dict[str, Any]]]:
    """``run(**flags)``: three digits trials (2 folds of 300 images, the second fold reusing what
    the first built; SGD with momentum and a time schedule, Adam with an exponential one,
    RMSprop constant) trained by a ``DigitsObjective`` with these KerasTrial class flags set
    on the instance (e.g. ``lean_inputs=False``); their results without ``train_seconds``, to
    compare exactly."""
    pytest.importorskip("keras")
    from tests.digits.test_digits_objective import PARAMS
    from tpetune.digits.data import load_digits_data
    from tpetune.digits.objective import DigitsObjective

    data = load_digits_data(None).limited(300, seed=0)
    points = [
        {
            **PARAMS,
            "hidden_layers": {"layers": 2, "units1": 32, "units2": 16},
            "optimizer": {"name": "sgd", "momentum": 0.5, "nesterov": True},
            "schedule": {"name": "time", "decay": 0.1},
            "lr": 0.05,
        },
        PARAMS,
        {**PARAMS, "activation": "elu", "optimizer": {"name": "rmsprop"}, "batch_size": 64},
    ]

    def run(**flags: bool) -> list[dict[str, Any]]:
        key = tuple(sorted((k, v) for k, v in flags.items() if getattr(DigitsObjective, k) != v))
        if key in _TRIALS_RUN:
            return copy.deepcopy(_TRIALS_RUN[key])
        objective = DigitsObjective(data=data, folds=2, patience=2)
        for name, value in flags.items():
            setattr(objective, name, value)
        results = [objective(p) for p in points]
        for r in results:
            r["metrics"].pop("train_seconds")
        _TRIALS_RUN[key] = copy.deepcopy(results)
        return results

    return run


@pytest.fixture(scope="module")
def digits_report() -> Callable[..., dict[str, Any]]:
    """``run(point, **flags)``: the digits final report of ``point`` (300 images, seed 5, 3
    epochs) by a ``DigitsObjective`` with these KerasTrial class flags set on the instance;
    its summary without ``train_seconds``, to compare exactly."""
    pytest.importorskip("keras")
    from tpetune.digits.data import load_digits_data
    from tpetune.digits.objective import DigitsObjective

    data = load_digits_data(None).limited(300, seed=0)

    def run(point: dict[str, Any], **flags: bool) -> dict[str, Any]:
        objective = DigitsObjective(data=data, folds=2, patience=2)
        for name, value in flags.items():
            setattr(objective, name, value)
        summary = objective.final_report(point, out_dir=None, seed=5, epochs=3, cv_loss=0.1)
        summary.pop("train_seconds")
        return summary

    return run
