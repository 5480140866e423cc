"""Grid search: enumeration of nested discrete spaces, exhaustion, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from hyperopt import hp
from hyperopt.pyll import scope

from tpetune import ConfigError, tune
from tpetune.engine.options import Search
from tpetune.search.grid import enumerate_space
from tpetune.search.space import Space

NESTED = {
    "layers": hp.choice(
        "layers",
        [
            {"n": 1},
            {"n": 2, "units2": hp.choice("units2", [8, 16, 32])},
            {
                "n": 3,
                "units2": hp.choice("u2", [8, 16]),
                "units3": scope.int(hp.quniform("u3", 4, 12, 4)),
            },
        ],
    ),
    "batch": hp.choice("batch", [32, 64]),
    "seed_offset": hp.randint("seed_offset", 3),
}


def test_nested_branches_expand_per_branch() -> None:
    combos = enumerate_space(Space(NESTED).expr)
    # (1 + 3 + 2*3) branch combinations x 2 batch sizes x 3 offsets
    assert len(combos) == (1 + 3 + 2 * 3) * 2 * 3
    assert len({tuple(sorted(c.items())) for c in combos}) == len(combos)
    one_layer = [c for c in combos if c["layers"] == 0]
    assert all(set(c) == {"layers", "batch", "seed_offset"} for c in one_layer)
    assert {c["u3"] for c in combos if c["layers"] == 2} == {4, 8, 12}


def test_grid_study_runs_every_combination_once_then_stops(tmp_path: Path) -> None:
    study = tune(
        lambda p: float(p["batch"]),
        NESTED,
        study_dir=tmp_path,
        max_evals=500,
        search=Search(algo="grid"),
        progress=False,
    )
    assert len(study.records) == 60
    assert study.stop_reason == "the search space is exhausted"
    seen = {tuple(sorted(r.params.items())) for r in study.records}
    assert len(seen) == 60
    three = [r for r in study.records if r.params["layers"] == 3]
    assert three and all(r.params["u3"] in (4, 8, 12) for r in three)


def test_grid_resumes_without_repeating(tmp_path: Path) -> None:
    first = tune(
        lambda p: 1.0,
        NESTED,
        study_dir=tmp_path,
        max_evals=25,
        search=Search(algo="grid"),
        progress=False,
    )
    done = tune(
        lambda p: 1.0,
        NESTED,
        study_dir=tmp_path,
        max_evals=60,
        search=Search(algo="grid"),
        progress=False,
    )
    assert [r.params for r in done.records[:25]] == [r.params for r in first.records]
    assert len({tuple(sorted(r.params.items())) for r in done.records}) == 60


def test_continuous_parameters_are_refused_by_name(tmp_path: Path) -> None:
    space = {"lr": hp.loguniform("lr", -9, -2), "batch": hp.choice("batch", [32, 64])}
    with pytest.raises(ConfigError, match="lr is continuous .*hp.quniform"):
        tune(
            lambda p: 1.0,
            space,
            study_dir=tmp_path,
            max_evals=3,
            search=Search(algo="grid"),
            progress=False,
        )
    assert not (tmp_path / "study.db").exists()
