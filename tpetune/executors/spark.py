"""Trials on an Apache Spark cluster (``--spark MASTER``).

Spark runs trials the way hyperopt's ``SparkTrials`` does: each trial is a one-task Spark
job launched from a driver thread, ``workers`` of them at a time. Unlike ``SparkTrials``,
the jobs are driven by tpetune's own loop, so every result lands in the study store on the
driver as soon as its trial ends: a driver crash loses no finished trial, and the study
resumes with Spark, with workers, or serially.

The executors need Python with tpetune and the objective's own dependencies (TensorFlow for
Keras objectives) installed: the same ``pip install`` on every node, or ship an environment
with ``spark.archives`` as Spark's Python packaging guide describes. They need not see the
study folder: the pruner's reference curves are read on the driver and shipped with each
trial, and a trial's private workdir (checkpoints for resuming it mid-fit) is only offered
where the executor sees the study folder (local mode, or a shared file system).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import replace
from pathlib import Path
from typing import Any

from tpetune._quiet import VERBOSE_VAR, quiet_env, quiet_tensorflow
from tpetune.errors import ExecutorError, MissingDependencyError
from tpetune.executors.base import Job, Outcome, run_trial, ship
from tpetune.search import user_modules
from tpetune.study.store import TrialState
from tpetune.trial.report import with_reference


def _run_on_executor(objective_blob: bytes, job_blob: bytes) -> bytes:
    """Runs inside a Spark executor's Python worker."""
    quiet_tensorflow(os.environ.get(VERBOSE_VAR) == "1")  # before the objective imports TF
    import cloudpickle

    job = cloudpickle.loads(job_blob)
    if job.ctx.study_dir is not None and not Path(job.ctx.study_dir).is_dir():
        # Another node, without the study folder: no private workdir (checkpoints) here.
        # The pruner decides from the snapshot that came with the job; steps travel back.
        # A thawed or re-run trial then starts over (last_step() None): no checkpoint here.
        job = replace(job, ctx=replace(job.ctx, study_dir=None, last_step=None))
    elif job.ctx.study_dir is not None:
        # The study folder is here (local or one-machine cluster): report into the store, so
        # rung decisions are taken against every trial's values, not a snapshot.
        job = replace(job, ctx=replace(job.ctx, reference=None))
    return bytes(cloudpickle.dumps(run_trial(cloudpickle.loads(objective_blob), job)))


_ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b(: .*)?$")


def _python_error(exc: BaseException) -> str:
    """The Python error inside a Spark exception (whose own first line says nothing)."""
    lines = [line.strip() for line in str(exc).splitlines()]
    found = [line for line in lines if _ERROR_LINE.match(line)]
    text = found[-1] if found else (lines[0] if lines and lines[0] else type(exc).__name__)
    return text[:300]


def _setup_problem(error: str, full: str) -> str | None:
    """What to install where, when a Spark job failed because the executors' Python cannot
    run tpetune trials at all (rather than because of this trial); else ``None``."""
    python = os.environ.get("PYSPARK_PYTHON", "python3")
    if error.startswith(("ModuleNotFoundError", "ImportError")):
        return (
            f"Spark executors cannot load the trial ({error}): install tpetune and the "
            f"objective's packages into the executors' Python ({python}) on every worker node, "
            "or set PYSPARK_PYTHON to a Python that has them"
        )
    if "Cannot run program" in full:
        return (
            f"Spark executors cannot start their Python ({python}): install it at that path on "
            "every worker node, or set PYSPARK_PYTHON to the Python the nodes have"
        )
    return None


def _check_available() -> None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "Spark(master=...) needs pyspark: pip install pyspark (and Java 17 on the machine)"
        ) from None
    java_home = os.environ.get("JAVA_HOME")
    if not shutil.which("java") and not (java_home and os.path.exists(java_home)):
        raise MissingDependencyError(
            "Spark(master=...) needs a Java runtime: install Java 17 (e.g. apt-get install "
            "openjdk-17-jre-headless) or set JAVA_HOME"
        )


class SparkExecutor:
    """Runs trials as Spark jobs; the contract is :class:`tpetune.executors.base.Executor`'s.

    Args:
        objective: shipped to the executors with cloudpickle (once, as a broadcast).
        master: a Spark master URL (``local[4]``, ``spark://host:7077``, ``yarn``, ...).
        workers: trials in flight (default: the cluster's default parallelism).
        trial_timeout: seconds before a trial's Spark job is cancelled and the trial failed.

    Raises:
        MissingDependencyError: pyspark or Java is missing.
    """

    def __init__(
        self,
        objective: Callable[[Any], Any],
        *,
        master: str,
        workers: int | None = None,
        trial_timeout: float | None = None,
    ) -> None:
        _check_available()
        from pyspark.sql import SparkSession

        self._owns_session = SparkSession.getActiveSession() is None
        if self._owns_session:
            # The executors' Python: the driver's own interpreter (with tpetune and the
            # objective's packages) unless the user chose one; not whatever python3 is on PATH.
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = (
            SparkSession.builder.master(master)
            .appName("tpetune")
            .config("spark.ui.showConsoleProgress", "false")
        )
        for key, value in quiet_env(os.environ.get(VERBOSE_VAR) == "1").items():
            builder = builder.config(f"spark.executorEnv.{key}", value)  # before TF loads
        self.session = builder.getOrCreate()
        # Trial errors come back in outcomes; Spark's own ERROR lines repeat them (--verbose).
        verbose = os.environ.get(VERBOSE_VAR) == "1"
        self.session.sparkContext.setLogLevel("ERROR" if verbose else "FATAL")
        sc = self.session.sparkContext
        self.workers = workers or max(1, sc.defaultParallelism)
        self.trial_timeout = trial_timeout
        _space_modules_by_value()
        self._objective = sc.broadcast(ship(objective))
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="tpetune-spark")
        self._running: dict[Future[Outcome], tuple[Job, float]] = {}
        self._lock = threading.Lock()

    def _run(self, job: Job) -> Outcome:
        import cloudpickle

        sc = self.session.sparkContext
        # Job groups are per thread: the group lets a timeout cancel exactly this trial.
        sc.setJobGroup(f"tpetune-trial-{job.tid}", f"tpetune trial {job.tid}", True)
        # Read on the driver, now: the executor may be a machine without the study folder.
        job = replace(job, ctx=with_reference(job.ctx))
        blob, job_blob = self._objective, cloudpickle.dumps(job)
        started = time.time()
        try:
            result = (
                sc.parallelize([job_blob], 1)
                .map(lambda b: _run_on_executor(blob.value, b))
                .collect()[0]
            )
        except Exception as exc:  # a lost executor or a cancelled job fails this trial only
            error = _python_error(exc)
            setup = _setup_problem(error, str(exc))
            if setup is not None:  # every trial would fail the same way: stop now
                raise ExecutorError(setup) from None
            return Outcome(
                TrialState.FAIL,
                error=f"Spark job failed: {error}",
                started=started,
                finished=time.time(),
            )
        outcome: Outcome = cloudpickle.loads(result)
        return outcome

    def submit(self, job: Job) -> None:
        future = self._pool.submit(self._run, job)
        self._running[future] = (job, time.monotonic())

    def wait(self) -> list[tuple[int, Outcome]]:
        while self._running:
            timeout = None
            if self.trial_timeout is not None:
                now = time.monotonic()
                timeout = max(
                    0.0, min(t + self.trial_timeout - now for _, t in self._running.values())
                )
            done, _ = wait_futures(
                list(self._running), timeout=timeout, return_when=FIRST_COMPLETED
            )
            if done:
                return [(self._running.pop(f)[0].tid, f.result()) for f in done]
            for future, (job, started) in list(self._running.items()):
                if (
                    self.trial_timeout is not None
                    and time.monotonic() - started >= self.trial_timeout
                ):
                    self.session.sparkContext.cancelJobGroup(f"tpetune-trial-{job.tid}")
                    self._running.pop(future)
                    now = time.time()
                    error = (
                        f"trial exceeded the trial timeout of {self.trial_timeout:g}s; "
                        "its Spark job was cancelled"
                    )
                    return [
                        (
                            job.tid,
                            Outcome(
                                TrialState.FAIL,
                                error=error,
                                started=now - (time.monotonic() - started),
                                finished=now,
                            ),
                        )
                    ]
        return []

    def close(self) -> None:
        sc = self.session.sparkContext
        for job, _ in self._running.values():
            sc.cancelJobGroup(f"tpetune-trial-{job.tid}")
        self._running.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._owns_session:
            self.session.stop()


def _space_modules_by_value() -> None:
    """Executors may be other machines, which cannot import a space file's module
    (``tpetune_space_<stem>``, see :mod:`tpetune.search.user_modules`): its functions travel
    by value there, as cloudpickle ships any ``__main__`` code."""
    import cloudpickle  # comes with pyspark

    for name in user_modules.LOADED:
        module = sys.modules.get(name)
        if module is not None:
            cloudpickle.register_pickle_by_value(module)
