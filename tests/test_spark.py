"""--spark local[2]: a few cheap trials complete and the study resumes (needs Java)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hyperopt import hp

from tpetune import MissingDependencyError, TrialState, load_study, tune
from tpetune.context import current_trial

HAVE_JAVA = bool(shutil.which("java") or os.environ.get("JAVA_HOME"))
SPACE = {"x": hp.uniform("x", -5, 5), "opt": hp.choice("opt", ["sgd", "adam"])}


def objective(params: dict) -> dict:
    if params["opt"] == "sgd" and params["x"] > 3:
        raise ValueError("diverged")
    ctx = current_trial()
    shipped = ctx is not None and ctx.reference_curves is not None
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
        spark="local[2]",
        max_failures=10,
        pruning={"rule": "median"},
        progress=False,
    )
    assert [r.tid for r in first.records] == [0, 1, 2, 3]
    resumed = tune(
        objective,
        SPACE,
        study_dir=tmp_path,
        max_evals=7,
        spark="local[2]",
        max_failures=10,
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
            # With pruning on, the pruner's reference curves travel with the trial, so an
            # executor that cannot see the study folder still prunes.
            assert r.metrics["shipped"] is (r.tid < 4)
        else:
            assert "ValueError: diverged" in (r.error or "")
    # and the same study goes on serially
    serial = tune(
        objective, SPACE, study_dir=tmp_path, max_evals=8, max_failures=10, progress=False
    )
    assert len(serial.records) == 8 and resumed.records[:7] == serial.records[:7]


def test_missing_java_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(MissingDependencyError, match="needs a Java runtime"):
        tune(objective, SPACE, study_dir=tmp_path, max_evals=2, spark="local[2]", progress=False)


def test_an_executor_without_the_study_folder_runs_the_trial_and_still_prunes(
    tmp_path: Path,
) -> None:
    """What a Spark executor on another node does with a job (no Spark needed to check)."""
    import cloudpickle

    from tpetune.context import TrialContext
    from tpetune.executors import Job
    from tpetune.pruning import finished_curves
    from tpetune.spark import _run_on_executor

    def probe(params: dict) -> dict:
        ctx = current_trial()
        assert ctx is not None
        return {
            "loss": 1.0,
            "metrics": {"workdir": str(ctx.workdir), "reference": finished_curves("val_loss")},
        }

    ctx = TrialContext(
        tid=3,
        seed=0,
        study_dir=tmp_path / "only-on-the-driver",
        pruning={"rule": "median"},
        reference_curves={"val_loss": [[0.5, 0.4]]},
    )
    blob = _run_on_executor(cloudpickle.dumps(probe), cloudpickle.dumps(Job(3, {}, ctx)))
    outcome = cloudpickle.loads(blob)
    assert outcome.state is TrialState.OK
    assert outcome.metrics == {"workdir": "None", "reference": [[0.5, 0.4]]}
    assert not (tmp_path / "only-on-the-driver").exists()  # nothing created on the "node"
