"""tpetune.SparkTrials: a hyperopt SparkTrials script with its imports changed runs its
trials as Spark jobs on a standalone cluster, into a study that the next run resumes."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hyperopt import hp, rand

import tpetune

HAVE_JAVA = bool(shutil.which("java") or os.environ.get("JAVA_HOME"))
pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("spark")]

#: A hyperopt SparkTrials script (hyperopt's docs' pattern); only the imports are tpetune's.
SCRIPT = """
import json, os, sys
from hyperopt import hp, tpe
from pyspark.sql import SparkSession
from tpetune import SparkTrials, fmin   # was: from hyperopt import SparkTrials, fmin

def objective(x):
    return {"loss": (x - 1) ** 2, "status": "ok", "pid": os.getpid()}

spark = SparkSession.builder.master(sys.argv[1]).getOrCreate()
trials = SparkTrials(parallelism=2, spark_session=spark)
best = fmin(objective, hp.uniform("x", -3, 3), algo=tpe.suggest, max_evals=int(sys.argv[2]),
            trials=trials, rstate=None, show_progressbar=False)
print(json.dumps({"best": best, "n": len(trials.trials), "argmin": trials.argmin,
                  "ok": trials.count_successful_trials(), "parallelism": trials.parallelism,
                  "pids": sorted({t["result"]["pid"] for t in trials.trials}),
                  "me": os.getpid()}))
"""


def _run_script(tmp_path: Path, master: str, evals: int) -> dict[str, Any]:
    script = tmp_path / "search.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    done = subprocess.run(
        [sys.executable, str(script), master, str(evals)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_a_spark_trials_script_runs_on_a_standalone_cluster_and_resumes(
    tmp_path: Path, spark_master: str
) -> None:
    first = _run_script(tmp_path, spark_master, 4)
    assert first["n"] == first["ok"] == 4 and first["parallelism"] == 2
    assert first["best"] == first["argmin"]
    assert first["me"] not in first["pids"]  # the trials ran in the cluster's Python workers
    (study_dir,) = (tmp_path / "runs").iterdir()  # fmin's default study, beside the script
    stored = tpetune.load_study(study_dir).records
    second = _run_script(tmp_path, spark_master, 6)  # the same script, a larger budget
    assert second["n"] == 6
    records = tpetune.load_study(study_dir).records
    assert [r.tid for r in records] == list(range(6))
    assert records[:4] == stored  # resumed: the first four trials were not run again


@pytest.fixture(scope="module")
def local_session() -> Any:
    if not HAVE_JAVA:
        pytest.skip("no Java runtime (.ci/run installs one)")
    pytest.importorskip("pyspark")
    from pyspark.sql import SparkSession

    # The executors' Python must have tpetune: this one (an activated venv's python3 would do).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return SparkSession.builder.master("local[2]").getOrCreate()


def objective(p: dict[str, Any]) -> dict[str, Any]:
    return {"loss": abs(p["x"]), "status": "ok", "pid": os.getpid()}


def test_hyperopt_fmin_with_tpetune_spark_trials_runs_through_tpetune(
    tmp_path: Path, local_session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hyperopt

    monkeypatch.chdir(tmp_path)  # fmin's default study folder: runs/ here
    trials = tpetune.SparkTrials(parallelism=2, spark_session=local_session)
    best = hyperopt.fmin(objective, {"x": hp.uniform("x", -2, 2)}, algo=rand.suggest,
                         max_evals=3, trials=trials, show_progressbar=False)  # fmt: skip
    assert best == trials.argmin and len(trials.trials) == 3
    (study_dir,) = (tmp_path / "runs").iterdir()
    assert len(tpetune.load_study(study_dir).records) == 3
    assert {t["result"]["pid"] for t in trials.trials} != {os.getpid()}
    copy = pickle.loads(pickle.dumps(trials))  # trials_save_file: no Spark session inside
    assert copy.argmin == trials.argmin and copy._spark is None


def test_the_trials_own_loss_threshold_stops_the_search(tmp_path: Path, local_session: Any) -> None:
    trials = tpetune.SparkTrials(parallelism=1, loss_threshold=10.0, spark_session=local_session)
    tpetune.fmin(objective, {"x": hp.uniform("x", -2, 2)}, algo=rand.suggest, max_evals=20,
                 trials=trials, show_progressbar=False, study_dir=tmp_path)  # fmt: skip
    assert len(trials.trials) == 1  # every |x| <= 2 is under the threshold


def test_parallelism_follows_hyperopts_rule(local_session: Any) -> None:
    default = local_session.sparkContext.defaultParallelism
    assert tpetune.SparkTrials(spark_session=local_session).parallelism == max(default, 1)
    assert tpetune.SparkTrials(0, spark_session=local_session).parallelism == max(default, 1)
    assert tpetune.SparkTrials(500, spark_session=local_session).parallelism == 128
    with pytest.raises(Exception, match="timeout"):
        tpetune.SparkTrials(2, timeout=-1, spark_session=local_session)


def test_spark_trials_timeout_wins_over_fmins() -> None:
    from tpetune.migrate.fmin_args import spark_limits as limits

    class SparkTrials:  # hyperopt's too: the rule goes by the class name
        timeout, loss_threshold = 60.0, 0.5

    assert limits(SparkTrials(), 10.0, None) == (60.0, 0.5)
    assert limits(SparkTrials(), None, 0.1) == (60.0, 0.1)
    assert limits(object(), 10.0, None) == (10.0, None)
