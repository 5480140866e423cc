"""hyperopt ``Trials`` views of a study, for :func:`tpetune.fmin`.

:func:`fill_trials` makes a user's ``Trials`` hold the study's trials as hyperopt would have
filled it; :class:`EarlyStop` runs hyperopt's ``early_stop_fn`` as a :func:`tpetune.tune`
callback and rebuilds its state on resume by replaying the stored trials.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tpetune.search.documents import hyperopt_doc
from tpetune.study.store import Store, TrialRecord, TrialState
from tpetune.study.study import load_study


class EarlyStop:
    """hyperopt's ``early_stop_fn`` as a tune() callback, with its state kept across resumes.

    It sees a ``Trials`` of the finished trials in the order they finished (as hyperopt's
    serial loop shows them), whatever the executor.
    """

    def __init__(self, fn: Callable[..., Any], labels: Sequence[str]) -> None:
        from hyperopt import Trials

        self.fn = fn
        self.labels = list(labels)
        self.args: list[Any] = []
        self.trials = Trials()
        self.seen: set[int] = set()

    def _step(self, record: TrialRecord, labels: list[str]) -> bool:

        if record.tid in self.seen:
            return False
        self.seen.add(record.tid)
        self.trials.insert_trial_docs([hyperopt_doc(record, labels)])
        self.trials.refresh()
        stop, args = self.fn(self.trials, *self.args)
        self.args = list(args) if args is not None else []
        return bool(stop)

    def replay(self, study_dir: Path) -> bool:
        """Feed the stored finished trials (by finish time); True when they already stop."""

        if not Store.exists(study_dir):
            return False
        study = load_study(study_dir)
        done = [r for r in study.records if r.state is not TrialState.RUNNING]
        stopped = False
        for record in sorted(done, key=lambda r: (r.finished or 0.0, r.tid)):
            stopped = self._step(record, self.labels) or stopped
        return stopped

    def __call__(self, trials: Any, record: TrialRecord) -> str | None:
        if self._step(record, self.labels):
            return "early_stop_fn stopped the search"
        return None


def fill_trials(
    trials: Any,
    study_dir: Path,
    results: Mapping[int, Any] | None = None,
    errors: Mapping[int, BaseException] | None = None,
    limit: int | None = None,
) -> Any:
    """Make ``trials`` hold the study's finished trials as hyperopt documents, in tid order,
    and ``trials.attachments`` the stored attachments (``ATTACH::<tid>::<name>``); with a
    ``limit``, only the trials of tid below it (the first ``limit`` trials of the study).

    A trial's ``result`` is the raw value the objective returned when it is in ``results``
    (this run, in this process; its attachments as returned), else rebuilt from the store
    (loss, status, curves, metrics). A trial whose ``fn`` raised in this run is an error
    document (``JOB_STATE_ERROR`` with ``misc["error"]``), kept in ``trials._dynamic_trials``
    but not in ``trials.trials``, as hyperopt leaves it. ``misc["vals"]`` hold numpy scalars
    listed by label, as hyperopt's algorithms make them (a warm-start point's: the values
    given), so ``trials.argmin`` prints as hyperopt's.
    """
    from hyperopt import Trials, base

    study = load_study(study_dir)
    labels = sorted(study.meta.get("space", {})) or sorted(study.param_labels)
    n_points = len(study.meta.get("points") or [])
    results, errors = results or {}, errors or {}
    store = Store.open(study_dir, readonly=True)
    try:
        attachments = store.attachments()
    finally:
        store.close()
    docs, named = [], {}
    for record in study.records:
        if record.state is TrialState.RUNNING or (limit is not None and record.tid >= limit):
            continue  # interrupted: not a finished trial; or past what this call asked for
        doc = hyperopt_doc(record, labels)
        _as_hyperopt_vals(doc, record, point=record.tid < n_points)
        raw = results.get(record.tid)
        items: Mapping[str, Any] = attachments.get(record.tid, {})
        if record.tid in errors:
            exc = errors[record.tid]
            doc["state"] = base.JOB_STATE_ERROR
            doc["misc"]["error"] = (str(type(exc)), str(exc))
        elif isinstance(raw, Mapping):
            doc["result"] = hyperopt_result(raw, doc_status(record))
            items = {**items, **(raw.get("attachments") or {})}
        elif raw is not None and doc["result"]["status"] == base.STATUS_OK:
            doc["result"] = {"loss": float(raw), "status": base.STATUS_OK}
        else:
            if record.curves:
                doc["result"]["curves"] = record.curves
            doc["result"].update(
                {k: v for k, v in record.metrics.items() if k not in doc["result"]}
            )
        docs.append(doc)
        named.update({f"ATTACH::{record.tid}::{name}": v for name, v in items.items()})
    trials = Trials() if trials is None else trials
    trials.delete_all()
    trials.attachments.update(named)
    if docs:
        trials._insert_trial_docs(docs)  # hyperopt's own value types already (SONify skipped)
    trials.refresh()
    return trials


def hyperopt_result(raw: Mapping[str, Any], status: str) -> dict[str, Any]:
    """The ``result`` hyperopt's Domain.evaluate keeps of a result dict: attachments moved
    out, the loss of an ``ok`` result as a float (tpetune allows ``status`` unset)."""
    from hyperopt import base

    result = {k: v for k, v in raw.items() if k != "attachments"}
    result.setdefault("status", status)
    if result["status"] == base.STATUS_OK and "loss" in result:
        result["loss"] = float(result["loss"])
    return result


def _as_hyperopt_vals(doc: dict[str, Any], record: TrialRecord, *, point: bool) -> None:
    """Give ``doc`` the value types hyperopt's own Trials holds: numpy int64/float64 from an
    algorithm's proposal; for a warm-start point only the labels given, as given."""
    import numpy as np

    misc = doc["misc"]
    if point:
        misc["vals"] = {k: [v] for k, v in record.vals.items()}
        misc["idxs"] = {k: [record.tid] for k in record.vals}
        return
    misc["vals"] = {
        k: [np.int64(v[0]) if isinstance(v[0], int) else np.float64(v[0])] if v else []
        for k, v in misc["vals"].items()
    }


def doc_status(record: TrialRecord) -> str:
    """hyperopt's status for a stored trial (``ok`` for ok and pruned ones)."""
    from hyperopt import base

    return base.STATUS_FAIL if record.state is TrialState.FAIL else base.STATUS_OK


class TrialCtrl:
    """hyperopt's ``base.Ctrl`` for an ``fn`` that takes ``ctrl`` (``pass_expr_memo_ctrl``).

    ``ctrl.attachments[name] = value`` keeps ``value`` with the trial (bytes and str are
    stored, as :mod:`tpetune.study.attachments` says); ``ctrl.trials`` is a ``Trials`` of the
    study's finished trials, with their attachments, read from the store when the trial can
    see it; ``ctrl.current_trial`` is this trial's document.
    """

    def __init__(self, tid: int, vals: Mapping[str, Any], study_dir: Path | None) -> None:
        from hyperopt import base

        self.current_trial: dict[str, Any] = {
            "state": base.JOB_STATE_RUNNING,
            "tid": tid,
            "spec": None,
            "result": {"status": base.STATUS_RUNNING},
            "misc": {
                "tid": tid,
                "cmd": ("domain_attachment", "FMinIter_Domain"),
                "workdir": None,
                "idxs": {k: [tid] for k in vals},
                "vals": {k: [v] for k, v in vals.items()},
            },
            "exp_key": None,
            "owner": None,
            "version": 0,
            "book_time": None,
            "refresh_time": None,
        }
        self._study_dir = study_dir
        self._trials: Any = None

    @property
    def trials(self) -> Any:
        if self._trials is None:
            from hyperopt import Trials

            seen = self._study_dir is not None and Store.exists(self._study_dir)
            self._trials = fill_trials(None, self._study_dir) if seen else Trials()  # type: ignore[arg-type]
        return self._trials

    @property
    def attachments(self) -> Any:
        """``ctrl.attachments[name]`` to read, ``ctrl.attachments[name] = value`` to keep."""
        return self.trials.trial_attachments(self.current_trial)

    def written(self) -> dict[str, Any]:
        """What ``fn`` wrote to :attr:`attachments`."""
        if self._trials is None:
            return {}
        prefix = f"ATTACH::{self.current_trial['tid']}::"
        return {
            k[len(prefix) :]: v for k, v in self._trials.attachments.items() if k.startswith(prefix)
        }

    def checkpoint(self, r: Any = None) -> None:
        """hyperopt's partial-result hook: kept on :attr:`current_trial` only."""
        if r is not None:
            self.current_trial["result"] = r

    def inject_results(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            "tpetune.fmin: ctrl.inject_results is not supported (trials are proposed by the "
            "study's algorithm only); return the result of this trial instead"
        )
