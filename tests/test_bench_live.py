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
    first = [r["best_by_trial"][0] for r in runs]  # trial 0: the same random model everywhere
    assert first == pytest.approx([first[0]] * 3, rel=1e-3)
    assert len(report["table"]["rows"]) == 3
