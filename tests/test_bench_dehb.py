"""DEHB in the recorded-curves replay (bench/replay_dehb.py): what an evaluation costs, which
evaluations count for the incumbent, the budget, and the report's fields."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytest.importorskip("dehb")


def _one_config_table(curve: list[float]) -> tuple[object, dict[str, int]]:
    from bench import tabular

    params = {"a": 0}
    table = tabular.Table(
        "t", {"epochs": len(curve)}, {"a": [0]}, {tabular.row_key(params): curve}, {}
    )
    return table, params


def test_each_evaluation_trains_from_scratch_and_a_capped_one_is_not_finished() -> None:
    from bench.dehb_retraining import repeats
    from bench.replay_dehb import evaluate
    from bench.replay_sim import Sim

    table, params = _one_config_table([9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0])
    sim = Sim(table, budget=100)
    assert evaluate(sim, params, 3) == (7.0, 3)  # DEHB sees the loss at its fidelity...
    assert sim.pruned == 1 and sim.best == math.inf  # ...the incumbent does not: a partial run
    assert evaluate(sim, params, 9) == (1.0, 9)  # promoted: 9 epochs again, not 6 more
    assert sim.spent == 12 and sim.trials == 2 and sim.best == 1.0
    assert [len(o.curve) for _, o in sim.history] == [3, 9]
    assert repeats(sim) == {"evaluations": 2, "distinct": 1, "retrained": 9 / 12}

    # Early stopping (patience 3) ends this run at epoch 5, inside the cap of 6 (and right
    # at a cap of 5): it finished, as the full-fidelity run would, so it counts.
    table, params = _one_config_table([5.0, 4.0, 4.5, 4.2, 4.1, 3.0, 2.0])
    for cap in (6, 5):
        sim = Sim(table, budget=100)
        assert evaluate(sim, params, cap) == (4.0, 5)
        assert sim.pruned == 0 and sim.best == 4.0


def test_a_diverged_run_is_a_large_finite_fitness() -> None:
    from bench.replay_dehb import FAILED_FITNESS, evaluate
    from bench.replay_sim import Sim

    table, params = _one_config_table([math.nan] * 4)
    sim = Sim(table, budget=100)
    assert evaluate(sim, params, 4) == (FAILED_FITNESS, 1)
    assert sim.best == math.inf


def test_dehb_replay_on_stock_keeps_the_budget_and_the_report_fields(tmp_path: Path) -> None:
    from bench import freeze_thaw, replay, tabular

    if not (tabular.TABLES / "stock.json.gz").exists():
        pytest.skip("stock.json.gz not recorded")
    table = replay._table("stock")
    budget = round(30 * replay.mean_trial_epochs(table))
    runs = {
        (m, s): replay.run_one(("stock", m, s, budget, 30))
        for m in ("random", "dehb")
        for s in (0, 1)
    }
    for (_, seed), r in runs.items():
        assert r.keys() == runs[("random", seed)].keys()
        assert r["trace"][-1][0] <= budget and r["trials"] > 0
    dehb = [runs[("dehb", s)] for s in (0, 1)]
    assert all(r["pruned"] > 0 and math.isfinite(r["best"]["100"]) for r in dehb)
    assert dehb[0]["trace"] != dehb[1]["trace"]  # seeded: the seed changes the search...
    again = replay.run_one(("stock", "dehb", 0, budget, 30))
    assert again["trace"] == dehb[0]["trace"]  # ...and reproduces it

    out = tmp_path / "ft.json"
    argv = ["--seeds", "2", "--tables", "stock", "--methods", "tpe,dehb", "--jobs", "1"]
    assert freeze_thaw.main([*argv, "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["stock"]["rows"]
    assert rows["dehb"].keys() == rows["tpe"].keys() and rows["dehb"]["seeds"] == 2
    assert "hyperopt" in json.loads(out.read_text())["versions"]


def test_the_retraining_script_prints_each_tables_share(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import dehb_retraining

    assert dehb_retraining.main(["--seeds", "2", "--tables", "stock"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("stock (") and "of the epochs re-train a configuration" in line
