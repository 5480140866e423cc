"""Worker processes: records, isolation from crashes, timeouts, driver kill and resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tpetune import StopRules, TrialState, Workers, load_study, tune
from tpetune.executors.base import Job
from tpetune.executors.processes import ProcessExecutor
from tpetune.search.space import load_file
from tpetune.trial.context import TrialContext

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
        executor=Workers(2, trial_timeout=6),  # a hanging trial costs this much
        stop=StopRules(max_failures=16),
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
        assert "trial exceeded the trial timeout of 6s and was killed" in errors
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
        executor=Workers(1, trial_timeout=2),
        stop=StopRules(max_failures=6),
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
        "6",  # a hanging trial (mode "hang") costs this much, twice: once per run
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


GATED = """
import os, pathlib, time
from hyperopt import hp
from tpetune.trial.context import current_trial
space = {"x": hp.uniform("x", -5, 5)}
GATE = pathlib.Path(os.environ["GATE"])
def objective(params):
    tid = current_trial().tid
    (GATE / f"started-{tid}-{os.getpid()}").touch()
    while tid < 2 and not (GATE / "go").exists():   # the first two trials wait for the test
        time.sleep(0.02)
    return (params["x"] - 1) ** 2
"""


def _syscall(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/syscall").read_text().split()[0]
    except (OSError, IndexError):
        return "gone"


def _dead(pid: int) -> bool:
    """Gone, or a zombie its parent (the stopped driver) has not reaped yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    except OSError:
        return True


def _until(predicate: object, what: str, limit: float = 60.0) -> None:
    deadline = time.time() + limit
    while not predicate():  # type: ignore[operator]
        assert time.time() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


@pytest.mark.skipif(not Path("/proc/self/syscall").exists(), reason="needs Linux /proc")
def test_an_idle_worker_killed_between_trials_is_replaced_and_the_study_finishes(
    tmp_path: Path,
) -> None:
    """kill -9 of a worker waiting for its next trial: before, the driver's next send raised
    BrokenPipeError, taken for a closed stdout (exit 0 mid-study, trials left running)."""
    gate = tmp_path / "gate"
    gate.mkdir()
    script = tmp_path / "gated.py"
    script.write_text(GATED)
    study = tmp_path / "study"
    argv = [sys.executable, "-m", "tpetune", "run", str(script), "--study-dir", str(study)]
    argv += ["--max-evals", "12", "--workers", "2", "--quiet", "--no-plots"]
    driver = subprocess.Popen(
        argv,
        env={**os.environ, "GATE": str(gate)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _until(lambda: len(list(gate.glob("started-*"))) == 2, "two trials to start")
        pids = [int(p.name.split("-")[2]) for p in gate.glob("started-*")]
        # Freeze the driver, let both trials end: both workers then sit idle in read(),
        # their results unread by the driver.
        os.kill(driver.pid, signal.SIGSTOP)
        (gate / "go").touch()
        _until(lambda: all(_syscall(pid) == "0" for pid in pids), "both workers to go idle")
        os.kill(pids[0], signal.SIGKILL)
        _until(lambda: _dead(pids[0]), "the killed worker to die")
        os.kill(driver.pid, signal.SIGCONT)
        out, err = driver.communicate(timeout=180)
    finally:
        if driver.poll() is None:
            os.kill(driver.pid, signal.SIGCONT)
            driver.kill()
            driver.wait()
    assert driver.returncode == 0, err
    records = load_study(study).records
    assert [r.tid for r in records] == list(range(12))
    assert all(r.state is TrialState.OK for r in records), [r.error for r in records]
    assert "a worker process died between trials (signal SIGKILL)" in err
    assert "12 trials done" in out
    started_by = {
        int(p.name.split("-")[1]): int(p.name.split("-")[2])
        for p in gate.iterdir()
        if p.name.startswith("started-")
    }
    assert len(set(started_by.values())) >= 3  # a fresh worker took the killed one's place


def test_workers_that_die_at_start_stop_the_run_with_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker Python that cannot even start (here: a broken interpreter path) does not loop."""
    from tpetune.errors import ExecutorError

    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    executor = ProcessExecutor(abs, workers=1)
    monkeypatch.setattr(sys, "executable", str(fake))

    with pytest.raises(
        ExecutorError, match=r"died before loading the objective \(last: exit code 3\)"
    ):
        for tid in range(5):
            executor.submit(Job(tid, -1.0, TrialContext(tid, 0)))
            executor.wait()
    executor.close()


def _pid_objective(params: dict[str, float]) -> dict[str, object]:
    return {"loss": (params["x"] - 1) ** 2, "metrics": {"pid": os.getpid()}}


def test_one_recycled_worker_bounds_memory_and_proposes_what_serial_does(tmp_path: Path) -> None:
    """Item 13's mechanism: trials in one worker process replaced every ``recycle_after``
    trials (what a framework leaks goes back to the OS); one trial in flight, so the
    proposals are exactly the serial ones."""
    from hyperopt import hp

    from tpetune.engine.options import Serial, Workers

    space = {"x": hp.uniform("x", -5, 5), "k": hp.choice("k", [1, 2, 3])}
    kw: dict = {"space": space, "max_evals": 7, "progress": False}
    pooled = tune(_pid_objective, study_dir=tmp_path / "w", executor=Workers(1, recycle_after=3),
                  **kw)  # fmt: skip
    serial = tune(_pid_objective, study_dir=tmp_path / "s", executor=Serial(), **kw)
    assert [r.params for r in pooled.records] == [r.params for r in serial.records]
    pids = [r.metrics["pid"] for r in pooled.records]
    assert os.getpid() not in pids
    assert pids[0] == pids[1] == pids[2] != pids[3] == pids[4] == pids[5] != pids[6]


def _meet(params: dict[str, float]) -> dict[str, object]:
    """Waits (at most a minute) until another trial is in flight in another process."""
    here = Path(os.environ["TPT_MEET"])
    (here / str(os.getpid())).touch()
    deadline = time.monotonic() + 60
    while len(list(here.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    return {"loss": params["x"] ** 2, "metrics": {"met": float(len(list(here.iterdir())))}}


def test_workers_without_a_number_run_as_many_as_the_study_s_lag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Workers()`` (the CLI's --trial-timeout or --no-spare without --workers): two trials
    of a lag-2 study meet in flight, each in its own process."""
    from hyperopt import hp

    from tpetune.engine.options import Search

    (tmp_path / "meet").mkdir()
    monkeypatch.setenv("TPT_MEET", str(tmp_path / "meet"))
    study = tune(_meet, {"x": hp.uniform("x", -1, 1)}, study_dir=tmp_path / "s", max_evals=2,
                 search=Search(lag=2), executor=Workers(spare=False), progress=False)  # fmt: skip
    assert [r.metrics["met"] for r in study.records] == [2.0, 2.0]
    assert len(list((tmp_path / "meet").iterdir())) == 2


class _Marked:
    """An objective that preloads ``tpt_marker`` (which marks each importing process); a
    worker's last trial waits until another process has imported it: its spare."""

    preload = ("tpt_marker",)

    def __init__(self, marks: Path) -> None:
        self.marks = marks

    def __call__(self, params: dict[str, bool]) -> dict[str, object]:
        deadline = time.time() + 120
        while params["last"] and not {p.name for p in self.marks.iterdir()} - {str(os.getpid())}:
            assert time.time() < deadline, "no spare imported the preload package"
            time.sleep(0.05)
        return {"loss": 0.0, "metrics": {"pid": os.getpid()}}


@pytest.fixture
def marks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``tpt_marker`` package the workers can import, and the folder it marks."""
    (tmp_path / "tpt_marker.py").write_text(
        "import os, pathlib\npathlib.Path(os.environ['MARKS'], str(os.getpid())).touch()\n"
    )
    (tmp_path / "marks").mkdir()
    monkeypatch.setenv("MARKS", str(tmp_path / "marks"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path),
                       os.environ.get("PYTHONPATH")])))  # fmt: skip
    return tmp_path / "marks"


def _children() -> set[int]:
    tasks = Path(f"/proc/{os.getpid()}/task")
    return {int(c) for t in tasks.iterdir() for c in (t / "children").read_text().split()}


def test_a_recycled_worker_s_replacement_starts_early_and_preloads(marks: Path) -> None:
    """The replacement of a worker in its last trial is started then, as a spare, and
    imports the objective's ``preload`` packages while that trial runs (the trial waits for
    it); the next trial runs in it; the executor leaves no spare behind."""
    before = _children()
    executor = ProcessExecutor(_Marked(marks), workers=1, recycle_after=2)
    try:
        pids, started = [], []
        for tid in range(6):
            executor.submit(Job(tid, {"last": tid % 2 == 1}, TrialContext(tid, 0)))
            started.append(len(_children() - before))  # 2 in a worker's last trial: the spare
            [(_, outcome)] = executor.wait()
            assert outcome.state is TrialState.OK, outcome.error
            pids.append(outcome.metrics["pid"])
    finally:
        executor.close()
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4] == pids[5]
    assert {int(p.name) for p in marks.iterdir()} >= set(pids)  # each imported it
    assert started == [1, 2, 1, 2, 1, 2]
    assert _children() - before == set()  # the spare trial 5 started, unused, is stopped too


def test_without_a_spare_a_replacement_starts_when_the_next_trial_needs_it(marks: Path) -> None:
    """``spare=False`` (``Workers(spare=False)``): never more than ``workers`` processes."""
    before = _children()
    executor = Workers(1, recycle_after=2, spare=False).build(_Marked(marks))
    try:
        pids, started = [], []
        for tid in range(4):
            executor.submit(Job(tid, {"last": False}, TrialContext(tid, 0)))
            started.append(len(_children() - before))
            [(_, outcome)] = executor.wait()
            assert outcome.state is TrialState.OK, outcome.error
            pids.append(outcome.metrics["pid"])
    finally:
        executor.close()
    assert pids[0] == pids[1] != pids[2] == pids[3]
    assert started == [1, 1, 1, 1]
    assert _children() - before == set()


def test_a_workers_log_lines_reach_the_cli_s_stderr(tmp_path: Path) -> None:
    """What an objective logs on the ``tpetune`` logger in a worker (StopOnNaN's "the loss
    became nan" line, for one) is printed by ``tpetune run --workers 2`` as it is serially."""
    source = tmp_path / "noisy.py"
    source.write_text(
        "import logging\n"
        "from hyperopt import hp\n"
        "space = {'x': hp.uniform('x', 0, 1)}\n"
        "def objective(params):\n"
        "    logging.getLogger('tpetune').info('told from the trial, x=%.3f', params['x'])\n"
        "    return params['x']\n"
    )
    for workers in ("1", "2"):
        done = subprocess.run(
            [
                sys.executable, "-m", "tpetune", "run", str(source), "--max-evals", "2",
                "--workers", workers, "--no-plots", "--study-dir", str(tmp_path / workers),
            ],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stderr.count("told from the trial") == 2, (workers, done.stderr)
        assert "Warning" not in done.stderr  # e.g. runpy's about running a module twice
