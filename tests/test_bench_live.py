"""bench/live.py: its figures from known runs, and a smoke run of the real script.

No timing is asserted: the figures are checked on hand-made runs, and the smoke run only
shows that every figure, the JSON and the plot are produced, and that the modes share their
seeds (the first trial, random in every mode, trains the same model).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import common, live

ROOT = Path(__file__).resolve().parents[1]


def _run(mode: str, seed: int, ends: list[tuple[float, float | None]]) -> common.Run:
    trial_ends = [common.TrialEnd(t, loss, 3) for t, loss in ends]
    return common.Run(mode, seed, ends[-1][0], trial_ends)


def _runs() -> list[common.Run]:
    # tpetune reaches 0.5 at 10 s and 20 s (lower than fmin in both seeds); fmin at 30 s and
    # never; other pruner at 15 s, 25 s.
    return [
        _run("fmin", 0, [(10, 0.9), (30, 0.5)]),
        _run("tpetune", 0, [(5, 0.9), (10, 0.45)]),
        _run("other pruner", 0, [(5, 0.9), (15, 0.5)]),
        _run("fmin", 1, [(10, 0.9), (40, 0.6)]),
        _run("tpetune", 1, [(20, 0.4), (30, 0.4)]),
        _run("other pruner", 1, [(25, 0.45), (30, None)]),
    ]


def test_figures_of_known_runs() -> None:
    f = live.study_figures(_runs(), target=0.5)
    modes = f["modes"]
    assert modes["fmin"]["time_to_target_s"] == [30, math.inf]
    assert modes["fmin"]["reached"] == 1
    assert modes["tpetune"]["median_time_to_target_s"] == 15
    assert modes["other pruner"]["median_time_to_target_s"] == 20
    assert f["best_loss_found"] == 0.4
    assert modes["tpetune"]["within_0.5pct_of_best"] == 1  # seed 1 only
    # fmin's median over [30, inf] is inf: only tpetune got there (as a median).
    assert f["time_to_target_a_over_b"] == math.inf
    assert f["time_to_target_a_over_b_per_seed"] == [3.0, math.inf]
    assert f["time_to_target_c_over_b"] == pytest.approx(20 / 15)
    assert f["total_wall_a_over_b"] == pytest.approx(70 / 40)
    assert f["final_loss_c_over_b"] == "ranges overlap: no difference shown"
    assert f["final_loss_a_over_b"] == "higher than tpetune in every seed"
    assert live.target_met(f)


def test_a_ratio_inside_the_spread_is_no_win() -> None:
    f = {"time_to_target_a_over_b": 2.5, "time_to_target_a_over_b_per_seed": [4.0, 0.8, 2.5]}
    assert not live.target_met(f)  # one seed was faster with fmin
    f["time_to_target_a_over_b_per_seed"] = [4.0, 1.1, 2.5]
    assert live.target_met(f)
    f["time_to_target_a_over_b"] = 1.9
    assert not live.target_met(f)


def test_freeze_thaw_and_keras_tuner_are_compared_with_tpetune_and_fmin() -> None:
    runs = [
        _run("fmin", 0, [(10, 0.9), (40, 0.5)]),
        _run("tpetune", 0, [(10, 0.9), (30, 0.5)]),
        _run("freeze-thaw", 0, [(10, 0.6), (15, 0.5)]),
        _run("keras-tuner", 0, [(5, 2.0), (50, 0.8)]),
        _run("fmin", 1, [(10, 0.9), (60, 0.45)]),
        _run("tpetune", 1, [(10, 0.9), (40, 0.45)]),
        _run("freeze-thaw", 1, [(20, 0.45), (25, None)]),
        _run("keras-tuner", 1, [(5, 2.0), (50, 0.7)]),
    ]
    # keras-tuner's finals (0.8, 0.7) do not move the target: the others' median is 0.5 / 0.45.
    target = live.target_loss(runs)
    assert target == pytest.approx(0.475)
    assert live.target_loss(runs, 0.6) == 0.6
    f = live.study_figures(runs, 0.5)
    assert list(f["modes"]) == ["fmin", "tpetune", "freeze-thaw", "keras-tuner"]
    assert f["time_to_target_ft_over_a_per_seed"] == [15 / 40, 20 / 60]
    assert f["time_to_target_ft_over_b_per_seed"] == [15 / 30, 20 / 40]
    assert f["time_to_target_ft_over_a"] == pytest.approx(17.5 / 50)
    assert f["time_to_target_kt_over_a_per_seed"] == [math.inf, math.inf]  # only fmin got there
    assert f["final_loss_kt_over_a"] == "higher than fmin in every seed"
    assert live.freeze_thaw_target_met(f) is True
    assert live.target_met(f) is False  # tpetune alone is not 2x faster than fmin
    rows = live.table_rows("digits", f)
    assert [r[1] for r in rows] == ["fmin", "tpetune", "freeze-thaw", "keras-tuner"]
    assert rows[2][4] == "0.50x" and rows[3][4] == "only tpetune reached it"


def test_the_freeze_thaw_target_needs_every_seed_faster() -> None:
    f = {"time_to_target_ft_over_a": 0.4, "time_to_target_ft_over_a_per_seed": [0.3, 1.2, 0.4]}
    assert live.freeze_thaw_target_met(f) is False  # fmin got there sooner in one seed
    f["time_to_target_ft_over_a_per_seed"] = [0.3, 0.9, 0.4, math.nan, 0.0]
    assert live.freeze_thaw_target_met(f) is True  # NaN: neither got there; 0: only ft did
    f["time_to_target_ft_over_a"] = 0.51
    assert live.freeze_thaw_target_met(f) is False
    assert live.freeze_thaw_target_met({}) is None  # fmin or freeze-thaw not run


def test_paired_ratio_of_runs_that_never_got_there() -> None:
    assert live.paired_ratio(math.inf, 10.0) == math.inf
    assert live.paired_ratio(10.0, math.inf) == 0.0
    assert math.isnan(live.paired_ratio(math.inf, math.inf))
    assert live.paired_ratio(30.0, 10.0) == 3.0


def test_band_counts_no_trial_yet_as_no_best_and_keeps_a_finished_runs_final() -> None:
    import numpy as np

    runs = [
        _run("tpetune", 0, [(1, 0.9), (2, 0.5)]),
        _run("tpetune", 1, [(3, 0.7)]),
        _run("tpetune", 2, [(1.2, 0.8)]),
    ]
    med, low, high = live.curve_band(runs, np.array([0.5, 1.5, 2.5, 4.0]))
    assert math.isnan(med[0])  # no run has a best yet
    assert list(med[1:]) == [0.9, 0.8, 0.7]  # the run without a trial counts as worst
    assert list(low[1:]) == [0.8, 0.5, 0.5]
    assert math.isnan(high[1]) and math.isnan(high[2]) and high[3] == 0.8


@pytest.mark.keras
def test_quick_run_writes_its_figures_and_shares_seeds(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    out = tmp_path / "live.json"
    done = subprocess.run(
        [sys.executable, "bench/live.py", "--quick", "--studies", "digits", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "target loss" in done.stdout
    report = json.loads(out.read_text())
    assert report["benchmark"] == "live" and report["quick"] is True
    assert (tmp_path / report["png"]).stat().st_size > 0
    figures = report["figures"]["digits"]
    assert math.isfinite(figures["target_loss"])
    assert set(figures["modes"]) == set(live.MODES)
    runs = report["runs"]
    assert sorted(r["mode"] for r in runs) == sorted(live.MODES)
    assert all(r["trials"] == live.QUICK.studies[0].trials for r in runs)
    # The same random models everywhere (common random numbers); with two workers (the
    # default) trials may end in another order, so compare them as a set.
    losses = [sorted(r["losses"]) for r in runs]
    for other in losses[1:]:
        assert other == pytest.approx(losses[0], rel=1e-3)
    assert len(report["table"]["rows"]) == 3


@pytest.mark.keras
def test_the_keras_tuner_hypermodel_declares_the_digits_space() -> None:
    kt = pytest.importorskip("keras_tuner")
    from bench import live_keras_tuner as klt
    from tpetune.digits.model import build_model

    doms = klt.space_domains("digits")
    assert klt.max_epochs(doms) == 40  # the largest `epochs` choice: Hyperband's resource
    hp = kt.HyperParameters()
    first = klt.hp_params(hp, doms, 40)  # the defaults: the first option or the low end
    assert first["hidden_layers"] == {"layers": 1, "units1": 32}
    assert first["optimizer"] == {"name": "sgd", "momentum": 0.0, "nesterov": False}
    # Every label but `epochs` is declared, with the space's ranges; the branches' own
    # labels are active only where their branch is taken.
    assert {h.name for h in hp.space} == set(common.load_space("digits").labels) - {"epochs"}
    assert set(hp.values) == {h.name for h in hp.space} - {"units2", "units3", "decay", "rate"}
    assert hp.get("units1") == 32 and hp._hps["units2"][0].step == 16
    assert hp._hps["lr"][0].sampling == "log"
    chosen = {"hidden_layers": 3, "units1": 64, "units2": 48, "units3": 16, "optimizer": "adam"}
    hp.values.update({**chosen, "schedule": "time", "decay": 0.01, "lr": 0.002, "batch_size": 64})
    params = klt.hp_params(hp, doms, 40)
    assert params["hidden_layers"] == {"layers": 3, "units1": 64, "units2": 48, "units3": 16}
    assert params["optimizer"] == {"name": "adam"}  # momentum/nesterov: SGD's branch only
    assert params["schedule"] == {"name": "time", "decay": 0.01}
    assert (params["lr"], params["batch_size"], params["epochs"]) == (0.002, 64, 40)
    model = build_model(params, n_features=64, steps_per_epoch=10)
    assert [layer.units for layer in model.layers[1:]] == [64, 48, 16, 10]


@pytest.mark.keras
def test_quick_run_of_freeze_thaw_and_keras_tuner(tmp_path: Path) -> None:
    pytest.importorskip("keras_tuner")
    out = tmp_path / "live.json"
    modes = "tpetune,freeze-thaw,keras-tuner"
    args = ["--quick", "--studies", "digits", "--modes", modes, "--json", str(out)]
    done = subprocess.run(
        [sys.executable, "bench/live.py", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "target, issue 24" in done.stdout
    report = json.loads(out.read_text())
    assert report["settings"]["modes"] == modes.split(",")
    runs = {r["mode"]: r for r in report["runs"]}
    assert runs["freeze-thaw"]["pruner"]["name"] == "freeze-thaw"
    kt = runs["keras-tuner"]
    assert kt["trials"] >= 1 and kt["factor"] == 3 and kt["max_epochs"] == 3
    # Its budget: the longest wall time of the modes before it on the seed.
    assert kt["budget_s"] == pytest.approx(
        max(runs[m]["wall_s"] for m in ("tpetune", "freeze-thaw"))
    )
    assert report["target_met"] is None  # fmin was not run
