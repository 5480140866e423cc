"""Worker processes: records, isolation from crashes, timeouts, driver kill and resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tpetune import TrialState, load_study, tune
from tpetune.space import load_file

SLEEPY = """
import os, time
from hyperopt import hp
space = {"x": hp.uniform("x", -5, 5), "mode": hp.choice("mode", ["ok", "crash", "hang"])}
def objective(params):
    if params["mode"] == "crash" and params["x"] > 2:
        os.kill(os.getpid(), 9)          # the worker dies mid-trial, as an OOM kill would
    if params["mode"] == "hang" and params["x"] > 2:
        time.sleep(120)
    time.sleep(float(os.environ.get("SLEEP", "0.1")))
    return {"loss": (params["x"] - 1) ** 2, "metrics": {"pid": os.getpid()}}
"""


@pytest.fixture
def sleepy(tmp_path: Path) -> Path:
    path = tmp_path / "sleepy.py"
    path.write_text(SLEEPY)
    return path


def test_two_workers_finish_every_trial_with_correct_records(tmp_path: Path, sleepy: Path) -> None:
    ns = load_file(sleepy, need_objective=True)
    study = tune(
        ns["objective"],
        ns["space"],
        study_dir=tmp_path / "s",
        max_evals=16,
        workers=2,
        trial_timeout=20,
        max_failures=16,
        progress=False,
    )
    records = study.records
    assert [r.tid for r in records] == list(range(16))
    assert all(r.state is not TrialState.RUNNING for r in records)
    for r in records:
        doomed = r.params["mode"] in ("crash", "hang") and r.params["x"] > 2
        assert r.state is (TrialState.FAIL if doomed else TrialState.OK), r
        if r.state is TrialState.OK:
            assert r.loss == pytest.approx((r.params["x"] - 1) ** 2)
            assert r.metrics["pid"] != os.getpid()  # ran in a worker, not the driver
    errors = {r.error for r in records if r.state is TrialState.FAIL}
    crashed = any(r.params["mode"] == "crash" and r.params["x"] > 2 for r in records)
    hung = any(r.params["mode"] == "hang" and r.params["x"] > 2 for r in records)
    if crashed:
        assert "the worker process died (signal SIGKILL) while running the trial" in errors
    if hung:
        assert "trial exceeded the trial timeout of 20s and was killed" in errors
    assert crashed, "seed 0 proposes a crashing trial in the first 16 (keeps the test meaningful)"


def test_trial_timeout_applies_with_one_worker(tmp_path: Path) -> None:
    from hyperopt import hp

    def objective(params: dict[str, float]) -> float:
        time.sleep(30 if params["x"] > 0.5 else 0)
        return params["x"]

    study = tune(
        objective,
        {"x": hp.uniform("x", 0, 1)},
        study_dir=tmp_path,
        max_evals=6,
        trial_timeout=2,
        max_failures=6,
        progress=False,
    )
    for r in study.records:
        assert r.state is (TrialState.FAIL if r.params["x"] > 0.5 else TrialState.OK)


def test_driver_killed_with_workers_resumes(tmp_path: Path, sleepy: Path) -> None:
    study = tmp_path / "study"
    argv = [
        sys.executable,
        "-m",
        "tpetune",
        "run",
        str(sleepy),
        "--study-dir",
        str(study),
        "--max-evals",
        "24",
        "--workers",
        "2",
        "--trial-timeout",
        "20",
        "--max-failures",
        "24",
        "--quiet",
        "--no-plots",
    ]
    env = {**os.environ, "SLEEP": "0.3"}
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline, done = time.time() + 90, 0
    while time.time() < deadline and done < 5:
        time.sleep(0.2)
        try:
            done = sum(r.state is TrialState.OK for r in load_study(study).records)
        except Exception:  # not created yet
            done = 0
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its workers, as a power cut would
    proc.wait()
    assert done >= 5
    kept = {r.tid: r for r in load_study(study).records if r.state is not TrialState.RUNNING}

    resumed = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    records = load_study(study).records
    assert [r.tid for r in records] == list(range(24))
    assert all(r.state is not TrialState.RUNNING for r in records)
    for tid, rec in kept.items():
        assert records[tid] == rec
