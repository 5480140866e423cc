"""tpetune: Hyperopt's TPE for Keras models, made safe, resumable, fast and honest.

Public API::

    import tpetune
    study = tpetune.tune(objective, space, study_dir="runs/mine", max_evals=50)
    study.best_params            # what the objective received in the best trial (values)
    tpetune.load_study("runs/mine").to_dataframe()

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
from tpetune.store import TrialRecord, TrialState
from tpetune.study import Study, load_study

if TYPE_CHECKING:
    from tpetune.space import Space, load_space
    from tpetune.tuning import tune

__all__ = [
    "ConfigError",
    "DataError",
    "MissingDependencyError",
    "ObjectiveError",
    "SearchFailedError",
    "Space",
    "SpaceError",
    "SpaceMismatchError",
    "StoreError",
    "Study",
    "StudyInUseError",
    "TpetuneError",
    "TrialContext",
    "TrialRecord",
    "TrialState",
    "__version__",
    "current_trial",
    "load_space",
    "load_study",
    "tune",
]


def __getattr__(name: str) -> Any:
    # tune and Space pull in hyperopt (2 s of scipy imports): load them on first use only.
    if name == "tune":
        from tpetune.tuning import tune

        return tune
    if name in ("Space", "load_space"):
        from tpetune import space

        return getattr(space, name)
    raise AttributeError(f"module 'tpetune' has no attribute {name!r}")
