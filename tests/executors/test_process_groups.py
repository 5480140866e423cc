"""Nothing left running (issue 26, item 5): a trial's own child processes end with its worker
on a trial timeout, on the worker's death and when the study ends or stops on failures.
Real worker processes spawning real children."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hyperopt import hp

import tpetune
from tpetune import TrialState
from tpetune.engine.options import StopRules, Workers
from tpetune.errors import SearchFailedError

SPACE = {"x": hp.uniform("x", -1, 1)}


def _spawn_children(folder: Path, n: int = 3) -> None:
    """What a data pipeline or a tool does: start children and write their pids down."""
    for _ in range(n):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        (folder / f"child-{child.pid}").touch()


def _children(folder: Path) -> list[int]:
    return [int(p.name.split("-")[1]) for p in folder.glob("child-*")]


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in "ZX"


def _all_gone(pids: list[int], limit: float = 60.0) -> bool:
    deadline = time.time() + limit
    while not all(_gone(p) for p in pids) and time.time() < deadline:
        time.sleep(0.05)
    return all(_gone(p) for p in pids)


@pytest.fixture
def folder(tmp_path: Path) -> Any:
    out = tmp_path / "pids"
    out.mkdir()
    yield out
    for pid in _children(out):  # never leave the test's own processes behind
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_a_timed_out_trial_takes_its_children_with_it(tmp_path: Path, folder: Path) -> None:
    def objective(params: dict[str, Any]) -> float:
        _spawn_children(folder)
        time.sleep(600)
        return 0.0

    with pytest.raises(SearchFailedError):  # every trial times out
        tpetune.tune(objective, SPACE, study_dir=tmp_path / "s", max_evals=2,
                     executor=Workers(2, trial_timeout=3), progress=False)  # fmt: skip
    pids = _children(folder)
    assert len(pids) == 6
    assert _all_gone(pids), [p for p in pids if not _gone(p)]


def test_children_left_by_finished_trials_end_with_the_study(tmp_path: Path, folder: Path) -> None:
    def objective(params: dict[str, Any]) -> float:
        _spawn_children(folder, 1)  # started and forgotten: the study's end stops them
        return params["x"] ** 2

    study = tpetune.tune(objective, SPACE, study_dir=tmp_path / "s", max_evals=3,
                         executor=Workers(2), progress=False)  # fmt: skip
    assert [r.state for r in study.records] == [TrialState.OK] * 3
    pids = _children(folder)
    assert len(pids) == 3 and _all_gone(pids), [p for p in pids if not _gone(p)]


def test_a_dying_worker_takes_its_trials_children_with_it(tmp_path: Path, folder: Path) -> None:
    def objective(params: dict[str, Any]) -> float:
        _spawn_children(folder, 2)
        os.kill(os.getpid(), signal.SIGKILL)  # an OOM kill, a segfault
        return 0.0

    with pytest.raises(SearchFailedError):  # stops on failures
        tpetune.tune(objective, SPACE, study_dir=tmp_path / "s", max_evals=2,
                     executor=Workers(1), stop=StopRules(max_failures=2),
                     progress=False)  # fmt: skip
    pids = _children(folder)
    assert len(pids) == 4
    assert _all_gone(pids), [p for p in pids if not _gone(p)]
