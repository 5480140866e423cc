"""Turn a hyperopt ``Trials`` (a ``trials.pkl``) into a tpetune study that continues it.

Many hyperopt users have a pickle from ``pickle.dump(trials, f)`` or
``fmin(trials_save_file=...)``. :func:`import_trials` converts it into a study whose meta is
what :func:`tpetune.tune` creates, so ``tpetune run SPACE.py --study-dir DIR`` resumes it and
TPE sees the old trials: values, states, losses, and curves/metrics where the results hold
them (a result's ``curves`` dict of per-epoch lists; other JSON-able keys as metrics).

Every trial is checked against the space before anything is written: unknown labels, values
outside a distribution's range (or not one of a choice's options), and a wrong set of active
labels (a label of a branch the trial did not take, or a missing one) refuse the import with
the offending tids. Finished trials keep their tids; trials still new or running in the pickle
are stored ``running`` and so are run first, with the same params, on resume.

:func:`load_pickle` is the one place tpetune unpickles, only on the explicit ``tpetune import``
command, and only the classes a Trials pickle holds unless told to trust the file.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tpetune._io import finite_float, is_json_value, jsonable, plain_number
from tpetune.engine import tuning
from tpetune.engine.options import Search, StopRules
from tpetune.errors import ConfigError, SpaceError, StoreError
from tpetune.migrate.safe_pickle import UnsafePickleError, load_trials_pickle
from tpetune.search.space import Space
from tpetune.study import provenance
from tpetune.study.attachments import storable
from tpetune.study.store import DB_NAME, Store, StudyLock, TrialRecord, TrialState

PICKLE_WARNING = (
    "tpetune: --trust-pickle: unpickling runs code from the file: use it only for pickles "
    "you made yourself"
)
_RESULT_KEYS = {"loss", "status", "curves", "error", "loss_variance", "true_loss"}


def load_pickle(path: str | Path, *, trust: bool = False) -> Any:
    """Unpickle a hyperopt ``Trials``, allowing only the classes such a pickle needs
    (:mod:`tpetune.migrate.safe_pickle`); ``trust`` unpickles anything (runs code from the file).

    Raises:
        ConfigError: the file is missing, not a pickle, holds no ``Trials``, or (unless
            ``trust``) names a class a Trials pickle does not need.
    """

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"trials file {path} not found: check the path")
    try:
        with open(path, "rb") as fh:
            trials = load_trials_pickle(fh, trust=trust)
    except UnsafePickleError as exc:
        raise UnsafePickleError(
            f"{path} refers to {exc}, which a hyperopt Trials pickle does not hold: refused "
            "without running it; if you made this file yourself, add --trust-pickle"
        ) from None
    except Exception as exc:  # a broken pickle can raise anything while it runs
        raise ConfigError(
            f"{path} is not a readable pickle ({type(exc).__name__}: {exc}); give the file "
            "written by pickle.dump(trials, f) or fmin(trials_save_file=...)"
        ) from None
    if not hasattr(trials, "_dynamic_trials"):
        raise ConfigError(
            f"{path} holds a {type(trials).__name__}, not a hyperopt Trials: pickle the Trials "
            "object itself"
        )
    return trials


def records_from_trials(trials: Any, space: Space) -> list[TrialRecord]:
    """One record per hyperopt trial document (errors included), checked against ``space``.

    Raises:
        SpaceError: trials that do not fit the space, each with its tid and why.
    """
    docs = sorted(getattr(trials, "_dynamic_trials", None) or trials.trials, key=lambda d: d["tid"])
    problems: list[str] = []
    records = []
    seen: set[int] = set()
    for doc in docs:
        tid = int(doc["tid"])
        if tid in seen:
            problems.append(f"tid {tid}: appears twice")
            continue
        seen.add(tid)
        vals = {k: plain_number(v[0]) for k, v in doc["misc"]["vals"].items() if len(v)}
        why = check_vals(space, vals)
        if why:
            problems.append(f"tid {tid}: {why}")
            continue
        records.append(_record(doc, tid, vals, space))
    if problems:
        shown = "; ".join(problems[:10]) + (
            f"; and {len(problems) - 10} more" if len(problems) > 10 else ""
        )
        raise SpaceError(
            f"{len(problems)} trial(s) do not fit the space: {shown}. Give the space file the "
            "trials were made with"
        )
    return records


def import_trials(
    trials: Any,
    space: Space,
    study_dir: str | Path,
    *,
    seed: int | None = None,
    algo: str | None = None,
    options: Mapping[str, Any] | None = None,
    source: str | Path | None = None,
    stream: Mapping[str, Any] | None = None,
) -> int:
    """Create a study in ``study_dir`` holding ``trials``; returns the number imported.

    ``stream``: continue with hyperopt.fmin's seeding from this generator state
    (:mod:`tpetune.search.seeding`), as ``hyperopt.fmin(trials=trials, rstate=...)`` would.

    The study is written beside the target and moved into place when complete, so a failed
    or killed import leaves no study behind.

    Raises:
        ConfigError: ``study_dir`` already holds a study, or the Trials is empty.
        SpaceError: trials that do not fit the space (nothing is written).
        StudyInUseError: another process holds the folder.
    """

    study_dir = Path(study_dir)
    records = records_from_trials(trials, space)
    if not records:
        raise ConfigError("the Trials holds no trials: nothing to import")
    if Store.exists(study_dir):
        raise ConfigError(
            f"{study_dir} already holds a study: import into a new --study-dir "
            "(tpetune never merges trials into a study)"
        )
    lock = StudyLock(study_dir).acquire()
    tmp = study_dir / ".import"
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        store = create_study_store(
            tmp,
            space,
            seed=seed,
            algo=algo,
            max_evals=len(records),
            options=options,
            stream=stream,
        )
        try:
            if stream is not None:  # hyperopt's stream starts after the imported trials
                store.set_meta(seed_stream_start=len(records))
            if source is not None:
                entry = provenance.file_entry(source)
                store.set_meta(imported_from={**(entry or {}), "trials": len(records)})
            for record in records:
                store.begin_trial(record)
                if record.state is not TrialState.RUNNING:
                    store.finish_trial(record, attachments=_attachments(trials, record.tid))
        finally:
            store.close()  # the last connection checkpoints the WAL into study.db
        for suffix in ("-wal", "-shm"):
            if (tmp / f"{DB_NAME}{suffix}").exists():
                raise StoreError(f"the imported study in {tmp} was not checkpointed; try again")
        os.replace(tmp / DB_NAME, study_dir / DB_NAME)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        lock.release()
    return len(records)


def _attachments(trials: Any, tid: int) -> dict[str, Any]:
    """Trial ``tid``'s attachments in the Trials (``ATTACH::<tid>::<name>``): bytes and str."""

    prefix = f"ATTACH::{tid}::"
    found = getattr(trials, "attachments", None) or {}
    items = {k[len(prefix) :]: v for k, v in found.items() if str(k).startswith(prefix)}
    return storable(items, tid)


def create_study_store(
    study_dir: Path,
    space: Space,
    *,
    seed: int | None,
    algo: str | None,
    max_evals: int,
    options: Mapping[str, Any] | None = None,
    stream: Mapping[str, Any] | None = None,
) -> Store:
    """A new study store with the meta :func:`tpetune.tune` writes (its own functions).

    TPE keeps hyperopt's default ``n_startup_jobs`` (20) unless ``options`` say otherwise:
    the imported search continues as it was run."""

    algo = algo or "tpe"
    if options is None:
        options = {"n_startup_jobs": 20} if algo == "tpe" else {}
    search = Search(
        algo=algo, seed=seed, options=dict(options), stream=stream, allow_duplicates=True
    )
    store, _ = tuning._open_store(study_dir, space, search, None, max_evals, StopRules(), {}, [])
    return store


# -- checking a trial against the space -----------------------------------------------------------
def check_vals(space: Space, vals: Mapping[str, Any]) -> str | None:
    """Why ``vals`` (hyperopt's flat assignment, choices as indices) is not a point of
    ``space``, or ``None`` when it is one."""
    nodes = _param_nodes(space)
    unknown = sorted(set(vals) - set(nodes))
    if unknown:
        return f"unknown label(s) {', '.join(unknown)}"
    for label, value in vals.items():
        why = _out_of_range(nodes[label], value)
        if why:
            return f"{label}={value!r} {why}"
    active: set[str] = set()
    try:
        _collect_active(space.expr, vals, active, set())
    except KeyError as exc:
        return f"label {exc.args[0]} is active but has no value"
    extra, missing = sorted(set(vals) - active), sorted(active - set(vals))
    if extra or missing:
        parts = ([f"inactive label(s) set: {', '.join(extra)}"] if extra else []) + (
            [f"active label(s) missing: {', '.join(missing)}"] if missing else []
        )
        return "wrong active set (" + "; ".join(parts) + ")"
    return None


def _param_nodes(space: Space) -> dict[str, Any]:
    from hyperopt import pyll

    return {
        str(n.arg["label"].obj): n for n in pyll.toposort(space.expr) if n.name == "hyperopt_param"
    }


def _literal_args(dist: Any) -> list[Any] | None:
    from hyperopt import pyll

    args = list(dist.pos_args) + [v for _, v in dist.named_args]
    if not all(isinstance(a, pyll.Literal) for a in args):
        return None  # a distribution with computed bounds: not checked
    return [a.obj for a in args]


def _out_of_range(node: Any, value: Any) -> str | None:
    dist = node.arg["obj"]
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return "is not a number"
    name = dist.name
    if name == "categorical":
        p = dist.pos_args[0]
        n = len(p.pos_args) if p.name == "pos_args" else len(getattr(p, "obj", []) or [])
        args: list[Any] | None = [0, n]
        name = "randint"
    else:
        args = _literal_args(dist)
    if args is None:
        return None
    eps = 1e-9
    if name == "randint":
        low, high = (0, args[0]) if len(args) == 1 else (args[0], args[1])
        if float(value) != int(value) or not low <= int(value) < high:
            return f"is not an integer in [{low}, {high})"
    elif name in ("uniform", "quniform", "loguniform", "qloguniform"):
        low, high = float(args[0]), float(args[1])
        if name.endswith("loguniform"):
            low, high = math.exp(low), math.exp(high)
        q = float(args[2]) if name.startswith("q") and len(args) > 2 else 0.0
        # quantised values are round(x / q) * q: they may reach q/2 past either bound
        if not low - q - eps * max(1.0, abs(low)) <= value <= high + q + eps * max(1.0, abs(high)):
            return f"is outside [{low:g}, {high:g}]"
    elif name in ("lognormal", "qlognormal") and value < 0:
        return "is negative for a lognormal"
    return None


def _collect_active(node: Any, vals: Mapping[str, Any], out: set[str], seen: set[int]) -> None:
    """Add the labels active under ``vals`` to ``out``: only a choice's taken branch counts."""
    if id(node) in seen:
        return
    seen.add(id(node))
    if node.name == "hyperopt_param":
        out.add(str(node.arg["label"].obj))
        return
    if node.name == "switch" and node.pos_args and node.pos_args[0].name == "hyperopt_param":
        index_node = node.pos_args[0]
        label = str(index_node.arg["label"].obj)
        out.add(label)
        index = int(vals[label])
        _collect_active(node.pos_args[1 + index], vals, out, seen)
        return
    for child in node.inputs():
        _collect_active(child, vals, out, seen)


# -- converting one document ------------------------------------------------------------------
def _record(doc: Mapping[str, Any], tid: int, vals: dict[str, Any], space: Space) -> TrialRecord:
    from hyperopt import base

    result = doc.get("result") or {}
    state_code = doc.get("state")
    started = _unix(doc.get("book_time"))
    finished = _unix(doc.get("refresh_time")) or started
    curves = _curves(result.get("curves"))
    metrics = {
        str(k): jsonable(v) for k, v in result.items() if k not in _RESULT_KEYS and is_json_value(v)
    }
    common = {
        "tid": tid,
        "params": space.params(vals),
        "vals": vals,
        "args": jsonable(space.evaluate(vals)),
        "started": started or 0.0,
    }
    if state_code in (base.JOB_STATE_NEW, base.JOB_STATE_RUNNING):
        return TrialRecord(state=TrialState.RUNNING, loss=None, **common)
    loss = result.get("loss")
    error = None
    if state_code == base.JOB_STATE_ERROR:
        err = (doc.get("misc") or {}).get("error")
        error = ": ".join(map(str, err)) if isinstance(err, list | tuple) else str(err or "error")
        state = TrialState.FAIL
    elif result.get("status") != base.STATUS_OK:
        state = TrialState.FAIL
        error = str(result.get("error") or f"hyperopt status {result.get('status')!r}")
    elif finite_float(loss) is None:
        state, error = TrialState.FAIL, f"loss is {loss!r}"
    else:
        state = TrialState.OK
    return TrialRecord(
        state=state,
        loss=finite_float(loss) if state is TrialState.OK else None,
        curves=curves,
        metrics=metrics,
        error=error,
        finished=finished,
        duration_s=round(max(0.0, (finished or 0.0) - (started or 0.0)), 6),
        **common,
    )


def _curves(raw: Any) -> dict[str, list[float]]:
    if not isinstance(raw, Mapping):
        return {}
    out = {}
    for k, v in raw.items():
        try:
            out[str(k)] = [float(x) for x in v]
        except (TypeError, ValueError):
            continue
    return out


def _unix(when: Any) -> float | None:
    if not isinstance(when, dt.datetime):
        return None
    if when.tzinfo is not None:
        return when.timestamp()
    return calendar.timegm(when.utctimetuple()) + when.microsecond / 1e6  # hyperopt: naive UTC
