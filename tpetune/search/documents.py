"""Hyperopt's trial documents built from store records: the one bridge between the two.

The driver feeds hyperopt with :func:`hyperopt_doc` as trials finish, and a resume, the Trials
view of ``tpetune.fmin`` and ``Study.trials`` rebuild the same documents from the store with it,
so TPE sees the same history either way. Imports hyperopt only inside the functions.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from tpetune._io import plain_number
from tpetune.study.store import TrialRecord, TrialState

#: The metric :func:`tpetune.fmin` records for a trial whose ``fn`` raised: hyperopt's
#: ``misc["error"]`` pair, ``[str(type(exc)), str(exc)]``.
RAISED = "fmin_raised"


def vals_of(doc: Mapping[str, Any]) -> dict[str, int | float]:
    """A hyperopt proposal document's point: label -> value of every active label."""
    return {k: plain_number(v[0]) for k, v in doc["misc"]["vals"].items() if v}


def vals_key(vals: Mapping[str, Any]) -> str:
    """The comparable form of a point (``1`` and ``1.0`` are the same choice index)."""
    return json.dumps({k: float(v) for k, v in vals.items()}, sort_keys=True)


def hyperopt_doc(record: TrialRecord, labels: list[str]) -> dict[str, Any]:
    """The hyperopt trial document for a record; ``labels`` are all labels of the space.

    The driver builds live documents with this same function, so a Trials rebuilt from the
    store equals the one an uninterrupted run holds, and TPE proposes identically on resume.
    A trial whose ``fn`` raised under :func:`tpetune.fmin` (metric :data:`RAISED`) is an
    error document, as hyperopt.fmin leaves it: out of ``trials.trials``, unseen by TPE.
    """
    from hyperopt import base

    # hyperopt lists every label of the space (TPE indexes them all); inactive ones are [].
    active = record.vals
    vals = {label: [active[label]] if label in active else [] for label in labels}
    idxs = {label: [record.tid] if label in active else [] for label in labels}
    if record.state is TrialState.RUNNING:
        state, result = base.JOB_STATE_RUNNING, {"status": base.STATUS_RUNNING}
    elif record.state is TrialState.FAIL or record.loss is None:
        state, result = base.JOB_STATE_DONE, {"status": base.STATUS_FAIL}
    else:  # ok and pruned: TPE learns from the loss a pruned trial reached
        state, result = base.JOB_STATE_DONE, {"status": base.STATUS_OK, "loss": record.loss}
    if record.error:
        result["error"] = record.error
    misc_error = {}
    if record.state is TrialState.FAIL and isinstance(record.metrics.get(RAISED), list):
        state, misc_error = base.JOB_STATE_ERROR, {"error": tuple(record.metrics[RAISED])}
    started = dt.datetime.fromtimestamp(record.started, dt.UTC).replace(tzinfo=None)
    ended = record.finished if record.finished is not None else record.started
    return {
        "state": state,
        "tid": record.tid,
        "spec": None,
        "result": result,
        "misc": {
            "tid": record.tid,
            "cmd": ("domain_attachment", "FMinIter_Domain"),
            "workdir": None,
            "idxs": idxs,
            "vals": vals,
            **misc_error,
        },
        "exp_key": None,
        "owner": None,
        "version": 0,
        "book_time": started,
        "refresh_time": dt.datetime.fromtimestamp(ended, dt.UTC).replace(tzinfo=None),
    }


def build_trials(records: list[TrialRecord], labels: list[str]) -> Any:
    """A hyperopt ``Trials`` holding one document per record, in id order."""
    from hyperopt import Trials

    trials = Trials()
    trials.insert_trial_docs([hyperopt_doc(r, labels) for r in records])
    trials.refresh()
    return trials
