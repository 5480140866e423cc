"""User code that works in plain Python works in tpetune too (issue 26, items 9-11): a space
file importing a module beside it, a space file's functions pickled by reference
(``multiprocessing.Pool.map`` inside an objective), ``tpetune.report``/``should_prune`` from a
training thread. Real files, real processes, real threads."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from hyperopt import hp

import tpetune
from tpetune import MedianPruner, TrialState, load_study
from tpetune.engine.options import Workers
from tpetune.search.space import load_file

HELPER = """
def shift(x):
    return x - 1.0
"""

BESIDE = """
from hyperopt import hp
import helper_beside  # a module in the same folder, as `python file.py` would find it
space = {"x": hp.uniform("x", -2, 2)}
def objective(params):
    return helper_beside.shift(params["x"]) ** 2
"""

POOL = """
import multiprocessing
from hyperopt import hp
space = {"x": hp.uniform("x", -2, 2)}
def square(v):
    return v * v
def objective(params):
    pool = multiprocessing.get_context("fork").Pool(2)
    try:
        parts = pool.map(square, [params["x"] - 1.0, 0.5])
    finally:  # close+join: `with Pool` terminates, which can hang in CPython itself
        pool.close()
        pool.join()
    return sum(parts)
"""


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.run(
        [sys.executable, "-m", "tpetune", *args], capture_output=True, text=True,
        timeout=600, env=env, cwd=cwd,
    )  # fmt: skip


@pytest.mark.parametrize("workers", [1, 2])
def test_a_space_file_imports_a_module_beside_it(tmp_path: Path, workers: int) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "helper_beside.py").write_text(HELPER)
    (folder / "beside.py").write_text(BESIDE)
    elsewhere = tmp_path / "elsewhere"  # run from another folder: only the file's own counts
    elsewhere.mkdir()
    argv = ["run", str(folder / "beside.py"), "--study-dir", str(tmp_path / "s"),
            "--max-evals", "3", "--no-plots", "--quiet"]  # fmt: skip
    if workers > 1:
        argv += ["--workers", str(workers)]
    result = _cli(*argv, cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert [r.state for r in load_study(tmp_path / "s").records] == [TrialState.OK] * 3


@pytest.mark.parametrize("workers", [1, 2])
def test_space_file_functions_pickle_by_reference_for_a_pool(tmp_path: Path, workers: int) -> None:
    (tmp_path / "pooled.py").write_text(POOL)
    argv = ["run", str(tmp_path / "pooled.py"), "--study-dir", str(tmp_path / "s"),
            "--max-evals", "2", "--no-plots", "--quiet"]  # fmt: skip
    if workers > 1:
        argv += ["--workers", str(workers)]
    result = _cli(*argv, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    records = load_study(tmp_path / "s").records
    assert [r.state for r in records] == [TrialState.OK] * 2, [r.error for r in records]


def test_a_loaded_space_file_is_a_module_in_sys_modules(tmp_path: Path) -> None:
    (tmp_path / "pooled.py").write_text(POOL)
    namespace = load_file(tmp_path / "pooled.py")
    module = sys.modules[namespace["square"].__module__]
    assert module.square is namespace["square"]  # what pickle's by-reference lookup checks


def _threaded(params: dict[str, Any]) -> float:
    """A training loop in a thread, reporting each epoch; stops when told to."""
    seen: dict[str, Any] = {"steps": 0, "pruned": False}

    def train() -> None:
        for epoch in range(1, 6):
            tpetune.report(epoch, params["x"] ** 2 + 1.0 / epoch)
            seen["steps"] = epoch
            if tpetune.should_prune():
                seen["pruned"] = True
                return

    thread = threading.Thread(target=train)
    thread.start()
    thread.join()
    if seen["pruned"]:
        raise tpetune.TrialPruned()
    return params["x"] ** 2


def test_report_and_should_prune_work_from_a_training_thread(tmp_path: Path) -> None:
    pruner = MedianPruner(warmup_trials=2, warmup_steps=1)
    study = tpetune.tune(
        _threaded, {"x": hp.uniform("x", -3, 3)}, study_dir=tmp_path / "s",
        max_evals=10, pruner=pruner, progress=False,
    )  # fmt: skip
    records = study.records
    assert all(len(r.curves.get("val_loss", [])) >= 1 for r in records), [r.curves for r in records]
    assert records[0].curves["val_loss"] == [pytest.approx(records[0].params["x"] ** 2 + 1 / e)
                                         for e in range(1, 6)]  # fmt: skip
    assert any(r.state is TrialState.PRUNED for r in records)  # should_prune saw the pruner


def test_report_from_a_thread_in_a_worker_process(tmp_path: Path) -> None:
    study = tpetune.tune(
        _threaded, {"x": hp.uniform("x", -3, 3)}, study_dir=tmp_path / "s", max_evals=3,
        pruner=MedianPruner(warmup_trials=2, warmup_steps=1), executor=Workers(2),
        progress=False,
    )  # fmt: skip
    assert all(len(r.curves.get("val_loss", [])) >= 1 for r in study.records)


def test_report_from_a_thread_when_several_trials_share_the_process_is_a_clear_error() -> None:
    from tpetune.errors import TpetuneError
    from tpetune.trial.context import TrialContext, trial_scope
    from tpetune.trial.report import step_scope

    failures: list[BaseException] = []
    a, b = TrialContext(0, 1), TrialContext(1, 2)
    with trial_scope(a), step_scope(a):
        other_done = threading.Event()
        release = threading.Event()

        def second_trial() -> None:
            with trial_scope(b), step_scope(b):
                other_done.set()
                release.wait(30)

        t2 = threading.Thread(target=second_trial)
        t2.start()
        other_done.wait(30)

        def stray() -> None:
            try:
                tpetune.report(1, 0.5)
            except BaseException as exc:  # what the thread met
                failures.append(exc)

        t3 = threading.Thread(target=stray)
        t3.start()
        t3.join()
        release.set()
        t2.join()
    assert len(failures) == 1 and isinstance(failures[0], TpetuneError), failures
    assert "thread" in str(failures[0]) and "contextvars.copy_context" in str(failures[0])
