"""--spark local[2]: a few cheap trials complete and the study resumes (needs Java)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hyperopt import hp

import tpetune
from tpetune import (
    MedianPruner,
    MissingDependencyError,
    Spark,
    StopRules,
    TrialState,
    load_study,
    tune,
)
from tpetune.trial.context import current_trial

HAVE_JAVA = bool(shutil.which("java") or os.environ.get("JAVA_HOME"))
#: One xdist process runs every Spark test in turn: two JVMs at once would compete for the
#: standalone cluster's one worker and the machine's memory.
pytestmark = pytest.mark.xdist_group("spark")
SPACE = {"x": hp.uniform("x", -5, 5), "opt": hp.choice("opt", ["sgd", "adam"])}


def objective(params: dict) -> dict:
    if params["opt"] == "sgd" and params["x"] > 3:
        raise ValueError("diverged")
    ctx = current_trial()
    shipped = ctx is not None and ctx.reference is not None
    tpetune.report(1, params["x"] ** 2)  # into the store: this machine sees the study folder
    return {
        "loss": (params["x"] - 1) ** 2,
        "curves": {"val_loss": [params["x"] ** 2, (params["x"] - 1) ** 2]},
        "metrics": {"pid": os.getpid(), "shipped": shipped},
    }


@pytest.mark.spark
@pytest.mark.skipif(not HAVE_JAVA, reason="no Java runtime (.ci/run installs one)")
def test_spark_local_study_completes_and_resumes(tmp_path: Path) -> None:
    pytest.importorskip("pyspark")
    first = tune(
        objective,
        SPACE,
        study_dir=tmp_path,
        max_evals=4,
        executor=Spark("local[2]"),
        stop=StopRules(max_failures=10),
        pruner=MedianPruner(),
        progress=False,
    )
    assert [r.tid for r in first.records] == [0, 1, 2, 3]
    resumed = tune(
        objective,
        SPACE,
        study_dir=tmp_path,
        max_evals=7,
        executor=Spark("local[2]"),
        stop=StopRules(max_failures=10),
        progress=False,
    )
    records = load_study(tmp_path).records
    assert [r.tid for r in records] == list(range(7))
    assert records[:4] == first.records
    for r in records:
        assert r.state in (TrialState.OK, TrialState.FAIL)
        if r.state is TrialState.OK:
            assert r.loss == pytest.approx((r.params["x"] - 1) ** 2)
            assert r.metrics["pid"] != os.getpid()  # ran in a Spark Python worker
            # The executor sees the study folder here, so it reports into the store rather
            # than deciding from the snapshot shipped for executors on other nodes.
            assert r.metrics["shipped"] is False
        else:
            assert "ValueError: diverged" in (r.error or "")
    # and the same study goes on serially
    serial = tune(
        objective,
        SPACE,
        study_dir=tmp_path,
        max_evals=8,
        stop=StopRules(max_failures=10),
        progress=False,
    )
    assert len(serial.records) == 8 and resumed.records[:7] == serial.records[:7]


def test_missing_java_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(MissingDependencyError, match="needs a Java runtime"):
        tune(objective, SPACE, study_dir=tmp_path, max_evals=2, executor=Spark("local[2]"))


def test_an_executor_without_the_study_folder_runs_the_trial_and_still_prunes(
    tmp_path: Path,
) -> None:
    """What a Spark executor on another node does with a job (no Spark needed to check)."""
    import cloudpickle

    from tpetune.executors.base import Job
    from tpetune.executors.spark import _run_on_executor
    from tpetune.trial.context import TrialContext

    def probe(params: dict) -> dict:
        ctx = current_trial()
        assert ctx is not None
        tpetune.report(1, 0.9)  # worse than the one finished trial's 0.5: pruned
        return {
            "loss": 0.9,
            "metrics": {"workdir": str(ctx.workdir), "pruned": tpetune.should_prune()},
        }

    ctx = TrialContext(
        tid=3,
        seed=0,
        study_dir=tmp_path / "only-on-the-driver",
        pruner=MedianPruner(warmup_trials=1, warmup_steps=1).to_json(),
        reference={"curves": [[0.5, 0.4]], "rungs": {}},
    )
    blob = _run_on_executor(cloudpickle.dumps(probe), cloudpickle.dumps(Job(3, {}, ctx)))
    outcome = cloudpickle.loads(blob)
    assert outcome.state is TrialState.OK
    assert outcome.metrics == {"workdir": "None", "pruned": True}
    # stored by the driver on return; the last column is the decision (freeze-thaw: pause too)
    assert outcome.steps == [[1, 0.9, None, None, True, "prune"]]
    assert not (tmp_path / "only-on-the-driver").exists()  # nothing created on the "node"


# -- a real standalone cluster (master + worker on 127.0.0.1), and executors' Python ----------
WHERE = """
import os, sys
from hyperopt import hp
space = {"x": hp.uniform("x", -5, 5)}
def objective(p):
    return {"loss": (p["x"] - 1) ** 2, "metrics": {"pid": os.getpid(), "python": sys.executable}}
"""


def _driver_env(**extra: str) -> dict[str, str]:
    """The driver run from a virtualenv that is not activated: the ``python3`` on PATH is the
    system's (without tpetune), and no PYSPARK_PYTHON is set."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYSPARK_PYTHON", "VIRTUAL_ENV")}
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != bindir)
    return {**env, "SPARK_LOCAL_IP": "127.0.0.1", **extra}


def _spark_run(tmp_path: Path, master: str, env: dict[str, str], evals: int) -> Any:
    script = tmp_path / "where.py"
    script.write_text(WHERE)
    argv = [sys.executable, "-m", "tpetune", "run", str(script), "--study-dir",
            str(tmp_path / "study"), "--max-evals", str(evals), "--spark", master, "--quiet",
            "--no-plots"]  # fmt: skip
    # From the study's folder: nothing of the checkout is importable from the executors' cwd.
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)


@pytest.mark.spark
def test_a_standalone_cluster_runs_trials_with_the_drivers_python(
    tmp_path: Path, spark_master: str
) -> None:
    done = _spark_run(tmp_path, spark_master, _driver_env(), evals=4)
    assert done.returncode == 0, done.stderr[-3000:]
    records = load_study(tmp_path / "study").records
    assert [r.state for r in records] == [TrialState.OK] * 4, [r.error for r in records]
    for r in records:
        assert r.metrics["python"] == sys.executable  # not the python3 on PATH
        assert r.loss == pytest.approx((r.params["x"] - 1) ** 2)


def _bare_python(tmp_path: Path) -> str:
    """A Python without tpetune (a fresh venv, no packages), as on an unprepared node."""
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    assert subprocess.run([python, "-c", "import tpetune"], capture_output=True, cwd="/").returncode
    return python


def _assert_stopped_on_setup(done: Any, tmp_path: Path, python: str) -> None:
    assert done.returncode == 2, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("tpetune: error:")]
    assert lines == [
        "tpetune: error: Spark executors cannot load the trial (ModuleNotFoundError: No module "
        "named 'tpetune'): install tpetune and the objective's packages into the executors' "
        f"Python ({python}) on every worker node, or set PYSPARK_PYTHON to a Python that has them"
    ]
    records = load_study(tmp_path / "study").records
    # Stopped at the first such trial: nothing recorded as a failure, the in-flight trials
    # stay running (re-run on resume, once the nodes have tpetune).
    assert records and all(r.state is TrialState.RUNNING for r in records)


@pytest.mark.spark
def test_executors_that_cannot_import_tpetune_stop_the_run_with_one_line(
    tmp_path: Path, spark_master: str
) -> None:
    python = _bare_python(tmp_path)
    done = _spark_run(tmp_path, spark_master, _driver_env(PYSPARK_PYTHON=python), evals=20)
    _assert_stopped_on_setup(done, tmp_path, python)


@pytest.mark.spark
@pytest.mark.skipif(not HAVE_JAVA, reason="no Java runtime (.ci/run installs one)")
def test_local_executors_without_tpetune_stop_the_run_with_one_line(tmp_path: Path) -> None:
    pytest.importorskip("pyspark")
    python = _bare_python(tmp_path)
    done = _spark_run(tmp_path, "local[1]", _driver_env(PYSPARK_PYTHON=python), evals=20)
    _assert_stopped_on_setup(done, tmp_path, python)
