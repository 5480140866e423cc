"""The one exception tree of tpetune.

Every error a user can cause is a :class:`TpetuneError`; the CLI prints its message on one
line and exits with its ``exit_code`` (2 for bad input, 1 for a failed search). Anything
else escaping is a bug.

TpetuneError
├── SpaceError          a space file that is missing, broken or rejected by hyperopt
├── ObjectiveError      an objective file or return value that breaks the contract
├── DataError           input data that cannot be used (missing columns, gaps, too short)
├── StoreError          a study folder that cannot be opened, or is not a tpetune study
│   ├── SpaceMismatchError  resuming a study with a changed space
│   └── StudyInUseError     another process drives the study
├── ConfigError         bad options (non-positive max_evals, unknown algo, ...)
├── MissingDependencyError  an optional extra that is not installed
├── ExecutorError       trials cannot run where asked (workers die at start, Spark executors
│                       cannot import tpetune or the objective)
└── SearchFailedError   too many consecutive failed trials (exit code 1)
"""

from __future__ import annotations


class TpetuneError(Exception):
    """Root of all errors tpetune raises on purpose; ``exit_code`` is what the CLI returns."""

    exit_code: int = 2


class SpaceError(TpetuneError):
    """A search space file cannot be loaded or hyperopt rejects the space."""


class ObjectiveError(TpetuneError):
    """The objective is missing or returned something that is not a loss."""


class DataError(TpetuneError):
    """Input data is unusable; the message names the problem and the fix."""


class StoreError(TpetuneError):
    """A study folder is unreadable, foreign, or from an incompatible schema."""


class SpaceMismatchError(StoreError):
    """The study was created with a different search space than the one given now."""


class StudyInUseError(StoreError):
    """Another live process holds the study's lock."""


class ConfigError(TpetuneError):
    """An option has a value tpetune cannot work with."""


class MissingDependencyError(TpetuneError):
    """An optional dependency needed for the requested feature is not installed."""


class SearchFailedError(TpetuneError):
    """The search stopped because too many consecutive trials failed."""

    exit_code = 1


class ExecutorError(TpetuneError):
    """Trials cannot run where asked; the message says what to install or fix where."""
