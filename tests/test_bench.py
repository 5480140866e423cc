"""Smoke test of the benchmark suite: ``python -m bench --quick`` runs and writes its figures.

No timing is asserted (CI machines are noisy); only that the benchmarks ran, wrote their JSON
with the expected figures, and that they are finite and positive.

CI runs the smoke test on the two benchmarks that train no Keras model (``overhead``,
``replay``: about a minute on 2 busy cores, 12 s of CPU), which still exercises the suite's
runner, its JSON reports, the plots drawn from them and the page. The quick run of all eight
(``python -m bench --quick``, 9 minutes of CI on 2 busy cores) is the opt-in test below:
``TPETUNE_BENCH_ALL=1 pytest tests/test_bench.py``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: benchmark -> figures its quick run must report as finite, positive numbers.
EXPECTED = {
    "overhead": ["ratio_tpetune_vs_fmin", "ms_per_trial_tpetune", "open_s", "study_bytes"],
    "stock_epoch": ["plain_ms_per_epoch", "objective_ms_per_epoch", "ratio_objective_vs_plain"],
    "memory": ["rss_after_10_default", "rss_at_end_default", "rss_at_end_serial"],
    "pruning": [
        "wall_s_no_prune",
        "wall_s_prune",
        "epochs_no_prune",
        "epochs_prune",
        "best_loss_no_prune",
        "best_loss_prune",
        "time_ratio",
        "loss_ratio",
    ],
    "strategies": ["best_loss_tpe", "best_loss_rand", "best_loss_grid", "ratio_tpe_vs_rand"],
    "parallel": ["trials_per_hour_serial", "trials_per_hour_workers", "ratio_workers_vs_serial"],
    "time_to_quality": ["target_loss"],
    "replay": [],  # figures per table: checked below
}
REPORT_KEYS = {"benchmark", "quick", "seconds", "figures", "target", "target_met", "table"}


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


#: The benchmarks of the CI smoke run: no Keras, about a minute.
SMOKE = ("overhead", "replay")


def _quick_suite(tmp_path: Path, only: tuple[str, ...] | None) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)]
        + (["--only", ",".join(only)] if only else []),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,  # all eight benchmarks: a shared 2-core machine took over 480 s
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    expected = {k: v for k, v in EXPECTED.items() if only is None or k in only}
    for name, keys in expected.items():
        report = json.loads((tmp_path / f"{name}.json").read_text())
        assert set(report) >= REPORT_KEYS, (name, sorted(report))
        assert report["benchmark"] == name and report["quick"] is True
        figures = report["figures"]
        for key in keys:
            assert _positive(figures.get(key)), (name, key, figures.get(key))
        assert report["table"]["rows"], name
    replay = json.loads((tmp_path / "replay.json").read_text())["figures"]
    assert "digits" in replay  # stock too once bench/tables/stock.json.gz is recorded
    for table in replay.values():
        assert {"tpe", "tpe-asha", "random"} <= set(table["summary"])
        assert all(_positive(s["best_100"]) for s in table["summary"].values())
        assert _positive(table["targets"]["grid_tenth"]["grid_epochs"])
    if "time_to_quality" in expected:
        ttq = json.loads((tmp_path / "time_to_quality.json").read_text())["figures"]["modes"]
        assert {"fmin", "tpetune", "tpetune rand"} <= set(ttq)
    for png in expected:  # every benchmark has its plot (the suite draws some from the JSON)
        names = [f"replay_{t}" for t in replay] if png == "replay" else [png]
        assert all((tmp_path / f"{n}.png").stat().st_size > 0 for n in names), png
    page = (tmp_path / "benchmarks.md").read_text()
    assert "BEGIN bench:pruning" in page and "| seed |" in page
    assert "| 100 | yes |" in page  # overhead: identical proposals in every driver
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert all(b["status"] == "ok" for b in summary["benchmarks"].values())

    # --render: the page again from the stored JSONs, keeping the run's date and command.
    (tmp_path / "benchmarks.md").unlink()
    (tmp_path / "overhead.png").unlink()
    rendered = subprocess.run(
        [sys.executable, "-m", "bench", "--render", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rendered.returncode == 0, rendered.stdout[-2000:] + rendered.stderr[-2000:]
    again = (tmp_path / "benchmarks.md").read_text()
    if only is None:
        assert again.count("_Measured ") == page.count("_Measured ")
    else:  # a partial run's page also shows the stored figures of the benchmarks it skipped
        assert again.count("_Measured ") >= len(only)
    assert (tmp_path / "overhead.png").stat().st_size > 0


def test_quick_smoke_run_writes_its_figures_and_the_page(tmp_path: Path) -> None:
    _quick_suite(tmp_path, SMOKE)


@pytest.mark.skipif(
    os.environ.get("TPETUNE_BENCH_ALL") != "1",
    reason="all eight quick benchmarks take ~9 min: set TPETUNE_BENCH_ALL=1",
)
def test_quick_suite_writes_every_benchmarks_figures(tmp_path: Path) -> None:
    _quick_suite(tmp_path, None)


# -- the recorded-curves replay (bench/replay_sim.py) --------------------------------------------
def _table(epochs: int = 8) -> Any:
    """A synthetic table: 2 x 3 x 4 configurations with smooth, distinct, noisy curves."""
    import random

    from bench import tabular

    factors = {"a": [0, 1], "b": ["x", "y", "z"], "c": [0.1, 0.2, 0.3, 0.4]}
    rng = random.Random(0)
    val = {}
    for params in tabular.configs(factors):
        floor = rng.uniform(0.1, 1.0)
        val[tabular.row_key(params)] = [
            floor * (1 + 2 / (e + 1)) + rng.gauss(0, 0.01) for e in range(epochs)
        ]
    return tabular.Table("synthetic", {"table": "synthetic", "epochs": epochs}, factors, val, val)


def test_replayed_trial_stops_by_patience_prune_and_budget() -> None:
    from bench import tabular
    from bench.replay_sim import BudgetSpent, Sim, grid

    params = {"a": 0}
    curve = [5.0, 4.0, 4.5, 4.2, 4.1, 3.0, 2.0]
    table = tabular.Table("t", {"epochs": 7}, {"a": [0]}, {tabular.row_key(params): curve}, {})
    sim = Sim(table, budget=100, patience=3)
    state, loss, ran = sim.train(params)
    assert (state, loss, ran) == ("ok", 4.0, curve[:5])  # 3 epochs without a new best
    state, loss, ran = sim.train(params, lambda step, c: step == 2)
    assert (state, loss, len(ran)) == ("pruned", 4.0, 2)
    assert sim.best == 4.0 and sim.spent == 7 and sim.pruned == 1  # pruned trials don't count
    assert sim.trace == [(5, 4.0), (7, 4.0)]
    # The table's best (2.0, epoch 7) lies beyond where early stopping ends the trial.
    assert table.best_loss() == 2.0 and grid(table) == (4.0, 5)
    short = Sim(table, budget=3)
    with pytest.raises(BudgetSpent):
        short.train(params)
    assert short.spent == 3 and short.trials == 0 and short.best_at(3) == math.inf


@pytest.mark.parametrize("allow_duplicates", [True, False], ids=["repeats", "distinct"])
def test_replay_loop_proposes_and_prunes_exactly_as_tpetune_tune(
    tmp_path: Path, allow_duplicates: bool
) -> None:
    """The simulator's driver loop equals the real driver: same params, states and losses,
    with hyperopt's repeats and with a new study's distinct proposals."""
    import tpetune
    from bench.replay_sim import Sim, hyperopt_space, run_tpetune
    from tpetune.engine.tuning import tune

    table = _table()
    for pruner in (None, tpetune.ASHAPruner()):
        sim = run_tpetune(
            Sim(table, budget=120), 7, pruner=pruner, n_startup=5,
            allow_duplicates=allow_duplicates,
        )  # fmt: skip

        def objective(params: dict[str, Any]) -> float:
            best, wait = math.inf, 0
            for step, value in enumerate(table.curve(params), start=1):
                tpetune.report(step, value)
                best, wait = (value, 0) if value < best else (best, wait + 1)
                if tpetune.should_prune():
                    raise tpetune.TrialPruned()
                if wait >= 3:
                    break
            return best

        study = tune(
            objective,
            hyperopt_space(table),
            study_dir=tmp_path / str(pruner),
            max_evals=sim.trials,
            search=tpetune.Search(
                seed=7, options={"n_startup_jobs": 5}, allow_duplicates=allow_duplicates
            ),
            pruner=pruner or tpetune.NoPruner(),
            progress=False,
        )
        driven = [(r.params, r.state.value, r.loss) for r in sorted(study.records, key=_tid)]
        assert driven == [(p, o.state, o.loss) for p, o in sim.history]
        points = [json.dumps(p, sort_keys=True) for p, _ in sim.history][:24]  # 24 in the table
        assert (len(set(points)) == len(points)) is not allow_duplicates  # repeats are redrawn


def _tid(record: Any) -> int:
    return int(record.tid)


def test_cached_posterior_proposes_the_same_points() -> None:
    import tpetune
    from bench.replay_sim import Sim, run_tpetune

    table = _table()
    runs = [
        run_tpetune(Sim(table, budget=80), 3, pruner=tpetune.ASHAPruner(), n_startup=3,
                    cache_posterior=cached).history
        for cached in (True, False)
    ]  # fmt: skip
    assert runs[0] == runs[1]


def test_shipped_tables_hold_every_configuration_with_full_curves() -> None:
    from bench import tabular

    for name, factors in tabular.FACTORS.items():
        path = tabular.TABLES / f"{name}.json.gz"
        if not path.exists():
            pytest.skip(f"{path.name} not recorded yet (bench/record_curves.py {name})")
        table = tabular.load_table(name)
        assert table.factors == factors
        assert set(table.val_loss) == {tabular.row_key(c) for c in tabular.configs(factors)}
        assert all(len(c) == table.epochs for c in table.val_loss.values())
        assert table.meta["command"] and table.meta["seconds"] > 0


def test_digits_cnn_network_is_the_documented_one() -> None:
    """bench/record_curves.py's digits-cnn network: conv layers, head and optimizer follow the
    row; it maps 8x8 images to 10 class probabilities."""
    import numpy as np

    from bench import tabular
    from bench.record_curves import cnn_model

    row = {"filters": 8, "conv_layers": 2, "head": "gap", "optimizer": "sgd", "lr": 0.1}
    assert row in list(tabular.configs(tabular.DIGITS_CNN_FACTORS))
    model = cnn_model(row, (8, 8))
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    assert [c.filters for c in convs] == [8, 16]
    assert any(type(layer).__name__ == "GlobalAveragePooling2D" for layer in model.layers)
    assert type(model.optimizer).__name__ == "SGD" and model.optimizer.nesterov
    probs = model.predict(np.zeros((3, 8, 8, 1), dtype="float32"), verbose=0)
    assert probs.shape == (3, 10) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    flat = cnn_model({**row, "conv_layers": 1, "head": "flatten", "optimizer": "adam"}, (8, 8))
    assert [type(layer).__name__ for layer in flat.layers][1:3] == ["Conv2D", "Flatten"]


def test_replay_runs_no_default_method_on_a_table_without_a_bundled_study() -> None:
    from bench import replay

    names, notes = replay._methods(replay.FULL, "digits-cnn")
    assert "tpe" in names and not any(m.startswith("default") for m in names)
    assert any("no bundled study" in n for n in notes)
    assert "default" in replay._methods(replay.FULL, "digits")[0]


def test_replayed_pause_and_thaw_pay_only_new_epochs() -> None:
    """bench/replay_pause.py: a paused trial keeps its curve and early-stopping state; its
    thaw pays only the epochs it trains then; a trial counts once however often thawed."""
    from bench import tabular
    from bench.replay_pause import Run, advance, run_freeze_thaw, run_one_epoch_top_k
    from bench.replay_sim import Sim
    from tpetune import FreezeThawPruner
    from tpetune.pruners.policies import Decision

    params = {"a": 0}
    curve = [5.0, 4.0, 3.5, 3.4, 3.6, 3.7, 3.8, 3.0]
    table = tabular.Table("t", {"epochs": 8}, {"a": [0]}, {tabular.row_key(params): curve}, {})
    sim = Sim(table, budget=100, patience=3)
    run = Run(params, curve)
    pause = advance(sim, run, lambda step, c: Decision(True, pause=True) if step == 2 else False)
    assert (pause, sim.spent, sim.trials, sim.best) == ("paused", 2, 1, math.inf)
    assert advance(sim, run, None) == "ok"  # thawed: epochs 3.. until patience 3 runs out
    assert run.curve == curve[:7] and sim.spent == 7 and sim.trials == 1 and sim.best == 3.4

    synthetic = _table(epochs=8)
    ft = run_freeze_thaw(Sim(synthetic, budget=150), 0, pruner=FreezeThawPruner(max_steps=8))
    assert ft.spent <= 150 and ft.trials >= 10 and math.isfinite(ft.best)
    top = run_one_epoch_top_k(Sim(synthetic, budget=60), 0)
    assert top.trials == 15 and top.spent <= 60 and math.isfinite(top.best)  # 60/4 screened


def test_replayed_freeze_thaw_shows_tpe_its_history_and_draws_repeats_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every proposal of the freeze-thaw replay is made from all trials before it (a doc
    held back from TPE's history once made it propose at random); with distinct proposals,
    no configuration is trained twice before all 24 of the table were."""
    from hyperopt import tpe

    from bench import replay_pause, tabular
    from bench.replay_sim import Sim
    from tpetune import FreezeThawPruner

    history: list[tuple[int, int]] = []
    real = tpe.suggest

    def spy(new_ids: list[int], domain: Any, trials: Any, seed: int, **kw: Any) -> Any:
        history.append((new_ids[0], len(trials.trials)))
        return real(new_ids, domain, trials, seed, **kw)

    made: list[str] = []

    class Recorded(replay_pause.Run):
        def __init__(self, params: dict[str, Any], full: list[float]) -> None:
            super().__init__(params, full)
            made.append(tabular.row_key(params))

    monkeypatch.setattr(tpe, "suggest", spy)
    monkeypatch.setattr(replay_pause, "Run", Recorded)
    table, pruner = _table(epochs=8), FreezeThawPruner(max_steps=8)
    replay_pause.run_freeze_thaw(Sim(table, budget=400), 0, pruner=pruner, n_startup=3)
    assert len(history) > 24 and all(seen == tid for tid, seen in history)
    assert len(set(made[:24])) < 24  # hyperopt's TPE repeats its favourites

    made.clear()
    replay_pause.run_freeze_thaw(
        Sim(table, budget=400), 0, pruner=pruner, n_startup=3, allow_duplicates=False
    )
    assert len(made) > 24 and len(set(made[:24])) == 24


def test_replayed_freeze_thaw_thaws_before_repeating_in_a_full_space(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As tpetune's driver does: once the six configurations of a small table were all
    proposed, a paused trial is continued instead of a repeat, and a repeat is made only
    while none is paused."""
    from bench import replay_pause, tabular
    from bench.replay_sim import Sim
    from tpetune import FreezeThawPruner

    factors = {"a": [0, 1, 2], "b": ["x", "y"]}
    val = {}
    for i, params in enumerate(tabular.configs(factors)):
        slow = 1 + i % 3  # 1, 2, 3: the larger, the slower the start
        val[tabular.row_key(params)] = [0.2 + 0.05 * i + slow / (e + 1) ** 0.5 for e in range(8)]
    table = tabular.Table("six", {"table": "six", "epochs": 8}, factors, val, val)
    events: list[tuple[str, int]] = []  # ("new", run id) when made, (state, run id) after
    real_advance = replay_pause.advance

    def advance(sim: Any, run: Any, decide: Any) -> str:
        if not any(i == id(run) for _, i in events):
            events.append(("new", id(run)))
        state = real_advance(sim, run, decide)
        events.append((state, id(run)))
        return state

    monkeypatch.setattr(replay_pause, "advance", advance)
    pruner = FreezeThawPruner(pause_below=0.9, prune_below=0.0, warmup_trials=2, max_steps=8)
    sim = Sim(table, budget=120)
    replay_pause.run_freeze_thaw(sim, 0, pruner=pruner, n_startup=3, allow_duplicates=False)
    made, paused, thawed_when_full = 0, set(), 0
    for state, run in events:
        if state == "new":
            made += 1
            assert made <= 6 or not paused, "a repeat was made while a trial was paused"
        elif run in paused:  # it ran again: a thaw
            paused.discard(run)
            thawed_when_full += made >= 6
        if state == "paused":
            paused.add(run)
    assert made > 6 and thawed_when_full, (made, thawed_when_full)
