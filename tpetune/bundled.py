"""The bundled studies as the CLI drives them: one protocol, one runner, one report cache.

A bundled study (``tpetune stock``, ``tpetune digits``) is a :class:`BundledStudy`: it names
its defaults, turns its data flags into :class:`Settings` (loading and checking the data, and
refusing data that differs from what a stored study was made with), builds its objective,
checks a space against it, and owns its final report, its printed summary and its extra plots.
:func:`run_bundled` does the rest once for all of them, in an order that keeps bad input from
changing anything stored: settings (with the stored ones as defaults on resume), space,
objective, ``validate`` and only then :func:`tpetune.tune`; then the final report of the best
trial, cached in ``summary.json`` (:func:`best_trial_report`).

:func:`write_plots` is what ``tpetune plot`` calls: the generic plots of :mod:`tpetune.views.plots`,
then each bundled study's ``extra_plots`` hook (each draws only from files its own report
wrote, so it writes nothing for another study). Nothing here imports TensorFlow: the studies
in :data:`BUNDLED` are imported on first use and import Keras only in ``make_objective``.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tpetune._io import read_json, write_json
from tpetune.engine.options import ExecutorOption, Search, Workers
from tpetune.engine.tuning import tune
from tpetune.errors import ConfigError
from tpetune.executors.warm import warm_workers
from tpetune.pruners.policies import PRUNERS
from tpetune.search.space import load_space
from tpetune.study.artifacts import DEFAULT_KEEP
from tpetune.study.folder import stored_meta
from tpetune.study.store import TrialRecord
from tpetune.study.study import Study
from tpetune.trial.context import derive_seed
from tpetune.views.plots import write_all

if TYPE_CHECKING:
    from tpetune.search.space import Space

__all__ = [
    "BUNDLED",
    "SUMMARY_NAME",
    "BundledStudy",
    "Settings",
    "best_trial_report",
    "bundled_study",
    "run_bundled",
    "stored_settings",
    "write_plots",
]

#: The final report of a bundled study, in its study folder.
SUMMARY_NAME = "summary.json"

#: Bundled studies by command name, as ``module:attribute`` (imported on first use).
BUNDLED: dict[str, str] = {
    "stock": "tpetune.stock.study:STOCK",
    "digits": "tpetune.digits.study:DIGITS",
}


@dataclass(frozen=True)
class Settings:
    """What a bundled study's data flags resolved to.

    Attributes:
        config: the JSON-able settings stored with the study (``objective_config``), whose
            change makes a different study (a resume with other values is refused).
        data: the loaded data the objective is built from (not stored).
        report: keyword options of the study's ``final_report`` (not stored: they change
            the report, not the trials), e.g. the stock study's ``test_folds``.
    """

    config: dict[str, Any]
    data: Any = field(default=None, compare=False)
    report: dict[str, Any] = field(default_factory=dict, compare=False)


class BundledStudy(Protocol):
    """What a bundled study supplies; :func:`run_bundled` and the CLI do the rest.

    The attributes are read-only (a frozen dataclass implements them as fields).
    """

    @property
    def name(self) -> str:
        """The command and the default study folder ``runs/<name>``."""
        ...

    @property
    def help(self) -> str:
        """The command's one-line help in ``tpetune --help``."""
        ...

    @property
    def config_marker(self) -> str:
        """A key only this study's stored settings (``objective_config``) hold: a folder made
        by another bundled study is refused with the command that resumes it."""
        ...

    @property
    def default_space(self) -> str:
        """The bundled space (a name under ``spaces/``) used when none is given."""
        ...

    @property
    def default_max_evals(self) -> int:
        """Trials of a new study when ``max_evals`` is not given."""
        ...

    @property
    def default_pruner(self) -> str:
        """The pruner of a new study when none is given, a name in
        :data:`tpetune.pruners.policies.PRUNERS`; chosen per study on the recorded-curves replay
        (docs/benchmarks.md), since whether pruning pays depends on the study's curves."""
        ...

    @property
    def report_files(self) -> tuple[str, ...]:
        """Files the final report writes into the study folder besides ``summary.json``."""
        ...

    @property
    def settings(self) -> Callable[..., Settings]:
        """``settings(stored, *, study_dir, **data_flags) -> Settings``: resolve the study's
        own data flags (``None`` = the stored value, else the default).

        Typed as a callable because each study has its own flags. It raises
        ``DataError`` when the data cannot be read or used, and ``ConfigError`` when it
        differs from what the stored study was made with.
        """
        ...

    def add_arguments(self, group: argparse._ArgumentGroup) -> None:
        """Add the study's own data and model flags to its command's "data and model" group.

        Each flag's ``dest`` is a keyword of :attr:`settings`, which receives it as parsed
        (``None`` when not given), so a new bundled study touches no CLI file. Must import
        nothing heavy: ``tpetune --help`` runs it.
        """
        ...

    def make_objective(self, settings: Settings) -> Callable[[Any], Any]:
        """The objective for these settings (may import Keras)."""
        ...

    def validate(self, space: Space, objective: Any) -> None:
        """Refuse a space the objective cannot train, before any study is created.

        Raises:
            SpaceError, DataError: with the label or value at fault.
        """
        ...

    def final_report(
        self,
        objective: Any,
        best: TrialRecord,
        *,
        seed: int,
        out_dir: Path,
        executor: ExecutorOption | None = None,
    ) -> dict[str, Any]:
        """Evaluate ``best`` (trained with ``seed``, its own training seed: its kept model, or
        retrained) once on the held-out test data; write :attr:`report_files` into
        ``out_dir``. The report's fits run on ``executor``, the study's executor option
        (:func:`tpetune.executors.calls.run_calls`). A study whose settings return
        :attr:`Settings.report` options takes them as keyword arguments. A study may also
        name ``keep_models``: the least number of best trials' models the study keeps (its
        report reads them)."""
        ...

    def format_summary(self, summary: Mapping[str, Any]) -> str:
        """The report block printed after a run."""
        ...

    def extra_plots(self, study: Study, out_dir: Path) -> list[Path]:
        """Write this study's own PNGs into ``out_dir`` (nothing when its files are absent)."""
        ...


def bundled_study(name: str) -> BundledStudy:
    """The bundled study registered as ``name`` in :data:`BUNDLED`."""
    module, attr = BUNDLED[name].split(":")
    study: BundledStudy = getattr(importlib.import_module(module), attr)
    return study


#: A new bundled study's proposal lag (``Search(lag=...)``): two trials train at once by
#: default, one per core of a 2-core machine, and the study still resumes exactly.
DEFAULT_LAG = 2

#: Trials a bundled study's worker runs before a fresh process replaces it: bounds the ~16 MiB
#: per trial that TensorFlow keeps after ``clear_session``. The CLI's ``--workers N`` for a
#: bundled study recycles as often.
RECYCLE_AFTER = 10


def default_executor(lag: int | None) -> Workers:
    """Where a bundled study's trials run unless told otherwise: ``lag`` recycled worker
    processes (one for a study made without a lag, as before lags existed, so that it still
    resumes exactly), each replaced every :data:`RECYCLE_AFTER` trials."""
    return Workers(lag or 1, recycle_after=RECYCLE_AFTER)


def run_bundled(
    bundle: BundledStudy,
    *,
    study_dir: str | Path,
    space: str | Path | None = None,
    max_evals: int | None = None,
    fresh: bool = False,
    progress: bool = True,
    data: Mapping[str, Any] | None = None,
    executor: ExecutorOption | None = None,
    **search: Any,
) -> tuple[Study, dict[str, Any] | None]:
    """Tune a bundled study and report its best trial on the held-out test data.

    Args:
        bundle: the study (see :data:`BUNDLED`).
        study_dir: the study folder; the report's files and ``summary.json`` go there too.
        space: a space file or bundled name for the same objective (default: the study's).
        max_evals: ``None`` means the stored value on resume, else the study's default.
        fresh: discard an existing study in ``study_dir`` first.
        data: the study's data flags, for :meth:`BundledStudy.settings`.
        search: further :func:`tpetune.tune` options (search, stop rules, pruner, ...); a new
            study given no ``pruner`` gets the study's :attr:`~BundledStudy.default_pruner`.
        executor: where trials run; ``None``: :func:`default_executor` of the study's lag
            (a ``Workers`` without a number of workers runs as many as that lag, too).
            A new study gets ``Search(lag=DEFAULT_LAG)`` unless the search names its own lag
            or its pruner thaws (freeze-thaw, which has no lag): two trials train at once
            and proposals, hence resume, stay deterministic (see ``Search.lag``).

    Returns:
        The study and the test summary (``None`` when no trial finished).

    Raises:
        DataError, SpaceError, ConfigError, StoreError, MissingDependencyError: bad input,
            before anything is changed.
    """

    study_dir = Path(study_dir)
    meta = _stored_meta(study_dir, fresh=fresh)
    stored = _settings_of(meta)
    maker = made_by(stored)
    if maker is not None and maker != bundle.name:
        raise ConfigError(
            f"{study_dir} holds a `tpetune {maker}` study, not a {bundle.name} one: run "
            f"`tpetune {maker} --study-dir {study_dir}` to resume it, or use fresh=True or "
            "another study_dir"
        )
    lag = meta.get("lag")
    if not meta:  # a new study; a resume keeps its own pruner and lag
        if search.get("pruner") is None:
            search["pruner"] = PRUNERS[bundle.default_pruner]()
        options = search.get("search") or Search()
        lag = options.lag
        if lag is None and not hasattr(search["pruner"], "plan"):
            lag = DEFAULT_LAG
            search["search"] = replace(options, lag=lag)
    settings = bundle.settings(stored, study_dir=study_dir, **dict(data or {}))
    max_evals = max_evals or stored.get("max_evals") or bundle.default_max_evals
    loaded_space = load_space(space if space is not None else bundle.default_space)
    objective = bundle.make_objective(settings)
    bundle.validate(loaded_space, objective)
    # The report reads kept models (the stock SPA test's top K): keep at least as many.
    keep = max(search.pop("keep_models", DEFAULT_KEEP), getattr(bundle, "keep_models", 0))
    executor = executor or default_executor(lag)
    if isinstance(executor, Workers):
        executor = executor.for_lag(lag)  # the report's fits run on as many (executors.calls)

    def report(best: TrialRecord, seed: int) -> dict[str, Any]:
        return bundle.final_report(
            objective, best, seed=seed, out_dir=study_dir, executor=executor, **settings.report
        )

    # The report's fits train in the search's workers, TensorFlow already imported there.
    with warm_workers():
        study = tune(
            objective,
            loaded_space,
            study_dir=study_dir,
            max_evals=max_evals,
            fresh=fresh,
            progress=progress,
            objective_config=settings.config,
            executor=executor,
            keep_models=keep,
            **search,
        )
        return study, best_trial_report(study, bundle.report_files, report, settings.report)


def made_by(stored: Mapping[str, Any]) -> str | None:
    """The bundled study whose settings ``stored`` (a study's ``objective_config``) are, by
    each study's ``config_marker``; ``None`` for none (a study of ``tpetune run``)."""
    for name in BUNDLED:
        marker = getattr(bundled_study(name), "config_marker", None)
        if marker is not None and marker in stored:
            return name
    return None


def stored_settings(study_dir: str | Path, *, fresh: bool = False) -> dict[str, Any]:
    """The objective settings and ``max_evals`` of an existing study, to default to on resume.

    Empty when there is no study yet or ``fresh`` discards it, so that re-running a bundled
    study's bare command continues the same study.
    """
    return _settings_of(_stored_meta(Path(study_dir), fresh=fresh))


def _stored_meta(study_dir: Path, *, fresh: bool) -> dict[str, Any]:
    return {} if fresh else stored_meta(study_dir, strict=True)  # a damaged store: its error


def _settings_of(meta: dict[str, Any]) -> dict[str, Any]:
    if not meta:
        return {}
    return {**(meta.get("objective_config") or {}), "max_evals": meta.get("max_evals")}


def best_trial_report(
    study: Study,
    files: Sequence[str],
    make: Callable[[TrialRecord, int], dict[str, Any]],
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The final report of a study's best trial, made once and kept in ``summary.json``.

    While the best trial, the report's ``options`` (:attr:`Settings.report`, e.g. the stock
    study's ``test_folds``) and its ``files`` stay the same, the saved summary is returned
    (re-running a finished study retrains nothing). Otherwise ``make(best, seed)`` (``seed`` =
    the best trial's own training seed) builds it, and it is written atomically with
    ``best_tid`` and ``report_options`` added. ``None`` when no trial finished.
    """
    best = study.best
    if best is None:
        return None
    path = study.study_dir / SUMMARY_NAME
    previous = read_json(path)
    options = dict(options or {})
    if (
        isinstance(previous, dict)
        and previous.get("best_tid") == best.tid
        and previous.get("report_options", {}) == options
        and all((study.study_dir / name).exists() for name in files)
    ):
        return previous
    seed = derive_seed(int(study.meta["seed"]), best.tid, "objective")
    summary = {"best_tid": best.tid, "report_options": options, **make(best, seed)}
    write_json(path, summary, indent=2)
    return summary


def write_plots(
    study: Study, out_dir: str | Path | None = None, *, only: Sequence[str] | None = None
) -> list[Path]:
    """Every PNG of a study: the generic plots, then the bundled studies' extra plots.

    Args:
        study: the study.
        out_dir: the folder for the PNGs (default: the study folder).
        only: names of the bundled studies whose hooks run (default: all of them; each
            writes only what its own files allow).
    """

    out = Path(out_dir) if out_dir is not None else Path(study.study_dir)
    written = write_all(study, out)
    for name in BUNDLED if only is None else only:
        written += bundled_study(name).extra_plots(study, out)
    return written
