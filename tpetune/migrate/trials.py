"""hyperopt ``Trials`` views of a study, for :func:`tpetune.fmin`.

:func:`fill_trials` makes a user's ``Trials`` hold the study's trials as hyperopt would have
filled it; :class:`EarlyStop` runs hyperopt's ``early_stop_fn`` as a :func:`tpetune.tune`
callback and rebuilds its state on resume by replaying the stored trials.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tpetune.study.store import Store, TrialRecord, TrialState


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
        from tpetune.search.documents import hyperopt_doc

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
        from tpetune.study.study import load_study

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
) -> Any:
    """Make ``trials`` hold the study's finished trials as hyperopt documents, in tid order.

    A trial's ``result`` is the raw value the objective returned when it is in ``results``
    (this run, in this process), else rebuilt from the store (loss, status, curves, metrics).
    A trial whose ``fn`` raised in this run is an error document (``JOB_STATE_ERROR`` with
    ``misc["error"]``), kept in ``trials._dynamic_trials`` but not in ``trials.trials``, as
    hyperopt leaves it.
    """
    from hyperopt import Trials, base

    from tpetune.search.documents import hyperopt_doc
    from tpetune.study.study import load_study

    study = load_study(study_dir)
    labels = list(study.meta.get("space", {})) or study.param_labels
    results, errors = results or {}, errors or {}
    docs = []
    for record in study.records:
        if record.state is TrialState.RUNNING:
            continue  # interrupted: not a finished trial
        doc = hyperopt_doc(record, labels)
        raw = results.get(record.tid)
        if record.tid in errors:
            exc = errors[record.tid]
            doc["state"] = base.JOB_STATE_ERROR
            doc["misc"]["error"] = (str(type(exc)), str(exc))
        elif isinstance(raw, Mapping):
            doc["result"] = {k: v for k, v in raw.items() if k != "attachments"}
            doc["result"].setdefault("status", doc_status(record))  # tpetune allows it unset
        elif raw is not None and doc["result"]["status"] == base.STATUS_OK:
            doc["result"] = {"loss": float(raw), "status": base.STATUS_OK}
        else:
            if record.curves:
                doc["result"]["curves"] = record.curves
            doc["result"].update(
                {k: v for k, v in record.metrics.items() if k not in doc["result"]}
            )
        docs.append(doc)
    trials = Trials() if trials is None else trials
    trials.delete_all()
    if docs:
        trials._insert_trial_docs(docs)  # our docs hold Python values already (SONify skipped)
    trials.refresh()
    return trials


def doc_status(record: TrialRecord) -> str:
    """hyperopt's status for a stored trial (``ok`` for ok and pruned ones)."""
    from hyperopt import base

    return base.STATUS_FAIL if record.state is TrialState.FAIL else base.STATUS_OK
