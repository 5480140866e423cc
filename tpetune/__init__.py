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
left off; see :class:`FreezeThawPruner`).

Importing this package loads neither TensorFlow nor matplotlib nor hyperopt.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from tpetune.context import TrialContext, current_trial
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
from tpetune.options import Search, Serial, Spark, StopRules, Workers
from tpetune.pruners import ASHAPruner, FreezeThawPruner, MedianPruner, NoPruner
from tpetune.reporting import TrialPruned, last_step, report, should_prune
from tpetune.store import TrialRecord, TrialState
from tpetune.study import Study, load_study

if TYPE_CHECKING:
    from tpetune.compat import fmin
    from tpetune.space import Space, load_space
    from tpetune.tuning import tune

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
    "should_prune",
    "tune",
]


def __getattr__(name: str) -> Any:
    # tune and Space pull in hyperopt (2 s of scipy imports): load them on first use only.
    if name == "tune":
        from tpetune.tuning import tune

        return tune
    if name == "fmin":  # the drop-in for hyperopt.fmin (tpetune.compat)
        from tpetune.compat import fmin

        return fmin
    if name in ("Space", "load_space"):
        from tpetune import space

        return getattr(space, name)
    raise AttributeError(f"module 'tpetune' has no attribute {name!r}")
