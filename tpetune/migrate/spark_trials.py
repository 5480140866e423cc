"""``tpetune.SparkTrials``: hyperopt's ``SparkTrials``, run by tpetune's Spark executor.

A hyperopt script using Spark changes its imports only::

    from tpetune import SparkTrials, fmin      # was: from hyperopt import SparkTrials, fmin
    best = fmin(objective, space, algo=tpe.suggest, max_evals=64,
                trials=SparkTrials(parallelism=4, timeout=3600))

Each trial runs as a one-task Spark job on the session's cluster, ``parallelism`` at a time
(:class:`tpetune.executors.spark.SparkExecutor`), and lands in the study store on the driver as soon
as it ends; running the script again resumes the study. ``hyperopt.fmin(...,
trials=tpetune.SparkTrials(...))`` also runs through :func:`tpetune.fmin` (hyperopt hands the
search to a Trials' own ``fmin``).

What differs from hyperopt's: the trials are also kept in a study (``tpetune show``,
resume, exports); ``timeout`` counts over all runs of the study; ``catch_eval_exceptions``
is allowed (hyperopt's asserts it is off); attachments are kept (hyperopt's raises
``NotImplementedError``); ``resource_profile`` is not supported (tpetune's jobs use the
cluster's default task resources).
"""

from __future__ import annotations

import logging
from typing import Any

from hyperopt import Trials, base
from hyperopt.fmin import validate_loss_threshold, validate_timeout

from tpetune.executors.spark import _check_available
from tpetune.migrate.fmin import fmin

log = logging.getLogger("tpetune")


class SparkTrials(Trials):  # type: ignore[misc,unused-ignore]  # hyperopt: no hints
    """hyperopt's ``SparkTrials(parallelism, timeout, loss_threshold, spark_session)``.

    Args:
        parallelism: trials in flight at once; ``None`` or below 1: Spark's default
            parallelism (at least 1); capped at :attr:`MAX_CONCURRENT_JOBS_ALLOWED`.
        timeout: seconds for the search (``fmin``'s own ``timeout`` is then ignored, as in
            hyperopt); cumulative over the runs of a study.
        loss_threshold: stop once the best loss is at or below it.
        spark_session: the session whose cluster runs the trials (default: the active one,
            or a new local one).

    Raises:
        MissingDependencyError: pyspark or Java is missing.
        Exception: hyperopt's own errors for a bad ``timeout`` or ``loss_threshold``.
    """

    asynchronous = True
    MAX_CONCURRENT_JOBS_ALLOWED = 128

    def __init__(
        self,
        parallelism: int | None = None,
        timeout: float | None = None,
        loss_threshold: float | None = None,
        spark_session: Any = None,
    ) -> None:
        super().__init__(exp_key=None, refresh=False)
        validate_timeout(timeout)
        validate_loss_threshold(loss_threshold)

        _check_available()
        import os
        import sys

        from pyspark.sql import SparkSession

        if spark_session is None:
            if SparkSession.getActiveSession() is None:  # we start it: the executors'
                os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # Python is ours
            spark_session = SparkSession.builder.getOrCreate()
        self._spark = spark_session
        self._spark_context = spark_session.sparkContext
        self.user_specified_parallelism = parallelism
        self.parallelism = self._decide_parallelism(
            parallelism, self._spark_context.defaultParallelism
        )
        self.timeout = timeout
        self.loss_threshold = loss_threshold
        self.refresh()

    def __str__(self) -> str:
        return f"SparkTrials(trials={self.trials})"

    @staticmethod
    def _decide_parallelism(requested: int | None, default: int) -> int:
        """hyperopt's rule: None or below 1 is Spark's default parallelism (at least 1)."""
        parallelism = max(int(default), 1) if requested is None or requested <= 0 else requested
        if parallelism > SparkTrials.MAX_CONCURRENT_JOBS_ALLOWED:
            log.warning(
                "Parallelism (%d) is capped at SparkTrials.MAX_CONCURRENT_JOBS_ALLOWED (%d).",
                parallelism,
                SparkTrials.MAX_CONCURRENT_JOBS_ALLOWED,
            )
            parallelism = SparkTrials.MAX_CONCURRENT_JOBS_ALLOWED
        return int(parallelism)

    def count_successful_trials(self) -> int:
        return int(self.count_by_state_unsynced(base.JOB_STATE_DONE))

    def count_failed_trials(self) -> int:
        return int(self.count_by_state_unsynced(base.JOB_STATE_ERROR))

    def count_cancelled_trials(self) -> int:
        return int(self.count_by_state_unsynced(base.JOB_STATE_CANCEL))

    def count_total_trials(self) -> int:
        states = [base.JOB_STATE_DONE, base.JOB_STATE_ERROR, base.JOB_STATE_CANCEL]
        return int(self.count_by_state_unsynced(states))

    def fmin(self, fn: Any, space: Any, **kwargs: Any) -> Any:
        """What ``hyperopt.fmin(..., trials=self)`` calls: :func:`tpetune.fmin` instead."""

        kwargs.pop("allow_trials_fmin", None)
        return fmin(fn, space, trials=self, **kwargs)

    def __getstate__(self) -> dict[str, Any]:
        # A pickled Trials (trials_save_file) keeps the trials, not the Spark session.
        state = dict(self.__dict__)
        state["_spark"] = state["_spark_context"] = None
        return state
