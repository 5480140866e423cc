"""Nothing stuck, nothing stale (issue 26, items 1-4, 6-8): real forks, real signals, a second
SQLite connection holding the write lock, real `tpetune` processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tpetune import TrialState, load_study
from tpetune.errors import StudyInUseError
from tpetune.study.lock import StudyLock

FORKS = """
import os, pathlib, sys, time
from hyperopt import hp
from tpetune.trial.context import current_trial
space = {"x": hp.uniform("x", -5, 5)}
GATE = pathlib.Path(os.environ["GATE"])
def objective(params):
    tid = current_trial().tid
    if tid == 1:
        pid = os.fork()  # a data loader, a fork-mode Pool: a child living on
        if pid == 0:
            time.sleep(120)
            os._exit(0)
        (GATE / f"child-{pid}").touch()
        while True:
            time.sleep(0.05)
    return (params["x"] - 1) ** 2
"""


def _until(predicate: Any, what: str, limit: float = 120.0) -> None:
    deadline = time.time() + limit
    while not predicate():
        assert time.time() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def _cli_argv(script: Path, study: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "tpetune", "run", str(script), "--study-dir", str(study),
            "--quiet", "--no-plots", *extra]  # fmt: skip


def test_a_forked_child_of_a_killed_driver_does_not_keep_the_study_locked(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    script = tmp_path / "forks.py"
    script.write_text(FORKS)
    study = tmp_path / "study"
    env = {**os.environ, "GATE": str(gate)}
    driver = subprocess.Popen(_cli_argv(script, study, "--max-evals", "3"), env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    child = 0
    try:
        _until(lambda: list(gate.glob("child-*")), "the objective's forked child")
        child = int(next(gate.glob("child-*")).name.split("-")[1])
        driver.kill()  # kill -9: the driver's lock dies with it; the child lives on
        driver.wait()
        lock = StudyLock(study).acquire()  # before the fix: "in use by pid <the dead driver>"
        lock.release()
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        if child:
            os.kill(child, signal.SIGKILL)


def test_a_lock_held_by_another_process_names_it_and_says_when_the_locker_is_dead(
    tmp_path: Path,
) -> None:
    study = tmp_path / "study"
    study.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead_pid = int(dead.stdout)
    # A process holding the flock with a dead pid written in the file: what an older tpetune's
    # forked child left, or a lock handed to a child by other means.
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(study / 'lock')!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        f"os.write(fd, b'{dead_pid}')\n"
        "print('held', flush=True)\n"
        "time.sleep(120)\n")], stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(StudyInUseError) as info:
            StudyLock(study).acquire()
        message = str(info.value)
        assert f"pid {dead_pid}" in message and "exited" in message, message
        assert f"pid {holder.pid}" in message, message  # the process that holds it now
    finally:
        holder.kill()
        holder.wait()


RAISES_KI = """
from hyperopt import hp
from tpetune.trial.context import current_trial
space = {"x": hp.uniform("x", -5, 5)}
def objective(params):
    if current_trial().tid == 1:
        raise KeyboardInterrupt  # the objective's own, not a Ctrl-C
    return (params["x"] - 1) ** 2
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_an_objective_raising_keyboard_interrupt_fails_its_trial_and_the_study_goes_on(
    tmp_path: Path, workers: int
) -> None:
    script = tmp_path / "raises.py"
    script.write_text(RAISES_KI)
    study = tmp_path / "study"
    argv = _cli_argv(script, study, "--max-evals", "4", "--workers", str(workers))
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    records = load_study(study).records
    assert [r.state for r in records] == [TrialState.OK, TrialState.FAIL, TrialState.OK,
                                          TrialState.OK]  # fmt: skip
    assert "KeyboardInterrupt" in (records[1].error or "")
    assert "not a Ctrl-C" in (records[1].error or "")
    again = subprocess.run(argv, capture_output=True, text=True, timeout=600)  # resumable
    assert again.returncode == 0 and len(load_study(study).records) == 4, again.stderr


HELD = """
import os, pathlib, time
from hyperopt import hp
from tpetune.trial.context import current_trial
space = {"x": hp.uniform("x", -5, 5)}
GATE = pathlib.Path(os.environ["GATE"])
def objective(params):
    tid = current_trial().tid
    (GATE / f"started-{tid}").touch()
    while tid == 1 and not (GATE / "go").exists():
        time.sleep(0.02)
    return (params["x"] - 1) ** 2
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_is_recorded_as_interrupted_not_as_a_crash(tmp_path: Path, sig: int) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    script = tmp_path / "held.py"
    script.write_text(HELD)
    study = tmp_path / "study"
    env = {**os.environ, "GATE": str(gate)}
    argv = [
        sys.executable,
        "-m",
        "tpetune",
        "run",
        str(script),
        "--study-dir",
        str(study),
        "--no-plots",
        "--max-evals",
        "3",
    ]  # fmt: skip (progress bar on: messages must not glue)
    driver = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)  # fmt: skip
    try:
        _until(lambda: (gate / "started-1").exists(), "trial 1 to start")
        os.kill(driver.pid, sig)
        _, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    how = "Ctrl-C" if sig == signal.SIGINT else "SIGTERM"
    assert driver.returncode == (130 if sig == signal.SIGINT else 143), err
    assert "Traceback" not in err
    shown = subprocess.run([sys.executable, "-m", "tpetune", "show", str(study)],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert "running" not in shown.stdout.split("\n")[1], shown.stdout  # the progress line
    assert "1 interrupted" in shown.stdout, shown.stdout
    assert f"interrupted by {how}" in shown.stdout, shown.stdout
    (gate / "go").touch()
    resumed = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    lines = resumed.stderr.split("\n")
    assert any(
        line.startswith(f"re-running trial 1, interrupted by {how}, with the same params")
        for line in lines
    ), resumed.stderr
    assert "crash" not in resumed.stderr
    assert [r.state for r in load_study(study).records] == [TrialState.OK] * 3


LOCKS_DB = """
import sqlite3, threading
from hyperopt import hp
from tpetune.trial.context import current_trial
space = {"x": hp.uniform("x", -5, 5)}
HOLD_S = float("{hold}")
held = []
def objective(params):
    ctx = current_trial()
    if ctx.tid == 1:  # a DB browser opens the study and starts writing: it holds the lock
        other = sqlite3.connect(ctx.study_dir / "study.db", check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        held.append(other)
        if HOLD_S > 0:
            threading.Timer(HOLD_S, other.rollback).start()
    return (params["x"] - 1) ** 2
"""


@pytest.mark.parametrize("hold", ["forever", "briefly"])
def test_another_connection_holding_the_write_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    hold: str,
) -> None:  # fmt: skip
    from tpetune.cli.main import main
    from tpetune.study import sqlite as _sqlite

    monkeypatch.setattr(
        _sqlite, "BUSY_TIMEOUT_S", 0.2, raising=False
    )  # SQLite's own wait per statement
    monkeypatch.setattr(_sqlite, "BUSY_GIVE_UP_S", 3.0)  # tpetune's, with a message
    script = tmp_path / "locks.py"
    script.write_text(LOCKS_DB.replace("{hold}", "0" if hold == "forever" else "1.0"))
    study = tmp_path / "study"
    argv = ["run", str(script), "--study-dir", str(study), "--max-evals", "3", "--quiet",
            "--no-plots"]  # fmt: skip
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "locked by another program" in err, err  # said while waiting
    if hold == "briefly":
        assert code == 0, err
        assert [r.state for r in load_study(study).records] == [TrialState.OK] * 3
        return
    assert code == 2, err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "run the same command again to resume" in errors[0], err
    records = load_study(study).records  # nothing lost: trial 0 kept, trial 1 re-runs
    assert [r.state for r in records] == [TrialState.OK, TrialState.RUNNING]


QUICK = """
from hyperopt import hp
space = {"x": hp.uniform("x", -5, 5)}
def objective(params):
    return (params["x"] - 1) ** 2
"""


def _quick_study(tmp_path: Path, evals: int = 3) -> tuple[list[str], Path]:
    script = tmp_path / "quick.py"
    script.write_text(QUICK)
    study = tmp_path / "study"
    argv = _cli_argv(script, study, "--max-evals", str(evals))
    assert subprocess.run(argv, capture_output=True, timeout=600).returncode == 0
    return argv, study


def test_fresh_on_a_stored_study_without_a_terminal_needs_yes(tmp_path: Path) -> None:
    argv, study = _quick_study(tmp_path)
    refused = subprocess.run([*argv, "--fresh"], capture_output=True, text=True, timeout=600,
                             stdin=subprocess.DEVNULL)  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    assert "Traceback" not in refused.stderr
    assert "would discard the 3 trials" in refused.stderr and "--yes" in refused.stderr
    assert len(load_study(study).records) == 3  # nothing discarded
    done = subprocess.run([*argv, "--fresh", "--yes", "--max-evals", "1"], capture_output=True,
                          text=True, timeout=600, stdin=subprocess.DEVNULL)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "discarded the 3 trials of study" in done.stderr, done.stderr
    assert len(load_study(study).records) == 1


@pytest.mark.parametrize("answer", ["n", "y"])
def test_fresh_on_a_terminal_asks_first(tmp_path: Path, answer: str) -> None:
    import pty

    argv, study = _quick_study(tmp_path)
    pid, fd = pty.fork()
    if pid == 0:  # the child: tpetune on a terminal
        os.execv(sys.executable, [*argv, "--fresh", "--max-evals", "1"])
    seen = b""
    while b"[y/N]" not in seen:
        seen += os.read(fd, 1024)
    assert b"discard the 3 trials" in seen, seen
    os.write(fd, f"{answer}\n".encode())
    while True:
        try:
            chunk = os.read(fd, 1024)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    _, status = os.waitpid(pid, 0)
    records = load_study(study).records
    if answer == "n":
        assert os.waitstatus_to_exitcode(status) == 2, seen
        assert b"nothing discarded" in seen, seen
        assert len(records) == 3
    else:
        assert os.waitstatus_to_exitcode(status) == 0, seen
        assert len(records) == 1


def test_an_interrupted_fresh_run_says_to_resume_without_fresh(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    script = tmp_path / "held.py"
    script.write_text(HELD)
    study = tmp_path / "study"
    env = {**os.environ, "GATE": str(gate)}
    argv = _cli_argv(script, study, "--max-evals", "3", "--fresh", "--yes")
    driver = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)  # fmt: skip
    try:
        _until(lambda: (gate / "started-1").exists(), "trial 1 to start")
        os.kill(driver.pid, signal.SIGINT)
        _, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert driver.returncode == 130, err
    assert "Run the same command without --fresh to resume" in err, err


def test_fresh_leaves_nothing_of_the_discarded_study_to_serve(tmp_path: Path) -> None:
    argv, study = _quick_study(tmp_path)
    (study / "notes.txt").write_text("the user's own")  # not tpetune's: stays
    stale = ["summary.json", "best_model.keras", "predictions.csv", "test_folds.csv",
             "loss_history.png", "predictions.png", "models/0.keras"]  # fmt: skip
    for name in stale:
        (study / name).parent.mkdir(parents=True, exist_ok=True)
        (study / name).write_text("the discarded study's")
    done = subprocess.run([*argv, "--fresh", "--yes", "--max-evals", "2"], capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    for name in stale:
        assert not (study / name).exists(), name
        assert (study / "discarded" / name).exists(), name  # kept aside, until the next --fresh
    best = subprocess.run([sys.executable, "-m", "tpetune", "best-model", str(study)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert best.returncode == 2 and "kept no model" in best.stderr, best.stderr
    plotted = subprocess.run([sys.executable, "-m", "tpetune", "plot", str(study)],
                             capture_output=True, text=True, timeout=300)  # fmt: skip
    assert plotted.returncode == 0 and "predictions.png" not in plotted.stdout
    assert len(load_study(study / "discarded").records) == 3  # the old study, readable there
    assert (study / "notes.txt").read_text() == "the user's own"


FMIN_SCRIPT = """
from hyperopt import hp
import numpy as np
import tpetune

def fn(x):
    return (x - {target}) ** 2

print(tpetune.fmin(fn, hp.uniform("x", -5, 5), algo=None, max_evals=4,
                   rstate=np.random.default_rng(1), show_progressbar=False))
"""


def test_fmin_says_when_it_resumes_a_study_made_by_other_objective_code(tmp_path: Path) -> None:
    def run(target: str) -> subprocess.CompletedProcess[str]:
        (tmp_path / "search.py").write_text(FMIN_SCRIPT.replace("{target}", target))
        return subprocess.run([sys.executable, "search.py"], cwd=tmp_path, capture_output=True,
                              text=True, timeout=600)  # fmt: skip

    first = run("1.0")
    assert first.returncode == 0, first.stderr
    same = run("1.0")  # the same code: a plain resume, nothing to say
    assert same.returncode == 0 and "code" not in same.stderr, same.stderr
    changed = run("3.0")  # the objective's code changed; hyperopt would search afresh
    assert changed.returncode == 0, changed.stderr
    assert "objective `fn`" in changed.stderr and "code changed" in changed.stderr, changed.stderr
    assert "4 trials" in changed.stderr and "delete" in changed.stderr, changed.stderr
    again = run("3.0")  # said once: the study now records the new code
    assert "code changed" not in again.stderr, again.stderr


def test_fmin_fresh_searches_afresh_as_hyperopt_does(tmp_path: Path) -> None:
    from hyperopt import hp

    import tpetune

    calls: list[float] = []

    def fn(x: float) -> float:
        calls.append(x)
        return x**2

    for _ in range(2):
        tpetune.fmin(fn, hp.uniform("x", -1, 1), max_evals=3, study_dir=tmp_path / "s",
                     fresh=True, show_progressbar=False, verbose=False)  # fmt: skip
    assert len(calls) == 6 and len(load_study(tmp_path / "s").records) == 3


def test_the_cli_s_warning_of_changed_objective_code_names_its_flags(tmp_path: Path) -> None:
    script = tmp_path / "search.py"
    argv = [sys.executable, "-m", "tpetune", "run", str(script), "--study-dir",
            str(tmp_path / "s"), "--max-evals", "2", "--quiet", "--no-plots"]  # fmt: skip
    for target in ("1.0", "3.0"):
        script.write_text(
            "from hyperopt import hp\nspace = {'x': hp.uniform('x', -5, 5)}\n"
            f"def objective(p):\n    return (p['x'] - {target}) ** 2\n"
        )
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
    assert "code changed" in done.stderr and "--fresh" in done.stderr, done.stderr
    assert "fresh=True" not in done.stderr and "another --study-dir" in done.stderr, done.stderr
