"""Shared fixtures."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tpetune.study.store import Store, TrialRecord, TrialState
from tpetune.study.study import Study, load_study


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C works in this process and in every process a test starts, also in a test run
    started in the background (``cmd &`` in a script, where the shell has SIGINT ignored and
    every child inherits that): the tests that stop a driver with SIGINT would wait forever."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _private_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dashboards keep their Optuna mirror under $XDG_CACHE_HOME: tests (and the processes
    they start) write theirs into a temporary folder, not the user's ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


HAVE_JAVA = bool(shutil.which("java") or os.environ.get("JAVA_HOME"))

#: A stored space description as ``Space.describe()`` writes it: a nested choice
#: (``lstm2_nodes`` exists only in the ``lstm_layers == 2`` branch), a log param, a string choice.
FAKE_SPACE = {
    "lstm_layers": "choice[1, 2]",
    "lstm1_nodes": "quniform(4, 16, 4)",
    "lstm2_nodes": "quniform(4, 16, 4)",
    "lr": "loguniform(-9, -2)",
    "optimizer": 'choice["adam", "rmsprop"]',
    "dropout": "uniform(0, 0.5)",
}


def _curve(start: float, epochs: int) -> dict[str, list[float]]:
    return {
        "loss": [start * 0.8**e for e in range(epochs)],
        "val_loss": [start * 1.1 * 0.85**e for e in range(epochs)],
    }


#: One fake trial: (tid, state, loss, params, curves, error).
FakeTrial = tuple[int, TrialState, float | None, dict[str, Any], dict[str, list[float]], str | None]

#: The default fake study.
FAKE_TRIALS: list[FakeTrial] = [
    (0, TrialState.OK, 0.50,
     {"lstm_layers": 1, "lstm1_nodes": 8, "lr": 1e-3, "optimizer": "adam", "dropout": 0.1},
     _curve(1.0, 6), None),
    (1, TrialState.OK, 0.80,
     {"lstm_layers": 2, "lstm1_nodes": 12, "lstm2_nodes": 4, "lr": 1e-2,
      "optimizer": "rmsprop", "dropout": 0.3},
     _curve(1.2, 6), None),
    (2, TrialState.FAIL, None,
     {"lstm_layers": 2, "lstm1_nodes": 16, "lstm2_nodes": 8, "lr": 0.1,
      "optimizer": "adam", "dropout": 0.2},
     {}, "FloatingPointError: loss became NaN at epoch 2"),
    (3, TrialState.OK, 0.30,
     {"lstm_layers": 2, "lstm1_nodes": 8, "lstm2_nodes": 16, "lr": 3e-4,
      "optimizer": "adam", "dropout": 0.0},
     _curve(0.7, 8), None),
    (4, TrialState.PRUNED, 0.90,
     {"lstm_layers": 1, "lstm1_nodes": 4, "lr": 2e-3, "optimizer": "rmsprop", "dropout": 0.4},
     _curve(1.3, 2), None),
    (5, TrialState.OK, 0.40,
     {"lstm_layers": 1, "lstm1_nodes": 16, "lr": 5e-4, "optimizer": "rmsprop", "dropout": 0.25},
     _curve(0.8, 7), None),
    (6, TrialState.OK, 0.35,  # stored no curves (e.g. an objective that returned a bare loss)
     {"lstm_layers": 2, "lstm1_nodes": 4, "lstm2_nodes": 12, "lr": 8e-4,
      "optimizer": "adam", "dropout": 0.15},
     {}, None),
    (7, TrialState.RUNNING, None,  # left running, as after a kill -9
     {"lstm_layers": 1, "lstm1_nodes": 12, "lr": 4e-4, "optimizer": "adam", "dropout": 0.05},
     {}, None),
]  # fmt: skip


@pytest.fixture
def make_study(tmp_path: Path) -> Callable[..., Study]:
    """Build a study through the real :class:`Store` (no hyperopt, no TensorFlow) and load it.

    ``make_study()`` gives the default mix above (ok trials in both ``lstm_layers`` branches,
    one failed, one pruned, one running). ``make_study(trials, name=..., space=...)`` takes
    ``(tid, state, loss, params, curves, error)`` tuples; ``trials=[]`` gives an empty study.
    """

    def make(
        trials: list[FakeTrial] | None = None,
        *,
        name: str = "study",
        space: dict[str, str] | None = None,
    ) -> Study:
        study_dir = tmp_path / name
        meta = {
            "space": FAKE_SPACE if space is None else space,
            "max_evals": 10,
            "seed": 0,
            "algo": "tpe",
            "fingerprint": "x",
        }
        store = Store.create(study_dir, meta=meta)
        try:
            for tid, state, loss, params, curves, error in (
                FAKE_TRIALS if trials is None else trials
            ):
                start = 1_700_000_000.0 + 60 * tid
                record = TrialRecord(tid, TrialState.RUNNING, None, params, params, started=start)
                store.begin_trial(record)
                if state is not TrialState.RUNNING:
                    done = replace(record, state=state, loss=loss, curves=curves, error=error)
                    store.finish_trial(replace(done, finished=start + 30.0, duration_s=30.0))
        finally:
            store.close()
        return load_study(study_dir)

    return make


@pytest.fixture(scope="session")
def spark_master(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``TPETUNE_SPARK_MASTER`` (.ci/run starts a cluster and sets it); ``start``: start one
    here for this session; unset: skip."""
    url = os.environ.get("TPETUNE_SPARK_MASTER")
    if not url:
        pytest.skip("TPETUNE_SPARK_MASTER unset (.ci/run starts a standalone cluster)")
    if url != "start":
        yield url
        return
    if not HAVE_JAVA:
        pytest.skip("no Java runtime")
    pytest.importorskip("pyspark")
    sys.path.insert(0, str(Path(__file__).parent))
    import spark_cluster

    folder = tmp_path_factory.mktemp("spark-cluster")
    try:
        yield spark_cluster.start(folder)
    finally:
        spark_cluster.stop(folder)
