"""tpetune: Hyperopt's TPE for Keras models, made safe, resumable, fast and honest.

Public API::

    import tpetune
    study = tpetune.tune(
        objective, space, study_dir="runs/mine", max_evals=50,
        search=tpetune.Search(seed=1),                  # what to propose
        stop=tpetune.StopRules(no_progress=20),         # when to stop early
        pruner=tpetune.ASHAPruner(),                    # which trials to stop early
        executor=tpetune.Workers(2),                    # where trials run
    )
    study.best_params            # the best trial's hyperparameters, label -> value
    tpetune.load_study("runs/mine").to_dataframe()

Inside an objective: ``tpetune.report(step, value)``, ``tpetune.should_prune()``,
``raise tpetune.TrialPruned()``, ``tpetune.last_step()`` (where a thawed or re-run trial
left off; see :class:`FreezeThawPruner`), ``tpetune.reported()`` (its values so far).

Importing this package loads neither TensorFlow nor matplotlib nor hyperopt.
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

from tpetune.engine.options import Search, Serial, Spark, StopRules, Workers
from tpetune.engine.tuning import tune
from tpetune.errors import (
    ConfigError,
    DataError,
    MissingDependencyError,
    ObjectiveError,
    SearchFailedError,
    SpaceError,
    SpaceMismatchError,
    StoreError,
    StudyInUseError,
    TpetuneError,
)
from tpetune.migrate.fmin import fmin
from tpetune.pruners.freeze_thaw import FreezeThawPruner
from tpetune.pruners.policies import ASHAPruner, MedianPruner, NoPruner
from tpetune.search.space import Space, load_space
from tpetune.study.store import TrialRecord, TrialState
from tpetune.study.study import Study, load_study
from tpetune.trial.context import TrialContext, current_trial
from tpetune.trial.report import TrialPruned, last_step, report, reported, should_prune

if TYPE_CHECKING:
    from tpetune.migrate.spark_trials import SparkTrials

__all__ = [
    "ASHAPruner",
    "ConfigError",
    "DataError",
    "FreezeThawPruner",
    "MedianPruner",
    "MissingDependencyError",
    "NoPruner",
    "ObjectiveError",
    "Search",
    "SearchFailedError",
    "Serial",
    "Space",
    "SpaceError",
    "SpaceMismatchError",
    "Spark",
    "SparkTrials",
    "StopRules",
    "StoreError",
    "Study",
    "StudyInUseError",
    "TpetuneError",
    "TrialContext",
    "TrialPruned",
    "TrialRecord",
    "TrialState",
    "Workers",
    "__version__",
    "current_trial",
    "fmin",
    "last_step",
    "load_space",
    "load_study",
    "report",
    "reported",
    "should_prune",
    "tune",
]


def __getattr__(name: str) -> Any:
    # SparkTrials subclasses hyperopt's Trials: importing it imports hyperopt (2 s of scipy).
    if name == "SparkTrials":
        from tpetune.migrate.spark_trials import SparkTrials

        return SparkTrials
    raise AttributeError(f"module 'tpetune' has no attribute {name!r}")
