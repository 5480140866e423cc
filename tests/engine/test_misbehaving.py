"""When the world misbehaves (issue 14): SIGTERM, objectives that exit or always fail, bad
--points, bad paths, bundled-study data too short for its space, TensorFlow's noise.

Every test runs the real ``tpetune`` command in a subprocess, with real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tpetune import TrialState, load_study

GATED = """
import os, pathlib, sys, time
from hyperopt import hp
from tpetune.trial.context import current_trial
space = {"x": hp.uniform("x", -5, 5)}
GATE = pathlib.Path(os.environ["GATE"])
def objective(params):
    tid = current_trial().tid
    (GATE / f"started-{tid}-{os.getpid()}").touch()
    while tid >= int(os.environ.get("HOLD_FROM", "1")) and not (GATE / "go").exists():
        time.sleep(0.02)
    return (params["x"] - 1) ** 2
"""


def _cli(*args: str, env: dict[str, str] | None = None, **kw: Any) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "tpetune", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
        **kw,
    )


def _one_line(result: Any, code: int, *needles: str) -> str:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _until(predicate: Any, what: str, limit: float = 120.0) -> None:
    deadline = time.time() + limit
    while not predicate():
        assert time.time() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in "ZX"


def _started(gate: Path) -> dict[int, int]:
    """tid -> pid of the trials that have started."""
    return {int(p.name.split("-")[1]): int(p.name.split("-")[2]) for p in gate.glob("started-*")}


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_stops_like_ctrl_c_and_the_study_resumes(tmp_path: Path, workers: int) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    script = tmp_path / "gated.py"
    script.write_text(GATED)
    study = tmp_path / "study"
    argv = [sys.executable, "-m", "tpetune", "run", str(script), "--study-dir", str(study),
            "--max-evals", "6", "--workers", str(workers), "--quiet", "--no-plots"]  # fmt: skip
    env = {**os.environ, "GATE": str(gate)}
    driver = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        _until(lambda: 1 + workers in _started(gate) or workers in _started(gate), "a held trial")
        _until(lambda: len(_started(gate)) >= workers + (workers == 1), "trials to start")
        pids = set(_started(gate).values()) - {driver.pid}
        os.killpg(driver.pid, signal.SIGTERM)  # as Slurm or Kubernetes do: the whole group
        _, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert driver.returncode == 143, err
    assert "tpetune: terminated (SIGTERM); finished trials are kept in" in err
    assert "Run the same command again to resume." in err
    assert "Traceback" not in err
    _until(lambda: all(_gone(pid) for pid in pids), "the workers to be stopped", 30)
    records = load_study(study).records
    assert records[0].state is TrialState.OK
    held = [r for r in records if r.state is TrialState.RUNNING]
    assert held and not [r for r in records if r.state is TrialState.FAIL]
    assert load_study(study).meta["elapsed_s"] > 0  # recorded at the stop

    (gate / "go").touch()
    resumed = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    after = load_study(study).records
    assert [r.state for r in after] == [TrialState.OK] * 6
    assert {r.tid: r.params for r in after if r.tid in {h.tid for h in held}} == {
        h.tid: h.params for h in held
    }  # re-run with the same params


ALWAYS_FAILS = """
from hyperopt import hp
space = {"x": hp.uniform("x", 0, 1)}
def objective(params):
    raise RuntimeError(f"no GPU for x={params['x']:.2f}")
"""


def test_a_run_with_no_successful_trial_exits_1_with_the_last_error(tmp_path: Path) -> None:
    script = tmp_path / "fails.py"
    script.write_text(ALWAYS_FAILS)
    done = _cli("run", str(script), "--study-dir", str(tmp_path / "s"), "--max-evals", "3",
                "--max-failures", "10", "--quiet", "--no-plots")  # fmt: skip
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("tpetune: error:")]
    assert len(errors) == 1 and "succeeded" in errors[0] and "RuntimeError: no GPU" in errors[0]
    again = _cli("run", str(script), "--study-dir", str(tmp_path / "s"), "--max-evals", "3",
                 "--quiet", "--no-plots")  # fmt: skip
    assert again.returncode == 1, again.stderr  # nothing left to run is no success either
    errors = [line for line in again.stderr.splitlines() if line.startswith("tpetune: error:")]
    assert len(errors) == 1 and "raise --max-evals or start over with --fresh" in errors[0]
    assert "toward --max-evals 3" in errors[0] and "RuntimeError: no GPU" in errors[0], errors


EXITS = """
import sys
from hyperopt import hp
space = {"x": hp.uniform("x", -1, 1)}
def objective(params):
    if params["x"] > 0:
        sys.exit(3)
    return params["x"] ** 2
"""


def test_sys_exit_in_a_serial_objective_fails_that_trial_only(tmp_path: Path) -> None:
    script = tmp_path / "exits.py"
    script.write_text(EXITS)
    study = tmp_path / "s"
    done = _cli("run", str(script), "--study-dir", str(study), "--max-evals", "12",
                "--max-failures", "12", "--quiet", "--no-plots")  # fmt: skip
    assert done.returncode == 0, done.stderr
    records = load_study(study).records
    assert len(records) == 12
    for r in records:
        assert r.state is (TrialState.FAIL if r.params["x"] > 0 else TrialState.OK)
        if r.state is TrialState.FAIL:
            assert (r.error or "").startswith("SystemExit: 3")
    assert any(r.state is TrialState.FAIL for r in records)


POINTS_SPACE = """
from hyperopt import hp
space = {"x": hp.uniform("x", 0, 1),
         "k": hp.choice("k", [{"kind": "a", "y": hp.loguniform("y", -3, 0)}, {"kind": "b"}])}
def objective(p):
    return p["x"]
"""


@pytest.mark.parametrize(
    ("points", "needle"),
    [
        ([{"x": "abc", "k": "b"}], "x='abc' must be a number"),
        ([{"x": None, "k": "b"}], "x=None must be a number"),
        ([{"x": 0.5, "k": "a"}], "not given: y"),
        ([{"x": 5, "k": "b"}], "x=5 is outside the values uniform(0, 1) can take [0, 1]"),
        ([{"x": 0.5, "k": "a", "y": 2.0}], "y=2.0 is outside"),
        ('[{"x": 1e400, "k": "b"}]', "x=inf must be a finite number"),
        ([{"x": 0.5, "k": "c"}], "k='c' is not one of its options"),
        ([{"x": 0.5, "k": "b", "z": 1}], "unknown hyperparameter(s) z"),
    ],
)
def test_bad_points_are_one_line_before_anything_is_created(
    tmp_path: Path, points: Any, needle: str
) -> None:
    script = tmp_path / "space.py"
    script.write_text(POINTS_SPACE)
    file = tmp_path / "points.json"
    file.write_text(points if isinstance(points, str) else json.dumps(points))
    study = tmp_path / "study"
    done = _cli("run", str(script), "--study-dir", str(study), "--points", str(file),
                "--max-evals", "2", "--quiet", "--no-plots")  # fmt: skip
    _one_line(done, 2, needle)
    assert not study.exists()


def test_points_on_an_existing_study_are_warned_about(tmp_path: Path) -> None:
    script = tmp_path / "space.py"
    script.write_text(POINTS_SPACE)
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps([{"x": 0.5, "k": "b"}]))
    second.write_text(json.dumps([{"x": 0.25, "k": "b"}]))
    study = str(tmp_path / "study")
    args = ["run", str(script), "--study-dir", study, "--quiet", "--no-plots"]
    assert _cli(*args, "--points", str(first), "--max-evals", "2").returncode == 0
    again = _cli(*args, "--points", str(second), "--max-evals", "3")
    assert again.returncode == 0, again.stderr
    assert "warning: points are a new study's first trials" in again.stderr
    assert load_study(study).records[0].params["x"] == 0.5


def test_a_nan_loss_threshold_is_refused(tmp_path: Path) -> None:
    script = tmp_path / "space.py"
    script.write_text(POINTS_SPACE)
    done = _cli("run", str(script), "--study-dir", str(tmp_path / "s"), "--loss-threshold", "nan")
    _one_line(done, 2, "--loss-threshold", "finite")
    assert not (tmp_path / "s").exists()


def test_path_errors_are_one_line(tmp_path: Path) -> None:
    script = tmp_path / "space.py"
    script.write_text(POINTS_SPACE)
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    run = ["run", str(script), "--max-evals", "2", "--quiet", "--no-plots", "--study-dir"]
    _one_line(_cli(*run, str(a_file)), 2, f"{a_file} is a file, not a folder")
    _one_line(_cli(*run, str(a_file / "sub")), 2, f"{a_file} is a file, not a folder")
    assert a_file.read_text() == "not a folder"
    study = tmp_path / "study"
    assert _cli(*run, str(study)).returncode == 0
    _one_line(_cli("plot", str(study), "--out", str(a_file)), 2, f"{a_file} is a file")
    if Path("/proc/self").is_dir():  # a folder no one can make: mkdir fails with ENOENT there
        _one_line(_cli("plot", str(study), "--out", "/proc/tpetune"), 2, "could not write plots")


KERAS = """
import numpy as np
from hyperopt import hp
space = {"units": hp.choice("units", [2, 3])}
def objective(p):
    import keras
    import tensorflow as tf
    x = np.random.default_rng(0).random((32, 4), dtype="float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(p["units"]),
                              keras.layers.Dense(1)])
    model.compile("adam", "mse")
    history = model.fit(x, x.sum(1), epochs=1, verbose=0)
    @tf.function
    def twice(a):
        return a * 2
    for i in range(8):  # a new Python int each call: tf.function retraces, and warns
        twice(i)
    return float(history.history["loss"][-1])
"""
NOISE = ("oneDNN", "absl::InitializeLog", "cpu_feature_guard", "This TensorFlow binary",
         "retracing")  # fmt: skip


@pytest.mark.keras
def test_tensorflow_is_quiet_by_default_and_speaks_with_verbose(tmp_path: Path) -> None:
    """Quiet in two workers; the control, with ``--verbose``, in one: every worker silences
    TensorFlow the same way (tpetune._quiet), so one control shows the test would see it."""
    script = tmp_path / "tiny_keras.py"
    script.write_text(KERAS)
    env = {k: "" for k in ("TF_CPP_MIN_LOG_LEVEL",) if k in os.environ}
    clean = {k: v for k, v in os.environ.items() if k not in env}

    def run(workers: str, *flags: str, name: str) -> Any:
        argv = [sys.executable, "-m", "tpetune", *flags, "run", str(script), "--study-dir",
                str(tmp_path / name), "--max-evals", "2", "--workers", workers, "--quiet",
                "--no-plots"]  # fmt: skip
        return subprocess.run(argv, capture_output=True, text=True, timeout=600, env=clean)

    quiet = run("2", name="quiet")
    assert quiet.returncode == 0, quiet.stderr
    assert [n for n in NOISE if n in quiet.stderr] == [], quiet.stderr
    loud = run("1", "--verbose", name="loud")
    assert loud.returncode == 0, loud.stderr
    assert "retracing" in loud.stderr  # the test would see the noise if it were there


@pytest.mark.keras
def test_bundled_stock_data_too_short_for_the_space_is_refused_before_a_study_exists(
    tmp_path: Path,
) -> None:
    """Item 8: 25 rows cannot feed the space's largest time_steps; nothing is created."""
    rows = ["Date,Open,High,Low,Close,Volume"] + [
        f"2024-01-{d:02d},{100 + d},{101 + d},{99 + d},{100.5 + d},1000" for d in range(1, 26)
    ]
    csv = tmp_path / "short.csv"
    csv.write_text("\n".join(rows) + "\n")
    study = tmp_path / "study"
    done = _cli("stock", "--csv", str(csv), "--study-dir", str(study), "--max-evals", "2",
                "--quiet", "--no-plots")  # fmt: skip
    _one_line(done, 2, "25 rows", "time_steps")
    assert not study.exists()


QUICK = """
from hyperopt import hp
space = {"x": hp.uniform("x", -5, 5)}
def objective(p):
    return {"loss": (p["x"] - 1) ** 2, "curves": {"val_loss": [p["x"] ** 2] * 30}}
"""


def test_a_reader_of_stdout_leaving_is_still_exit_0(tmp_path: Path) -> None:
    """`tpetune show --json DIR | head -1`: the only BrokenPipeError taken for "fine"."""
    script = tmp_path / "quick.py"
    script.write_text(QUICK)
    study = tmp_path / "study"
    made = _cli("run", str(script), "--study-dir", str(study), "--max-evals", "300", "--quiet",
                "--no-plots", "--algo", "rand")  # fmt: skip
    assert made.returncode == 0, made.stderr
    show = subprocess.Popen(
        [sys.executable, "-m", "tpetune", "show", "--json", str(study)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert show.stdout is not None and show.stderr is not None
    show.stdout.readline()
    show.stdout.close()  # the reader leaves while more than a pipe's worth is still unwritten
    err = show.stderr.read().decode()
    assert show.wait(timeout=120) == 0, err
    assert "Traceback" not in err
