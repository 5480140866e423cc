"""Export a study as an Optuna RDB storage (SQLite) for ``optuna.load_study`` and optuna-dashboard.

Contract:
- One Optuna study, named after the study folder, holds one Optuna trial per tpetune trial.
  Its params and distributions are the hyperparameters *active* in that trial, with the same
  distribution for a label in every trial (:mod:`tpetune.exporters._params` says how hyperopt's
  distributions map and which fall back). A choice shows its option value, never its index.
- value = loss; state ok/pruned/fail/running -> COMPLETE/PRUNED/FAIL/RUNNING (an ``ok`` trial
  with a NaN loss is FAIL: Optuna refuses NaN). Optuna has no paused state: a ``paused`` trial
  (freeze-thaw) is WAITING ("may run later"), ``user_attrs["tpetune_state"] = "paused"``, and
  is completed in place once thawed. Intermediate values = the per-epoch ``val_loss`` curve
  (else ``loss``), or while a trial runs what it reported so far; times are the trial's own;
  user attributes hold ``tid``, ``metrics``, ``args``, ``error`` and ``unmapped`` values.
- Incremental and idempotent by tid: a trial already exported in a final state is left alone, a
  trial exported as RUNNING is completed in place when it finishes. A study started afresh
  (``--fresh``: another creation time) replaces the Optuna study of the same name.
- The tpetune store is only read, so this may run while the study runs in another process.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tpetune.errors import ConfigError, StoreError
from tpetune.exporters import Exported, require
from tpetune.exporters._params import Domain, domains
from tpetune.exporters.optuna_bulk import add_trials, count_trials
from tpetune.study.store import Store, TrialRecord, TrialState

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.storages import RDBStorage
    from optuna.trial import FrozenTrial

    from tpetune.study.study import Study

DEFAULT_TARGET = "optuna.db"
EXTRA = "dashboard"
_CREATED = "tpetune_created"
_METRIC_NAMES = "study:metric_names"


def export(study: Study, target: str | Path | None = None) -> Exported:
    """Write or bring up to date ``target`` (default ``STUDY_DIR/optuna.db``) from ``study``.

    Raises:
        MissingDependencyError: optuna is not installed.
        ConfigError: the target folder does not exist, or the file is no Optuna storage.
    """
    path = Path(target) if target is not None else study.study_dir / DEFAULT_TARGET
    return OptunaExport(path).sync(study)


def storage_url(path: str | Path) -> str:
    """The SQLAlchemy URL of an export file (what ``optuna-dashboard`` takes)."""
    return f"sqlite:///{Path(path).resolve()}"


class OptunaExport:
    """One Optuna storage file kept in step with one tpetune study by :meth:`sync`."""

    def __init__(self, path: str | Path) -> None:
        require("optuna", EXTRA)
        import optuna
        from optuna.storages import RDBStorage

        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise ConfigError(
                f"folder {self.path.parent} does not exist: create it, or give another file "
                "with -o (export) or --db (dashboard)"
            )
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created" line
        try:
            self.storage: RDBStorage = RDBStorage(storage_url(self.path))
        except Exception as exc:  # SQLAlchemy/Optuna raise many kinds for a foreign file
            reason = type(exc).__name__
            if "not a database" in str(exc):
                reason = "not a database"
            elif "unable to open" in str(exc):
                reason = "cannot be opened or created"
            raise ConfigError(
                f"{self.path} cannot be used as an Optuna storage ({reason}): give another "
                "file with -o (export) or --db (dashboard)"
            ) from None
        self._study_id: int | None = None
        self._created: Any = None  # the study's creation time: another one means --fresh
        self._trials: dict[int, tuple[int, TrialState]] = {}  # tid -> (trial_id, state)
        self._reported: dict[int, int] = {}  # tid -> last live step exported while running
        #: How often the study was written again after it was deleted from the export.
        self.rewritten = 0

    @property
    def study_id(self) -> int | None:
        """The Optuna study id (after the first :meth:`sync`), as in the dashboard's URLs."""
        return self._study_id

    def sync(self, study: Study, changed: Collection[int] | None = None) -> Exported:
        """Add new trials and complete those that finished since the last sync.

        ``changed`` (from :class:`tpetune.study.follow.StudyFollower`) limits the work to those
        tids (``None``: every trial). New trials go in in one transaction (``optuna_bulk``); a
        study deleted from the export (the dashboard's "Delete study") is written again
        (:attr:`rewritten`). An exclusive ``flock`` on the file keeps two exporters of one file
        from adding a trial twice.
        """
        with _exclusive(self.path):
            study_id = self._open_study(study)
            try:
                n_trials = count_trials(self.storage, study_id)
            except KeyError:  # deleted from the export: the study itself is untouched
                self._study_id = None
                self.rewritten += 1
                study_id, n_trials, changed = self._open_study(study), len(self._trials), None
            if n_trials != len(self._trials):
                self._load_trials(study_id)  # another exporter wrote to this file meanwhile
                changed = None
            if changed is None:
                records = study.records
            else:
                records = [r for r in study.records if r.tid in changed]
            new = [r for r in records if r.tid not in self._trials]
            doms = domains(study.meta.get("space"))
            ids = add_trials(self.storage, study_id, [_frozen(r, doms) for r in new])
            self._trials.update((r.tid, (i, r.state)) for r, i in zip(new, ids, strict=True))
            updated = 0
            live = _live_steps(study, records)
            for record in records:
                trial_id, state = self._trials[record.tid]
                if state in _OPEN and record.state not in _OPEN:
                    self._finish(trial_id, record)
                    self._trials[record.tid] = (trial_id, record.state)
                    updated += 1
                elif state in _OPEN and record.state is not state:  # paused <-> thawed
                    self._reopen(trial_id, record)
                    self._trials[record.tid] = (trial_id, record.state)
                    updated += 1
                if record.state is TrialState.RUNNING and live.get(record.tid):
                    self._report(trial_id, record.tid, live[record.tid])
        return Exported(str(self.path), len(new), updated, len(study.records))

    def _report(self, trial_id: int, tid: int, steps: list[tuple[int, float]]) -> None:
        """A running trial's values reported so far (``tpetune.report``), as they come."""
        from optuna.exceptions import UpdateFinishedTrialError

        done = self._reported.get(tid, 0)
        try:
            for step, value in steps:
                if step > done:
                    self.storage.set_trial_intermediate_value(trial_id, step, value)
                    self._reported[tid] = done = step
        except UpdateFinishedTrialError:
            pass  # another exporter of this file completed it

    def _open_study(self, study: Study) -> int:
        from optuna.exceptions import DuplicatedStudyError
        from optuna.study import StudyDirection

        name = study.study_dir.resolve().name
        created = study.meta.get("created")
        if self._study_id is not None and created == self._created:
            return self._study_id
        self._trials, self._created = {}, created
        try:
            study_id = self.storage.get_study_id_from_name(name)
        except KeyError:
            study_id = None
        attrs = {} if study_id is None else self.storage.get_study_user_attrs(study_id)
        if study_id is not None and attrs.get(_CREATED) != created:
            self.storage.delete_study(study_id)  # the study was started afresh
            study_id = None
        if study_id is None:
            try:
                study_id = self.storage.create_new_study([StudyDirection.MINIMIZE], name)
            except DuplicatedStudyError:  # another exporter created it just now
                study_id = self.storage.get_study_id_from_name(name)
            attrs = {
                _CREATED: created,
                "tpetune_study_dir": str(study.study_dir.resolve()),
                "tpetune_space": study.meta.get("space", {}),
            }
            for key, value in attrs.items():
                self.storage.set_study_user_attr(study_id, key, value)
            # What Study.set_metric_names writes (that method warns as experimental): the
            # dashboard and study.metric_names then say "loss", not "Objective 0".
            self.storage.set_study_system_attr(study_id, _METRIC_NAMES, ["loss"])
        self._load_trials(study_id)
        self._study_id = study_id
        return study_id

    def _load_trials(self, study_id: int) -> None:
        """tid -> (trial id, state) of the trials in the export (two columns, not whole trials:
        a dashboard restarted on a 20,000-trial export must not load them all)."""
        from optuna.storages._rdb import models

        trial, attr = models.TrialModel, models.TrialUserAttributeModel
        session = self.storage.scoped_session()
        try:
            rows = (
                session.query(trial.trial_id, trial.state, attr.value_json)
                .join(attr, attr.trial_id == trial.trial_id)
                .filter(trial.study_id == study_id, attr.key == "tid")
                .all()
            )
        finally:
            self.storage.scoped_session.remove()
        self._trials = {}
        for trial_id, state, tid in rows:
            tid = json.loads(tid)
            if isinstance(tid, int):
                self._trials[tid] = (trial_id, _TPETUNE_STATE[state.name])

    def _reopen(self, trial_id: int, record: TrialRecord) -> None:
        """A trial paused (WAITING) and thawed (RUNNING) again, or paused once more."""
        from optuna.exceptions import UpdateFinishedTrialError

        try:
            for step, point in _curve(record).items():
                self.storage.set_trial_intermediate_value(trial_id, step, point)
            self.storage.set_trial_user_attr(trial_id, "tpetune_state", record.state.value)
            self.storage.set_trial_state_values(trial_id, _state_value(record)[0])
        except UpdateFinishedTrialError:
            return  # another exporter of this file completed it

    def _finish(self, trial_id: int, record: TrialRecord) -> None:
        """Complete a trial exported as RUNNING (storage calls allow updates only while so)."""
        from optuna.exceptions import UpdateFinishedTrialError

        try:
            for step, point in _curve(record).items():
                self.storage.set_trial_intermediate_value(trial_id, step, point)
            for key, attr in _attrs(record, {}).items():
                self.storage.set_trial_user_attr(trial_id, key, attr)
            state, value = _state_value(record)
            values = None if value is None else [value]
            self.storage.set_trial_state_values(trial_id, state, values)
        except UpdateFinishedTrialError:
            return  # another exporter of this file completed it
        _stamp_complete(self.storage, trial_id, _end(record))


def _frozen(record: TrialRecord, doms: dict[str, Domain]) -> FrozenTrial:
    from optuna.trial import FrozenTrial
    from optuna.trial import TrialState as OptunaState

    params: dict[str, Any] = {}
    dists: dict[str, BaseDistribution] = {}
    unmapped: dict[str, Any] = {}
    for label, raw in record.params.items():
        domain = doms.get(label)
        try:
            if domain is None:
                raise ValueError(label)
            params[label] = domain.value(record, label)
        except ValueError:
            unmapped[label] = raw  # kept, as an attribute
            continue
        dists[label] = distribution(domain)
    state, value = _state_value(record)
    running = state in (OptunaState.RUNNING, OptunaState.WAITING)
    return FrozenTrial(
        number=-1,  # the storage numbers trials
        trial_id=-1,
        state=state,
        value=value,
        values=None,
        datetime_start=_local(record.started),
        datetime_complete=None if running else _local(_end(record)),
        params=params,
        distributions=dists,
        user_attrs=_attrs(record, unmapped),
        system_attrs={},
        intermediate_values=_curve(record),
    )


def distribution(domain: Domain) -> BaseDistribution:
    """The Optuna distribution of a :class:`Domain` (the same object for every trial)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if domain.kind == "categorical":
        return CategoricalDistribution(domain.choices)
    if domain.kind == "int":
        int_step = 1 if domain.step is None or domain.log else int(domain.step)
        return IntDistribution(int(domain.low), int(domain.high), log=domain.log, step=int_step)
    step = None if domain.log else domain.step
    return FloatDistribution(domain.low, domain.high, log=domain.log, step=step)


def _state_value(record: TrialRecord) -> tuple[Any, float | None]:
    from optuna.trial import TrialState as OptunaState

    loss = record.loss
    if record.state is TrialState.RUNNING:
        return OptunaState.RUNNING, None
    if record.state is TrialState.PAUSED:
        return OptunaState.WAITING, None  # Optuna has no paused state (module docstring)
    if record.state is TrialState.PRUNED:
        return OptunaState.PRUNED, None if loss is None or math.isnan(loss) else loss
    if record.state is TrialState.OK and loss is not None and not math.isnan(loss):
        return OptunaState.COMPLETE, loss
    return OptunaState.FAIL, None


_TPETUNE_STATE = {
    "RUNNING": TrialState.RUNNING,
    "WAITING": TrialState.PAUSED,
    "COMPLETE": TrialState.OK,
    "PRUNED": TrialState.PRUNED,
    "FAIL": TrialState.FAIL,
}


_OPEN = (TrialState.RUNNING, TrialState.PAUSED)  # Optuna storage still lets these change


def _live_steps(study: Study, records: list[TrialRecord]) -> dict[int, list[tuple[int, float]]]:
    """The steps running trials among ``records`` reported so far, read from the store."""
    running = [r.tid for r in records if r.state is TrialState.RUNNING]
    if not running:
        return {}
    try:
        store = Store.open(study.study_dir, readonly=True)
    except StoreError:
        return {}  # a study given from memory, or gone since it was loaded
    try:
        return {tid: store.steps(tid) for tid in running}
    finally:
        store.close()


def _curve(record: TrialRecord) -> dict[int, float]:
    """The per-epoch validation curve (``val_loss``, else ``loss``) at steps 1, 2, ..."""
    values = record.curves.get("val_loss") or record.curves.get("loss") or []
    return {step: float(v) for step, v in enumerate(values, start=1)}


def _attrs(record: TrialRecord, unmapped: dict[str, Any]) -> dict[str, Any]:
    attrs: dict[str, Any] = {"tid": record.tid, "tpetune_state": record.state.value}
    if record.metrics:
        attrs["metrics"] = record.metrics
    if record.args is not None:
        attrs["args"] = record.args
    if record.error:
        attrs["error"] = record.error
    if record.duration_s is not None:
        attrs["duration_s"] = record.duration_s
    if unmapped:
        attrs["unmapped"] = unmapped
    return attrs


def _end(record: TrialRecord) -> float:
    if record.finished is not None:
        return record.finished
    return record.started + (record.duration_s or 0.0)


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """An OS lock on the export file for one sync (SQLite's own locks are per statement)."""
    import fcntl

    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the flock


def _local(unix: float) -> dt.datetime:
    """Optuna's convention: naive local time (its RDB storage converts to UTC itself)."""
    return dt.datetime.fromtimestamp(unix)


def _stamp_complete(storage: RDBStorage, trial_id: int, unix: float) -> None:
    """Put the trial's real end time in place of the time Optuna stamped when it was completed.

    Optuna's storage API stamps "now" on completion and offers no setter, so this writes the
    one column through Optuna's own ORM model (which converts to its stored UTC form). A
    dashboard that read the trial in the instant between shows the sync's time instead.
    """
    from optuna.storages._rdb import models

    session = storage.scoped_session()
    try:
        trial = session.get(models.TrialModel, trial_id)
        if trial is not None:
            trial.datetime_complete = _local(unix)
            session.commit()
    finally:
        storage.scoped_session.remove()
