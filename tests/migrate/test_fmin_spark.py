"""tpetune.fmin(trials=SparkTrials(...)): the trials run as Spark jobs, the study keeps them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from hyperopt import hp, rand

import tpetune

HAVE_JAVA = bool(shutil.which("java") or os.environ.get("JAVA_HOME"))
#: One xdist process runs every Spark test in turn: two JVMs at once would compete for the
#: standalone cluster's one worker and the machine's memory.
pytestmark = pytest.mark.xdist_group("spark")


def objective(p: dict[str, Any]) -> dict[str, Any]:
    return {"loss": (p["x"] - 1) ** 2, "status": "ok", "pid": os.getpid()}


@pytest.mark.spark
@pytest.mark.skipif(not HAVE_JAVA, reason="no Java runtime (.ci/run installs one)")
def test_spark_trials_run_as_spark_jobs_and_fill_the_trials(tmp_path: Path) -> None:
    pytest.importorskip("pyspark")
    from hyperopt import SparkTrials
    from pyspark.sql import SparkSession

    session = SparkSession.builder.master("local[2]").getOrCreate()
    trials = SparkTrials(parallelism=2, spark_session=session)
    best = tpetune.fmin(
        objective,
        {"x": hp.uniform("x", -3, 3)},
        algo=rand.suggest,
        max_evals=4,
        trials=trials,
        show_progressbar=False,
        study_dir=tmp_path,
    )
    study = tpetune.load_study(tmp_path)
    assert [r.state.value for r in study.records] == ["ok"] * 4
    assert len(trials.trials) == 4 and best == trials.argmin
    assert {r.metrics["pid"] for r in study.records} != {os.getpid()}  # not in this process
