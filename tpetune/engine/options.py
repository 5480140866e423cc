"""Option objects handed to :func:`tpetune.tune`, each validated once when it is made.

As Optuna hands ``create_study`` a sampler, a pruner and a storage and gives ``optimize`` only
the budget, ``tune`` takes a :class:`Search` (what to propose), :class:`StopRules` (when to
stop early), a pruner (:mod:`tpetune.pruners.policies`) and an executor option (:class:`Serial`,
:class:`Workers`, :class:`Spark`: where trials run). Defaults live here once; the CLI reads
its help texts from them.

Errors name the library's own arguments (``Search(algo=...)``); the CLI maps them to flags.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from tpetune._io import check_int, finite_float
from tpetune.errors import ConfigError
from tpetune.executors.base import SerialExecutor
from tpetune.executors.processes import ProcessExecutor
from tpetune.executors.spark import SparkExecutor
from tpetune.search import algos

if TYPE_CHECKING:
    from tpetune.executors.base import Executor, Objective


@dataclass(frozen=True)
class Search:
    """What to propose.

    Attributes:
        algo: a name from :data:`tpetune.search.algos.ALGOS`; ``None``: ``tpe`` for a new study, the
            stored one on resume.
        seed: the study seed; ``None``: 0 for a new study, the stored one on resume.
        options: the algorithm's knobs (TPE: ``n_startup_jobs``, ``gamma``, ...). Stored with
            a new study, so a resume proposes exactly what it did. For TPE, ``n_startup_jobs``
            defaults to :func:`tpetune.search.algos.tpe_startup` of the study's ``max_evals``.
        points: param dicts (label -> value) evaluated first, as the study's first trials.
        stream: hyperopt.fmin's seeding instead of per-trial seeds: the JSON state of a numpy
            generator (:func:`tpetune.search.seeding.generator_state`) from which each proposal's
            seed is drawn as ``hyperopt.fmin`` draws it; its position is stored with every
            proposal, so a resume continues the stream (:mod:`tpetune.search.seeding`). Stored with
            a new study; ``None``: per-trial seeds from (``seed``, trial id).
        lag: with trials running in parallel, trial ``n`` is proposed only once every trial up
            to ``n - lag`` has finished, from those trials alone, and its pruner sees only them:
            so a study with at most ``lag`` trials in flight proposes and prunes the same
            whatever the timing, the number of workers, or the crashes and resumes in between
            (``lag=1`` is a serial study). Stored with a new study. ``None`` (the library's
            default): each proposal sees every trial finished at that moment, which keeps every
            worker busy but makes proposals depend on timing. Not with a freeze-thaw pruner,
            whose thaws depend on timing.
        allow_duplicates: whether a new proposal may repeat the params of a trial the study
            has. ``None``: ``False`` for a new study (a repeat is drawn again:
            :mod:`tpetune.search.distinct`), the stored value on resume (a study made before
            tpetune stored it proposed as hyperopt does, repeats included). ``tpetune.fmin``
            and imported hyperopt searches pass ``True``: they propose what hyperopt would.
    """

    algo: str | None = None
    _: KW_ONLY
    seed: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    points: Sequence[Mapping[str, Any]] = ()
    stream: Mapping[str, Any] | None = None
    lag: int | None = None
    allow_duplicates: bool | None = None

    def __post_init__(self) -> None:
        if self.algo is not None:
            algos.check(self.algo, self.options)
        elif self.options:
            algos.check("tpe", self.options)
        seed = self.seed
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ConfigError(f"Search(seed=...) must be an integer; got {self.seed!r}")
        if isinstance(self.points, Mapping | str) or not all(
            isinstance(p, Mapping) for p in self.points
        ):
            raise ConfigError(
                "Search(points=...) must be a list of param dicts (label -> value); "
                f"got {self.points!r}"
            )
        if self.lag is not None:
            check_int("Search(lag=...)", self.lag)
        if self.allow_duplicates is not None and not isinstance(self.allow_duplicates, bool):
            raise ConfigError(
                f"Search(allow_duplicates=...) must be True or False; got {self.allow_duplicates!r}"
            )
        if self.stream is not None and (
            not isinstance(self.stream, Mapping) or "bit_generator" not in self.stream
        ):
            raise ConfigError(
                "Search(stream=...) must be a generator state from "
                f"tpetune.search.seeding.generator_state(rng); got {self.stream!r}"
            )


@dataclass(frozen=True, kw_only=True)
class StopRules:
    """When a run stops before ``max_evals``; ``None`` disables a rule.

    Attributes:
        timeout: seconds of wall-clock time, cumulative over all runs of the study.
        loss_threshold: stop once the best loss is at or below it.
        no_progress: stop after this many finished trials without a new best.
        max_failures: consecutive failed trials after which the search fails.
    """

    timeout: float | None = None
    loss_threshold: float | None = None
    no_progress: int | None = None
    max_failures: int = 5

    def __post_init__(self) -> None:
        if self.timeout is not None:
            _check_seconds("StopRules(timeout=...)", self.timeout)
        if self.loss_threshold is not None and finite_float(self.loss_threshold) is None:
            raise ConfigError(
                f"StopRules(loss_threshold=...) must be a finite number; got {self.loss_threshold}"
            )
        if self.no_progress is not None:
            check_int("StopRules(no_progress=...)", self.no_progress)
        check_int("StopRules(max_failures=...)", self.max_failures)


@dataclass(frozen=True)
class Serial:
    """Run each trial in this process, one at a time (the default)."""

    workers: int = field(default=1, init=False)

    def build(self, objective: Objective) -> Executor:

        return SerialExecutor(objective)


@dataclass(frozen=True)
class Workers:
    """Run trials in ``workers`` worker processes (crash isolation, timeouts, recycling).

    Attributes:
        workers: trials in flight at once, one per process; ``None``: as many as the study's
            ``Search(lag=...)``, one for a study without a lag (:meth:`for_lag`).
        trial_timeout: seconds after which a running trial is killed and recorded failed.
        recycle_after: trials a worker runs before it is replaced by a fresh process (bounds
            memory that frameworks such as TensorFlow never give back).
        spare: start that replacement, and its imports, during the worker's last trial (one
            process more for that trial: a Keras worker, 0.5-0.8 GiB); ``False`` starts it when
            the next trial needs it, which then waits for the imports.
    """

    workers: int | None = None
    _: KW_ONLY
    trial_timeout: float | None = None
    recycle_after: int = 20
    spare: bool = True

    def __post_init__(self) -> None:
        if self.workers is not None:
            check_int("Workers(workers=...)", self.workers)
        check_int("Workers(recycle_after=...)", self.recycle_after)
        if not isinstance(self.spare, bool):
            raise ConfigError(f"Workers(spare=...) must be True or False; got {self.spare!r}")
        if self.trial_timeout is not None:
            _check_seconds("Workers(trial_timeout=...)", self.trial_timeout)

    def for_lag(self, lag: int | None) -> Workers:
        """These settings with the number of workers decided: ``workers``, or for ``None``
        ``lag`` (a study's stored lag), or 1 without one. Up to ``lag`` trials can be in flight
        while proposals stay deterministic, so that many workers keep them all busy."""
        return self if self.workers is not None else replace(self, workers=lag or 1)

    def build(self, objective: Objective) -> Executor:

        return ProcessExecutor(
            objective,
            workers=self.workers or 1,
            trial_timeout=self.trial_timeout,
            recycle_after=self.recycle_after,
            spare=self.spare,
        )


@dataclass(frozen=True)
class Spark:
    """Run each trial as a one-task Spark job on ``master``.

    Attributes:
        master: a Spark master URL (``local[2]``, ``spark://host:7077``, ``yarn``).
        workers: trials in flight at once; ``None``: the cluster's default parallelism.
        trial_timeout: seconds after which a trial's job is cancelled and recorded failed.
    """

    master: str
    _: KW_ONLY
    workers: int | None = None
    trial_timeout: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.master, str) or not self.master.strip():
            raise ConfigError(f"Spark(master=...) must be a master URL; got {self.master!r}")
        if self.workers is not None:
            check_int("Spark(workers=...)", self.workers)
        if self.trial_timeout is not None:
            _check_seconds("Spark(trial_timeout=...)", self.trial_timeout)

    def build(self, objective: Objective) -> Executor:

        return SparkExecutor(
            objective,
            master=self.master,
            workers=self.workers,
            trial_timeout=self.trial_timeout,
        )


ExecutorOption = Serial | Workers | Spark

#: Called after every finished trial with hyperopt's ``Trials`` (all trials so far) and the
#: finished trial's record; a returned string stops the run with that reason.
Callback = Callable[[Any, Any], "str | None"]


def _check_seconds(name: str, value: Any) -> None:
    if finite_float(value) is None or not float(value) > 0:
        raise ConfigError(f"{name} must be a positive number of seconds; got {value!r}")
