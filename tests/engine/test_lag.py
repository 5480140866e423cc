"""Search(lag=...): parallel trials whose proposals and pruning depend on no timing.

The objective sleeps a random time (from the OS, not the trial's seed), so two workers finish
their trials in an order that changes from run to run; its loss and curve depend on the params
only. A lagged study must still propose, prune and record exactly what a serial run of the same
lagged study does, and so must one killed with ``kill -9`` and resumed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tpetune import (
    ConfigError,
    FreezeThawPruner,
    MedianPruner,
    Search,
    Serial,
    TrialState,
    Workers,
    load_study,
    tune,
)
from tpetune.search.space import load_file

JITTERY = """
import os, time
from hyperopt import hp
import tpetune

JITTER = float(os.environ.get("JITTER", "0.05"))
space = {
    "x": hp.uniform("x", -5, 5),
    "shape": hp.choice("shape", [{"kind": "flat"}, {"kind": "bent", "k": hp.uniform("k", 0, 2)}]),
}

def objective(params):
    x = params["x"]
    bend = params["shape"].get("k", 0.0)
    final = (x - 1) ** 2 + bend
    for step in range(5):
        # A random pause (from the OS, not the trial's seed): finish order varies per run.
        time.sleep(os.urandom(1)[0] / 255 * JITTER)
        tpetune.report(step, final * (1 + 1 / (step + 1)))
        if tpetune.should_prune():
            raise tpetune.TrialPruned()
    return final
"""

PRUNER = MedianPruner(warmup_trials=3, warmup_steps=1)
SEARCH = Search(lag=2, options={"n_startup_jobs": 4})


@pytest.fixture
def jittery(tmp_path: Path) -> Path:
    path = tmp_path / "jittery.py"
    path.write_text(JITTERY)
    return path


def _history(study_dir: Path) -> list[tuple[int, str, Any, float | None]]:
    return [(r.tid, r.state.value, r.params, r.loss) for r in load_study(study_dir).records]


def _run(file: Path, study_dir: Path, executor: Any, max_evals: int = 16) -> None:
    ns = load_file(file, need_objective=True)
    tune(
        ns["objective"],
        ns["space"],
        study_dir=study_dir,
        max_evals=max_evals,
        search=SEARCH,
        pruner=PRUNER,
        executor=executor,
        progress=False,
    )


def test_two_workers_propose_and_prune_what_a_serial_lagged_run_does(
    tmp_path: Path, jittery: Path
) -> None:
    _run(jittery, tmp_path / "serial", Serial())
    _run(jittery, tmp_path / "two", Workers(2))
    serial = _history(tmp_path / "serial")
    assert serial == _history(tmp_path / "two")
    assert any(state == "pruned" for _, state, _, _ in serial)  # the board mattered
    assert load_study(tmp_path / "two").meta["lag"] == 2  # stored with the study
    from tpetune.views.show import show_text

    assert "(algo tpe, seed 0, lag 2)" in show_text(load_study(tmp_path / "two"))


def test_the_lag_waits_for_the_trial_it_depends_on(tmp_path: Path, jittery: Path) -> None:
    """Each trial n starts only after trial n - 2 finished (stamps from the store)."""
    _run(jittery, tmp_path / "s", Workers(2), max_evals=10)
    records = {r.tid: r for r in load_study(tmp_path / "s").records}
    for tid in range(2, 10):
        older = records[tid - 2]
        assert older.finished is not None and records[tid].started is not None
        assert records[tid].started >= older.finished, tid


def test_kill_9_with_two_workers_resumes_to_the_uninterrupted_trials(
    tmp_path: Path, jittery: Path
) -> None:
    _run(jittery, tmp_path / "straight", Serial(), max_evals=18)
    study = tmp_path / "killed"
    argv = [
        sys.executable, "-m", "tpetune", "run", str(jittery), "--study-dir", str(study),
        "--max-evals", "18", "--workers", "2", "--lag", "2", "--tpe-startup", "4",
        "--prune", "median", "--prune-warmup-trials", "3", "--prune-warmup-epochs", "1",
        "--quiet", "--no-plots",
    ]  # fmt: skip
    env = {**os.environ, "JITTER": "0.3"}
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline, done, running = time.time() + 120, 0, 0
    while time.time() < deadline and not (done >= 7 and running):  # kill mid-trial
        time.sleep(0.05)
        try:
            states = [r.state for r in load_study(study).records]
        except Exception:  # not created yet
            continue
        running = sum(s is TrialState.RUNNING for s in states)
        done = len(states) - running
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and both workers, as a power cut would
    proc.wait()
    assert 7 <= done < 18
    assert any(r.state is TrialState.RUNNING for r in load_study(study).records)

    resumed = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    assert _history(study) == _history(tmp_path / "straight")


def test_bad_lags_are_refused_before_anything_is_stored(tmp_path: Path, jittery: Path) -> None:
    ns = load_file(jittery, need_objective=True)
    with pytest.raises(ConfigError, match=r"Search\(lag=...\) must be a positive integer"):
        Search(lag=0)
    with pytest.raises(ConfigError, match="freeze-thaw"):
        tune(ns["objective"], ns["space"], study_dir=tmp_path / "ft", max_evals=3,
             search=Search(lag=2), pruner=FreezeThawPruner(), progress=False)  # fmt: skip
    assert not (tmp_path / "ft" / "study.db").exists()

    _run(jittery, tmp_path / "s", Serial(), max_evals=3)
    before = _history(tmp_path / "s")
    with pytest.raises(ConfigError, match=r"made with lag 2, not 3"):
        tune(ns["objective"], ns["space"], study_dir=tmp_path / "s", max_evals=6,
             search=Search(lag=3), progress=False)  # fmt: skip
    assert _history(tmp_path / "s") == before
    tune(ns["objective"], ns["space"], study_dir=tmp_path / "nolag", max_evals=1, progress=False)
    with pytest.raises(ConfigError, match=r"made without a lag, not lag 2: leave Search\(lag"):
        tune(ns["objective"], ns["space"], study_dir=tmp_path / "nolag", max_evals=2,
             search=Search(lag=2), progress=False)  # fmt: skip


def test_the_cli_names_its_flag(tmp_path: Path, jittery: Path) -> None:
    argv = [sys.executable, "-m", "tpetune", "run", str(jittery), "--study-dir",
            str(tmp_path / "s"), "--max-evals", "3", "--lag", "2", "--prune", "freeze-thaw",
            "--quiet", "--no-plots"]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "--lag cannot keep proposals deterministic" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_lagged_grid_search_walks_every_point_once(tmp_path: Path) -> None:
    from hyperopt import hp

    space = {"a": hp.choice("a", [1, 2, 3]), "b": hp.choice("b", [10, 20])}
    grid = Search(algo="grid", lag=2)
    study = tune(lambda p: p["a"] * p["b"], space, study_dir=tmp_path, max_evals=10,
                 search=grid, progress=False)  # fmt: skip
    points = [(r.params["a"], r.params["b"]) for r in study.records]
    assert sorted(points) == sorted({(a, b) for a in (1, 2, 3) for b in (10, 20)})
